"""Rendering campaigns into Argo objects: layout, limits, resilience, security, metrics, drift, step calls."""

from __future__ import annotations

import inspect
import json
import re
import subprocess
import sys
from functools import cache
from pathlib import Path

import pytest
import yaml

from worldcover.campaign.plan import CampaignPlan
from worldcover.engines.argo import parts
from worldcover.engines.argo.parts import RenderConfig
from worldcover.engines.argo.render import render, render_step_calls, step_calls_of
from worldcover.errors import InputError

REPO = Path(__file__).resolve().parents[1]
STAGES = ("1pct", "10pct", "100pct")
TILE_RE = re.compile(r"^[NS]\d{2}[EW]\d{3}$", re.I)
LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def _plan(stage: str) -> CampaignPlan:
    return CampaignPlan.create(f"wc-2021-{stage}", 2021, stage=stage, out_root="s3://worldcover/campaigns")


@cache
def _render(stage: str):
    return render(_plan(stage))


@pytest.fixture(scope="module", params=STAGES)
def rendering(request):
    return _render(request.param)


def _campaign(r):
    return [o for o in r.objects if o.role != "template"]


def _dag(obj: dict) -> dict:
    spec = obj["spec"]
    return next(t for t in spec["templates"] if t["name"] == spec["entrypoint"])["dag"]


def _scripts(r):
    for o in r.objects:
        for t in o.obj["spec"].get("templates", []):
            if "script" in t:
                yield o, t


SHARED = ("process-tile", "batch", "merge", "validate")


def _params(task: dict) -> dict[str, str]:
    return {p["name"]: p["value"] for p in task.get("arguments", {}).get("parameters", [])}


def test_layout_per_stage():
    r1, r10, r100 = (_render(s) for s in STAGES)
    # nothing per campaign but its workflow: the batches run the shared worldcover-batch template
    assert [o.role for o in r1.objects] == ["template"] * 4 + ["workflow"]
    assert [o.role for o in r10.objects] == [o.role for o in r100.objects] == ["template"] * 4 + ["parent"]
    # shared templates carry the package version: a submit of a new release never changes a running campaign's
    assert {o.name for o in r1.objects if o.role == "template"} == {
        f"worldcover-{n}-{parts.version_suffix()}" for n in SHARED}
    assert parts.version_suffix() == "v" + __import__("worldcover").__version__.replace(".", "-")
    assert {o.path for o in r1.objects if o.role == "template"} == {f"templates/worldcover-{n}.yaml" for n in SHARED}
    # each batch task of the parent hands exactly one batch of the plan, in order, to its child
    plan = _plan("100pct")
    tasks = [t for t in _dag(r100.objects[-1].obj)["tasks"] if t.get("template") == "batch"]
    assert [json.loads(_params(t)["tiles"]) for t in tasks] == [list(b) for b in plan.batches()]
    assert [_params(t)["batch"] for t in tasks] == [t["name"] for t in tasks] == [f"b{i:03d}" for i in range(54)]


def test_sizes_and_node_counts(rendering):
    for o in rendering.objects:
        assert o.json_bytes < 256 * 1024 and o.yaml_bytes < 256 * 1024, o.name
    assert rendering.stats
    for st in rendering.stats:
        assert st.nodes_max <= 1000, st
        assert st.nodes_min >= st.tasks + 1
    table = {row["kind"]: row for row in rendering.table()}
    if "batch" in table:  # the children, from the parent's manifests: DAG + withParam group + 50 tiles
        tasks = _dag(rendering.objects[-1].obj)["tasks"]
        assert table["batch"]["objects"] == sum(t.get("template") == "batch" for t in tasks) > 1
        assert table["batch"]["tasks_max"] == 50
        assert table["batch"]["nodes_min"] == 2 + 50 * 2 and table["batch"]["nodes_max"] == 2 + 50 * 5


