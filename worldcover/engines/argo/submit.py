"""Submit a campaign to an Argo Server, read its per-tile status, retry its failed tiles.

All calls go through hera's :class:`~hera.workflows.WorkflowsService` (the
Argo Server's REST API): the functions take a plan and a service, the CLI
only parses. The bearer token comes from ``$ARGO_TOKEN`` or a file; it is
never printed, never rendered into an object, and every error message that
leaves this module is redacted.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import warnings
from collections.abc import Iterator, Mapping
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from worldcover.campaign.plan import CampaignPlan, check_cluster_locations, check_name
from worldcover.credentials import redact, register
from worldcover.engines.argo import parts
from worldcover.engines.argo.parts import RenderConfig
from worldcover.engines.argo.render import ArgoObject, Rendering, render
from worldcover.errors import DataError, InputError, WorldCoverError
from worldcover.grid import Tile

TOKEN_ENV = "ARGO_TOKEN"
FAILED_PHASES = ("Failed", "Error")
TILE_TEMPLATE = "process-tile"
STEP_NAMES = ("write-plan", "collect-failures", "merge", "validate")
_URL = re.compile(r"^https?://[A-Za-z0-9.-]+(:[0-9]{1,5})?(/[A-Za-z0-9._~/-]*)?$")
_RETRY_SUFFIX = re.compile(r"-r[0-9a-f]{6}$")


class ArgoServerError(WorldCoverError):
    """The Argo Server refused a request or could not be reached (message redacted)."""


# -- token and service ------------------------------------------------------------------------------

class Redactor:
    """Replaces every secret it knows with ``***``."""

    def __init__(self, *secrets: str | None):
        self.secrets = sorted({s for s in secrets if s and len(s) >= 4}, key=len, reverse=True)

    def __call__(self, text: str) -> str:
        for s in self.secrets:
            text = text.replace(s, "***")
        return redact(text)  # and whatever other secret the environment holds


def read_token(token_file: str | Path | None = None, env: Mapping[str, str] | None = None) -> str | None:
    """The Argo token: from ``token_file`` if given, else ``$ARGO_TOKEN``, else None (no auth)."""
    source: Mapping[str, str] = os.environ if env is None else env
    token: str | None
    if token_file is not None:
        path = Path(token_file)
        try:
            token = path.read_text().strip()
        except FileNotFoundError:
            raise InputError(f"token file {str(path)!r} does not exist") from None
        except (IsADirectoryError, PermissionError, UnicodeDecodeError) as exc:
            raise InputError(f"token file {str(path)!r} cannot be read: {type(exc).__name__}") from None
        if not token:
            raise InputError(f"token file {str(path)!r} is empty")
    else:
        token = (source.get(TOKEN_ENV) or "").strip() or None
    if token is not None and (any(c.isspace() for c in token.removeprefix("Bearer ")) or not token.isprintable()):
        raise InputError("the Argo token must be one line without spaces (its value is not shown)")
    register(token)  # a token from a file is masked in logs and messages like one from the environment
    return token


def check_server(url: str) -> str:
    if not isinstance(url, str) or not _URL.fullmatch(url):
        raise InputError(f"invalid Argo Server URL {url!r}: expected http(s)://host[:port][/path]")
    return url.rstrip("/") + "/"


def check_namespace(ns: str) -> str:
    return parts.check_dns_name(ns, "namespace")


def service(server: str, namespace: str, token: str | None = None, verify_ssl: bool = True):
    """A hera WorkflowsService for ``server`` (token as given; hera adds ``Bearer``)."""
    from hera.workflows import WorkflowsService

    return WorkflowsService(host=check_server(server), token=token, namespace=check_namespace(namespace),
                            verify_ssl=verify_ssl)


def _redactor(svc) -> Redactor:
    token = getattr(svc, "token", None) or ""
    return Redactor(token, token.removeprefix("Bearer ").strip())


@contextmanager
def _calls(svc, what: str) -> Iterator[None]:
    """Turn hera/requests errors into one redacted ArgoServerError."""
    import requests
    from hera.exceptions import HeraException

    redact = _redactor(svc)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)  # hera's use of pydantic's .json()
            yield
    except HeraException as exc:
        raise ArgoServerError(redact(f"{what}: {exc}")) from None
    except requests.RequestException as exc:
        reason = type(exc).__name__
        raise ArgoServerError(redact(f"{what}: cannot reach the Argo Server at {svc.host} ({reason})")) from None


def _model(o: ArgoObject):
    from hera.workflows import models as m

    return getattr(m, o.kind).model_validate(o.obj)


def _dump(model) -> dict:
    return model.model_dump(by_alias=True, exclude_none=True, mode="json")


# -- submit -----------------------------------------------------------------------------------------

@dataclass
class Submission:
    """What a submission created: the workflow's name and the templates created or updated."""

    workflow: str
    namespace: str
    templates: list[str] = field(default_factory=list)
    tiles: int = 0
    rendering: Rendering | None = None

    def to_dict(self) -> dict:
        return {"workflow": self.workflow, "namespace": self.namespace, "templates": self.templates,
                "tiles": self.tiles}


