"""Following a local campaign (`campaign status ROOT`) and promoting it stage by stage (`campaign promote`).

The campaign root is built from the markers the local engine writes (plan, block records, STAC items,
FAILED.json, the root's lock), not by running the chain: one tile done, one failed, one running, two pending.
"""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from worldcover import storage
from worldcover.campaign.plan import CampaignPlan
from worldcover.campaign.promote import PromotionRefused, promote, run_command, stage_plan_path
from worldcover.campaign.status import campaign_status
from worldcover.cli import app
from worldcover.errors import InputError
from worldcover.layout import tile_paths
from worldcover.mosaic.synthetic import write_tile
from worldcover.stages import stage_tiles

YEAR = 2021
BLOCKS = "r0c0,r0c1,r0c2"  # three blocks per tile
T0 = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)


def _record(root: Path, tile: str, key: str, minutes: float) -> None:
    """A block record as `write_block_result` leaves it (the fields status reads)."""
    path = tile_paths(root, tile, YEAR).block_record(key)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"block": f"{tile}_{key}", "key": key, "size": 3000, "sha256": "0" * 64,
                                "written": (T0 + timedelta(minutes=minutes)).isoformat()}))


@pytest.fixture
def campaign_root(tmp_path) -> tuple[Path, list[str]]:
    tiles = sorted(t.id for t in stage_tiles("1pct"))[:5]
    done, failed, running = tiles[:3]
    CampaignPlan.create("wc-1pct-2021", YEAR, stage="1pct", tiles=tiles, out_root=str(tmp_path), blocks=BLOCKS,
                        engine="local").save(tmp_path / "campaign.json")
    write_tile(tmp_path, done, YEAR, np.full((60, 60), 10, np.uint8))  # a finished tile: item and assets
    minute = 0
    for key in ("r00c00", "r00c01", "r00c02"):
        _record(tmp_path, done, key, minute)
        minute += 2
    _record(tmp_path, failed, "r00c00", minute)
    minute += 2
    failure = {"tile": failed, "error": "DataError: no S2 items"}
    tile_paths(tmp_path, failed, YEAR).failure.write_text(json.dumps(failure))
    for key in ("r00c00", "r00c01"):
        _record(tmp_path, running, key, minute)
        minute += 2
    return tmp_path, tiles


def test_status_counts_tiles_blocks_throughput_and_eta(campaign_root):
    root, tiles = campaign_root
    st = campaign_status(root)
    assert [(t.tile, t.state, t.blocks_done) for t in st.tiles] == [
        (tiles[0], "done", 3), (tiles[1], "failed", 1), (tiles[2], "running", 2), (tiles[3], "pending", 0),
        (tiles[4], "pending", 0)]
    assert {s: st.count(s) for s in ("done", "failed", "running", "pending")} == {
        "done": 1, "failed": 1, "running": 1, "pending": 2}
    assert (st.blocks_done, st.blocks_total, st.blocks_to_go) == (6, 15, 7)  # failed tiles wait for a retry
    # six records two minutes apart: 5 intervals in 10 minutes = 30 blocks/h; 7 blocks to go: 14 minutes
    assert st.blocks_per_hour == pytest.approx(30.0)
    assert st.mpx_per_hour == pytest.approx(30 * 9.0)  # 3000 px blocks: 9 Mpx each
    assert st.eta_s == pytest.approx(14 * 60)
    assert st.writer == "" and not st.finished
    assert "no S2 items" in st.tiles[1].error
    assert st.mosaic_tiles is None and st.overall_accuracy is None
    (root / "validation").mkdir()
    (root / "validation" / "metrics.json").write_text(json.dumps(
        {"overall_accuracy": {"estimate": 0.8, "ci95_halfwidth": 0.02}}))
    assert campaign_status(root).overall_accuracy == (0.8, 0.02)


def test_status_sees_a_writer_holding_the_root(campaign_root):
    root, _ = campaign_root
    with storage.lock(root):
        assert campaign_status(root).writer == f"pid {os.getpid()}"
    assert campaign_status(root).writer == ""  # the lock file stays, but nobody holds it


def test_status_cli_plain_json_and_watch(campaign_root):
    root, tiles = campaign_root
    runner = CliRunner()
    result = runner.invoke(app, ["campaign", "status", str(root)])
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0] == f"campaign wc-1pct-2021 (stage 1pct, 2021) at {root}: not running"
    assert lines[1] == "tiles: 1 done, 1 failed, 1 running, 2 pending (of 5)"
    assert lines[2] == "blocks: 6 of 15 done (40 %)"
    assert lines[3].startswith("throughput: 30.0 blocks/h, 270.0 Mpx/h (last 6 blocks)")
    assert lines[4].startswith("ETA: 14 min 00 s for 7 blocks to go")
    assert lines[5] == f"failed {tiles[1]}: DataError: no S2 items"
    assert "\x1b" not in result.stdout  # plain: no control codes

    as_json = json.loads(runner.invoke(app, ["campaign", "status", str(root), "--json"]).stdout)
    assert as_json["counts"] == {"done": 1, "failed": 1, "running": 1, "pending": 2} and as_json["eta_s"] == 840

    # the live view ends by itself once every tile is done or failed and nobody writes
    for t in tiles[2:]:
        tile_paths(root, t, YEAR).failure.parent.mkdir(parents=True, exist_ok=True)
        tile_paths(root, t, YEAR).failure.write_text(json.dumps({"error": "stopped"}))
    watched = runner.invoke(app, ["campaign", "status", "--watch", "--interval", "0.2", str(root)])
    assert watched.exit_code == 0, watched.output
    assert "4 failed" in watched.stdout and "tiles not done" in watched.stdout