def test_child_workflows_are_created_by_the_parent():
    r = _render("10pct")
    plan = _plan("10pct")
    parent = r.objects[-1].obj
    batch = next(t for t in parent["spec"]["templates"] if t["name"] == "batch")["resource"]
    # apply of a deterministic name: a retried or repeated batch step finds its child instead of a duplicate
    assert batch["action"] == "apply" and batch["setOwnerReference"] is True
    assert batch["successCondition"] == "status.phase == Succeeded"
    assert batch["failureCondition"] == "status.phase in (Failed, Error)"
    child = yaml.safe_load(batch["manifest"])
    assert child["kind"] == "Workflow" and "generateName" not in child["metadata"]
    assert child["metadata"]["name"] == "{{workflow.name}}-{{inputs.parameters.batch}}"
    retry = next(t for t in parent["spec"]["templates"] if t["name"] == "batch")["retryStrategy"]
    assert retry["retryPolicy"] == "OnError" and retry["limit"] >= 1  # a lost resource pod, not a failed child
    assert child["metadata"]["labels"][parts.LABEL_PARENT] == "{{workflow.name}}"
    assert child["metadata"]["labels"][parts.LABEL_CAMPAIGN] == plan.name and parts.TITLE in child["metadata"][
        "annotations"]
    # the shared batch template, fed the batch's tiles and the campaign's values for every tile
    spec = child["spec"]
    assert spec["workflowTemplateRef"] == {"name": parts.TEMPLATE_BATCH}
    values = {p["name"]: p["value"] for p in spec["arguments"]["parameters"]}
    assert values == {"tiles": "{{inputs.parameters.tiles}}", "year": "2021", "source": plan.source,
                      "model": plan.model, "out_root": plan.out_root, "block_size": str(plan.block_size),
                      "blocks": plan.blocks, "max_cloud": "null", "campaign": plan.name, "stage": "10pct"}
    assert spec["activeDeadlineSeconds"] == parts.workflow_deadline(RenderConfig(), plan)
    assert spec["podMetadata"]["labels"] == parts.pod_labels(plan)
    template = next(o.obj for o in r.objects if o.name == parts.TEMPLATE_BATCH)
    [task] = _dag(template)["tasks"]
    assert task["withParam"] == "{{workflow.parameters.tiles}}" and _params(task)["tile"] == "{{item}}"
    assert {p["name"] for p in template["spec"]["arguments"]["parameters"]} == set(values)
    assert all(p.get("description") for p in template["spec"]["arguments"]["parameters"])
    # worldcover-batch's parameters are process_tile's (but the tile) and the metrics' stage
    from worldcover.campaign.steps import process_tile
    assert [*parts.TILE_PARAMETERS] == [n for n in inspect.signature(process_tile).parameters if n != "tile"] + [
        "stage"]
    # tile ids travel only in the batch tasks' tiles (JSON lists)
    assert not any(TILE_RE.match(str(v)) for v in _strings(parent))


def _strings(x):
    if isinstance(x, dict):
        for v in x.values():
            yield from _strings(v)
    elif isinstance(x, list):
        for v in x:
            yield from _strings(v)
    elif isinstance(x, str):
        yield x


def test_labels_and_annotations(rendering):
    plan = _plan(rendering.objects[-1].obj["metadata"]["labels"][parts.LABEL_STAGE])
    for o in rendering.objects:
        meta = o.obj["metadata"]
        assert meta["annotations"][parts.TITLE] and meta["annotations"][parts.DESCRIPTION], o.name
        if o.role == "template":
            continue
        assert meta["labels"][parts.LABEL_CAMPAIGN] == plan.name
        assert meta["labels"][parts.LABEL_STAGE] == plan.stage
        plan_back = json.loads(meta["annotations"][parts.ANNOTATION_PLAN])
        assert CampaignPlan.from_dict(plan_back).name == plan.name and "tiles" not in plan_back


def test_task_names_are_tile_ids(rendering):
    for o in _campaign(rendering):
        for task in _dag(o.obj)["tasks"]:
            assert re.match(r"^[a-z0-9]([a-z0-9-]*[a-z0-9])?$", task["name"])
            params = {p["name"]: p["value"] for p in task.get("arguments", {}).get("parameters", [])}
            if "tile" in params:
                assert task["name"] == params["tile"].lower() and TILE_RE.match(params["tile"])


