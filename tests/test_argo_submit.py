"""Contract test of the Argo Server calls: a small HTTP server on loopback records every request,
validates the JSON bodies against the Argo schema (strict), checks the bearer token, and answers
like the Argo Server's REST API. Then: the token never shows in output, errors or logs."""

from __future__ import annotations

import copy
import json
import logging
import threading
from http.server import BaseHTTPRequestHandler
from urllib.parse import parse_qs, urlparse

import pytest
import typer
import yaml
from typer.testing import CliRunner

from tests.loopback import LoopbackServer
from worldcover.campaign.plan import CampaignPlan
from worldcover.engines.argo import parts
from worldcover.engines.argo import submit as S
from worldcover.engines.argo.parts import RenderConfig
from worldcover.engines.argo.schema import ArgoSchemaError, validate_object
from worldcover.errors import InputError

TOKEN = "sekret-token-123"
NS = "worldcover"


class FakeArgoServer(LoopbackServer):
    """Just enough of the Argo Server REST API, on 127.0.0.1 and a free port."""

    def __init__(self, token: str):
        self.token = token
        self.requests: list[dict] = []
        self.problems: list[str] = []
        self.templates: dict[str, dict] = {}
        self.workflows: dict[str, dict] = {}
        self.archived: dict[str, dict] = {}  # uid -> workflow (the workflow archive)
        self.archive_enabled = True
        self.counter = 0
        self.lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # keep test output clean
                pass

            def _reply(self, code: int, body: dict) -> None:
                data = json.dumps(body).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _handle(self, method: str) -> None:
                url = urlparse(self.path)
                length = int(self.headers.get("Content-Length") or 0)
                body = json.loads(self.rfile.read(length)) if length else None
                rec = {"method": method, "path": url.path, "query": parse_qs(url.query), "body": body,
                       "auth": self.headers.get("Authorization")}
                with server.lock:
                    server.requests.append(rec)
                    code, reply = server.route(rec)
                self._reply(code, reply)

            def do_GET(self):
                self._handle("GET")

            def do_POST(self):
                self._handle("POST")

            def do_PUT(self):
                self._handle("PUT")

            def do_DELETE(self):
                self._handle("DELETE")

        super().__init__(Handler)

    # -- the API -----------------------------------------------------------------------------
    def _valid(self, obj: dict, what: str) -> dict | None:
        try:
            validate_object(obj, "v4.1.2", strict=True)
        except ArgoSchemaError as exc:
            self.problems.append(f"{what}: {exc}")
            return {"code": 3, "message": str(exc)}
        refs = {(t.get("templateRef") or {}).get("name") for tmpl in obj["spec"].get("templates", [])
                for t in (tmpl.get("dag") or {}).get("tasks", [])} - {None}
        missing = refs - set(self.templates)
        if missing and not what.startswith("lint-template"):
            self.problems.append(f"{what}: refers to templates not created yet: {sorted(missing)}")
            return {"code": 3, "message": f"templates not found: {sorted(missing)}"}
        return None

    def route(self, r: dict) -> tuple[int, dict]:
        parts_ = r["path"].strip("/").split("/")
        if r["auth"] != f"Bearer {self.token}":
            self.problems.append(f"bad Authorization header on {r['method']} {r['path']}")
            return 401, {"code": 16, "message": "token not valid"}
        if parts_[:3] == ["api", "v1", "archived-workflows"]:
            return self.archive(r, parts_[3:])
        if len(parts_) < 4 or parts_[:2] != ["api", "v1"]:
            return 404, {"code": 5, "message": "not found"}
        kind, ns, rest = parts_[2], parts_[3], parts_[4:]
        if ns == "leaky":  # a server that echoes the credential back: we must redact it
            return 403, {"code": 7, "message": f"forbidden for Authorization: Bearer {self.token}"}
        if kind == "workflow-templates":
            return self.route_templates(r, rest)
        if kind == "workflows":
            return self.route_workflows(r, ns, rest)
        return 404, {"code": 5, "message": "not found"}

    def route_templates(self, r: dict, rest: list[str]) -> tuple[int, dict]:
        """The WorkflowTemplate endpoints: lint, create, get, list, delete and update (with resourceVersion)."""
        if r["method"] == "POST" and rest == ["lint"]:
            bad = self._valid(r["body"]["template"], "lint-template")
            return (400, bad) if bad else (200, r["body"]["template"])
        if r["method"] == "POST" and not rest:
            t = copy.deepcopy(r["body"]["template"])
            bad = self._valid(t, "create-template")
            if bad:
                return 400, bad
            name = t["metadata"]["name"]
            if name in self.templates:
                return 409, {"code": 6, "message": f"workflowtemplates {name} already exists"}
            t["metadata"]["resourceVersion"] = "1"
            self.templates[name] = t
            return 200, t
        if r["method"] == "GET" and len(rest) == 1:
            t = self.templates.get(rest[0])
            return (200, t) if t else (404, {"code": 5, "message": "not found"})
        if r["method"] == "GET" and not rest:
            return 200, {"metadata": {}, "items": self._select(self.templates.values(), r)}
        if r["method"] == "DELETE" and len(rest) == 1:
            return (200, {}) if self.templates.pop(rest[0], None) else (404, {"code": 5, "message": "not found"})
        if r["method"] == "PUT" and len(rest) == 1:
            t = copy.deepcopy(r["body"]["template"])
            bad = self._valid(t, "update-template")
            if bad:
                return 400, bad
            old = self.templates.get(rest[0])
            if old is None or t["metadata"].get("resourceVersion") != old["metadata"]["resourceVersion"]:
                self.problems.append(f"update of {rest[0]} without the current resourceVersion")
                return 409, {"code": 10, "message": "conflict"}
            t["metadata"]["resourceVersion"] = str(int(old["metadata"]["resourceVersion"]) + 1)
            self.templates[rest[0]] = t
            return 200, t
        return 404, {"code": 5, "message": "not found"}

    def route_workflows(self, r: dict, ns: str, rest: list[str]) -> tuple[int, dict]:
        """The Workflow endpoints: lint, create (named from generateName), get, list and delete."""
        if r["method"] == "POST" and rest == ["lint"]:
            bad = self._valid(r["body"]["workflow"], "lint-workflow")
            return (400, bad) if bad else (200, r["body"]["workflow"])
        if r["method"] == "POST" and not rest:
            wf = copy.deepcopy(r["body"]["workflow"])
            bad = self._valid(wf, "create-workflow")
            if bad:
                return 400, bad
            self.counter += 1
            wf["metadata"]["name"] = wf["metadata"].pop("generateName") + f"x{self.counter:04d}"
            wf["metadata"]["namespace"] = ns
            self.workflows[wf["metadata"]["name"]] = wf
            return 200, wf
        if r["method"] == "GET" and len(rest) == 1:
            wf = self.workflows.get(rest[0])
            return (200, wf) if wf else (404, {"code": 5, "message": f"workflows {rest[0]} not found"})
        if r["method"] == "GET" and not rest:
            return 200, {"metadata": {}, "items": self._select(self.workflows.values(), r)}
        if r["method"] == "DELETE" and len(rest) == 1:
            return (200, {}) if self.workflows.pop(rest[0], None) else (404, {"code": 5, "message": "not found"})
        return 404, {"code": 5, "message": "not found"}

    @staticmethod
    def _select(objects, r: dict) -> list[dict]:
        """Label (key=value) and field (metadata.name=value) selectors, as the API applies them."""
        key, _, value = r["query"].get("listOptions.labelSelector", ["="])[0].partition("=")
        field_, _, fvalue = r["query"].get("listOptions.fieldSelector", ["="])[0].partition("=")
        return [o for o in objects if (not key or (o["metadata"].get("labels") or {}).get(key) == value)
                and (not field_ or (field_ == "metadata.name" and o["metadata"]["name"] == fvalue))]

    def archive(self, r: dict, rest: list[str]) -> tuple[int, dict]:
        if not self.archive_enabled:
            return 404, {"code": 5, "message": "archive not enabled"}
        if r["method"] == "GET" and not rest:
            return 200, {"metadata": {}, "items": self._select(self.archived.values(), r)}
        if r["method"] == "GET" and len(rest) == 1 and rest[0] in self.archived:
            return 200, self.archived[rest[0]]
        return 404, {"code": 5, "message": "not found"}

    def archive_workflow(self, name: str) -> None:
        """What the TTL and the archive do to a finished workflow: gone from the cluster, kept in the archive."""
        wf = self.workflows.pop(name)
        wf["metadata"]["uid"] = f"uid-{name}"
        self.archived[wf["metadata"]["uid"]] = wf