def test_status_of_a_root_without_a_plan_and_argo_routing(tmp_path, monkeypatch):
    runner = CliRunner()
    bad = runner.invoke(app, ["campaign", "status", str(tmp_path)])
    assert bad.exit_code == 2 and bad.stderr.strip() == (
        f"error: no campaign.json under {str(tmp_path)!r}: expected a campaign output root "
        "(the --out of `campaign run`)")
    for root in ("ftp://host/x", "run/\n"):
        refused = runner.invoke(app, ["campaign", "status", root])
        assert refused.exit_code == 2 and refused.stderr.startswith("error: invalid campaign root"), refused.output
    # a workflow name still asks the Argo Server (none configured here: one line, exit 2)
    monkeypatch.delenv("ARGO_SERVER", raising=False)
    argo = runner.invoke(app, ["campaign", "status", "wc-1pct-2021-abcde"])
    assert argo.exit_code == 2 and "Argo Server" in argo.stderr


# --- promotion -----------------------------------------------------------------------------------


def _validated(root: Path, oa: float = 0.81) -> CampaignPlan:
    plan = CampaignPlan.create("wc-1pct-2021", YEAR, stage="1pct", out_root=str(root),
                               source="http://127.0.0.1:9/dead-demo-server")
    plan.save(root / "campaign.json")
    (root / "validation").mkdir()
    (root / "validation" / "metrics.json").write_text(json.dumps(
        {"overall_accuracy": {"estimate": oa, "se": 0.01, "ci95_halfwidth": 0.02}}))
    return plan


def test_promote_keeps_each_stage_plan_and_takes_the_source(tmp_path):
    first = _validated(tmp_path)
    p = promote(tmp_path, "1pct", "10pct", source="planetary-computer")
    one, ten = stage_plan_path(tmp_path, "1pct"), stage_plan_path(tmp_path, "10pct")
    assert one.name == "campaign-1pct.json" and ten.name == "campaign-10pct.json"
    assert CampaignPlan.load(one) == first  # the validated stage's plan, as it ran
    kept = CampaignPlan.load(ten)
    assert kept == p.plan and kept.stage == "10pct" and kept.source == "planetary-computer"
    assert CampaignPlan.load(tmp_path / "campaign.json") == kept  # the current stage, for the readers
    assert set(first.tiles) < set(kept.tiles)
    command = run_command(kept)  # what the CLI prints to run the new stage
    assert command.startswith("worldcover campaign run --stage 10pct --year 2021 --name wc-10pct-2021 "
                              f"--source planetary-computer --out {tmp_path}")
    assert "--model" not in command and "--block-size" not in command  # defaults left out


def test_promote_refuses_to_skip_a_stage_unless_forced(tmp_path):
    _validated(tmp_path)
    before = sorted(p.name for p in tmp_path.iterdir())
    with pytest.raises(InputError, match="that skips 10pct"):
        promote(tmp_path, "1pct", "100pct", source="planetary-computer")
    r = CliRunner().invoke(app, ["campaign", "promote", "--from", "1pct", "--to", "100pct", "--out", str(tmp_path),
                                 "--source", "planetary-computer"])
    rc, out, err = r.exit_code, r.stdout, r.stderr
    assert rc == 2 and out == "" and err.count("\n") == 1 and "Traceback" not in err
    assert err.strip() == ("error: cannot promote 1pct to 100pct: that skips 10pct, which is never validated; "
                           "promote to 10pct first (or pass --force)")
    assert sorted(p.name for p in tmp_path.iterdir()) == before  # nothing written
    forced = promote(tmp_path, "1pct", "100pct", source="planetary-computer", force=True)
    assert forced.plan.stage == "100pct" and stage_plan_path(tmp_path, "100pct").exists()


def test_promote_needs_a_valid_source(tmp_path):
    _validated(tmp_path)
    with pytest.raises(InputError, match="invalid source 'nowhere'"):
        promote(tmp_path, "1pct", "10pct", source="nowhere")
    r = CliRunner().invoke(app, ["campaign", "promote", "--from", "1pct", "--to", "10pct", "--out", str(tmp_path)])
    assert r.exit_code == 2 and "--source" in r.stderr
    assert not stage_plan_path(tmp_path, "10pct").exists()
    with pytest.raises(PromotionRefused):
        _low = tmp_path / "low"
        _low.mkdir()
        _validated(_low, oa=0.5)
        promote(_low, "1pct", "10pct", source="planetary-computer")
    assert not stage_plan_path(_low, "1pct").exists()


@pytest.mark.slow
def test_status_of_a_root_on_s3(campaign_root, s3_bucket):
    """The same markers in a bucket (moto's S3 server on loopback) give the same status; the lock object's
    owner is the writer."""
    root, _ = campaign_root
    url = f"{s3_bucket}/run"
    for f in root.rglob("*"):
        if f.is_file() and f.name != storage.LOCK_NAME:
            storage.put_copy(f, f"{url}/{f.relative_to(root).as_posix()}")
    local, remote = campaign_status(root), campaign_status(url)
    assert [(t.tile, t.state, t.blocks_done, t.error) for t in remote.tiles] == \
        [(t.tile, t.state, t.blocks_done, t.error) for t in local.tiles]
    assert remote.blocks_per_hour == local.blocks_per_hour and remote.eta_s == local.eta_s
    assert remote.writer == "" and remote.root == url
    with storage.lock(url):
        assert campaign_status(url).writer.endswith(f"pid {os.getpid()}")