def test_one_tile_failure_does_not_stop_the_campaign(rendering):
    for o in _campaign(rendering):
        dag = _dag(o.obj)
        assert dag["failFast"] is False
        names = [t["name"] for t in dag["tasks"]]
        first_step = next(t for t in dag["tasks"] if t["name"] == "collect-failures")
        upstream = [n for n in names if n not in ("write-plan", "collect-failures", "merge", "validate", "gate")]
        for n in upstream:
            if o.role == "parent":  # a batch Errored = its resource pod lost, its child maybe still running
                assert f"({n}.Succeeded || {n}.Failed)" in first_step["depends"]
                assert f"{n}.Errored" not in first_step["depends"]
            else:
                assert f"({n}.Succeeded || {n}.Failed || {n}.Errored)" in first_step["depends"]
        assert next(t for t in dag["tasks"] if t["name"] == "merge")["depends"] == "collect-failures"
        assert next(t for t in dag["tasks"] if t["name"] == "validate")["depends"] == "merge"


def test_the_workflow_writes_its_own_plan_first(rendering):
    """write-plan is the first task of the single or parent workflow and every tile or batch waits for it."""
    for o in _campaign(rendering):
        tasks = _dag(o.obj)["tasks"]
        first = tasks[0]
        assert first["name"] == "write-plan" and "depends" not in first
        assert first["templateRef"] == {"name": parts.TEMPLATE_PROCESS_TILE, "template": "write-plan"}
        params = {p["name"]: p["value"] for p in first["arguments"]["parameters"]}
        plan = CampaignPlan.from_dict(json.loads(params["plan"]))
        assert plan.tiles == _plan(plan.stage).tiles and params["out_root"] == plan.out_root
        for t in tasks:
            if t["name"] not in ("write-plan", "collect-failures", "merge", "validate", "gate"):
                assert t["depends"] == "write-plan", t["name"]


def test_workflow_spec_limits(rendering):
    cfg = RenderConfig()
    for o in _campaign(rendering):
        spec = o.obj["spec"]
        assert spec["serviceAccountName"] == cfg.service_account
        assert spec["podGC"]["strategy"] in ("OnPodSuccess", "OnWorkflowSuccess")
        assert spec["activeDeadlineSeconds"] >= 2 * 24 * 3600
        assert "parallelism" not in spec  # all batches and tiles may start: the semaphore is the limit
        assert spec["podMetadata"]["labels"][parts.LABEL_CAMPAIGN] == o.obj["metadata"]["labels"][parts.LABEL_CAMPAIGN]
        assert spec["securityContext"]["runAsNonRoot"] is True
        assert spec["ttlStrategy"]["secondsAfterSuccess"] > 0


def test_scripts_retry_resources_security_and_secrets(rendering):
    for _o, t in _scripts(rendering):
        if t["name"] == "collect-failures":  # counts the tiles (metrics): no retries, see tile_metrics()
            assert "retryStrategy" not in t and t["metrics"]
            continue
        rs = t["retryStrategy"]
        assert rs["limit"] >= 1 and {"duration", "factor", "maxDuration"} <= set(rs["backoff"])
        assert t["activeDeadlineSeconds"] > 0
        # Argo counts maxDuration from the first attempt: every attempt may run to its deadline
        assert int(rs["backoff"]["maxDuration"].rstrip("s")) >= (rs["limit"] + 1) * t["activeDeadlineSeconds"]
        assert rs["expression"] == parts.RETRY_EXPRESSION and rs["affinity"] == {"nodeAntiAffinity": {}}
        assert t["metadata"]["annotations"] == parts.NO_DISRUPTION
        res = t["script"]["resources"]
        assert {"cpu", "memory"} <= set(res["requests"]) and {"cpu", "memory"} <= set(res["limits"])
        assert res["requests"]["memory"] == res["limits"]["memory"]  # not evicted first under pressure
        sc = t["script"]["securityContext"]
        assert sc["runAsNonRoot"] and sc["runAsUser"] > 0 and sc["readOnlyRootFilesystem"]
        assert sc["allowPrivilegeEscalation"] is False and sc["capabilities"]["drop"] == ["ALL"]
        assert t["securityContext"]["runAsNonRoot"] is True
        assert any(m["mountPath"] == "/tmp" for m in t["script"]["volumeMounts"])  # read-only root needs scratch
        for env in t["script"]["env"]:
            secretish = re.search(r"SECRET|KEY|TOKEN|PASSWORD|CLIENT", env["name"])
            if secretish:
                assert "value" not in env and set(env["valueFrom"]) == {"secretKeyRef"}, env
        assert t["script"]["args"][:3] == ["-m", "hera.workflows.runner", "-e"]
        assert t["script"]["source"] == "{{inputs.parameters}}"


