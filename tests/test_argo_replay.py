"""The rendered Argo objects replayed pod by pod (tests/argo_replay.py).

Fast tests (no podman): Argo's ``depends`` grammar, substitution, the
allow-list refusing an unknown field by its path, resource conditions, and
dry runs of a rendered two-batch campaign (pod order and parameters; a
failing tile retried, a data error not retried; the gate, run with its real
command, failing the campaign; the exit handler stopping the children; a lost
batch pod re-applying its child without a duplicate).

The replay runs the smallest workflow of workflows once (a module fixture) in
the built image with podman against the loopback STAC API and S3 server: one
tile is killed after its first block record reaches the bucket and resumed by
Argo's retry, the other has no input (a data error, exit 2, not retried), a
batch's resource pod is lost once, and the tests check the gate failing the
campaign, the re-applied child, the exit handler, and that the products equal
the local engine's.
"""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass

import pytest

from tests import small_campaign
from tests.argo_replay import (
    DryRunExecutor,
    KillRule,
    Pod,
    PodResult,
    Replay,
    ReplayError,
    Settings,
    TaskState,
    UnsupportedField,
    check_object,
    depends_tasks,
    eval_condition,
    eval_depends,
    eval_expression,
    format_pods,
    inputs_json,
    substitute,
    substitute_tree,
    unresolved,
)
from worldcover.campaign import CampaignPlan
from worldcover.engines.argo import parts
from worldcover.engines.argo.parts import RenderConfig
from worldcover.engines.argo.render import render, step_calls_of

TILES = ("N45E003", "S24E021")
YEAR = 2021


# -- depends ---------------------------------------------------------------------------------------


def _states(**phases) -> dict[str, TaskState]:
    return {k.replace("_", "-"): (v if isinstance(v, TaskState) else TaskState(v)) for k, v in phases.items()}


@pytest.mark.parametrize("expr, expected", [
    ("a", True),                                # bare: Succeeded || Skipped || Daemoned
    ("b", False),                               # b failed
    ("s", True),                                # skipped counts as done for a bare name
    ("d", True),                                # daemoned too
    ("e", False),
    ("a.Succeeded", True),
    ("b.Failed", True),
    ("e.Errored", True),
    ("e.Failed", False),
    ("s.Skipped", True),
    ("o.Omitted", True),
    ("d.Daemoned", True),
    ("!b", True),
    ("!(a && b)", True),
    ("a && b", False),
    ("a || b", True),
    ("b || e || a.Failed", False),
    ("b.Failed || e.Succeeded && a", True),     # && binds tighter than ||
    ("(b.Failed || e.Succeeded) && !a", False),
    ("(b.Succeeded || b.Failed || b.Errored) && (e.Succeeded || e.Failed || e.Errored)", True),
    ("g.AnySucceeded", True),
    ("g.AllFailed", False),
    ("h.AllFailed", True),
    ("h.AnySucceeded", False),
    ("collect-failures", True),                 # task names with dashes
    ("collect-failures.Succeeded && !collect-failures.Failed", True),
])
def test_depends_grammar(expr, expected):
    states = _states(a="Succeeded", b="Failed", e="Error", s="Skipped", o="Omitted", d="Daemoned",
                     g=TaskState("Failed", ("Failed", "Succeeded")), h=TaskState("Failed", ("Failed", "Failed")),
                     collect_failures="Succeeded")
    assert eval_depends(expr, states) is expected


def test_depends_names_and_errors():
    assert depends_tasks("(b000.Succeeded || b000.Failed) && b001 && !merge-x.Errored") == ["b000", "b001", "merge-x"]
    states = _states(a="Succeeded")
    for bad in ("a.Finished", "a &&", "(a", "a b", "", "zz"):
        with pytest.raises(ReplayError):
            eval_depends(bad, states)


def test_expressions_and_resource_conditions():
    assert eval_expression("heads == heads", bare_words_are_strings=True) is True
    assert eval_expression("3 > 2 && tails != heads", bare_words_are_strings=True) is True
    assert eval_expression("lastRetry.exitCode > 1 and lastRetry.status == \"Error\"",
                           {"lastRetry.exitCode": 137, "lastRetry.status": "Error"}, bare_words_are_strings=False)
    assert eval_expression("lastRetry.exitCode in [1, 2]", {"lastRetry.exitCode": 3},
                           bare_words_are_strings=False) is False
    with pytest.raises(ReplayError, match="unknown name"):
        eval_expression("lastRetry.nope == 1", {}, bare_words_are_strings=False)
    done = {"status": {"phase": "Succeeded"}}
    failed = {"status": {"phase": "Error"}}
    assert eval_condition("status.phase == Succeeded", done)
    assert not eval_condition("status.phase == Succeeded", failed)
    assert eval_condition("status.phase in (Failed, Error)", failed)
    assert not eval_condition("status.phase in (Failed, Error)", done)
    assert eval_condition("status.phase, !status.failed, status.phase notin (Failed)", done)