@pytest.fixture()
def server():
    with FakeArgoServer(TOKEN) as s:
        yield s


@pytest.fixture()
def svc(server):
    return S.service(server.url, NS, TOKEN)


def _plan(stage="1pct", name=None):
    return CampaignPlan.create(name or f"wc-2021-{stage}", 2021, stage=stage, out_root="s3://worldcover/campaigns")


def _tile_nodes(wf_name: str, tiles: dict[str, str], *, fan_out: bool = False) -> dict:
    """status.nodes as Argo writes them for tile tasks with a retryStrategy (retry node + pod attempts): tasks
    named by tile (a single workflow) or, with ``fan_out``, the batch template's withParam items
    ``tile(0:N00E006)``."""
    nodes = {}
    for i, (tile, phase) in enumerate(sorted(tiles.items())):
        task = f"tile({i}:{tile})" if fan_out else tile.lower()
        rid = f"{wf_name}-{i}"
        attempts = 4 if phase == "Failed" else 1
        ref = {"name": parts.TEMPLATE_PROCESS_TILE, "template": "process-tile"}
        inputs = {"parameters": [{"name": "tile", "value": tile}, {"name": "year", "value": "2021"}]}
        nodes[rid] = {"id": rid, "name": f"{wf_name}.{task}", "displayName": task, "type": "Retry", "phase": phase,
                      "templateRef": ref, "inputs": inputs, "children": [f"{rid}-{a}" for a in range(attempts)]}
        for a in range(attempts):
            nodes[f"{rid}-{a}"] = {"id": f"{rid}-{a}", "name": f"{wf_name}.{task}({a})", "displayName": f"{task}({a})",
                                   "type": "Pod", "phase": phase, "templateRef": ref, "inputs": inputs}
    return nodes