def test_metrics_have_low_cardinality_labels(rendering):
    metrics, counted = [], []
    for o in rendering.objects:
        metrics += (o.obj["spec"].get("metrics") or {}).get("prometheus", [])
        for t in o.obj["spec"].get("templates", []):
            metrics += (t.get("metrics") or {}).get("prometheus", [])
            if t.get("metrics"):
                counted.append(t)
    names = {m["name"] for m in metrics}
    assert {"worldcover_tiles_succeeded", "worldcover_tiles_failed", "worldcover_campaign_duration_seconds"} <= names
    for m in metrics:
        assert re.match(r"^[a-zA-Z_:][a-zA-Z0-9_:]*$", m["name"])
        for label in m.get("labels", []):
            assert label["key"] in parts.METRIC_LABEL_KEYS, m
            assert "tile" not in label["value"] and not TILE_RE.match(label["value"]), m
            assert "pod.name" not in label["value"] and "node.name" not in label["value"]
    # Argo emits a retried template's metrics for the retry node and for each attempt (argo#15526): tile
    # counts come once per run from collect-failures, which has no retryStrategy
    assert [t["name"] for t in counted] == ["collect-failures"] and "retryStrategy" not in counted[0]
    values = {m["name"]: m["counter"]["value"] for m in metrics if "counter" in m}
    assert values == {"worldcover_tiles_succeeded": "{{outputs.parameters.finished}}",
                      "worldcover_tiles_failed": "{{outputs.parameters.failed}}"}


def test_no_secret_values_in_rendered_yaml(monkeypatch, tmp_path):
    secrets = {"ARGO_TOKEN": "sekret123", "AWS_SECRET_ACCESS_KEY": "awssekret456", "AWS_ACCESS_KEY_ID": "AKIASEKRET",
               "SH_CLIENT_SECRET": "shsekret789", "SH_CLIENT_ID": "shclientsekret"}
    for k, v in secrets.items():
        monkeypatch.setenv(k, v)
    r = render(CampaignPlan.create("wc-secrets", 2021, stage="1pct", out_root="s3://worldcover/campaigns"))
    from worldcover.engines.argo.render import write

    write(r.objects, tmp_path)
    texts = [p.read_text() for p in tmp_path.rglob("*.yaml")]
    texts += [p.read_text() for p in (REPO / "argo").rglob("*") if p.is_file()]
    for text in texts:
        for v in secrets.values():
            assert v not in text


def test_argo_folder_is_not_stale():
    from worldcover.engines.argo.golden import render_tree, stale

    diff = stale(REPO / "argo", render_tree())
    assert not diff, f"argo/ is stale, run `make argo`: {diff[:5]}"


@pytest.mark.slow
def test_cli_render_golden_writes_then_checks(tmp_path):
    """`campaign render-golden` writes a fresh folder; `--check` then names a changed and an extra file (exit 1)."""
    out = tmp_path / "argo"
    cmd = [sys.executable, "-m", "worldcover.cli.campaign_argo", "render-golden", "--out", str(out)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120, cwd=REPO)
    assert proc.returncode == 0, proc.stderr
    assert (out / "kustomization.yaml").is_file() and (out / "README.md").read_text().startswith("# argo/")
    (out / "kustomization.yaml").write_text("edited\n")
    (out / "templates" / "extra.yaml").write_text("kind: ConfigMap\n")
    proc = subprocess.run([*cmd, "--check"], capture_output=True, text=True, timeout=120, cwd=REPO)
    assert proc.returncode == 1, proc.stderr
    assert proc.stdout.split() == ["stale:", "kustomization.yaml", "stale:", "templates/extra.yaml"]


def _normalised(calls):
    """StepCalls with every default filled in (the runner passes template defaults explicitly)."""
    out = []
    for c in calls:
        sig = inspect.signature(c.resolve())
        bound = sig.bind(**c.arguments)
        bound.apply_defaults()
        out.append((c.function, tuple(sorted(bound.arguments.items()))))
    return out