# -- substitution ------------------------------------------------------------------------------------


def test_substitution():
    values = {"inputs.parameters.batch": "b000", "workflow.name": "wc-abcde"}
    text = "generateName: '{{workflow.name}}-{{ inputs.parameters.batch }}-' {{status}}"
    out = substitute(text, values)
    assert out == "generateName: 'wc-abcde-b000-' {{status}}"  # unknown tags are left for a later pass
    assert unresolved(out) == ["{{status}}"]
    tree = substitute_tree({"metrics": "{{workflow.name}}", "a": ["{{workflow.name}}"]}, values, skip=("metrics",))
    assert tree == {"metrics": "{{workflow.name}}", "a": ["wc-abcde"]}
    with pytest.raises(ReplayError, match="expression tag"):
        substitute("{{=workflow.name}}", values)


def test_inputs_json_is_what_hera_reads():
    """{{inputs.parameters}} is Go's json.Marshal of []Parameter; hera's runner reads name/value from it."""
    text = inputs_json([{"name": "stage", "default": "custom", "value": "1pct"},
                        {"name": "plan", "value": '{"a":"<&>"}'}])
    assert text == ('[{"name":"stage","default":"custom","value":"1pct"},'
                    '{"name":"plan","value":"{\\"a\\":\\"\\u003c\\u0026\\u003e\\"}"}]')
    assert json.loads(text)[1]["value"] == '{"a":"<&>"}'


# -- the rendered campaign ------------------------------------------------------------------------------


#: the replayed campaigns read a STAC API of their own: only the object-store keys are required
CFG = RenderConfig(source_kind="stac")
S3_KEYS = {"worldcover-s3": {"access-key-id": "AKIA-test", "secret-access-key": "s3cr3t"}}
TILE_TEMPLATE = parts.TEMPLATE_PROCESS_TILE


def _plan(out_root: str = "s3://wc-replay/run", **kw) -> CampaignPlan:
    opts = dict(tiles=list(TILES), out_root=out_root, block_size=120, blocks="r150c150", batch_size=1,
                source="http://127.0.0.1:9/stac", reference="sim:s3://wc-replay/archive")
    opts.update(kw)
    return CampaignPlan.create("wc-replay", YEAR, **opts)


@pytest.fixture(scope="module")
def two_batches():
    rendering = render(_plan(), CFG)
    parent = rendering.objects[-1]
    assert parent.role == "parent" and sum(t.get("template") == "batch" for t in
                                           parent.obj["spec"]["templates"][-1]["dag"]["tasks"]) == 2
    return [o.obj for o in rendering.objects]


def _task(r) -> str:
    """A pod's tile task as the campaign names it: the tile (a withParam item of worldcover-batch, or a task
    named by tile in a single workflow), else its DAG task."""
    return r.parameters.get("tile", "").lower() or r.task


def _entry(objects, template_id: str) -> str:
    """The runner entrypoint of ``WorkflowTemplate/template`` (``module:function``)."""
    wt, name = template_id.split("/")
    obj = next(o for o in objects if o["metadata"].get("name") == wt)
    tmpl = next(t for t in obj["spec"]["templates"] if t["name"] == name)
    return tmpl["script"]["args"][3].rsplit(":", 1)[1]


def test_dry_run_lists_the_pods_in_dag_order(two_batches):
    replay = Replay(two_batches, Settings(image="localhost/worldcover:test", seed=1, secrets=S3_KEYS))
    pods = replay.dry_run()
    print("\n" + format_pods(pods))
    # every pod the rendering calls, in the DAG order the rendering reports (children followed into)
    from worldcover.engines.argo.render import ArgoObject

    calls = step_calls_of([ArgoObject(o, "", _role(o)) for o in two_batches])
    steps = [_entry(two_batches, r.template) for r in pods if r.kind == "pod"]
    assert steps == [c.name for c in calls]
    tiles = [r for r in pods if r.template.endswith("/process-tile")]
    assert [r.parameters["tile"] for r in tiles] == list(TILES)
    assert all(r.parameters["out_root"] == "s3://wc-replay/run" and r.parameters["block_size"] == "120"
               for r in tiles)
    # each tile runs in the child Workflow its batch's resource template applied, named <parent>-<batch>
    batches = [r for r in pods if r.kind == "resource"]
    assert [r.task for r in batches] == ["b000", "b001"]
    parent = batches[0].workflow
    for batch, tile in zip(batches, tiles, strict=True):
        assert batch.child == f"{parent}-{batch.task}" and tile.workflow == batch.child
        assert pods.index(batch) < pods.index(tile)
    last = [r.task for r in pods if r.workflow == parent][-3:]
    assert last == ["collect-failures", "merge", "validate"]
    assert all(r.phase == "Succeeded" and r.attempt == 0 for r in pods)
    assert {w.name: w.phase for w in replay.workflows} == {parent: "Succeeded", **{b.child: "Succeeded"
                                                                                  for b in batches}}
    children = [w for w in replay.workflows if w.parent]
    assert all(w.labels["worldcover.io/parent"] == parent for w in children)
    # nothing failed: the gate is skipped, the exit handler runs and stops nothing
    run = next(w for w in replay.workflows if w.name == parent)
    assert run.nodes[f"{parent}.gate"] == "Skipped" and run.exit_handler == "Succeeded" and not replay.patches
    # cluster-only fields are named with their reason; the pods ran with the settings' image
    assert "spec.podGC" in replay.not_applicable and "spec.templates[].metrics" in replay.not_applicable
    tile_argv = tiles[0].argv
    assert tile_argv[tile_argv.index("--entrypoint") + 1:] == [
        '["python"]', "localhost/worldcover:test", "-m", "hera.workflows.runner", "-e",
        "worldcover.engines.argo.entry:process_tile", "/argo/staging/script"]
    for flag in ("--read-only", "--network=host", "--pull=never"):
        assert flag in tile_argv
    assert tile_argv[tile_argv.index("--user") + 1] == "1000:1000"
    assert "/tmp" in [a.split(":")[1] for a in tile_argv if a.startswith("<scratch>")]


