"""``worldcover validate`` commands: JSON shape, bad tables -> exit 2 with one line, file outputs."""

from __future__ import annotations

import json
import subprocess
import sys

import pandas as pd
import pytest
from typer.testing import CliRunner

from worldcover.cli.validate import app
from worldcover.validation.synthetic import banded_map, write_class_map

runner = CliRunner()

COUNTS = """map\\ref,Deforestation,Forest gain,Stable forest,Stable non-forest
Deforestation,66,0,5,4
Forest gain,0,55,8,12
Stable forest,1,0,153,11
Stable non-forest,2,1,9,313
"""
PIXELS = """class,mapped_pixels
Deforestation,200000
Forest gain,150000
Stable forest,3200000
Stable non-forest,6450000
"""


def _write(tmp_path, counts=COUNTS, area=PIXELS):
    c, a = tmp_path / "counts.csv", tmp_path / "area.csv"
    c.write_text(counts)
    a.write_text(area)
    return c, a


def test_estimate_json_shape_and_values(tmp_path):
    c, a = _write(tmp_path)
    result = runner.invoke(
        app, ["estimate", "--counts", str(c), "--mapped-area", str(a), "--pixel-area-ha", "0.09", "--json"])
    assert result.exit_code == 0, result.output
    d = json.loads(result.stdout)
    assert list(d) == ["n", "overall_accuracy", "classes", "error_matrix_proportions"]
    assert d["n"] == 640
    assert set(d["overall_accuracy"]) == {"estimate", "se", "ci95_halfwidth"}
    assert list(d["classes"]) == ["Deforestation", "Forest gain", "Stable forest", "Stable non-forest"]
    for cls in d["classes"].values():
        assert list(cls) == ["users_accuracy", "producers_accuracy", "area_proportion", "area_ha"]
        assert all(set(v) == {"estimate", "se", "ci95_halfwidth"} for v in cls.values())
    assert round(d["classes"]["Deforestation"]["area_ha"]["estimate"]) == 21158
    assert len(d["error_matrix_proportions"]) == 4 and all(len(r) == 4 for r in d["error_matrix_proportions"])


def test_estimate_accepts_area_in_ha_and_reordered_columns(tmp_path):
    reordered = """map,Stable non-forest,Deforestation,Forest gain,Stable forest
Deforestation,4,66,0,5
Forest gain,12,0,55,8
Stable forest,11,1,0,153
Stable non-forest,313,2,1,9
"""
    area = ("class,mapped_area_ha\nDeforestation,18000\nForest gain,13500\nStable forest,288000\n"
            "Stable non-forest,580500\n")
    c, a = _write(tmp_path, reordered, area)
    result = runner.invoke(app, ["estimate", "--counts", str(c), "--mapped-area", str(a), "--json"])
    assert result.exit_code == 0, result.output
    d = json.loads(result.stdout)
    assert round(d["overall_accuracy"]["estimate"], 4) == 0.9465
    assert round(d["classes"]["Stable non-forest"]["area_ha"]["ci95_halfwidth"]) == 16282