def _step_nodes(wf_name: str) -> dict:
    out = {}
    for step, template in (("collect-failures", parts.TEMPLATE_PROCESS_TILE), ("merge", parts.TEMPLATE_MERGE)):
        out[f"{wf_name}-{step}"] = {"id": f"{wf_name}-{step}", "name": f"{wf_name}.{step}", "displayName": step,
                                    "type": "Retry", "phase": "Succeeded",
                                    "templateRef": {"name": template, "template": step}}
    return out


def test_submit_single_workflow_contract(server, svc):
    plan = _plan("1pct")
    result = S.submit(plan, svc, NS)
    assert not server.problems, server.problems
    calls = [(r["method"], r["path"]) for r in server.requests]
    tpl = f"/api/v1/workflow-templates/{NS}"
    assert calls == [
        ("POST", f"{tpl}/lint"), ("POST", tpl),
        ("POST", f"{tpl}/lint"), ("POST", tpl),
        ("POST", f"{tpl}/lint"), ("POST", tpl),
        ("POST", f"{tpl}/lint"), ("POST", tpl),
        ("POST", f"/api/v1/workflows/{NS}/lint"), ("POST", f"/api/v1/workflows/{NS}"),
    ]
    assert all(r["auth"] == f"Bearer {TOKEN}" for r in server.requests)
    created = server.workflows[result.workflow]
    assert result.workflow.startswith("wc-2021-1pct-") and result.tiles == len(plan.tiles)
    # the body is exactly the rendered object
    assert server.requests[-1]["body"]["workflow"] == result.rendering.submitted_workflow().obj
    assert created["metadata"]["labels"][parts.LABEL_CAMPAIGN] == plan.name