def _role(obj: dict) -> str:
    if obj["kind"] == "WorkflowTemplate":
        return "template"
    return "parent" if any("resource" in t for t in obj["spec"]["templates"]) else "workflow"


def test_script_source_is_the_input_parameters_json(two_batches):
    seen: list[Pod] = []

    def results(pod: Pod) -> str:
        seen.append(pod)
        return '{"status": "done"}'

    Replay(two_batches, Settings(secrets=S3_KEYS)).dry_run(results)
    tile = next(p for p in seen if _task(p) == "n45e003")
    assert tile.task == "tile" and tile.template == f"{parts.TEMPLATE_PROCESS_TILE}/process-tile"
    params = {p["name"]: p["value"] for p in json.loads(tile.script)}
    assert params["tile"] == "N45E003" and params["year"] == "2021" and params["max_cloud"] == "null"
    assert tile.env["ARGO_WORKFLOW_NAME"] == tile.workflow and tile.env["ARGO_NODE_ID"].startswith(tile.workflow)
    assert json.loads(tile.env["ARGO_TEMPLATE"])["name"] == "process-tile"
    assert tile.env["HOME"] == "/tmp" and tile.env["AWS_ACCESS_KEY_ID"] == "AKIA-test"
    assert "PC_SDK_SUBSCRIPTION_KEY" not in tile.env and "SH_CLIENT_ID" not in tile.env  # optional, absent


class _Scripted(DryRunExecutor):
    """Fails chosen (task, attempt) pods with an exit code, gives chosen tasks output parameters, and runs
    ``python -c`` containers (the gate) for real with this interpreter; everything else succeeds."""

    def __init__(self, fail: dict[tuple[str, int], int], outputs: dict[str, dict] | None = None) -> None:
        super().__init__()
        self.fail, self.outputs = fail, outputs or {}

    def run(self, pod: Pod, settings: Settings) -> PodResult:
        code = self.fail.get((_task(pod), pod.attempt))
        if code is not None:
            phase = "Error" if code > 128 else "Failed"
            return PodResult(code, phase, f"exit {code}", "", "boom", {}, 0.0, argv=[])
        if (pod.entrypoint or [])[:2] == ["python", "-c"]:
            import subprocess
            import sys

            proc = subprocess.run([sys.executable, *pod.entrypoint[1:], *pod.args], capture_output=True, text=True,
                                  timeout=60)
            phase = "Succeeded" if proc.returncode == 0 else "Failed"
            return PodResult(proc.returncode, phase, proc.stderr.strip(), proc.stdout, proc.stderr, {}, 0.0)
        out = super().run(pod, settings)
        out.outputs.update(self.outputs.get(_task(pod), {}))
        return out