BAD_TABLES = [
    ("row without column", COUNTS.replace(",Stable non-forest\n", "\n", 1).replace(",4\n", "\n", 1)
     .replace(",12\n", "\n", 1).replace(",11\n", "\n", 1).replace(",313\n", "\n", 1), PIXELS, [],
     "map class 'Stable non-forest' (a row) has no column"),
    ("column without row", COUNTS.replace("Stable non-forest,2,1,9,313\n", ""), PIXELS, [],
     "reference class 'Stable non-forest' (a column) has no row"),
    ("negative count", COUNTS.replace("66,", "-66,"), PIXELS, [], "expected a non-negative whole number"),
    ("non-integer count", COUNTS.replace("66,", "6.5,"), PIXELS, [], "expected a non-negative whole number"),
    ("non-numeric cell", COUNTS.replace("153", "lots"), PIXELS, [], "'lots' is not numeric"),
    ("nan cell", COUNTS.replace("153", "nan"), PIXELS, [], "expected a non-negative whole number"),
    ("empty cell", COUNTS.replace(",153,", ",,"), PIXELS, [], "is empty"),
    ("stratum without samples", COUNTS.replace("Forest gain,0,55,8,12", "Forest gain,0,0,0,0"), PIXELS, [],
     "stratum 'Forest gain' has no samples"),
    ("class missing from area table", COUNTS, PIXELS.replace("Forest gain,150000\n", ""), [],
     "no row for class(es) 'Forest gain'"),
    ("duplicate row", COUNTS + "Deforestation,1,1,1,1\n", PIXELS, [], "'Deforestation' appears twice"),
    ("duplicate column", COUNTS.replace("Stable non-forest\n", "Deforestation\n", 1), PIXELS, [],
     "'Deforestation' appears twice"),
    ("duplicate area row", COUNTS, PIXELS + "Deforestation,5\n", [], "'Deforestation' appears twice"),
    ("empty counts file", "", PIXELS, [], "is empty"),
    ("empty area file", COUNTS, "\n\n", [], "is empty"),
    ("ragged row", COUNTS.replace("66,0,5,4", "66,0,5"), PIXELS, [], "4 cells, expected 5"),
    ("non-numeric area", COUNTS, PIXELS.replace("150000", "many"), [], "'many' is not numeric"),
    ("pixels without pixel area", COUNTS, PIXELS, None, "--pixel-area-ha is needed"),
    ("mapped class without samples", COUNTS, PIXELS + "Water,10\n", [], "'Water' have mapped area but no row"),
    ("area table without class column", COUNTS, "name,mapped_pixels\nx,1\n", [], "no 'class' column"),
]


@pytest.mark.parametrize("label, counts, area, extra, message", BAD_TABLES, ids=[b[0] for b in BAD_TABLES])
def test_bad_tables_exit_2_with_one_line(tmp_path, label, counts, area, extra, message):
    c, a = _write(tmp_path, counts, area)
    args = ["estimate", "--counts", str(c), "--mapped-area", str(a), "--json"]
    if extra is not None:
        args += ["--pixel-area-ha", "0.09"]
    result = runner.invoke(app, args)
    assert result.exit_code == 2, (label, result.output)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert message in lines[0]
    assert "Traceback" not in result.output and result.stdout == ""


def test_bad_table_in_a_real_process_has_no_traceback(tmp_path):
    c, a = _write(tmp_path, COUNTS.replace("153", "x"))
    proc = subprocess.run(
        [sys.executable, "-m", "worldcover", "validate", "estimate", "--counts", str(c), "--mapped-area", str(a),
         "--pixel-area-ha", "0.09"],
        capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode == 2
    assert proc.stderr.count("\n") == 1 and proc.stderr.startswith("error: counts table")
    assert "Traceback" not in proc.stderr and proc.stdout == ""


@pytest.fixture(scope="module")
def small_map(tmp_path_factory):
    data = banded_map((400, 600), [(10, 0.6), (40, 0.3), (80, 0.1)])
    return write_class_map(tmp_path_factory.mktemp("cli") / "map.tif", data, west=10.0, north=48.0)


@pytest.mark.parametrize("suffix", [".csv", ".geojson", ".gpkg"])
def test_design_command_writes_samples(small_map, tmp_path, suffix):
    out = tmp_path / "sub" / f"samples{suffix}"
    result = runner.invoke(app, ["design", "--map", str(small_map), "--n", "120", "--min-per-class", "20",
                                 "--seed", "3", "--out", str(out), "--json"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["n"] == 120 and sum(s["n"] for s in summary["strata"]) == 120
    assert min(s["n"] for s in summary["strata"]) == 20
    assert out.exists() and out.stat().st_size > 0
    if suffix == ".csv":
        df = pd.read_csv(out)
        assert len(df) == 120 and "reference_class" in df.columns


def test_design_command_errors_are_one_line(small_map, tmp_path):
    result = runner.invoke(app, ["design", "--map", str(small_map), "--n", "10", "--out", str(tmp_path / "s.csv")])
    assert result.exit_code == 2
    assert result.stderr.strip().count("\n") == 0 and "expected n >= 150" in result.stderr
    result = runner.invoke(app, ["design", "--map", str(tmp_path / "missing.tif"), "--out", str(tmp_path / "s.csv")])
    assert result.exit_code == 2 and "cannot be opened" in result.stderr
    result = runner.invoke(app, ["design", "--map", str(small_map), "--out", str(tmp_path / "s.shp")])
    assert result.exit_code == 2 and "expected a .csv, .geojson or .gpkg" in result.stderr
    assert not (tmp_path / "s.csv").exists()
