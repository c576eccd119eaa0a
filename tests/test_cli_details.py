"""Small things a new user meets first: --version, --help, `stac serve` signals and ports, STAC versions, ids."""

from __future__ import annotations

import json
import select
import signal
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import psutil
import pytest

from tests.helpers import run_cli
from worldcover.campaign.plan import CampaignPlan
from worldcover.layout import tile_paths
from worldcover.mosaic import MosaicPaths, build_mosaic, validate_offline
from worldcover.mosaic import stac as mstac
from worldcover.mosaic.build import collection_id
from worldcover.mosaic.synthetic import synthetic_codes, write_tile

YEAR = 2021


def test_version_alone():
    from worldcover import __version__

    rc, out, err = run_cli("--version")
    assert rc == 0 and out.strip() == __version__ and err == ""


def test_flags_show_bare_in_help():
    """A flag takes no value: `--force` in the help, not `--force <bool>`; options with a value keep their type."""
    from typer.testing import CliRunner

    from worldcover.cli import app

    out = CliRunner().invoke(app, ["mosaic", "build", "--help"], terminal_width=120).stdout
    assert "<bool>" not in out
    force = next(line for line in out.splitlines() if "--force" in line)
    assert "Recompute" in force
    assert "<int" in next(line for line in out.splitlines() if "--workers" in line)
    for args in (["--help"], ["campaign", "promote", "--help"], ["stac", "serve", "--help"]):
        out = CliRunner().invoke(app, args, terminal_width=120).stdout
        assert "<bool>" not in out and "--help" in out


def _read_line(proc: subprocess.Popen, timeout: float = 60) -> str:
    ready, _, _ = select.select([proc.stdout], [], [], timeout)
    assert ready, "stac serve printed no URL in time"
    return proc.stdout.readline().strip()


