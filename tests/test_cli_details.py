"""Small things a new user meets first: --version, --help, `stac serve` signals and ports, STAC versions, ids."""

from __future__ import annotations

import json
import select
import signal
import socket
import subprocess
import sys

import psutil

from tests.conftest import run_cli
from worldcover.campaign.plan import CampaignPlan
from worldcover.mosaic import MosaicPaths, build_mosaic, validate_offline
from worldcover.mosaic import stac as mstac
from worldcover.mosaic.build import collection_id
from worldcover.mosaic.synthetic import synthetic_codes, write_tile
from worldcover.products import tile_paths

YEAR = 2021


def test_version_alone():
    from worldcover import __version__

    rc, out, err = run_cli("--version")
    assert rc == 0 and out.strip() == __version__ and err == ""


def test_flags_show_bare_in_help():
    """A flag takes no value: `--force` in the help, not `--force <bool>`; options with a value keep their type."""
    rc, out, err = run_cli("mosaic", "build", "--help")
    assert rc == 0, err
    assert "<bool>" not in out
    force = next(line for line in out.splitlines() if "--force" in line)
    assert "Recompute" in force
    assert "<int" in next(line for line in out.splitlines() if "--workers" in line)
    rc, out, _ = run_cli("--help")
    assert "<bool>" not in out and "--version" in out


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
        rc, out, err = run_cli("stac", "serve", str(tmp_path), "--port", port)
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


def test_mosaic_items_declare_the_tiles_classification_version(tmp_path):
    """A tile item declaring classification v1.1.0 (as the tile runner writes it) gives a mosaic item that declares
    v1.1.0 only, not pystac's migrated v2.0.0 beside it, and validates against it offline."""
    write_tile(tmp_path, "N42E009", YEAR, synthetic_codes((120, 120), 3), 600, 1200)
    item_path = tile_paths(tmp_path, "N42E009", YEAR).item
    item = json.loads(item_path.read_text())
    item["stac_extensions"] += [mstac.CLASSIFICATION, "https://stac-extensions.github.io/projection/v1.1.0/schema.json"]
    item_path.write_text(json.dumps(item))
    CampaignPlan.create("wc-1pct-2021", YEAR, tiles=["N42E009"]).save(tmp_path / "campaign.json")
    summary = build_mosaic(tmp_path, YEAR)
    assert summary["stac"]["not_vendored"] == []
    assert summary["stac"]["collection_id"] == "worldcover-wc-1pct-2021"
    paths = MosaicPaths(tmp_path, YEAR)
    out = json.loads((paths.items / "N42E009.json").read_text())
    declared = [u for u in out["stac_extensions"] if "/classification/" in u or "/projection/" in u]
    assert sorted(declared) == sorted([mstac.CLASSIFICATION, mstac.PROJECTION])
    assert mstac.CLASSIFICATION in validate_offline(out).validated
    assert json.loads(paths.collection.read_text())["id"] == "worldcover-wc-1pct-2021"


def test_stac_serve_bad_port(tmp_path):
    rc, out, err = run_cli("stac", "serve", str(tmp_path), "--port", "70000")
    assert rc == 2 and err.count("\n") == 1 and "invalid --port 70000" in err
