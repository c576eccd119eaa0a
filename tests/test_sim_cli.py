"""``worldcover sim generate``: bad input is one line and exit code 2; a small run writes an archive."""

from __future__ import annotations

import json

import pytest

from tests.helpers import run_cli


@pytest.mark.parametrize("args,expected", [
    (["--tiles", "X00E006"], "invalid tile id"),
    (["--tiles", "N01E006"], "3-degree lattice"),
    (["--tiles", "N00E006", "--year", "2014"], "invalid year 2014"),
    (["--tiles", "N00E006", "--blocks", "r0c0,foo"], "invalid block 'foo'"),
    (["--tiles", "N00E006", "--blocks", "r500c0", "--block-size", "256"], "outside tile N00E006"),
    (["--tiles", "N00E006", "--blocks", "first:0"], "first:N"),
    (["--tiles", "N00E006", "--layout", "copernicus"], "unknown layout"),
    (["--tiles", "N00E006", "--period", "2021-06-01"], "invalid --period"),
])
def test_bad_input_is_one_line_and_exit_2(tmp_path, args, expected):
    base = {"--year": "2021", "--out": str(tmp_path / "out")}
    argv = list(args)
    for k, v in base.items():
        if k not in argv:
            argv += [k, v]
    code, out, err = run_cli("sim", "generate", *argv)
    assert code == 2, (out, err)
    assert expected in err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "out" / "sim.json").exists()


@pytest.mark.slow  # simulates an archive: ~5 s
def test_small_run_writes_an_archive(tmp_path):
    out = tmp_path / "arch"
    code, stdout, err = run_cli("sim", "generate", "--tiles", "S36W063", "--year", "2021", "--out", str(out),
                                "--blocks", "r300c200", "--block-size", "64", "--period", "2021-03-01/2021-03-12",
                                "--seed", "2", "--json")
    assert code == 0, err
    summary = json.loads(stdout)
    assert summary["blocks"] == ["S36W063_r300c200"] and summary["seed"] == 2
    assert summary["items_written"]["sentinel-2-l2a"] >= 2
    assert (out / "truth" / "S36W063" / "S36W063_r300c200_truth.tif").is_file()
    fc = json.loads((out / "stac" / "items" / "sentinel-2-l2a.json").read_text())
    assert len(fc["features"]) == summary["items_written"]["sentinel-2-l2a"]
