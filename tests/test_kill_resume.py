"""SIGKILL mid-campaign, then rerun: the campaign finishes, only unfinished work is redone,
nothing partial is ever taken for finished, and the result equals an uninterrupted run.

The real CLI (``python -m worldcover campaign run``, local dask engine) runs as a
subprocess on a small simulated campaign (2 tiles x 2 blocks of 60 px, two months
of data, the committed model). The test polls the output root and kills the whole
process with SIGKILL at three points:

1. as soon as a first block is recorded (a tile half done);
2. while a tile is being assembled (its scratch files exist), or failing that once
   one tile is finished and another has begun;
3. during the merge (the mosaic folder exists, its manifest does not yet).

After each kill it checks the invariants (no finished-looking partial file, only
temporary names for unfinished writes, the dask workers died with their parent),
and the next run must not redo anything that was finished (same inode and mtime).
While the first run holds the output root, a second run on it is refused with a
one-line message (exit 2) and touches nothing. A stale lock file left by the
killed process never blocks the rerun. Figures go to ``$WORLDCOVER_FAULT_LOG``
(default: the test's tmp dir) as JSON.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import psutil
import pytest
import rasterio

from tests.helpers import DEFAULT_MODEL as MODEL
from tests.small_campaign import BLOCK, TILES, TWO_BLOCKS, YEAR, blocks
from worldcover.layout import is_finished, tile_paths
from worldcover.storage import is_temp_name
from worldcover.tile.products import block_done

SPEC = TWO_BLOCKS


def _cli_args(url: str, out: Path) -> list[str]:
    return ["campaign", "run", "--tiles", ",".join(TILES), "--year", str(YEAR), "--source", url,
            "--model", str(MODEL), "--out", str(out), "--block-size", str(BLOCK), "--blocks", SPEC,
            "--workers", "1", "--threads", "1", "--retries", "0", "--json"]


def _start(url: str, out: Path, cwd: Path) -> subprocess.Popen:
    env = {k: v for k, v in os.environ.items() if k != "WORLDCOVER_DEBUG"}
    return subprocess.Popen([sys.executable, "-m", "worldcover", *_cli_args(url, out)], cwd=cwd, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


# -- what is on disk ------------------------------------------------------------------------------

_blocks = blocks


def _state(out: Path) -> dict:
    """Finished tiles, done blocks and in-assembly tiles, as found on disk right now."""
    finished, blocks, assembling = [], {}, []
    for t in TILES:
        p = tile_paths(out, t, YEAR)
        if p.item.exists():
            finished.append(t)
        blocks[t] = sorted(p.block_record(b.key).name for b in _blocks(t) if p.block_record(b.key).exists())
        if p.dir.is_dir() and any(p.dir.glob(".*.scratch.tif")):
            assembling.append(t)
    mosaic = out / "mosaic" / str(YEAR)
    return {"finished": finished, "blocks": blocks, "assembling": assembling,
            "merging": mosaic.is_dir() and not (mosaic / "manifest.json").exists(),
            "merged": (mosaic / "manifest.json").exists()}


def _identity(path: Path) -> tuple[int, int]:
    st = path.stat()
    return st.st_ino, st.st_mtime_ns


def _finished_work(out: Path) -> dict[str, tuple[int, int]]:
    """inode and mtime of every finished product and every done block (what must never be redone)."""
    ids = {}
    for t in TILES:
        p = tile_paths(out, t, YEAR)
        if is_finished(p):
            for f in (p.item, p.map, p.prob, p.quality):
                ids[str(f.relative_to(out))] = _identity(f)
        for b in _blocks(t):
            if block_done(p, b):
                for f in (p.block_result(b.key), p.block_record(b.key)):
                    ids[str(f.relative_to(out))] = _identity(f)
    return ids


TEMP_SUFFIXES = (".tmp", ".tif")


def _check_no_partial_taken_as_complete(out: Path) -> dict:
    """Every visible file is complete and readable; unfinished writes exist only under temporary names."""
    visible, temporary = 0, []
    for f in sorted(p for p in out.rglob("*") if p.is_file()):
        name = f.name
        if any(is_temp_name(part) for part in f.relative_to(out).parts[:-1]):
            temporary.append(str(f.relative_to(out)))  # in an atomic_workdir scratch folder (rio-cogeo's temp file)
            continue
        if name == ".worldcover.lock":
            continue
        if name == ".checksums.json":  # products' checksum memo: a complete (atomically written) cache
            json.loads(f.read_text())
            continue
        if name.startswith("."):
            temporary.append(str(f.relative_to(out)))
            # atomic_path: .<dest name>.<random><suffix>; assembly scratch: .<name>.scratch.tif
            assert name.endswith(TEMP_SUFFIXES) and name.count(".") >= 2, f"odd hidden file {f}"
            continue
        visible += 1
        if name.endswith(".json"):
            json.loads(f.read_text())  # a torn JSON file would raise here
        elif name.endswith(".tif"):
            with rasterio.open(f) as src:
                src.read()  # a truncated GeoTIFF would raise here
    for t in TILES:
        p = tile_paths(out, t, YEAR)
        if p.item.exists():  # an item is written last: all its assets are complete and checksummed
            assert is_finished(p), f"{t}: STAC item present but its assets do not match their checksums"
        for b in _blocks(t):
            rec = p.block_record(b.key)
            if rec.exists():
                assert block_done(p, b), f"{t} {b.key}: block record without a matching result"
    return {"visible": visible, "temporary": temporary}


def _kill_when(proc: subprocess.Popen, out: Path, condition, what: str, timeout: float = 240) -> dict:
    """Poll ``out``; SIGKILL the process (and see its dask workers die) when ``condition(state)`` holds."""
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        if proc.poll() is not None:
            _, err = proc.communicate()
            pytest.fail(f"the run ended (rc {proc.returncode}) before {what}: {err[-2000:]}")
        state = _state(out)
        if condition(state):
            family = psutil.Process(proc.pid).children(recursive=True)
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait(30)
            # the workers must not outlive the killed engine and go on writing into the root
            gone, alive = psutil.wait_procs(family, timeout=20)
            for p in alive:
                p.kill()
            assert not alive, f"dask processes outlived the killed engine: {[p.pid for p in alive]}"
            proc.stdout.close()
            proc.stderr.close()
            return {"fault": what, "after_s": round(time.monotonic() - t0, 2), "state": state,
                    "children_killed_with_it": len(family)}
        time.sleep(0.02)
    proc.kill()
    pytest.fail(f"timed out waiting for {what}")


@pytest.mark.slow
def test_sigkill_mid_campaign_then_rerun_redoes_only_unfinished_work(small_api, small_archive, tmp_path):
    from typer.testing import CliRunner

    from worldcover.cli import app

    out = tmp_path / "campaign"
    faults = []
    lock = out / ".worldcover.lock"

    # -- run 1: a second run on the same root is refused while this one holds it; then kill 1
    proc = _start(small_api.url, out, tmp_path)
    t0 = time.monotonic()
    while not (lock.exists() and lock.read_text().strip() == str(proc.pid)):
        assert proc.poll() is None, proc.communicate()[1][-2000:]
        assert time.monotonic() - t0 < 120, "the run never took the lock"
        time.sleep(0.05)
    plan_before = (out / "campaign.json").read_bytes() if (out / "campaign.json").exists() else None
    second = CliRunner().invoke(app, _cli_args(small_api.url, out))
    assert second.exit_code == 2, second.output
    message = second.stderr.strip()
    assert message.count("\n") == 0 and "Traceback" not in second.output
    assert f"is in use by a running campaign (pid {proc.pid})" in message and str(out) in message
    mosaic_cli = CliRunner().invoke(app, ["mosaic", "build", "--campaign", str(out)])
    assert mosaic_cli.exit_code == 2 and "in use by a running campaign" in mosaic_cli.stderr
    # the refused runs wrote nothing: no mosaic, no validation, the plan untouched, the holder still running
    assert not (out / "mosaic").exists() and not (out / "validation").exists()
    assert plan_before is None or (out / "campaign.json").read_bytes() == plan_before
    assert proc.poll() is None and lock.read_text().strip() == str(proc.pid)

    def some_block_not_all_tiles(s):
        return any(s["blocks"].values()) and len(s["finished"]) < len(TILES)

    faults.append(_kill_when(proc, out, some_block_not_all_tiles, "a first block recorded, tiles unfinished"))
    assert lock.read_text().strip() == str(proc.pid)  # the dead process's lock file stays: it must not block
    checks = [_check_no_partial_taken_as_complete(out)]
    done1 = _finished_work(out)
    assert done1, "the first kill came before any block was done"

    # -- run 2: resumes; kill while a tile is being assembled (or once a tile is finished and another started)
    proc = _start(small_api.url, out, tmp_path)

    def assembling_or_next_tile(s):
        next_tile = len(s["finished"]) >= 1 and any(s["blocks"][t] for t in TILES if t not in s["finished"])
        return (s["assembling"] or next_tile) and len(s["finished"]) < len(TILES)

    faults.append(_kill_when(proc, out, assembling_or_next_tile, "tile assembly / second tile started"))
    checks.append(_check_no_partial_taken_as_complete(out))
    for rel, ident in done1.items():
        assert _identity(out / rel) == ident, f"{rel} was redone although it was finished"
    done2 = _finished_work(out)
    assert len(done2) > len(done1)

    # -- run 3: finishes the tiles; kill during the merge
    proc = _start(small_api.url, out, tmp_path)
    faults.append(_kill_when(proc, out, lambda s: s["merging"], "merge in progress"))
    checks.append(_check_no_partial_taken_as_complete(out))
    for rel, ident in done2.items():
        assert _identity(out / rel) == ident, f"{rel} was redone although it was finished"
    done3 = _finished_work(out)
    assert all(is_finished(tile_paths(out, t, YEAR)) for t in TILES)

    # -- run 4: uninterrupted to the end
    proc = _start(small_api.url, out, tmp_path)
    stdout, stderr = proc.communicate(timeout=300)
    assert proc.returncode == 0, stderr[-3000:]
    summary = json.loads(stdout)
    assert summary["failed_tiles"] == []
    assert {t: v["status"] for t, v in summary["tiles"].items()} == {t: "skipped" for t in TILES}
    assert summary["merge"]["ok"] and summary["validate"]["ok"]
    for rel, ident in done3.items():
        assert _identity(out / rel) == ident, f"{rel} was redone although it was finished"
    final = _check_no_partial_taken_as_complete(out)
    assert final["temporary"] == [], "temporary files of the killed runs were left behind"

    # -- the same campaign without interruption gives the same products
    ref = tmp_path / "reference"
    proc = _start(small_api.url, ref, tmp_path)
    stdout, stderr = proc.communicate(timeout=300)
    assert proc.returncode == 0, stderr[-3000:]
    lost = []
    for t in TILES:
        a, b = tile_paths(out, t, YEAR), tile_paths(ref, t, YEAR)
        for name in ("map", "prob", "quality"):
            with rasterio.open(getattr(a, name)) as x, rasterio.open(getattr(b, name)) as y:
                same = x.profile == y.profile and np.array_equal(x.read(), y.read())
            if not same:
                lost.append(f"{t} {name}")
        ia, ib = (json.loads(p.item.read_text())["properties"] for p in (a, b))
        for k in ("created",):
            ia.pop(k), ib.pop(k)
        assert ia == ib, t
    assert lost == [], f"resumed products differ from an uninterrupted run: {lost}"
    areas = [json.loads((r / "mosaic" / str(YEAR) / f"worldcover_{YEAR}_areas.json").read_text()) for r in (out, ref)]
    assert areas[0]["groups"] == areas[1]["groups"]

    figures = {"faults_injected": len(faults), "faults": faults, "checks_after_kill": checks,
               "refused_concurrent_runs": 2, "products_compared": 3 * len(TILES), "lost": lost}
    log = Path(os.environ.get("WORLDCOVER_FAULT_LOG", tmp_path / "faults.json"))
    log.write_text(json.dumps(figures, indent=1, default=str))
    print(json.dumps({k: v for k, v in figures.items() if k != "checks_after_kill"}, default=str))


def test_every_local_writer_refuses_a_root_in_use(tmp_path):
    """campaign run, tile run and mosaic build on a root held by a running campaign: one line, exit 2, no write."""
    from typer.testing import CliRunner

    from worldcover.cli import app
    from worldcover.storage import lock as campaign_lock

    root = tmp_path / "root"
    commands = [
        ["campaign", "run", "--tiles", "N45E003", "--out", str(root), "--source", "http://127.0.0.1:9"],
        ["tile", "run", "N45E003", "--year", "2021", "--source", "http://127.0.0.1:9", "--out", str(root)],
        ["mosaic", "build", "--campaign", str(root), "--year", "2021"],
    ]
    with campaign_lock(root):  # a second open file description: flock conflicts even in one process
        listing = sorted(os.listdir(root))
        for args in commands:
            result = CliRunner().invoke(app, args)
            assert result.exit_code == 2, result.output
            assert result.stderr.count("\n") == 1 and "is in use by a running campaign" in result.stderr
            assert sorted(os.listdir(root)) == listing