def check_cluster_plan(plan) -> None:
    """Pods share no filesystem: a cluster campaign's output root, model and reference are object-store URLs."""
    check_cluster_locations(plan)


def _create_or_update_template(svc, o: ArgoObject, namespace: str) -> None:
    from hera.exceptions import AlreadyExists
    from hera.workflows import models as m

    with _calls(svc, f"lint of WorkflowTemplate {o.name}"):
        svc.lint_workflow_template(m.WorkflowTemplateLintRequest(template=_model(o), namespace=namespace),
                                   namespace=namespace)
    with _calls(svc, f"creating WorkflowTemplate {o.name}"):
        try:
            svc.create_workflow_template(m.WorkflowTemplateCreateRequest(template=_model(o), namespace=namespace),
                                         namespace=namespace)
            return
        except AlreadyExists:
            pass
        current = svc.get_workflow_template(o.name, namespace=namespace)
        if _dump(current).get("spec") != _dump(_model(o)).get("spec"):
            _refuse_if_running(svc, o, namespace)
        model = _model(o)
        model.metadata.resource_version = current.metadata.resource_version
        svc.update_workflow_template(o.name, m.WorkflowTemplateUpdateRequest(template=model, name=o.name,
                                                                             namespace=namespace),
                                     namespace=namespace)


def _refuse_if_running(svc, o: ArgoObject, namespace: str) -> None:
    """A shared template of this version that would change (another image, other render options) must not
    change under a running campaign: its pods not yet started would run the new one."""
    key, value = next(iter(parts.PART_OF.items()))
    items = svc.list_workflows(namespace=namespace, label_selector=f"{key}={value}").items or []
    running = sorted(w.metadata.name or "" for w in items
                     if parts.LABEL_CAMPAIGN in (w.metadata.labels or {})
                     and (w.status.phase if w.status else "") in ("", "Pending", "Running"))
    if running:
        raise InputError(f"WorkflowTemplate {o.name!r} would change while campaign workflows run "
                         f"({', '.join(running[:3])}): wait for them, stop them, or install another version")