def test_failed_tiles_fail_the_campaign_through_the_gate_and_the_exit_handler_stops_the_children(two_batches):
    """n45e003 fails every attempt (exit 1: retried, limit 3); s24e021 has a data error (exit 2: never
    retried). Both batches fail, the campaign steps still run, the gate (its real command) fails the
    parent, and the parent's exit handler patches each child with shutdown: Stop."""
    fail = {("n45e003", a): 1 for a in range(4)}
    fail[("s24e021", 0)] = 2
    replay = Replay(two_batches, Settings(secrets=S3_KEYS))
    replay.run(_Scripted(fail, outputs={"collect-failures": {"failed": "2"}}))
    pods = replay.pods
    n45 = [r for r in pods if _task(r) == "n45e003"]
    assert [(r.attempt, r.phase) for r in n45] == [(0, "Failed"), (1, "Failed"), (2, "Failed"), (3, "Failed")]
    assert [r.backoff_s for r in n45] == [0, 120, 240, 480]  # Argo's backoff (2m, factor 2), recorded
    s24 = [r for r in pods if _task(r) == "s24e021"]
    assert [(r.attempt, r.phase, r.exit_code) for r in s24] == [(0, "Failed", 2)]  # a data error: no retry
    batches = {r.task: r for r in pods if r.kind == "resource" and r.task.startswith("b")}
    assert all(b.phase == "Failed" and "failureCondition" in b.message for b in batches.values())
    parent = batches["b000"].workflow
    assert [r.task for r in pods if r.workflow == parent and r.kind == "pod"][-4:] == \
        ["collect-failures", "merge", "validate", "gate"]
    gate = next(r for r in pods if r.task == "gate")
    assert gate.phase == "Failed" and gate.exit_code == 1
    assert gate.message == "failed tiles: 2, more than the 0 allowed; the list is in s3://wc-replay/run/failed_tiles.json"
    run = next(w for w in replay.workflows if w.name == parent)
    assert run.phase == "Failed" and "gate" in run.message
    # the exit handler ran with workflow.status = Failed and stopped both children
    assert run.exit_handler == "Succeeded"
    assert replay.patches == [(f"{parent}-b000", {"spec": {"shutdown": "Stop"}}),
                              (f"{parent}-b001", {"spec": {"shutdown": "Stop"}})]


def test_the_gate_lets_a_campaign_within_its_threshold_succeed(two_batches):
    objs = copy.deepcopy(two_batches)
    parent = next(o for o in objs if o["kind"] == "Workflow")
    parent["spec"]["arguments"]["parameters"][0]["value"] = "1"  # max-failed-tiles, as set on resubmission
    replay = Replay(objs, Settings(secrets=S3_KEYS))
    replay.run(_Scripted({("s24e021", 0): 2}, outputs={"collect-failures": {"failed": "1"}}))
    run = next(w for w in replay.workflows if not w.parent)
    assert run.phase == "Succeeded" and run.nodes[f"{run.name}.gate"] == "Skipped"
    assert not replay.patches  # succeeded: the exit handler stops nothing


def test_a_lost_batch_pod_applies_its_child_again_without_a_duplicate(two_batches):
    """The batch step's pod is lost after its child exists: the retry (OnError) applies the same name, which
    changes nothing, and waits on the same child; collect-failures starts only after that."""
    replay = Replay(two_batches, Settings(secrets=S3_KEYS, lost_resources=[("b000", 0)]))
    replay.run(_Scripted({}))
    b000 = [r for r in replay.pods if r.task == "b000"]
    child = b000[0].child
    assert [(r.attempt, r.phase, r.child) for r in b000] == [(0, "Error", child), (1, "Succeeded", child)]
    assert b000[1].message == f"{child} unchanged" and child.endswith("-b000")
    assert sum(w.name == child for w in replay.workflows) == 1  # one child, run once
    assert len([r for r in replay.pods if _task(r) == "n45e003"]) == 1
    assert replay.pods.index(b000[1]) < next(i for i, r in enumerate(replay.pods) if r.task == "collect-failures")
    assert all(w.phase == "Succeeded" for w in replay.workflows)


def test_single_workflow_and_fail_fast_semantics():
    objs = [o.obj for o in render(_plan(batch_size=50), CFG).objects]
    assert [o["kind"] for o in objs].count("Workflow") == 1 and not any("resource" in t for o in objs
                                                                       for t in o["spec"].get("templates", []))
    replay = Replay(objs, Settings(secrets=S3_KEYS))
    replay.run(_Scripted({("merge", a): 2 for a in range(4)}))
    tasks = [(r.task, r.phase) for r in replay.pods]
    assert tasks.count(("merge", "Failed")) == 1  # exit 2: a data error is not retried
    assert ("validate", "Succeeded") not in tasks  # depends: merge (Succeeded) is not met
    assert replay.workflows[-1].phase == "Failed"
    assert replay.workflows[-1].nodes[f"{replay.workflows[-1].name}.validate"] == "Omitted"
    assert replay.workflows[-1].nodes[f"{replay.workflows[-1].name}.gate"] == "Omitted"


# -- refusal -------------------------------------------------------------------------------------------


_PT, _MG, _VD, _BT = parts.TEMPLATE_PROCESS_TILE, parts.TEMPLATE_MERGE, parts.TEMPLATE_VALIDATE, parts.TEMPLATE_BATCH


