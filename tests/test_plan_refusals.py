"""Bad plans are refused before anything is rendered, submitted or run; the workflow writes its own plan.

* ``campaign plan``, ``render``, ``submit`` and ``run`` refuse an unknown source, a year before 2015 or
  after the current UTC year, a model that does not exist or lacks its card, and (Argo) an output root,
  model or reference that is not an object-store URL: one line on stderr, exit code 2, nothing written;
* ``default`` names the packaged model everywhere a model location is opened;
* ``write_plan`` (the campaign's first step on both engines) records ``campaign.json`` in the output root,
  where ``collect_failures`` finds it and writes the failure list beside it.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from typer.testing import CliRunner

from worldcover.campaign import steps
from worldcover.campaign.calls import plan_call, step_calls
from worldcover.campaign.plan import CampaignPlan, check_cluster_locations, check_model, current_year
from worldcover.cli import app
from worldcover.errors import InputError
from worldcover.model.location import DEFAULT_MODEL_DIR, resolve_model

NEXT_YEAR = str(current_year() + 1)
CLOSED = "http://127.0.0.1:9"  # no Argo Server there: a plan that passed would fail with "cannot reach"

COMMANDS = {
    "plan": ["campaign", "plan", "--stage", "1pct"],
    "render": ["campaign", "render", "--stage", "1pct", "--out", "OUT"],
    "submit": ["campaign", "submit", "--stage", "1pct", "--argo-server", CLOSED, "--namespace", "wc"],
    "run": ["campaign", "run", "--tiles", "N45E003", "--out", "OUT", "--source", "http://127.0.0.1:9/stac"],
}


def _invoke(tmp_path: Path, args: list[str], env: dict | None = None):
    """Run the CLI in an empty working folder; OUT is a folder inside it."""
    work = tmp_path / "work"
    work.mkdir()
    args = [str(work / "out") if a == "OUT" else a for a in args]
    cwd = os.getcwd()
    os.chdir(work)
    try:
        result = CliRunner().invoke(app, args, env={"ARGO_TOKEN": "t", **(env or {})})
    finally:
        os.chdir(cwd)
    return result, work


def _refused(tmp_path: Path, args: list[str], *expected: str, env: dict | None = None) -> str:
    result, work = _invoke(tmp_path, args, env)
    assert result.exit_code == 2, (args, result.output)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: invalid"), result.stderr
    for text in expected:
        assert text in lines[0], (text, lines[0])
    assert os.listdir(work) == [], f"a refused command wrote {os.listdir(work)}"
    return lines[0]


def _with(command: str, option: str, value: str) -> list[str]:
    args = list(COMMANDS[command])
    if option in args:  # replace the command's own value
        args[args.index(option) + 1] = value
    else:
        args += [option, value]
    return args


@pytest.fixture
def no_card(tmp_path) -> Path:
    d = tmp_path / "half-model"
    d.mkdir()
    (d / "model.txt").write_text((DEFAULT_MODEL_DIR / "model.txt").read_text())
    return d


# -- each refusal at each command --------------------------------------------------------------------

@pytest.mark.parametrize("command", list(COMMANDS))
def test_unknown_source_is_refused(tmp_path, command):
    line = _refused(tmp_path, _with(command, "--source", "landsat-magic"), "source 'landsat-magic'",
                    "planetary-computer", "sentinelhub", "http(s)://")
    assert "expected" in line


@pytest.mark.parametrize("command", list(COMMANDS))
@pytest.mark.parametrize("year", [NEXT_YEAR, "2031", "2014"])
def test_year_out_of_range_is_refused(tmp_path, command, year):
    line = _refused(tmp_path, _with(command, "--year", year), f"year {year}", f"2015..{current_year()}")
    assert ("in the future" in line) == (int(year) > current_year())


@pytest.mark.parametrize("command", ["plan", "run"])
def test_missing_model_is_refused_for_the_local_engine(tmp_path, command):
    missing = tmp_path / "no-such-model"
    _refused(tmp_path, _with(command, "--model", str(missing)), f"model '{missing}'", "does not exist",
             "model.txt and card.json")


@pytest.mark.parametrize("command", ["plan", "run"])
def test_model_without_card_is_refused(tmp_path, command, no_card):
    _refused(tmp_path, _with(command, "--model", str(no_card)), f"model '{no_card}'", "no card.json")


@pytest.mark.parametrize("command", ["render", "submit"])
@pytest.mark.parametrize("option, value, what", [
    ("--out-root", "campaigns", "output root 'campaigns'"),
    ("--out-root", "/data/campaigns", "output root '/data/campaigns'"),
    ("--out-root", "memory://bucket/c", "output root 'memory://bucket/c'"),
    ("--model", "models/default", "model 'models/default'"),
    ("--reference", "sim:/data/archive", "reference '/data/archive'"),
])
def test_argo_refuses_local_locations(tmp_path, command, option, value, what):
    _refused(tmp_path, _with(command, option, value), what, "for Argo", "object storage", "s3://")


@pytest.mark.parametrize("command", ["render", "submit"])
def test_argo_refuses_a_missing_model_in_object_storage(tmp_path, command, s3_bucket, s3_env):
    _refused(tmp_path, _with(command, "--model", f"{s3_bucket}/models/none"), "does not exist", env=s3_env)


def test_argo_model_in_object_storage(tmp_path, s3_bucket, s3_env, no_card):
    """A model prefix on S3 is checked through the storage layer: without its card refused, complete accepted."""
    from worldcover import storage

    half, full = f"{s3_bucket}/models/half", f"{s3_bucket}/models/full"
    storage.put_copy(no_card / "model.txt", f"{half}/model.txt")
    for name in ("model.txt", "card.json"):
        storage.put_copy(DEFAULT_MODEL_DIR / name, f"{full}/{name}")
    _refused(tmp_path, _with("render", "--model", half), f"model '{half}'", "no card.json", env=s3_env)
    (tmp_path / "ok").mkdir()
    result, _ = _invoke(tmp_path / "ok", _with("render", "--model", full), s3_env)
    assert result.exit_code == 0, result.output
    assert check_model(full) == full
    from worldcover.model import Model

    assert Model.load(full).version == Model.load("default").version


def test_good_plans_still_pass(tmp_path):
    for args in (COMMANDS["plan"] + ["--json"], COMMANDS["plan"] + ["--source", "sentinelhub", "--json"],
                 COMMANDS["plan"] + ["--source", "https://earth-search.aws.element84.com/v1", "--json"],
                 COMMANDS["plan"] + ["--year", str(current_year()), "--model", str(DEFAULT_MODEL_DIR), "--json"]):
        result = CliRunner().invoke(app, args)
        assert result.exit_code == 0, (args, result.output)
    result, work = _invoke(tmp_path, COMMANDS["render"] + ["--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["tiles"] == 27


# -- locations a plan carries ---------------------------------------------------------------------

def test_default_model_keyword():
    assert resolve_model("default") == str(DEFAULT_MODEL_DIR)
    assert resolve_model("s3://b/m") == "s3://b/m" and resolve_model("models/x") == "models/x"
    from worldcover.model import Model

    assert Model.load("default").name == Model.load(DEFAULT_MODEL_DIR).name
    assert CampaignPlan.create("d", 2021, tiles=["N45E003"]).model == "default"  # the CLI default too


def test_local_engine_plans_carry_absolute_paths(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "m").symlink_to(DEFAULT_MODEL_DIR)
    plan = CampaignPlan.create("loc", 2021, tiles=["N45E003"], out_root="runs/a", model="m",
                               reference="sim:archive", engine="local")
    assert plan.out_root == str(tmp_path / "runs" / "a")
    assert plan.model == str(DEFAULT_MODEL_DIR.resolve()) and plan.reference == f"sim:{tmp_path / 'archive'}"
    kept = CampaignPlan.create("loc", 2021, tiles=["N45E003"], out_root="s3://bkt/c", engine="local")
    assert kept.out_root == "s3://bkt/c" and kept.model == "default"
    run = CliRunner().invoke(app, ["campaign", "plan", "--tiles", "N45E003", "--out", "rel", "--json"])
    assert run.exit_code == 0, run.output
    assert json.loads(run.stdout)["plan"]["out_root"] == str(tmp_path / "rel")


def test_render_refuses_local_locations_whoever_calls_it():
    from dataclasses import replace

    from worldcover.engines.argo.render import render

    good = CampaignPlan.create("g", 2021, tiles=["N45E003"], out_root="s3://bkt/c", engine="argo")
    for field, value in (("out_root", "campaigns"), ("model", "/opt/model"), ("reference", "sim:/data/archive"),
                         ("reference", "labels.csv")):
        with pytest.raises(InputError, match="for Argo"):
            render(replace(good, **{field: value}))
    check_cluster_locations(replace(good, reference="sim:s3://bkt/archive", model="gs://bkt/m"))


def test_step_functions_recheck_the_model(tmp_path):
    root = tmp_path / "root"
    with pytest.raises(InputError, match="does not exist"):
        steps.process_tile("N45E003", 2021, "planetary-computer", str(tmp_path / "none"), str(root))
    with pytest.raises(InputError, match="source"):
        steps.process_tile("N45E003", 2021, "landsat-magic", "default", str(root))
    with pytest.raises(InputError, match="year"):
        steps.merge(str(root), "ok", current_year() + 1)
    assert not root.exists()


# -- the workflow writes its own plan ------------------------------------------------------------------

def _plan(root, tiles=("N45E003", "S24E021"), **kw) -> CampaignPlan:
    kw.setdefault("name", "wc-1pct-2021")
    return CampaignPlan.create(kw.pop("name"), 2021, tiles=list(tiles), out_root=str(root), **kw)


def test_write_plan_is_the_first_call_and_collect_failures_reads_it(tmp_path):
    root = tmp_path / "root"
    plan = _plan(root)
    call = step_calls(plan)[0]
    assert call == plan_call(plan) and call.name == "write_plan"
    result = call()  # as both engines call it
    assert result["status"] == "written" and result["tiles"] == 2
    assert CampaignPlan.load(root / "campaign.json") == plan
    failures = steps.collect_failures(str(root), plan.name, 2021)  # no tile ran: both failed
    assert failures["failed"] == ["N45E003", "S24E021"] and failures["finished"] == 0
    assert json.loads((root / "failed_tiles.json").read_text())["failed"] == failures["failed"]


def test_write_plan_keeps_extends_and_refuses_like_the_local_engine(tmp_path):

    root = tmp_path / "root"
    full = _plan(root, stage="1pct", tiles=("N45E024", "N39E054"))
    assert plan_call(full)()["status"] == "written"  # the local engine runs this same call first
    before = (root / "campaign.json").read_bytes()
    retry = full.with_tiles(["N39E054"])
    assert steps.write_plan(str(root), retry.name, retry.to_json())["status"] == "kept"
    assert (root / "campaign.json").read_bytes() == before  # a retry of a subset keeps the full list
    more = CampaignPlan.create("wc-1pct-2021", 2021, stage="1pct", tiles=["N45E024", "N09E039"],
                               out_root=str(root))
    assert steps.write_plan(str(root), more.name, more.to_json())["status"] == "extended"
    assert CampaignPlan.load(root / "campaign.json").tiles == ("N09E039", "N39E054", "N45E024")
    other = CampaignPlan.create("other", 2020, tiles=["N45E003"], out_root=str(root))
    with pytest.raises(InputError, match="holds campaign 'wc-1pct-2021'"):
        steps.write_plan(str(root), other.name, other.to_json())
    assert CampaignPlan.load(root / "campaign.json").tiles == ("N09E039", "N39E054", "N45E024")


@pytest.mark.parametrize("plan_text, message", [
    ("{not json", "JSON text"),
    ('{"name": "x"}', "missing field"),
    ("[]", "JSON object"),
])
def test_write_plan_refuses_a_bad_plan_parameter(tmp_path, plan_text, message):
    root = tmp_path / "root"
    with pytest.raises(InputError, match=message):
        steps.write_plan(str(root), "x", plan_text)
    elsewhere = _plan(tmp_path / "other")
    with pytest.raises(InputError, match="expected campaign"):  # parameters edited apart from the plan
        steps.write_plan(str(root), elsewhere.name, elsewhere.to_json())
    assert not root.exists()


def test_plan_json_never_holds_argo_braces():
    plan = CampaignPlan.create("b", 2021, tiles=["N45E003"], labels={"team": "eo", "zz": "x"})
    text = plan.to_json()
    assert "{{" not in text and "}}" not in text
    assert CampaignPlan.from_dict(json.loads(text)) == plan


def test_write_plan_and_collect_failures_on_object_storage(s3_bucket, s3_env):
    root = f"{s3_bucket}/campaigns/run1"
    plan = _plan(root)
    assert steps.write_plan(root, plan.name, plan.to_json())["plan"] == f"{root}/campaign.json"
    failures = steps.collect_failures(root, plan.name, 2021)
    assert failures["failed"] == list(plan.tiles)
    from worldcover import storage

    assert storage.read_json(f"{root}/failed_tiles.json")["failed"] == list(plan.tiles)
    assert CampaignPlan.load(f"{root}/campaign.json") == plan


def test_reference_option_reaches_the_validate_step(tmp_path):
    """`--reference` travels in the plan to the validate step, on both engines."""
    args = ["campaign", "render", "--tiles", "N45E003", "--out", "OUT", "--out-root", "s3://wc-bucket/c",
            "--reference", "sim:s3://wc-bucket/archive", "--source", "http://127.0.0.1:9/stac"]
    result, work = _invoke(tmp_path, args)
    assert result.exit_code == 0, result.output
    text = "".join(p.read_text() for p in (work / "out").rglob("*.yaml"))
    assert "sim:s3://wc-bucket/archive" in text
    (tmp_path / "b").mkdir()
    args = ["campaign", "plan", "--tiles", "N45E003", "--reference", "labels.csv", "--json"]
    result, _ = _invoke(tmp_path / "b", args)
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["plan"]["reference"].endswith("/work/labels.csv")  # absolute for the workers