def submit(plan, svc, namespace: str | None = None, cfg: RenderConfig | None = None, *,
           prefix: str | None = None, retry_of: str | None = None) -> Submission:
    """Render ``plan`` (validated locally), then lint and create its templates and its workflow.

    The shared templates are created, or updated when they exist and differ
    (refused while a campaign runs: its pods would run the new one). The
    workflow is created last, so a refused template leaves no running
    workflow behind.
    """
    from hera.workflows import models as m

    namespace = check_namespace(namespace or svc.namespace)
    check_cluster_plan(plan)
    rendering = render(plan, cfg, prefix=prefix, retry_of=retry_of)
    templates = [o for o in rendering.objects if o.kind == "WorkflowTemplate"]
    workflow = rendering.submitted_workflow()
    for o in templates:
        _create_or_update_template(svc, o, namespace)
    with _calls(svc, "lint of the campaign workflow"):
        svc.lint_workflow(m.WorkflowLintRequest(workflow=_model(workflow), namespace=namespace), namespace=namespace)
    with _calls(svc, "creating the campaign workflow"):
        created = svc.create_workflow(m.WorkflowCreateRequest(workflow=_model(workflow), namespace=namespace),
                                      namespace=namespace)
    name = created.metadata.name or ""
    return Submission(name, namespace, [o.name for o in templates], len(plan.tiles), rendering)


# -- status -----------------------------------------------------------------------------------------

@dataclass
class TileState:
    tile: str
    phase: str
    attempts: int
    workflow: str
    message: str = ""