@pytest.mark.parametrize("where, edit, path", [
    (_PT, lambda o: o["spec"]["templates"][0]["script"].__setitem__("stdin", True),
     f"WorkflowTemplate/{_PT}: spec.templates[0].script.stdin"),
    (_MG, lambda o: o["spec"].__setitem__("hooks", {}),
     f"WorkflowTemplate/{_MG}: spec.hooks"),
    (_VD, lambda o: o["spec"]["templates"][0].__setitem__("sidecars", []),
     f"WorkflowTemplate/{_VD}: spec.templates[0].sidecars"),
    (_BT, lambda o: o["spec"]["templates"][0]["dag"]["tasks"][0].__setitem__("hooks", {}),
     f"WorkflowTemplate/{_BT}: spec.templates[0].dag.tasks[0].hooks"),
    (_PT,
     lambda o: o["spec"]["templates"][0]["script"]["env"][0].__setitem__("valueFrom", {"fieldRef": {}}),
     f"WorkflowTemplate/{_PT}: spec.templates[0].script.env[0].valueFrom.fieldRef"),
    (_PT,
     lambda o: o["spec"]["templates"][0]["volumes"].append({"name": "data", "hostPath": {"path": "/"}}),
     f"WorkflowTemplate/{_PT}: spec.templates[0].volumes[1].hostPath"),
    (_PT,
     lambda o: o["spec"]["templates"][0]["script"]["securityContext"].__setitem__("privileged", True),
     f"WorkflowTemplate/{_PT}: spec.templates[0].script.securityContext.privileged"),
])
def test_an_unknown_field_is_refused_by_its_path(two_batches, where, edit, path):
    objs = copy.deepcopy(two_batches)
    edit(next(o for o in objs if o["metadata"].get("name") == where))
    with pytest.raises(UnsupportedField) as info:
        Replay(objs)
    assert info.value.path == path
    assert path in str(info.value)


def test_a_parent_field_and_a_child_manifest_field_are_refused(two_batches):
    objs = copy.deepcopy(two_batches)
    parent = next(o for o in objs if o["kind"] == "Workflow")
    parent["spec"]["hostNetwork"] = True
    with pytest.raises(UnsupportedField, match=r"Workflow/wc-replay-: spec\.hostNetwork"):
        Replay(objs)
    objs = copy.deepcopy(two_batches)
    parent = next(o for o in objs if o["kind"] == "Workflow")
    batch = next(t for t in parent["spec"]["templates"] if t["name"] == "batch")
    batch["resource"]["manifest"] += "  hooks: {}\n"  # under spec: in the child it creates
    replay = Replay(objs, Settings(secrets=S3_KEYS))  # the manifest is only text until the resource step runs
    with pytest.raises(UnsupportedField, match=r"Workflow/.*-b000: spec\.hooks"):
        replay.dry_run()