@pytest.mark.parametrize("stage", ["1pct", "10pct"])
def test_render_step_calls_match_the_local_engine(stage):
    from worldcover.campaign.calls import step_calls

    plan = _plan(stage)
    argo_calls = render_step_calls(plan)
    local_calls = step_calls(plan)
    assert len(argo_calls) == len(local_calls) == len(plan.tiles) + 4
    assert _normalised(argo_calls) == _normalised(local_calls)
    assert {c.function for c in argo_calls} == {f"worldcover.campaign.steps.{n}" for n in
                                               ("write_plan", "process_tile", "collect_failures", "merge", "validate")}
    assert argo_calls[0].name == "write_plan"  # the campaign records its own plan first
    assert json.loads(dict(argo_calls[0].kwargs)["plan"])["tiles"] == list(plan.tiles)
    year = dict(argo_calls[1].kwargs)["year"]
    assert year == 2021 and isinstance(year, int)


def test_render_step_calls_with_options_and_100pct():
    plan = CampaignPlan.create("wc-opts", 2021, tiles=["N00E006", "S03W063"], out_root="s3://worldcover/x",
                               max_cloud=35.5, blocks="first:2", block_size=1500)
    calls = render_step_calls(plan)
    kw = dict(calls[1].kwargs)
    assert kw["max_cloud"] == 35.5 and kw["blocks"] == "first:2" and kw["block_size"] == 1500
    r = _render("100pct")
    calls = step_calls_of(r.objects)
    assert [dict(c.kwargs)["tile"] for c in calls if c.name == "process_tile"] == list(_plan("100pct").tiles)


def test_names_and_values_are_validated_before_yaml():
    with pytest.raises(InputError):
        CampaignPlan.create("{{workflow.parameters.x}}", 2021, stage="1pct")
    with pytest.raises(InputError):
        CampaignPlan.create("ok", 2021, stage="1pct", out_root="../../etc")
    with pytest.raises(InputError):
        CampaignPlan.create("ok", 2021, stage="1pct", model="s3://b/{{x}}")
    with pytest.raises(InputError):
        RenderConfig(image="ghcr.io/x/y:{{workflow.name}}")
    with pytest.raises(InputError):
        RenderConfig(service_account="Default SA")
    with pytest.raises(InputError, match="nodes"):
        render(CampaignPlan.create("big", 2021, stage="10pct", out_root="s3://worldcover/c", batch_size=300))
    # labels are validated too, at creation and again when rendering a plan built around create()
    from dataclasses import replace

    with pytest.raises(InputError, match="invalid label"):
        CampaignPlan.create("ok", 2021, stage="1pct", labels={"team": "{{workflow.parameters.x}}"})
    sneaky = replace(CampaignPlan.create("ok", 2021, stage="1pct", out_root="s3://worldcover/c"),
                     labels={"team": "{{workflow.parameters.x}}"})
    with pytest.raises(InputError, match="invalid label"):
        render(sneaky)


def test_unexpected_argo_expressions_are_refused(monkeypatch):
    """Defence in depth: an Argo expression we did not write is refused wherever it hides."""
    from worldcover.engines.argo import render as render_mod
    from worldcover.errors import DataError

    plan = CampaignPlan.create("ok", 2021, stage="1pct", out_root="s3://worldcover/c")
    real = render_mod.render_campaign_objects

    def smuggle(*args, **kwargs):
        objs = real(*args, **kwargs)
        objs[0].obj["metadata"].setdefault("annotations", {})["x"] = "{{workflow.parameters.x}}"
        return objs

    monkeypatch.setattr(render_mod, "render_campaign_objects", smuggle)
    with pytest.raises(DataError, match="unexpected Argo expression"):
        render_mod.render(plan)


def test_yaml_round_trips(rendering):
    for o in rendering.objects:
        assert yaml.load(o.yaml, Loader=LOADER) == o.obj, o.name


def test_dags_are_short_and_declarative():
    for f in (REPO / "dags").glob("*.py"):
        assert len(f.read_text().splitlines()) < 160, f