def test_submit_workflow_of_workflows_then_resubmit_updates_templates(server, svc):
    plan = _plan("10pct")
    first = S.submit(plan, svc, NS)
    assert not server.problems, server.problems
    # the four shared templates and nothing per campaign: every batch runs worldcover-batch
    assert set(server.templates) == set(first.templates) == {
        parts.TEMPLATE_PROCESS_TILE, parts.TEMPLATE_BATCH, parts.TEMPLATE_MERGE, parts.TEMPLATE_VALIDATE}
    n = len(server.requests)
    second = S.submit(plan, svc, NS)  # templates exist: 409 -> GET -> PUT with the resourceVersion
    assert not server.problems, server.problems
    methods = [r["method"] for r in server.requests[n:]]
    assert methods.count("PUT") == 4 and methods.count("GET") == 4
    assert second.workflow != first.workflow
    for name, t in server.templates.items():
        assert t["metadata"]["resourceVersion"] == "2", name


def test_status_and_retry_single_workflow(server, svc):
    plan = _plan("1pct")
    result = S.submit(plan, svc, NS)
    failed = sorted(plan.tiles)[:2]
    phases = {t: ("Failed" if t in failed else "Succeeded") for t in plan.tiles}
    wf = server.workflows[result.workflow]
    nodes = {**_tile_nodes(result.workflow, phases), **_step_nodes(result.workflow)}
    wf["status"] = {"phase": "Failed", "nodes": nodes}
    st = S.campaign_status(result.workflow, svc, NS)
    assert st.campaign == plan.name and st.stage == "1pct" and st.phase == "Failed"
    assert st.failed_tiles() == failed
    assert st.counts() == {"Failed": 2, "Succeeded": len(plan.tiles) - 2}
    assert {t.tile: t.attempts for t in st.tiles}[failed[0]] == 4
    assert [s["step"] for s in st.steps] == ["collect-failures", "merge"]
    n = len(server.requests)
    again = S.retry(result.workflow, svc, NS)
    assert not server.problems, server.problems
    body = server.requests[-1]["body"]["workflow"]
    assert server.requests[-1]["path"] == f"/api/v1/workflows/{NS}"
    tasks = next(t for t in body["spec"]["templates"] if t["name"] == "main")["dag"]["tasks"]
    tiles = [next(p["value"] for p in t["arguments"]["parameters"] if p["name"] == "tile")
             for t in tasks if t.get("templateRef", {}).get("template") == "process-tile"]
    assert tiles == failed and again.tiles == 2
    assert body["metadata"]["labels"][parts.LABEL_RETRY_OF] == result.workflow
    assert body["metadata"]["labels"][parts.LABEL_CAMPAIGN] == plan.name  # same campaign, same outputs
    assert body["metadata"]["generateName"].startswith(f"{plan.name}-r")
    assert all(r["method"] != "DELETE" for r in server.requests[n:])


