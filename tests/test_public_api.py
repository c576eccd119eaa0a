"""The public API of ``import worldcover as wc``: every exported name resolves, and importing is cheap.

Each check runs in a fresh interpreter: this test session has long imported everything.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

HEAVY = ("lightgbm", "dask", "distributed", "rasterio", "matplotlib", "xarray", "odc.stac", "pystac_client")


def _python(code: str) -> str:
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return proc.stdout


def test_import_is_lazy_and_changes_no_process_state():
    out = json.loads(_python(
        "import json, logging, sys; before = logging.getLogRecordFactory(); import worldcover as wc; "
        f"print(json.dumps({{'heavy': [m for m in {HEAVY!r} if m in sys.modules], "
        "'factory_replaced': logging.getLogRecordFactory() is not before, 'version': wc.__version__}))"))
    assert out["heavy"] == [], f"`import worldcover` imported {out['heavy']}"
    assert out["factory_replaced"] is False  # the CLI installs the redaction, not the library import
    assert out["version"]


def test_every_public_name_resolves_and_is_documented():
    out = json.loads(_python(
        "import json, worldcover as wc\n"
        "bad, undocumented = [], []\n"
        "for name in wc.__all__:\n"
        "    try:\n"
        "        obj = getattr(wc, name)\n"
        "    except Exception as exc:\n"
        "        bad.append(f'{name}: {type(exc).__name__}: {exc}')\n"
        "        continue\n"
        "    if callable(obj) and not (getattr(obj, '__doc__', None) or '').strip():\n"
        "        undocumented.append(name)\n"
        "print(json.dumps({'n': len(wc.__all__), 'bad': bad, 'undocumented': undocumented,\n"
        "                  'dir_has_all': set(wc.__all__) <= set(dir(wc)),\n"
        "                  'unique': len(set(wc.__all__)) == len(wc.__all__),\n"
        "                  'all_is_api': set(wc.__all__) == set(wc._API) | {'__version__', 'load_default_model'}}))"))
    assert out["bad"] == []
    assert out["unique"] and out["all_is_api"]  # __all__ (a literal, for linters and IDEs) lists exactly the table
    assert out["undocumented"] == []
    assert out["dir_has_all"] and out["n"] >= 40


def test_unknown_name_is_an_attribute_error():
    out = _python("import worldcover as wc\ntry:\n    wc.no_such_thing\nexcept AttributeError as e:\n    print(e)")
    assert "no_such_thing" in out


@pytest.mark.slow  # fresh interpreters: ~7 s
def test_process_entry_points_install_log_redaction():
    """The CLI and an Argo pod's runner entrypoint redact on import; a dask worker's step when it runs."""
    for module in ("worldcover.cli", "worldcover.engines.argo.entry"):
        out = _python(f"import logging; before = logging.getLogRecordFactory(); import {module}; "
                      "print(logging.getLogRecordFactory() is not before)")
        assert out.strip() == "True", module
    out = _python("import json, logging; before = logging.getLogRecordFactory()\n"
                  "from worldcover.engines.local import run_step\n"
                  "changed_on_import = logging.getLogRecordFactory() is not before\n"
                  "run_step(json.dumps({'function': 'no_such_step', 'kwargs': {}}), retries=0)\n"
                  "print(changed_on_import, logging.getLogRecordFactory() is not before)")
    assert out.split()[-1] == "True"


def test_public_api_drives_a_class_map(tmp_path):
    """Names from the API work together: a legend image of the default model's classes."""
    import numpy as np

    import worldcover as wc

    codes = np.array([[0, 10], [50, 80]], dtype=np.uint8)
    rgba = wc.class_rgba(codes)
    assert rgba.shape == (2, 2, 4) and rgba[0, 0, 3] == 0 and tuple(rgba[1, 0]) == (0xFA, 0, 0, 255)
    assert [p.get_label().split()[0] for p in wc.legend_patches(codes)] == ["10", "50", "80"]
    assert wc.Tile.parse("N00E006").bbox == (6.0, 0.0, 9.0, 3.0)