@dataclass
class CampaignStatus:
    name: str
    phase: str
    campaign: str
    stage: str
    tiles: list[TileState] = field(default_factory=list)
    batches: list[dict] = field(default_factory=list)  # {batch, phase, workflow}
    steps: list[dict] = field(default_factory=list)  # {step, phase}
    plan: dict | None = None

    def counts(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for t in self.tiles:
            out[t.phase] = out.get(t.phase, 0) + 1
        return dict(sorted(out.items()))

    def failed_tiles(self) -> list[str]:
        return sorted(t.tile for t in self.tiles if t.phase in FAILED_PHASES)

    def to_dict(self) -> dict:
        return {"workflow": self.name, "phase": self.phase, "campaign": self.campaign, "stage": self.stage,
                "counts": self.counts(), "batches": self.batches, "steps": self.steps,
                "tiles": [t.__dict__ for t in self.tiles]}


def _task_of(display: str) -> str:
    """A node's task, without the attempt suffix: ``n00e006(1)`` -> ``n00e006``, ``tile(3:N00E006)(0)`` ->
    ``tile(3:N00E006)`` (a withParam item keeps its index and value)."""
    return re.sub(r"\(\d+\)$", "", display)


def _node_template(node: dict) -> str:
    ref = node.get("templateRef") or {}
    return ref.get("template") or node.get("templateName") or ""


def tile_states(workflow: dict) -> list[TileState]:
    """Per-tile phase of one workflow, from ``status.nodes``.

    The tile task's retry node (or its pod node when it has no retries) gives
    the phase; its pod nodes count the attempts. Tasks are named by tile in a
    single workflow (``n00e006``) and by item in a batch (``tile(0:N00E006)``);
    the tile id comes from the node's ``tile`` input parameter (else the task
    name) and is validated.
    """
    name = workflow.get("metadata", {}).get("name", "")
    groups: dict[str, list[dict]] = {}
    for node in (workflow.get("status") or {}).get("nodes", {}).values():
        if _node_template(node) != TILE_TEMPLATE or node.get("type") not in ("Retry", "Pod"):
            continue
        groups.setdefault(_task_of(node.get("displayName", "")), []).append(node)
    out = []
    for task, nodes in sorted(groups.items()):
        head = next((n for n in nodes if n.get("type") == "Retry"), None) or nodes[0]
        params = {p.get("name"): p.get("value") for n in nodes
                  for p in (n.get("inputs") or {}).get("parameters", []) or []}
        try:
            tile = Tile.parse(str(params.get("tile") or task.upper())).id
        except WorldCoverError:
            continue  # not one of ours; never let server data reach a plan unchecked
        attempts = sum(1 for n in nodes if n.get("type") == "Pod")
        out.append(TileState(tile, head.get("phase") or "Pending", attempts, name, head.get("message") or ""))
    return out


def _get(svc, name: str, namespace: str) -> dict:
    """The live workflow, else its copy in the workflow archive (the TTL deletes finished workflows)."""
    from hera.exceptions import NotFound

    with _calls(svc, f"reading workflow {name!r} in namespace {namespace!r}"):
        try:
            return _dump(svc.get_workflow(name, namespace=namespace))
        except NotFound:
            pass
    archived = _archived(svc, namespace, field_selector=f"metadata.name={name}")
    if not archived:
        raise ArgoServerError(f"workflow {name!r} is neither in namespace {namespace!r} nor in its workflow archive")
    return archived[0]


def _archived(svc, namespace: str, *, label_selector: str | None = None, field_selector: str | None = None) -> list:
    """Workflows of the archive (in full, newest first); none when the server has no archive."""
    from hera.exceptions import HeraException

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            found = svc.list_archived_workflows(namespace=namespace, label_selector=label_selector,
                                                field_selector=field_selector)
    except HeraException:  # no archive configured (404 / 501): only the live API
        return []
    out = []
    for item in found.items or []:
        uid = item.metadata.uid
        with _calls(svc, f"reading archived workflow {item.metadata.name!r}"):
            out.append(_dump(svc.get_archived_workflow(uid, namespace=namespace)) if uid else _dump(item))
    return sorted(out, key=lambda w: str(w["metadata"].get("creationTimestamp", "")), reverse=True)


def _children(svc, name: str, namespace: str) -> list[dict]:
    """A parent's child workflows, live or archived (one per batch label; the live one wins)."""
    selector = f"{parts.LABEL_PARENT}={name}"
    with _calls(svc, f"listing the child workflows of {name!r}"):
        live = [_dump(item) for item in svc.list_workflows(namespace=namespace, label_selector=selector).items or []]
    by_name = {c["metadata"]["name"]: c for c in _archived(svc, namespace, label_selector=selector)}
    for c in live:  # list responses may omit node details: read each child in full
        by_name[c["metadata"]["name"]] = _get(svc, c["metadata"]["name"], namespace)
    return list(by_name.values())


def campaign_status(name: str, svc, namespace: str | None = None) -> CampaignStatus:
    """Per-tile phases of a campaign workflow (single, or parent with its child workflows)."""
    namespace = check_namespace(namespace or svc.namespace)
    parts.check_k8s_name(name, "workflow name")
    wf = _get(svc, name, namespace)
    meta = wf.get("metadata", {})
    labels = meta.get("labels") or {}
    plan = None
    if parts.ANNOTATION_PLAN in (meta.get("annotations") or {}):
        try:
            plan = json.loads(meta["annotations"][parts.ANNOTATION_PLAN])
        except json.JSONDecodeError:
            plan = None
    st = CampaignStatus(name, (wf.get("status") or {}).get("phase") or "Pending",
                        labels.get(parts.LABEL_CAMPAIGN, ""), labels.get(parts.LABEL_STAGE, ""), plan=plan)
    nodes = list(((wf.get("status") or {}).get("nodes") or {}).values())
    step_nodes: dict[str, dict] = {}
    for node in nodes:
        d = node.get("displayName")
        # a step's Retry node carries its final phase; a bare Pod node stands in when there is no retry
        kind = node.get("type")
        if d in STEP_NAMES and kind in ("Retry", "Pod") and (d not in step_nodes or kind == "Retry"):
            step_nodes[d] = node
    st.steps = [{"step": d, "phase": step_nodes[d].get("phase")} for d in STEP_NAMES if d in step_nodes]
    st.tiles = tile_states(wf)
    if labels.get(parts.LABEL_ROLE) == "parent":
        by_batch = {}
        for full in _children(svc, name, namespace):
            by_batch[(full["metadata"].get("labels") or {}).get(parts.LABEL_BATCH, "")] = full
            st.tiles.extend(tile_states(full))
        for node in sorted(nodes, key=lambda n: n.get("displayName", "")):
            if node.get("templateName") == "batch" and node.get("type") == "Pod":
                b = node.get("displayName", "")
                child = by_batch.get(b)
                st.batches.append({"batch": b, "phase": node.get("phase"),
                                   "workflow": child["metadata"]["name"] if child else ""})
    st.tiles.sort(key=lambda t: t.tile)
    return st


# -- cleanup ----------------------------------------------------------------------------------------

RUNNING_PHASES = ("", "Pending", "Running")


@dataclass
class Cleanup:
    """What ``cleanup`` removed (or would remove, with ``dry_run``)."""

    campaign: str
    workflows: list[str] = field(default_factory=list)
    dry_run: bool = False

    def to_dict(self) -> dict:
        return {"campaign": self.campaign, "workflows": self.workflows, "dry_run": self.dry_run}


def cleanup(campaign: str, svc, namespace: str | None = None, *, force: bool = False,
            dry_run: bool = False) -> Cleanup:
    """Delete what a campaign created: its workflows (single or parent, children, retries).

    A campaign creates nothing else: the shared, versioned templates stay
    (other campaigns use them; batches run the shared ``worldcover-batch``). A
    campaign with a running workflow is refused unless ``force`` (stop it
    first, e.g. ``argo stop``); outputs in object storage are never touched.
    """
    namespace = check_namespace(namespace or svc.namespace)
    check_name(campaign)
    selector = f"{parts.LABEL_CAMPAIGN}={campaign}"
    with _calls(svc, f"listing the workflows of campaign {campaign!r}"):
        items = [_dump(w) for w in svc.list_workflows(namespace=namespace, label_selector=selector).items or []]
    running = [w["metadata"]["name"] for w in items if (w.get("status") or {}).get("phase", "") in RUNNING_PHASES]
    if running and not force:
        raise InputError(f"campaign {campaign!r} is still running ({', '.join(sorted(running)[:5])}): stop it "
                         "first or pass --force")
    out = Cleanup(campaign, sorted(w["metadata"]["name"] for w in items), dry_run)
    if dry_run:
        return out
    from hera.exceptions import NotFound

    for name in out.workflows:  # children go with their parent too (owner references): NotFound is fine
        with _calls(svc, f"deleting workflow {name!r}"), suppress(NotFound):
            svc.delete_workflow(name, namespace=namespace)
    return out


# -- retry ------------------------------------------------------------------------------------------

def retry_prefix(campaign: str, tiles: list[str]) -> str:
    """``<campaign>-r<6 hex>``: stable for one set of failed tiles, distinct from the first run's names."""
    digest = hashlib.sha256(",".join(sorted(tiles)).encode()).hexdigest()[:6]
    return f"{campaign}-r{digest}"


def retry(name: str, svc, namespace: str | None = None, cfg: RenderConfig | None = None) -> Submission:
    """A new workflow over the failed tiles of workflow ``name`` (same campaign, outputs and parameters).

    The plan comes from the workflow's ``worldcover.io/plan`` annotation and
    the failed tiles from its nodes (and its children's); both are validated
    again before anything is rendered.
    """
    namespace = check_namespace(namespace or svc.namespace)
    st = campaign_status(name, svc, namespace)
    if st.plan is None:
        raise DataError(f"workflow {name!r} carries no {parts.ANNOTATION_PLAN} annotation: not a worldcover "
                        "campaign workflow")
    failed = st.failed_tiles()
    if not failed:
        raise InputError(f"workflow {name!r} has no failed tile ({_counts_text(st)}): nothing to retry")
    plan = CampaignPlan.from_dict(st.plan).with_tiles(failed)
    return submit(plan, svc, namespace, cfg, prefix=retry_prefix(plan.name, failed), retry_of=name)


def _counts_text(st: CampaignStatus) -> str:
    return ", ".join(f"{k}: {v}" for k, v in st.counts().items()) or "no tile node yet"


def ui_link(server: str, namespace: str, name: str) -> str:
    return f"{check_server(server)}workflows/{namespace}/{name}"


def as_json(value: Any) -> str:
    return json.dumps(value, indent=2, default=str)
