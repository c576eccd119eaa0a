"""The notebooks (notebooks/NN_*.py, jupytext py:percent) execute, as ``make notebooks`` runs them.

Notebooks 1-5 run at ``WORLDCOVER_NB_SIZE=tiny`` in a fresh kernel each (nbclient), on the
session's simulated archive (``small_archive``: its blocks, period and seed are the tiny size's),
sharing one cache folder so notebook 5 reuses the tiles and mosaic of notebook 4. Notebook 6
needs Planetary Computer: offline it must say so and finish without error; the ``live`` test
runs it for real.
"""

from __future__ import annotations

import importlib.util
import json
import re
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
OFFLINE_NOTEBOOKS = ("01_grid_and_stages", "02_one_block", "03_model", "04_products_and_mosaic", "05_validation")
LIVE_NOTEBOOK = "06_live_planetary_computer"


def _runner():
    """scripts/run_notebooks.py, the module ``make notebooks`` runs."""
    if "run_notebooks" in sys.modules:
        return sys.modules["run_notebooks"]
    spec = importlib.util.spec_from_file_location("run_notebooks", REPO / "scripts" / "run_notebooks.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["run_notebooks"] = module  # its dataclass looks its module up there
    spec.loader.exec_module(module)
    return module


def test_every_notebook_is_py_percent_and_uses_the_public_api():
    import jupytext

    paths = _runner().notebooks()
    assert [p.stem for p in paths] == [*OFFLINE_NOTEBOOKS, LIVE_NOTEBOOK]
    for path in paths:
        text = path.read_text()
        nb = jupytext.read(path)
        assert nb.metadata["jupytext"]["text_representation"]["format_name"] == "percent", path.name
        code = [c for c in nb.cells if c.cell_type == "code"]
        assert len(code) >= 3 and any(c.cell_type == "markdown" for c in nb.cells), path.name
        assert "import worldcover as wc" in text, path.name
        assert not re.search(r"worldcover\.(cli|demo)\b|from worldcover\.", text), f"{path.name}: not the public API"
        assert "WORLDCOVER_NB_SIZE" in text or "nbsetup.SIZE" in text, f"{path.name} ignores the size knob"


@pytest.fixture(scope="module")
def notebook_env(small_archive, tmp_path_factory) -> dict[str, str]:
    """The tiny size on the session's archive; one cache folder shared by the notebooks of this module."""
    return {"WORLDCOVER_NB_SIZE": "tiny", "WORLDCOVER_NB_ARCHIVE": str(small_archive),
            "WORLDCOVER_NB_CACHE": str(tmp_path_factory.mktemp("notebook-cache"))}


def _outputs(path: Path) -> tuple[list[dict], str]:
    """The executed notebook's code cells and all their text output."""
    cells = [c for c in json.loads(path.read_text())["cells"] if c["cell_type"] == "code"]
    text = []
    for c in cells:
        for o in c.get("outputs", []):
            text.append("".join(o.get("text", "")) + "".join(o.get("data", {}).get("text/plain", "")))
    return cells, "\n".join(text)


@pytest.mark.slow
@pytest.mark.parametrize("name", OFFLINE_NOTEBOOKS)
def test_notebook_executes_at_the_tiny_size(name, notebook_env, tmp_path):
    run = _runner().execute(REPO / "notebooks" / f"{name}.py", tmp_path, timeout=300, env=notebook_env)
    assert run.error == "", f"{name}: {run.error}"
    cells, text = _outputs(run.out)
    assert all(c["execution_count"] for c in cells), f"{name}: a cell did not run"
    assert not [o for c in cells for o in c.get("outputs", []) if o["output_type"] == "error"]
    images = [o for c in cells for o in c.get("outputs", []) if "image/png" in o.get("data", {})]
    assert images, f"{name}: no plot"
    cache = Path(notebook_env["WORLDCOVER_NB_CACHE"]) / "tiny"
    if name == "04_products_and_mosaic":
        assert (cache / "outputs" / "campaign" / "mosaic" / "2021" / "worldcover_2021_Map.vrt").exists()
    if name == "05_validation":
        assert (cache / "outputs" / "validation" / "report" / "report.html").exists()
        assert re.search(r"overall accuracy \d+\.\d %", text)
    print(f"{name}: {run.seconds:.1f} s, kernel CPU {run.cpu_seconds:.1f} s")


@pytest.mark.slow
def test_live_notebook_offline_says_so_and_finishes(tmp_path):
    run = _runner().execute(REPO / "notebooks" / f"{LIVE_NOTEBOOK}.py", tmp_path, timeout=120,
                            env={"WORLDCOVER_NB_OFFLINE": "1", "WORLDCOVER_NB_SIZE": "tiny"})
    assert run.error == ""
    _, text = _outputs(run.out)
    assert "not reachable: offline" in text


@pytest.mark.live
def test_live_notebook_on_planetary_computer(tmp_path):
    run = _runner().execute(REPO / "notebooks" / f"{LIVE_NOTEBOOK}.py", tmp_path, timeout=1200,
                            env={"WORLDCOVER_NB_SIZE": "tiny"})
    assert run.error == "", run.error
    _, text = _outputs(run.out)
    assert "reachable" in text and "not reachable" not in text and "S2 acquisitions" in text
