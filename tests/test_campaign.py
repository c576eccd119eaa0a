"""Campaign plans, estimates, step calls, promotion gate, the engine's lock and retries."""

from __future__ import annotations

import json
import multiprocessing as mp

import pytest

from tests.helpers import run_cli
from worldcover.campaign import CampaignPlan, steps
from worldcover.campaign.calls import StepCall, normalise, step_calls
from worldcover.campaign.estimate import estimate, tile_area_km2
from worldcover.campaign.promote import PromotionRefused, promote
from worldcover.engines.local import run_step
from worldcover.errors import InputError
from worldcover.grid import Tile
from worldcover.stages import stage_tiles
from worldcover.storage import lock as campaign_lock


def test_plan_from_stage_is_the_stage():
    plan = CampaignPlan.create("wc-1pct-2021", 2021, stage="1pct")
    assert list(plan.tiles) == [t.id for t in stage_tiles("1pct")]
    assert sum(len(b) for b in plan.batches()) == len(plan.tiles)


def test_100pct_batches_bound_workflow_size():
    plan = CampaignPlan.create("wc-100pct-2021", 2021, stage="100pct", batch_size=50)
    assert len(plan.batches()) == 54 and max(len(b) for b in plan.batches()) == 50


@pytest.mark.parametrize("field, value, message", [
    ("name", "{{workflow.parameters.x}}", "campaign name"),
    ("name", "Upper", "campaign name"),
    ("name", "a" * 41, "campaign name"),
    ("out_root", "../../etc", "output root"),
    ("out_root", "out/$(rm -rf ~)", "output root"),
    ("model", "models/{{inputs.x}}", "model"),
    ("source", "http://x/`id`", "source"),
])
def test_injection_and_traversal_rejected(field, value, message):
    kwargs = {"name": "ok", "model": "models/default", "out_root": "out", "source": "planetary-computer"}
    kwargs[field] = value
    name = kwargs.pop("name")
    with pytest.raises(InputError, match=message):
        CampaignPlan.create(name, 2021, tiles=["N00E006"], **kwargs)


def test_plan_round_trip_and_unknown_fields(tmp_path):
    plan = CampaignPlan.create("rt", 2022, tiles=["N00E006", "S03W063"], block_size=300, blocks="first:2")
    path = plan.save(tmp_path / "c.json")
    assert CampaignPlan.load(path) == plan
    data = json.loads(path.read_text())
    data["colour"] = "red"
    path.write_text(json.dumps(data))
    with pytest.raises(InputError, match="unknown field"):
        CampaignPlan.load(path)
    path.write_text("{not json")
    with pytest.raises(InputError, match="not valid JSON"):
        CampaignPlan.load(path)


def test_estimate_is_consistent():
    p100 = CampaignPlan.create("e", 2021, stage="100pct")
    est = estimate(p100, mpx_per_s_per_core=0.1)
    # all land outside Antarctica is about 134-136 million km²
    assert 1.30e8 < est.land_km2 < 1.40e8
    slower = estimate(p100, mpx_per_s_per_core=0.05)
    assert slower.core_hours == pytest.approx(2 * est.core_hours, rel=1e-3)
    assert est.cost == pytest.approx(est.core_hours * est.price_per_core_hour, abs=0.01)
    # the equator tile is the largest: 3x3 degrees ~ 111,000 km²
    assert tile_area_km2(Tile.parse("N00E006")) == pytest.approx(111_300, rel=0.01)
    assert tile_area_km2(Tile.parse("N60E006")) < 0.55 * tile_area_km2(Tile.parse("N00E006"))


def test_step_calls_cover_tiles_then_finish():
    plan = CampaignPlan.create("c", 2021, tiles=["N00E006", "S03W063"], block_size=300)
    calls = step_calls(plan)
    assert [c.name for c in calls] == ["write_plan", "process_tile", "process_tile", "collect_failures", "merge",
                                       "validate"]
    assert CampaignPlan.from_dict(json.loads(calls[0].arguments["plan"])) == plan  # the whole plan, tiles too
    assert calls[1].arguments["tile"] == "N00E006" and calls[1].arguments["block_size"] == 300
    # every argument is a parameter of the real step function
    import inspect
    for c in calls:
        assert set(c.arguments) <= set(inspect.signature(c.resolve()).parameters)


def test_normalise_argo_strings():
    args = normalise(steps.process_tile, {"year": "2021", "block_size": "300", "max_cloud": "", "tile": "N00E006"})
    assert args == {"year": 2021, "block_size": 300, "max_cloud": None, "tile": "N00E006"}