@pytest.mark.slow  # ~6 s: a fresh interpreter renders and validates the 100pct campaign
def test_cli_render_100pct(tmp_path):
    out = tmp_path / "out"
    proc = subprocess.run([sys.executable, "-m", "worldcover.cli.campaign_argo", "render", "--stage", "100pct",
                           "--year", "2021", "--out", str(out), "--json"], capture_output=True, text=True, timeout=120,
                          cwd=REPO)
    assert proc.returncode == 0, proc.stderr
    summary = json.loads(proc.stdout)
    # four shared templates and the parent; its 54 children are created at run time from worldcover-batch
    assert summary["objects"] == 5 and summary["tiles"] == 2659 and summary["batches"] == 54
    assert summary["largest"]["bytes"] < 256 * 1024
    kinds = {k["kind"]: k for k in summary["kinds"]}
    assert kinds["batch"]["objects"] == 54 and kinds["batch"]["nodes_max"] <= 1000
    assert kinds["parent"]["nodes_max"] <= 1000
    assert len(list(out.rglob("*.yaml"))) == 5


def _template(r, name: str, entry: str) -> dict:
    obj = next(o.obj for o in r.objects if o.obj["metadata"].get("name") == name)
    return next(t for t in obj["spec"]["templates"] if t["name"] == entry)


def test_tiles_share_a_live_semaphore_and_get_scheduling_hooks():
    from worldcover.engines.argo import install

    cfg = RenderConfig(node_selector=(("pool", "tiles"),), tolerations=("dedicated=wc:NoSchedule", "gpu:NoExecute"),
                       priority_class="worldcover-batch", spot=True)
    r = render(_plan("1pct"), cfg)
    tile = _template(r, parts.TEMPLATE_PROCESS_TILE, "process-tile")
    ref = tile["synchronization"]["semaphores"][0]["configMapKeyRef"]
    limits = install.limits(cfg)
    assert limits["metadata"]["name"] == ref["name"] and ref["key"] in limits["data"]
    assert tile["nodeSelector"] == {"pool": "tiles"} and tile["priorityClassName"] == "worldcover-batch"
    keys = [t["key"] for t in tile["tolerations"]]
    assert keys[:2] == ["dedicated", "gpu"] and "cloud.google.com/gke-spot" in keys  # spot: tiles only
    merge = _template(r, parts.TEMPLATE_MERGE, "merge")
    assert [t["key"] for t in merge["tolerations"]] == ["dedicated", "gpu"]
    assert tile["tolerations"][1] == {"key": "gpu", "operator": "Exists", "effect": "NoExecute"}
    for bad in (dict(tolerations=("x",)), dict(node_selector=(("a b", "c"),)), dict(priority_class="Bad_Name"),
                dict(source_kind="ftp"), dict(max_failed_tiles=-2)):
        with pytest.raises(InputError):
            RenderConfig(**bad)