def test_status_of_a_parent_reads_its_children(server, svc):
    plan = _plan("10pct")
    result = S.submit(plan, svc, NS)
    parent = server.workflows[result.workflow]
    failed_tile = plan.batches()[2][7]
    nodes = {}
    for i, tiles in enumerate(plan.batches()):
        b = f"b{i:03d}"
        child_name = f"{result.workflow}-{b}-zz{i}"
        phases = {t: ("Failed" if t == failed_tile else "Succeeded") for t in tiles}
        server.workflows[child_name] = {
            "apiVersion": "argoproj.io/v1alpha1", "kind": "Workflow",
            "metadata": {"name": child_name, "namespace": NS,
                         "labels": {parts.LABEL_PARENT: result.workflow, parts.LABEL_BATCH: b}},
            "spec": {"workflowTemplateRef": {"name": parts.TEMPLATE_BATCH}},
            "status": {"phase": "Failed" if failed_tile in tiles else "Succeeded",
                       "nodes": _tile_nodes(child_name, phases, fan_out=True)},
        }
        nodes[f"p-{b}"] = {"id": f"p-{b}", "name": f"{result.workflow}.{b}", "displayName": b, "type": "Pod",
                           "templateName": "batch", "phase": "Failed" if failed_tile in tiles else "Succeeded"}
    parent["status"] = {"phase": "Running", "nodes": nodes}
    st = S.campaign_status(result.workflow, svc, NS)
    assert len(st.tiles) == len(plan.tiles)
    assert st.failed_tiles() == [failed_tile]
    assert [b["batch"] for b in st.batches] == [f"b{i:03d}" for i in range(6)]
    assert st.batches[2]["phase"] == "Failed" and st.batches[2]["workflow"].endswith("-b002-zz2")
    again = S.retry(result.workflow, svc, NS)
    assert again.tiles == 1 and not server.problems


def test_retry_without_failures_is_an_input_error(server, svc):
    result = S.submit(_plan("1pct"), svc, NS)
    server.workflows[result.workflow]["status"] = {
        "phase": "Succeeded", "nodes": _tile_nodes(result.workflow, {t: "Succeeded" for t in _plan("1pct").tiles})}
    with pytest.raises(InputError, match="no failed tile"):
        S.retry(result.workflow, svc, NS)


def test_server_data_is_validated_before_it_reaches_a_plan(server, svc):
    result = S.submit(_plan("1pct"), svc, NS)
    wf = server.workflows[result.workflow]
    nodes = _tile_nodes(result.workflow, {"N00E006": "Failed"})
    for n in nodes.values():  # a tampered node: its tile id would reach YAML
        n["inputs"]["parameters"][0]["value"] = "{{workflow.parameters.x}}"
        n["displayName"] = n["displayName"].replace("n00e006", "evil")
    wf["status"] = {"phase": "Failed", "nodes": nodes}
    assert S.campaign_status(result.workflow, svc, NS).tiles == []
    wf["metadata"]["annotations"][parts.ANNOTATION_PLAN] = json.dumps({"name": "../../etc", "year": 2021})
    wf["status"] = {"phase": "Failed", "nodes": _tile_nodes(result.workflow, {"N00E006": "Failed"})}
    with pytest.raises(InputError):
        S.retry(result.workflow, svc, NS)


def test_errors_are_redacted_and_local_checks_come_first(server):
    leaky = S.service(server.url, "leaky", TOKEN)
    with pytest.raises(S.ArgoServerError) as err:
        S.submit(_plan("1pct"), leaky, "leaky")
    assert TOKEN not in str(err.value) and "***" in str(err.value)
    n = len(server.requests)
    with pytest.raises(InputError, match="s3://"):  # refused before any request
        S.submit(CampaignPlan.create("local", 2021, stage="1pct", out_root="campaigns"), leaky, "leaky")
    unauth = S.service(server.url, NS, "wrong-token")
    with pytest.raises(S.ArgoServerError, match="401"):
        S.submit(_plan("1pct"), unauth, NS)
    assert len(server.requests) == n + 1  # the first lint is refused with 401: nothing else is sent
    down = S.service("http://127.0.0.1:9", NS, TOKEN)
    with pytest.raises(S.ArgoServerError, match="cannot reach") as err:
        S.campaign_status("wc-x", down, NS)
    assert TOKEN not in str(err.value)