def test_secrets_and_env():
    objs = [o.obj for o in render(_plan(batch_size=50), CFG).objects]
    seen: list[Pod] = []
    settings = Settings(secrets=S3_KEYS, env={"AWS_ENDPOINT_URL": "http://127.0.0.1:1"})
    Replay(objs, settings).dry_run(lambda pod: seen.append(pod) or "")
    pod = next(p for p in seen if p.template_name == "process-tile")
    assert pod.env["AWS_ACCESS_KEY_ID"] == "AKIA-test" and pod.env["AWS_SECRET_ACCESS_KEY"] == "s3cr3t"
    assert set(pod.secret_env) == {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"}
    assert "SH_CLIENT_ID" not in pod.env and pod.env["AWS_ENDPOINT_URL"] == "http://127.0.0.1:1"
    assert "AKIA-test" not in " ".join(pod.podman_argv())  # values travel in podman's env, not its argv
    # a required key missing: that pod is an Error (CreateContainerConfigError), retried, then given up
    # (write-plan, the first step, cannot start: nothing after it runs, the campaign fails in minutes)
    replay = Replay(objs, Settings(secrets={"worldcover-s3": {"secret-access-key": "s3cr3t"}}))
    replay.dry_run()
    assert {r.task for r in replay.pods} == {"write-plan"} and len(replay.pods) == 4
    assert all(r.phase == "Error" and "access-key-id" in r.message for r in replay.pods)
    assert replay.workflows[0].phase in ("Error", "Failed")
    # with the Planetary Computer as the cluster's catalogue, its key is required too
    pc = [o.obj for o in render(_plan(batch_size=50), RenderConfig(source_kind="planetary-computer")).objects]
    replay = Replay(pc, Settings(secrets=S3_KEYS))
    replay.dry_run()
    assert replay.pods and all(r.phase == "Error" and "worldcover-planetary-computer" in r.message
                               for r in replay.pods)
    with pytest.raises(ReplayError, match="override the template's own env"):
        Replay(objs, Settings(secrets=S3_KEYS, env={"HOME": "/"})).dry_run()


def test_items_when_and_task_results():
    wf = {
        "apiVersion": "argoproj.io/v1alpha1", "kind": "Workflow",
        "metadata": {"generateName": "loop-", "labels": {"team": "wc"}},
        "spec": {
            "entrypoint": "main",
            "arguments": {"parameters": [{"name": "greeting", "value": "hi"}]},
            "templates": [
                {"name": "main", "dag": {"tasks": [
                    {"name": "list", "template": "echo", "arguments": {"parameters": [
                        {"name": "msg", "value": "{{workflow.parameters.greeting}}-{{workflow.labels.team}}"}]}},
                    {"name": "each", "template": "echo", "depends": "list",
                     "withParam": "{{tasks.list.outputs.result}}",
                     "arguments": {"parameters": [{"name": "msg", "value": "{{item}}"}]}},
                    {"name": "never", "template": "echo", "depends": "each",
                     "when": "{{tasks.list.status}} != Succeeded",
                     "arguments": {"parameters": [{"name": "msg", "value": "x"}]}},
                    {"name": "after", "template": "echo", "depends": "never.Skipped && each.AnySucceeded",
                     "withItems": [1, 2], "arguments": {"parameters": [{"name": "msg", "value": "n{{item}}"}]}},
                ]}},
                {"name": "echo", "inputs": {"parameters": [{"name": "msg"}, {"name": "mode", "default": "a",
                                                                             "enum": ["a", "b"]}]},
                 "container": {"image": "busybox", "command": ["echo"], "args": ["{{inputs.parameters.msg}}"]}},
            ],
        },
    }
    check_object(wf)
    replay = Replay([wf])
    replay.dry_run(lambda pod: '["x", "y"]' if pod.task == "list" else pod.args[0])
    got = [(r.task, r.parameters["msg"]) for r in replay.pods]
    assert got == [("list", "hi-wc"), ("each", "x"), ("each", "y"), ("after", "n1"), ("after", "n2")]
    assert replay.workflows[0].phase == "Succeeded"
    assert replay.workflows[0].nodes[f"{replay.workflows[0].name}.never"] == "Skipped"
    bad = copy.deepcopy(wf)
    bad["spec"]["templates"][1]["inputs"]["parameters"][1]["default"] = "c"  # not in its enum
    replay = Replay([bad])
    replay.dry_run()
    assert replay.workflows[0].phase == "Error" or replay.workflows[0].phase == "Failed"
    assert "enum" in replay.workflows[0].message


def test_kill_rule_matching():
    rule = KillRule(task="n45e003", template="process-tile", after_s=1.0)
    assert rule.matches("n45e003", "process-tile", 0) and not rule.matches("n45e003", "process-tile", 1)
    assert not rule.due(0.5) and rule.due(1.5)
    item = KillRule(task="tile", parameters={"tile": "N45E003"})  # one item of a withParam task
    assert item.matches("tile", "process-tile", 0, {"tile": "N45E003", "year": "2021"})
    assert not item.matches("tile", "process-tile", 0, {"tile": "S24E021"}) and not item.matches("tile", "x", 0)
    flag = {"on": False}
    cond = KillRule(task="n45e003", when=lambda: flag["on"])
    assert not cond.due(10)
    flag["on"] = True
    assert cond.due(0)


# =================================================================================================
# The replay: the rendered campaign in the built image, pod by pod, against loopback STAC and S3
# =================================================================================================

#: the session's small simulated archive (tests/small_campaign.py): two blocks per tile, so that a kill after
#: the first block record leaves a block to resume from
BLOCK, SPEC = small_campaign.BLOCK, small_campaign.TWO_BLOCKS
KILLED = "N45E003"  # resumed after a kill
FAILING = "S03W063"  # not in the archive: no input, a data error


def _built_image() -> str:
    """The worldcover image (tests/image.py builds it); a clear failure when that helper is not there."""
    try:
        from tests.image import ensure_image
    except ImportError as exc:
        pytest.fail(f"the replay needs the worldcover image: tests/image.py with ensure_image() is missing ({exc})")
    return ensure_image()


def _publish_archive(archive, url: str, served):
    """The simulated archive on object storage, as the real one is: every file uploaded under ``url``, and a
    copy of its STAC JSON whose hrefs name the objects (``served``, for the loopback STAC API)."""
    from concurrent.futures import ThreadPoolExecutor
    from pathlib import Path

    import boto3

    bucket, _, prefix = url.removeprefix("s3://").partition("/")
    client = boto3.client("s3")
    files = [p for p in Path(archive).rglob("*") if p.is_file()]
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda p: client.upload_file(str(p), bucket, f"{prefix}/{p.relative_to(archive)}"), files))
    for p in Path(archive).glob("stac/*/*.json"):
        target = Path(served) / p.relative_to(archive)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(p.read_text().replace(f"{archive}/", f"{url}/"))
    return Path(served)


def _keys(bucket: str, prefix: str) -> list[str]:
    import boto3

    pages = boto3.client("s3").get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
    return sorted(o["Key"] for page in pages for o in page.get("Contents", []))


def _read(location: str):
    import numpy as np
    import rasterio

    from worldcover import storage

    with rasterio.open(storage.gdal_path(location)) as src:
        return src.read(), src.transform, src.crs, src.nodata, np.dtype(src.dtypes[0])


@dataclass
class Replayed:
    """One podman replay of the smallest workflow of workflows and the local engine's run of the same plan."""

    bucket: str
    plan: CampaignPlan
    replay: Replay
    runs: list
    kill: KillRule
    local: object