def test_the_gate_and_the_exit_handler():
    r10 = _render("10pct")
    parent = r10.objects[-1].obj
    tasks = {t["name"]: t for t in _dag(parent)["tasks"]}
    gate = tasks["gate"]
    assert gate["depends"] == "validate" and gate["templateRef"]["template"] == "gate"
    assert gate["when"] == "{{tasks.collect-failures.outputs.parameters.failed}} > " \
                           "{{workflow.parameters.max-failed-tiles}}"
    args = {p["name"]: p for p in parent["spec"]["arguments"]["parameters"]}
    assert args["max-failed-tiles"]["value"] == str(len(_plan("10pct").tiles) // 100)
    assert args["max-failed-tiles"]["description"]
    one = _render("1pct").submitted_workflow().obj
    assert one["spec"]["arguments"]["parameters"][0]["value"] == "0" and "onExit" not in one["spec"]
    assert parent["spec"]["onExit"] == "on-exit"
    handler = next(t for t in parent["spec"]["templates"] if t["name"] == "on-exit")["dag"]["tasks"][0]
    assert handler["when"] == "{{workflow.status}} != Succeeded" and handler["continueOn"] == {"failed": True}
    assert handler["withItems"] == [n for n in tasks if re.fullmatch(r"b\d{3}", n)]
    stop = next(t for t in parent["spec"]["templates"] if t["name"] == "stop-child")["resource"]
    assert stop["action"] == "patch" and stop["mergeStrategy"] == "merge"
    assert yaml.safe_load(stop["manifest"])["spec"] == {"shutdown": "Stop"}
    # the gate fails with its message: its real command, run here
    gate_tmpl = _template(r10, parts.TEMPLATE_PROCESS_TILE, "gate")
    assert "retryStrategy" not in gate_tmpl
    cmd = gate_tmpl["container"]["command"]
    proc = subprocess.run([sys.executable, *cmd[1:3], "3", "2", "s3://b/c/"], capture_output=True, text=True)
    assert proc.returncode == 1
    assert proc.stderr.strip() == "failed tiles: 3, more than the 2 allowed; the list is in s3://b/c/failed_tiles.json"


def test_cli_deadlines_set_by_the_operator(tmp_path):
    """On nodes slower than the benchmark's machine an operator sets the deadlines; bad ones: one line, exit 2."""
    from typer.testing import CliRunner

    from tests.test_argo_submit import _cli

    out = tmp_path / "out"
    res = CliRunner().invoke(_cli(), ["campaign", "render", "--stage", "1pct", "--out", str(out),
                                      "--tile-deadline", "7h30m", "--workflow-deadline", "10d"])
    assert res.exit_code == 0, res.output
    docs = [yaml.safe_load(p.read_text()) for p in out.rglob("*.yaml")]
    tile = next(t for d in docs if d["metadata"].get("name") == parts.TEMPLATE_PROCESS_TILE
                for t in d["spec"]["templates"] if t["name"] == "process-tile")
    assert tile["activeDeadlineSeconds"] == 27_000 != parts.tile_deadline(RenderConfig())
    cfg = RenderConfig(tile_deadline_s=27_000)
    assert tile["retryStrategy"]["backoff"]["maxDuration"] == f"{parts.retry_max_duration(cfg, 27_000)}s"
    workflow = next(d for d in docs if d["kind"] == "Workflow")
    assert workflow["spec"]["activeDeadlineSeconds"] == 10 * 86_400
    for bad in ("7x", "0h", "-3", ""):
        res = CliRunner().invoke(_cli(), ["campaign", "render", "--stage", "1pct", "--out", str(out),
                                          "--tile-deadline", bad])
        assert res.exit_code == 2 and res.stderr.count("\n") == 1, (bad, res.output)
        assert "--tile-deadline" in res.stderr and "Traceback" not in res.output


@pytest.mark.parametrize("backoff", ["", "2d", "2 m", "m2"])
def test_retry_backoff_is_an_argo_duration(backoff):
    """Argo's backoff takes s, m and h; the deadline parser's days and empty matches do not apply to it."""
    with pytest.raises(InputError, match="retry backoff"):
        RenderConfig(retry_backoff=backoff)
    assert RenderConfig(retry_backoff="1h30m").retry_backoff == "1h30m"


@pytest.mark.parametrize("text, seconds", [("6h", 21_600), ("1h30m", 5_400), ("2d", 172_800), ("5400", 5_400),
                                           ("90M", 5_400), ("45s", 45)])
def test_parse_duration(text, seconds):
    assert parts.parse_duration(text) == seconds


def test_deadlines_come_from_the_estimate():
    from worldcover.campaign.estimate import measured_throughput
    from worldcover.grid import TILE_PIXELS

    cfg = RenderConfig()
    deadline = parts.tile_deadline(cfg)
    rate, _ = measured_throughput()
    assert 2 * 3600 <= deadline <= 48 * 3600 and deadline % 3600 == 0
    assert deadline >= min(3 * TILE_PIXELS**2 / (rate * 1e6 * 4), 48 * 3600)  # 3x a whole land tile on 4 cores
    assert parts.tile_deadline(RenderConfig(tile_deadline_s=1234)) == 1234
    small, large = (parts.workflow_deadline(cfg, _plan(s)) for s in ("1pct", "100pct"))
    assert 2 * 86400 <= small <= large <= 60 * 86400
    r = _render("1pct")
    assert _template(r, parts.TEMPLATE_PROCESS_TILE, "process-tile")["activeDeadlineSeconds"] == deadline