def test_token_sources(tmp_path, monkeypatch):
    f = tmp_path / "token"
    f.write_text(TOKEN + "\n")
    assert S.read_token(f) == TOKEN
    monkeypatch.setenv("ARGO_TOKEN", "from-env")
    assert S.read_token() == "from-env" and S.read_token(f) == TOKEN
    monkeypatch.delenv("ARGO_TOKEN")
    assert S.read_token() is None
    with pytest.raises(InputError, match="does not exist"):
        S.read_token(tmp_path / "missing")
    (tmp_path / "empty").write_text("  \n")
    with pytest.raises(InputError, match="empty"):
        S.read_token(tmp_path / "empty")
    (tmp_path / "two").write_text("a b\nc")
    with pytest.raises(InputError) as err:
        S.read_token(tmp_path / "two")
    assert "a b" not in str(err.value)
    with pytest.raises(InputError):
        S.service("ftp://x", NS)
    with pytest.raises(InputError):
        S.service("http://127.0.0.1:1", "Bad_NS")


def _cli():
    from worldcover.cli import _FriendlyErrors
    from worldcover.cli.campaign_argo import app

    root = typer.Typer(cls=_FriendlyErrors)
    root.add_typer(app, name="campaign")

    @root.callback()
    def _root():
        pass

    return root


def test_cli_never_shows_the_token(server, monkeypatch, caplog, capfd):
    caplog.set_level(logging.DEBUG)
    monkeypatch.setenv("ARGO_TOKEN", TOKEN)
    runner = CliRunner()
    cli = _cli()
    common = ["--argo-server", server.url, "--namespace", NS]
    res = runner.invoke(cli, ["campaign", "submit", "--stage", "1pct", *common])
    assert res.exit_code == 0, res.output
    name = res.stdout.split()[1]
    phases = {t: ("Failed" if i == 0 else "Succeeded") for i, t in enumerate(_plan("1pct").tiles)}
    server.workflows[name]["status"] = {"phase": "Failed", "nodes": _tile_nodes(name, phases)}
    outputs = [res.stdout + res.stderr]
    for args in (["status", name, *common], ["status", name, "--json", *common], ["retry", name, *common],
                 ["submit", "--stage", "1pct", "--argo-server", server.url, "--namespace", "leaky"]):
        res = runner.invoke(cli, ["campaign", *args])
        outputs.append(res.stdout + res.stderr)
        if args[-1] == "leaky":
            assert res.exit_code == 2 and res.stderr.count("\n") == 1 and "***" in res.stderr
        else:
            assert res.exit_code == 0, res.output
    assert "Failed 1" in outputs[1] and json.loads(outputs[2])["counts"]["Failed"] == 1
    assert all(r["auth"] == f"Bearer {TOKEN}" for r in server.requests if r["path"].split("/")[4] != "leaky")
    captured = capfd.readouterr()
    text = "\n".join(outputs) + caplog.text + captured.out + captured.err
    assert TOKEN not in text
    # and never in anything rendered
    assert not any(TOKEN in json.dumps(r["body"]) for r in server.requests if r["body"])


@pytest.mark.parametrize("args, message", [
    (["render", "--stage", "2pct", "--out", "OUT"], "unknown stage"),
    (["render", "--name", "Bad_Name", "--stage", "1pct", "--out", "OUT"], "invalid campaign name"),
    (["render", "--tiles", "N00E006,X1", "--out", "OUT"], "invalid tile id"),
    (["render", "--stage", "1pct", "--out-root", "../../etc", "--out", "OUT"], "invalid output root"),
    (["render", "--stage", "1pct", "--image", "a b", "--out", "OUT"], "invalid image"),
    (["render", "--stage", "10pct", "--batch-size", "400", "--out", "OUT"], "nodes"),
    (["submit", "--stage", "1pct"], "no Argo Server"),
    (["submit", "--stage", "1pct", "--argo-server", "http://127.0.0.1:9", "--token-file", "MISSING"], "token file"),
    (["status", "wc/../x", "--argo-server", "http://127.0.0.1:9"], "invalid workflow name"),
    (["status", "wc-x", "--argo-server", "http://127.0.0.1:9", "-n", "NS!"], "invalid namespace"),
])
def test_cli_bad_input_exits_2_with_one_line(args, message, tmp_path, monkeypatch):
    monkeypatch.delenv("ARGO_SERVER", raising=False)
    args = [str(tmp_path / a) if a in ("OUT", "MISSING") else a for a in args]
    res = CliRunner().invoke(_cli(), ["campaign", *args])
    assert res.exit_code == 2, res.output
    assert res.stderr.count("\n") == 1 and res.stderr.startswith("error: ") and message in res.stderr
    assert "Traceback" not in res.output