@pytest.fixture(scope="module")
def replayed(small_archive, s3_server, tmp_path_factory):
    """The rendered two-batch campaign, pod by pod in the built image, once for the module's tests.

    N45E003 (batch b000) is killed after its first block record reaches the bucket and resumed by Argo's
    retry; S03W063 (batch b001) has no input (a data error, exit 2); b001's resource pod is lost once after
    its child exists, so Argo applies the child again. Then collect-failures, merge, validate, the gate and
    the exit handler; the local engine runs the same plan for comparison.
    """
    import time
    import uuid
    from dataclasses import replace

    from tests.argo_replay import podman_problem
    from tests.s3 import make_bucket
    from worldcover import storage
    from worldcover.engines.local import run_campaign
    from worldcover.layout import tile_paths
    from worldcover.sources.local_api import LocalStacApi

    t0 = time.monotonic()
    image = _built_image()
    print(f"image ready in {time.monotonic() - t0:.1f} s (built only when its sources changed)")
    problem = podman_problem(image)
    if problem:
        pytest.fail(problem, pytrace=False)
    tmp_path = tmp_path_factory.mktemp("replayed")
    with pytest.MonkeyPatch.context() as mp:
        env = s3_server.env()
        for k, v in env.items():
            mp.setenv(k, v)
        bucket = f"wc-replay-{uuid.uuid4().hex[:8]}"
        make_bucket(bucket)
        s3 = f"s3://{bucket}"
        keys = {"access-key-id": env.pop("AWS_ACCESS_KEY_ID"), "secret-access-key": env.pop("AWS_SECRET_ACCESS_KEY")}
        blocks_prefix = storage.uri(tile_paths(f"{s3}/argo", KILLED, YEAR).blocks_dir)
        blocks_prefix = blocks_prefix.removeprefix(f"{s3}/").rstrip("/") + "/"

        def first_block_recorded() -> bool:
            return any(k.endswith(".json") for k in _keys(bucket, blocks_prefix))

        # pods share nothing but object storage: the archive (the stand-in for Planetary Computer's blob
        # storage) is read from the bucket, the STAC API on loopback points at it, outputs go to the bucket
        t0 = time.monotonic()
        archive_url = f"{s3}/archive"
        served = _publish_archive(small_archive, archive_url, tmp_path / "served")
        print(f"archive published to {archive_url} in {time.monotonic() - t0:.1f} s")
        with LocalStacApi(served) as api:
            plan = CampaignPlan.create("wc-replay", YEAR, tiles=[KILLED, FAILING], source=api.url,
                                       out_root=f"{s3}/argo",
                                       block_size=BLOCK, blocks=SPEC, batch_size=1, reference=f"sim:{archive_url}")
            rendering = render(plan, CFG)
            kill = KillRule(task="tile", template="process-tile", parameters={"tile": KILLED},
                            when=first_block_recorded, poll_s=0.2)
            settings = Settings(image=image, secrets={"worldcover-s3": keys}, env=env, kills=[kill],
                                work_dir=tmp_path / "pods", log=print, lost_resources=[("b001", 0)])
            replay = Replay(rendering.objects, settings)
            t0 = time.monotonic()
            runs = replay.run()
            print(f"replay: {len(replay.pods)} pods in {time.monotonic() - t0:.1f} s")
            print("\npods:\n" + format_pods(replay.pods))
            t0 = time.monotonic()
            local = run_campaign(replace(plan, out_root=f"{s3}/local"), workers=1, threads=1, retries=0,
                                 progress=False)
            print(f"local engine: {time.monotonic() - t0:.1f} s ("
                  + ", ".join(f"{o.call.name} {o.seconds:.1f} s" for o in local.steps) + ")")
        yield Replayed(bucket, plan, replay, runs, kill, local)


def _parent(r: Replayed):
    return next(w for w in r.replay.workflows if not w.parent)


@pytest.mark.slow
def test_replay_a_killed_tile_is_resumed_by_argos_retry(replayed):
    kill, pods = replayed.kill, replayed.replay.pods
    assert kill.fired, "the kill condition never held: the tile finished before its first block record was seen"
    attempts = [r for r in pods if _task(r) == KILLED.lower()]
    assert [(r.attempt, r.phase, r.killed) for r in attempts] == [(0, "Error", True), (1, "Succeeded", False)]
    resumed = json.loads(attempts[1].result.strip().splitlines()[-1])
    assert resumed["status"] == "done" and resumed["blocks_reused"] >= 1, resumed
    print(f"{KILLED} killed {kill.fired_after_s} s into attempt 0, after its first block record; attempt 1: {resumed}")