def test_run_step_retries_transient_failures(tmp_path):
    call = StepCall("tests.engine_steps.flaky", (("counter", str(tmp_path / "n")), ("fail_times", 2)))
    out = run_step(call.to_json(), retries=2, backoff_s=0.01)
    assert out["ok"] and out["attempts"] == 3 and out["result"] == {"calls": 3}
    (tmp_path / "n").unlink()
    out = run_step(call.to_json(), retries=1, backoff_s=0.01)
    assert not out["ok"] and "transient failure 2" in out["error"] and out["attempts"] == 2


def test_run_step_does_not_retry_bad_data(tmp_path):
    call = StepCall("tests.engine_steps.bad_input", (("counter", str(tmp_path / "n")),))
    out = run_step(call.to_json(), retries=3, backoff_s=0.01)
    assert not out["ok"] and out["attempts"] == 1 and "corrupt COG" in out["error"]
    assert (tmp_path / "n").read_text() == "1"


def _hold_lock(root, ready, release):
    with campaign_lock(root):
        ready.set()
        release.wait(10)


def test_two_runs_on_one_root_are_refused(tmp_path):
    ctx = mp.get_context("spawn")
    ready, release = ctx.Event(), ctx.Event()
    proc = ctx.Process(target=_hold_lock, args=(str(tmp_path), ready, release))
    proc.start()
    try:
        assert ready.wait(30)
        with pytest.raises(InputError, match="in use by a running campaign"), campaign_lock(tmp_path):
            pass
    finally:
        release.set()
        proc.join(10)
    with campaign_lock(tmp_path):  # free again once the holder is gone
        pass


def _staged_root(tmp_path, oa):
    plan = CampaignPlan.create("wc-1pct-2021", 2021, stage="1pct", out_root=str(tmp_path))
    plan.save(tmp_path / "campaign.json")
    (tmp_path / "validation").mkdir()
    (tmp_path / "validation" / "metrics.json").write_text(json.dumps(
        {"overall_accuracy": {"estimate": oa, "se": 0.01, "ci95_halfwidth": 0.02}}))
    return plan


def test_promotion_refused_below_the_bar(tmp_path):
    _staged_root(tmp_path, 0.70)
    with pytest.raises(PromotionRefused, match="70.0 %.*below the 75.0 % bar"):
        promote(tmp_path, "1pct", "10pct", source="planetary-computer")
    rc, out, err = run_cli("campaign", "promote", "--from", "1pct", "--to", "10pct", "--out", str(tmp_path),
                           "--source", "planetary-computer")
    assert rc == 2 and "below the 75.0 % bar" in err and "Traceback" not in err
    assert json.loads((tmp_path / "campaign.json").read_text())["stage"] == "1pct"  # untouched


def test_promotion_reuses_finished_tiles(tmp_path):
    plan = _staged_root(tmp_path, 0.81)
    p = promote(tmp_path, "1pct", "10pct", source="planetary-computer")
    assert p.plan.stage == "10pct" and p.plan.name == "wc-10pct-2021"
    assert set(plan.tiles) < set(p.plan.tiles)
    assert p.reused_tiles == ()  # nothing finished yet in this root
    assert len(p.new_tiles) == len(p.plan.tiles)
    with pytest.raises(InputError, match="larger stage"):
        promote(tmp_path, "10pct", "1pct", source="planetary-computer")


def test_promotion_needs_a_report(tmp_path):
    CampaignPlan.create("wc-1pct-2021", 2021, stage="1pct", out_root=str(tmp_path)).save(tmp_path / "campaign.json")
    with pytest.raises(PromotionRefused, match="no validation report"):
        promote(tmp_path, "1pct", "10pct", source="planetary-computer")


def test_cli_plan_json():
    rc, out, err = run_cli("campaign", "plan", "--stage", "100pct", "--year", "2021", "--json")
    assert rc == 0, err
    d = json.loads(out)
    assert d["plan"]["n_tiles"] == 2659 and d["batches"] == 54
    assert d["estimate"]["core_hours"] > 0 and d["estimate"]["cost"] > 0


@pytest.mark.parametrize("labels", [{"team": "{{x}}"}, {"a b": "c"}, {"ok": "x" * 64}])
def test_labels_validated(labels):
    with pytest.raises(InputError, match="invalid label"):
        CampaignPlan.create("c", 2021, tiles=["N00E006"], labels=labels)


def test_reference_validated():
    assert CampaignPlan.create("c", 2021, tiles=["N00E006"], reference="sim:demo/archive").reference
    with pytest.raises(InputError, match="reference"):
        CampaignPlan.create("c", 2021, tiles=["N00E006"], reference="sim:../../etc")