def test_status_and_retry_fall_back_to_the_workflow_archive(server, svc):
    plan = _plan("10pct")
    result = S.submit(plan, svc, NS)
    failed_tile = plan.batches()[1][3]
    child = f"{result.workflow}-b001"
    server.workflows[child] = {
        "apiVersion": "argoproj.io/v1alpha1", "kind": "Workflow",
        "metadata": {"name": child, "namespace": NS, "labels": {parts.LABEL_PARENT: result.workflow,
                                                                parts.LABEL_BATCH: "b001"}},
        "spec": {}, "status": {"phase": "Failed", "nodes": _tile_nodes(child, {failed_tile: "Failed"})}}
    server.workflows[result.workflow]["status"] = {"phase": "Failed", "nodes": {}}
    server.archive_workflow(result.workflow)  # the TTL deleted both; the archive kept them
    server.archive_workflow(child)
    st = S.campaign_status(result.workflow, svc, NS)
    assert st.phase == "Failed" and st.campaign == plan.name and st.failed_tiles() == [failed_tile]
    assert S.retry(result.workflow, svc, NS).tiles == 1 and not server.problems
    server.archive_enabled = False  # a server without an archive: the live API only, and a clear error
    with pytest.raises(S.ArgoServerError, match="neither in namespace .* nor in its workflow archive"):
        S.campaign_status(result.workflow, svc, NS)


def test_cleanup_removes_what_a_campaign_created(server, svc):
    plan = _plan("10pct")
    result = S.submit(plan, svc, NS)
    other = S.submit(_plan("1pct"), svc, NS)  # another campaign: untouched
    child = f"{result.workflow}-b000"
    server.workflows[child] = {"apiVersion": "argoproj.io/v1alpha1", "kind": "Workflow",
                               "metadata": {"name": child, "labels": {parts.LABEL_CAMPAIGN: plan.name}},
                               "spec": {}, "status": {"phase": "Running"}}
    with pytest.raises(InputError, match="still running"):
        S.cleanup(plan.name, svc, NS)
    dry = S.cleanup(plan.name, svc, NS, force=True, dry_run=True)
    assert dry.workflows == sorted([result.workflow, child])
    assert result.workflow in server.workflows  # a dry run deletes nothing
    server.workflows[child]["status"]["phase"] = "Failed"
    server.workflows[result.workflow]["status"] = {"phase": "Failed"}
    done = S.cleanup(plan.name, svc, NS)
    assert done.to_dict() == {**dry.to_dict(), "dry_run": False}
    assert set(server.workflows) == {other.workflow}
    assert set(server.templates) == {parts.TEMPLATE_PROCESS_TILE, parts.TEMPLATE_BATCH, parts.TEMPLATE_MERGE,
                                     parts.TEMPLATE_VALIDATE}  # shared: they stay
    assert not server.problems
    with pytest.raises(InputError):
        S.cleanup("../etc", svc, NS)