@pytest.mark.slow
def test_replay_a_data_error_is_not_retried_and_the_gate_fails_the_campaign(replayed):
    pods = replayed.replay.pods
    failing = [r for r in pods if _task(r) == FAILING.lower()]
    assert [(r.attempt, r.phase, r.exit_code) for r in failing] == [(0, "Failed", 2)], failing
    assert "DataError" in failing[0].stderr_tail and "Traceback" not in failing[0].stderr_tail
    parent = _parent(replayed)
    steps = {r.task: r for r in pods if r.workflow == parent.name and r.kind == "pod"}
    assert all(steps[t].phase == "Succeeded" for t in ("write-plan", "collect-failures", "merge", "validate"))
    assert json.loads(steps["collect-failures"].result.strip().splitlines()[-1])["failed"] == 1  # a count only
    assert steps["gate"].phase == "Failed" and steps["gate"].exit_code == 1
    assert steps["gate"].stderr_tail.strip() == \
        f"failed tiles: 1, more than the 0 allowed; the list is in s3://{replayed.bucket}/argo/failed_tiles.json"
    assert [w.phase for w in replayed.runs] == ["Failed"] and "gate" in parent.message
    failed = json.loads(storage_text(f"s3://{replayed.bucket}/argo/failed_tiles.json"))
    assert failed["failed"] == [FAILING] and "no Sentinel-2 items" in failed["errors"][FAILING]


@pytest.mark.slow
def test_replay_reapplying_a_child_is_a_no_op_and_the_exit_handler_stops_the_children(replayed):
    pods, parent = replayed.replay.pods, _parent(replayed)
    b001 = [r for r in pods if r.task == "b001"]
    child = f"{parent.name}-b001"
    assert [(r.attempt, r.phase, r.child) for r in b001] == [(0, "Error", child), (1, "Failed", child)]
    assert "unchanged" in b001[1].message  # the retried apply found the child: no second one
    assert sum(w.name == child for w in replayed.replay.workflows) == 1
    assert len([r for r in pods if _task(r) == FAILING.lower()]) == 1
    # the parent failed: its exit handler patched each child with shutdown: Stop
    assert parent.exit_handler == "Succeeded"
    assert replayed.replay.patches == [(f"{parent.name}-{b}", {"spec": {"shutdown": "Stop"}})
                                       for b in ("b000", "b001")]


def storage_text(location: str) -> str:
    from worldcover import storage

    return storage.read_text(location)


@pytest.mark.slow
def test_replay_products_equal_the_local_engines(replayed):
    """Rendered objects -> podman pods in the image -> S3 products identical to the local engine's."""
    import numpy as np

    from worldcover import storage
    from worldcover.layout import tile_paths
    from worldcover.mosaic.build import MosaicPaths

    bucket, local = replayed.bucket, replayed.local
    assert [(s.call.name, s.call.arguments.get("tile")) for s in local.steps if not s.ok] == \
        [("process_tile", FAILING)]
    argo_root, local_root = f"s3://{bucket}/argo", f"s3://{bucket}/local"
    listing = _keys(bucket, "argo/")
    assert any(k.endswith("validation/report.html") for k in listing)
    a, b = tile_paths(argo_root, KILLED, YEAR), tile_paths(local_root, KILLED, YEAR)
    for product in ("map", "prob", "quality"):
        pa, pb = _read(storage.uri(getattr(a, product))), _read(storage.uri(getattr(b, product)))
        assert np.array_equal(pa[0], pb[0]), product
        assert pa[1:] == pb[1:], product
    levels = [k for k in listing if "/mosaic/" in k and k.endswith(".tif")]
    assert levels
    for key in levels:
        other = key.replace("argo/", "local/", 1)
        pa, pb = _read(f"s3://{bucket}/{key}"), _read(f"s3://{bucket}/{other}")
        assert np.array_equal(pa[0], pb[0]), key
    # the 10 m mosaic: a VRT of the tile Map COGs (compared above) by relative paths, the same text in both roots
    ma, mb = MosaicPaths(argo_root, YEAR), MosaicPaths(local_root, YEAR)
    assert storage.read_text(storage.uri(ma.vrt)) == storage.read_text(storage.uri(mb.vrt))
    metrics = [k for k in listing if k.endswith("validation/metrics.json")]
    assert metrics
    got = json.loads(storage.read_text(f"s3://{bucket}/{metrics[0]}").replace(f"{bucket}/argo", f"{bucket}/local"))
    want = json.loads(storage.read_text(f"s3://{bucket}/{metrics[0].replace('argo/', 'local/', 1)}"))
    for m in (got, want):
        m["metadata"].pop("created_utc")
    assert got == want
    print(f"validation: OA {got['overall_accuracy']['estimate']:.3f} on {got['n']} samples in both runs")


def test_podman_that_cannot_run_containers_is_reported_in_one_line(tmp_path):
    from tests.argo_replay import podman_problem

    fake = tmp_path / "podman"
    fake.write_text("#!/bin/sh\necho 'Error: runc: runc create failed: unable to start container process' >&2\n"
                    "exit 126\n")
    fake.chmod(0o755)
    problem = podman_problem("localhost/worldcover:test", podman=(str(fake),))
    assert problem and "\n" not in problem and "runc create failed" in problem and "exit 126" in problem
    assert "not installed" in podman_problem("x", podman=(str(tmp_path / "nope"),))