def test_stac_serve_stops_rustac_on_sigterm_and_refuses_a_busy_port(sample_archive, tmp_path):
    proc = subprocess.Popen([sys.executable, "-m", "worldcover", "stac", "serve", str(sample_archive), "--port", "0"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        url = _read_line(proc)
        assert url.startswith("http://127.0.0.1:")
        rustac = [c for c in psutil.Process(proc.pid).children(recursive=True) if "rustac" in c.name()]
        assert len(rustac) == 1
        port = url.rsplit(":", 1)[1]
        # a second server on that port: one line, exit 2, and the first one keeps serving
        from typer.testing import CliRunner

        from worldcover.cli import app

        busy = CliRunner().invoke(app, ["stac", "serve", str(tmp_path), "--port", port])
        rc, out, err = busy.exit_code, busy.stdout, busy.stderr
        assert rc == 2 and out == "" and err.count("\n") == 1, err
        assert err.startswith(f"error: port {port} on 127.0.0.1 is in use") and "Traceback" not in err
        assert proc.poll() is None and rustac[0].is_running()
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=20) == 0
        gone, alive = psutil.wait_procs(rustac, timeout=10)
        assert not alive, "rustac still running after SIGTERM to `stac serve`"
        with socket.create_server(("127.0.0.1", int(port))):  # the port is free again
            pass
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_collection_id_does_not_repeat_the_year():
    assert collection_id(None, 2021) == "worldcover-2021"
    plan = CampaignPlan.create("wc-1pct-2021", YEAR, tiles=["N42E009"])
    assert collection_id(plan, YEAR) == "worldcover-wc-1pct-2021"
    assert collection_id(CampaignPlan.create("pilot", YEAR, tiles=["N42E009"]), YEAR) == "worldcover-pilot-2021"
    assert collection_id(CampaignPlan.create("run-20210", YEAR, tiles=["N42E009"]), YEAR) == "worldcover-run-20210-2021"


@pytest.fixture(scope="module")
def one_tile_mosaic(tmp_path_factory):
    """A mosaic of one small patch of a coastal tile whose item declares classification v1.1.0 (as the tile
    runner writes it) and an older projection version."""
    root = tmp_path_factory.mktemp("one-tile")
    write_tile(root, "N42E009", YEAR, synthetic_codes((120, 120), 3), 600, 1200)
    item_path = tile_paths(root, "N42E009", YEAR).item
    item = json.loads(item_path.read_text())
    item["stac_extensions"] += [mstac.CLASSIFICATION, "https://stac-extensions.github.io/projection/v1.1.0/schema.json"]
    item_path.write_text(json.dumps(item))
    CampaignPlan.create("wc-1pct-2021", YEAR, tiles=["N42E009"]).save(root / "campaign.json")
    return root, build_mosaic(root, YEAR)


def test_mosaic_items_declare_the_tiles_classification_version(one_tile_mosaic):
    """The mosaic item declares classification v1.1.0 only, not pystac's migrated v2.0.0 beside it, and
    validates against it offline."""
    tmp_path, summary = one_tile_mosaic
    assert summary["stac"]["not_vendored"] == []
    assert summary["stac"]["collection_id"] == "worldcover-wc-1pct-2021"
    paths = MosaicPaths(tmp_path, YEAR)
    out = json.loads((paths.items / "N42E009.json").read_text())
    declared = [u for u in out["stac_extensions"] if "/classification/" in u or "/projection/" in u]
    assert sorted(declared) == sorted([mstac.CLASSIFICATION, mstac.PROJECTION])
    assert mstac.CLASSIFICATION in validate_offline(out).validated
    assert json.loads(paths.collection.read_text())["id"] == "worldcover-wc-1pct-2021"


def test_stac_serve_bad_port(tmp_path):
    from typer.testing import CliRunner

    from worldcover.cli import app

    r = CliRunner().invoke(app, ["stac", "serve", str(tmp_path), "--port", "70000"])
    assert r.exit_code == 2 and r.stderr.count("\n") == 1 and "invalid --port 70000" in r.stderr


def test_quicklook_shows_sea_land_coast_and_the_tile(one_tile_mosaic):
    """A 120 px patch is far below a pixel of the overview: the overview still shows where it is (tile outline and
    a marker of fixed size) over sea, land and coastline, and a panel zooms on the data."""
    import matplotlib.image as mpimg

    from worldcover.legend import BY_CODE
    from worldcover.mosaic import quicklook as ql

    root, _ = one_tile_mosaic
    rgb = (mpimg.imread(MosaicPaths(root, YEAR).quicklook)[..., :3] * 255).round().astype(np.int64)
    packed = rgb[..., 0] << 16 | rgb[..., 1] << 8 | rgb[..., 2]
    share = {name: np.mean(packed == (r << 16 | g << 8 | b)) for name, (r, g, b) in
             (("sea", ql.OCEAN_RGB), ("land", ql.LAND_RGB), ("tile", (0xB0, 0x00, 0x20)))}
    assert share["sea"] > 0.05 and share["land"] > 0.05  # N42E009: Corsica, Sardinia, Italy and the sea around
    assert share["tile"] > 1e-4
    coast = (np.abs(rgb - 115).max(axis=-1) <= 8)  # the coastline's grey (0.45)
    assert coast.sum() > 500
    colours = {int(BY_CODE[c].colour, 16) for c in (10, 20, 30, 40)}
    assert all(np.any(packed == c) for c in colours)  # the zoomed panel (and legend) in the map's colours
    assert ql.view_extent((9.0, 12.0, 42.0, 45.0)) == (4.5, 16.5, 40.5, 46.5)


def test_quicklook_land_mask_is_the_validation_mask():
    """The quicklook reads the shipped coast table bit by bit (no 220 MB unpacking in the merge): the same
    land/sea as the validation's GLOBE mask, everywhere."""
    from worldcover.landmask import GlobeLandMask
    from worldcover.mosaic.quicklook import globe_land

    rng = np.random.default_rng(16)
    lon, lat = rng.uniform(-180, 180, 20000), rng.uniform(-90, 90, 20000)
    land = globe_land(lon, lat)
    assert np.array_equal(land, GlobeLandMask().is_land(lon, lat))
    assert 0.2 < land.mean() < 0.4  # about 30 % of the globe's area is land


def test_a_reader_that_stops_early_ends_the_command_quietly():
    """``worldcover grid tiles | head -1``: no error message, the exit code of a tool stopped by SIGPIPE."""
    proc = subprocess.Popen([sys.executable, "-m", "worldcover", "grid", "tiles"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, cwd=Path(__file__).resolve().parents[1])
    assert proc.stdout is not None and proc.stderr is not None
    proc.stdout.close()  # the reader is gone before the first of thousands of tile ids is printed
    err = proc.stderr.read()
    assert proc.wait(timeout=60) == 141
    assert err == b""