@pytest.mark.slow  # the launcher's command in a subprocess: ~5 s
def test_the_ui_launch_form_submits_a_campaign_as_the_cli_does(server, tmp_path):
    """The launcher template's container command, its form's defaults filled in as Argo would, run here."""
    import re
    import subprocess
    import sys

    import yaml

    from worldcover.engines.argo import install
    from worldcover.engines.argo.render import render_launcher

    obj = render_launcher().obj
    form = {p["name"]: p for p in obj["spec"]["arguments"]["parameters"]}
    assert form["stage"]["enum"] == ["1pct", "10pct", "100pct"] and all(p["description"] for p in form.values())
    assert "value" not in form["out_root"]  # required in the form
    values = {k: p.get("value", "") for k, p in form.items()}
    values.update(out_root="s3://worldcover/campaigns", argo_server=server.url)
    task = obj["spec"]["templates"][-1]["dag"]["tasks"][0]
    assert {a["name"]: a["value"] for a in task["arguments"]["parameters"]} == {
        k: parts.workflow_parameter(k) for k in form}
    container = next(t for t in obj["spec"]["templates"] if t["name"] == "submit")["container"]
    token = tmp_path / "token"
    token.write_text(TOKEN)
    argv = [re.sub(r"\{\{inputs\.parameters\.(\w+)\}\}", lambda m_: values[m_.group(1)], a)
            .replace("{{workflow.namespace}}", NS) for a in container["command"] + container["args"]]
    argv = [str(token) if a == "/var/run/secrets/kubernetes.io/serviceaccount/token" else a for a in argv]
    assert argv[:3] == ["worldcover", "campaign", "submit"]
    proc = subprocess.run([sys.executable, "-m", "worldcover", *argv[1:]], capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr
    created = json.loads(proc.stdout)
    wf = server.workflows[created["workflow"]]
    assert wf["metadata"]["labels"][parts.LABEL_CAMPAIGN] == "wc-1pct-2021" and not server.problems
    assert TOKEN not in proc.stdout + proc.stderr
    # the launcher may create workflows and templates, nothing else
    role = next(o for o in install.launcher(RenderConfigDefault()) if o["kind"] == "Role")
    install.check_manifest(role)
    assert {(r, v) for rule in role["rules"] for r in rule["resources"] for v in rule["verbs"]} == {
        ("workflows", "create"), ("workflows", "get"), ("workflowtemplates", "create"),
        ("workflowtemplates", "get"), ("workflowtemplates", "update")}
    assert obj["spec"]["serviceAccountName"] == role["metadata"]["name"]
    assert yaml.safe_load(yaml.safe_dump(obj)) == obj


def RenderConfigDefault():
    from worldcover.engines.argo.parts import RenderConfig

    return RenderConfig()


def test_a_shared_template_does_not_change_under_a_running_campaign(server, svc):
    plan = _plan("10pct")
    first = S.submit(plan, svc, NS)
    S.submit(plan, svc, NS)  # the same templates again: nothing changes, allowed while it runs
    # other campaign parameters change nothing shared: they travel in the new parent's child manifests
    changed = CampaignPlan.create(plan.name, 2021, stage="10pct", out_root="s3://worldcover/campaigns", max_cloud=30.0)
    again = S.submit(changed, svc, NS)
    batch = next(t for t in again.rendering.submitted_workflow().obj["spec"]["templates"] if t["name"] == "batch")
    child = yaml.safe_load(batch["resource"]["manifest"])
    assert {p["name"]: p["value"] for p in child["spec"]["arguments"]["parameters"]}["max_cloud"] == "30.0"
    other = RenderConfig(image="registry.example/worldcover:other")  # the same version's templates, changed
    with pytest.raises(InputError, match=f"WorkflowTemplate '{parts.TEMPLATE_PROCESS_TILE}' would change while "
                                         f"campaign workflows run \\({first.workflow}"):
        S.submit(plan, svc, NS, other)
    for name in list(server.workflows):
        server.workflows[name]["status"] = {"phase": "Succeeded"}
    S.submit(plan, svc, NS, other)  # finished: the templates may change
    tile = server.templates[parts.TEMPLATE_PROCESS_TILE]["spec"]["templates"][0]
    assert tile["script"]["image"] == "registry.example/worldcover:other"
    assert not server.problems
