"""Building blocks of the Argo objects, so that the modules in ``dags/`` stay short.

Everything here returns hera objects (or plain values hera accepts). Values
that come from a user (image, names, service account) are checked in
:class:`RenderConfig`; values that come from a plan were checked by
:class:`~worldcover.campaign.plan.CampaignPlan`.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field, fields

from hera.workflows import EmptyDirVolume, Env, Metrics, Parameter, Resources, RetryStrategy, SecretEnv
from hera.workflows import models as m
from hera.workflows.metrics import Counter, Histogram, Label

from worldcover.errors import InputError

GROUP = "worldcover.io"
LABEL_CAMPAIGN = f"{GROUP}/campaign"
LABEL_STAGE = f"{GROUP}/stage"
LABEL_YEAR = f"{GROUP}/year"
LABEL_ROLE = f"{GROUP}/role"
LABEL_BATCH = f"{GROUP}/batch"
LABEL_PARENT = f"{GROUP}/parent"
LABEL_RETRY_OF = f"{GROUP}/retry-of"
ANNOTATION_PLAN = f"{GROUP}/plan"
TITLE = "workflows.argoproj.io/title"
DESCRIPTION = "workflows.argoproj.io/description"
PART_OF = {"app.kubernetes.io/part-of": "worldcover"}

TEMPLATE_PROCESS_TILE = "worldcover-process-tile"
TEMPLATE_MERGE = "worldcover-merge"
TEMPLATE_VALIDATE = "worldcover-validate"

#: the emptyDir mounted on /tmp (the root filesystem is read-only)
SCRATCH = "/tmp"
OUTPUTS_DIR = "/tmp/outputs"

_DNS1123 = re.compile(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")
_IMAGE = re.compile(
    r"^[a-z0-9]([a-z0-9._-]*[a-z0-9])?(:[0-9]{1,5})?(/[a-z0-9]([a-z0-9._-]*[a-z0-9])?)*"
    r"(:[A-Za-z0-9_][A-Za-z0-9_.-]{0,127})?(@sha256:[0-9a-f]{64})?$"
)
_DURATION = re.compile(r"^([0-9]+(s|m|h))+$")
_PULL_POLICIES = ("Always", "IfNotPresent", "Never")


#: the image every pod runs: REPOSITORY:<package version>[@sha256:DIGEST] (the Containerfile's build, `make image`)
IMAGE_REPOSITORY = "ghcr.io/worldcover/worldcover"
IMAGE_REPOSITORY_ENV = "WORLDCOVER_IMAGE_REPOSITORY"
IMAGE_DIGEST_ENV = "WORLDCOVER_IMAGE_DIGEST"
_REPOSITORY = re.compile(r"^[a-z0-9]([a-z0-9._-]*[a-z0-9])?(:[0-9]{1,5})?(/[a-z0-9]([a-z0-9._-]*[a-z0-9])?)*$")
_DIGEST = re.compile(r"^sha256:[0-9a-f]{64}$")


def image_tag() -> str:
    """The image tag: the package version (characters a tag cannot hold become '-')."""
    from worldcover import __version__

    return re.sub(r"[^A-Za-z0-9_.-]", "-", __version__)[:128]


def image_reference(repository: str | None = None, digest: str | None = None) -> str:
    """``repository:<version>``, pinned as ``repository:<version>@sha256:...`` when a digest is given.

    ``repository`` defaults to ${WORLDCOVER_IMAGE_REPOSITORY}, else ghcr.io/worldcover/worldcover;
    ``digest`` to ${WORLDCOVER_IMAGE_DIGEST}, else none.
    """
    repo = repository or os.environ.get(IMAGE_REPOSITORY_ENV) or IMAGE_REPOSITORY
    pin = digest if digest is not None else os.environ.get(IMAGE_DIGEST_ENV, "")
    if not _REPOSITORY.fullmatch(repo) or len(repo) > 180:
        raise InputError(f"invalid image repository {repo!r}: expected a repository "
                         "without tag or digest, such as ghcr.io/org/name")
    if pin and not _DIGEST.fullmatch(pin):
        raise InputError(f"invalid image digest {pin!r}: expected sha256: and 64 hex digits")
    return check_image(f"{repo}:{image_tag()}" + (f"@{pin}" if pin else ""))


def default_image() -> str:
    return image_reference()


def check_dns_name(value: str, what: str) -> str:
    if not isinstance(value, str) or not _DNS1123.fullmatch(value):
        raise InputError(f"invalid {what} {value!r}: expected a DNS-1123 label (lowercase letters, digits, '-')")
    return value


_SUBDOMAIN = re.compile(r"^[a-z0-9]([a-z0-9.-]{0,251}[a-z0-9])?$")


def check_k8s_name(value: str, what: str) -> str:
    """Object names (workflows, templates): a DNS-1123 subdomain, at most 253 characters."""
    if not isinstance(value, str) or not _SUBDOMAIN.fullmatch(value) or ".." in value:
        raise InputError(f"invalid {what} {value!r}: expected lowercase letters, digits, '-' or '.'")
    return value


def check_image(value: str) -> str:
    if not isinstance(value, str) or len(value) > 255 or not _IMAGE.fullmatch(value):
        raise InputError(f"invalid image {value!r}: expected a container image reference such as "
                         "ghcr.io/org/name:tag")
    return value


@dataclass(frozen=True)
class RenderConfig:
    """How a plan becomes Argo objects: image, accounts, limits. Validated on creation."""

    image: str = field(default_factory=default_image)
    image_pull_policy: str = "IfNotPresent"
    service_account: str = "worldcover-workflow"
    #: Secrets read by ``secretKeyRef`` (never literal values)
    sentinelhub_secret: str = "worldcover-sentinelhub"
    s3_secret: str = "worldcover-s3"
    run_as_user: int = 1000
    #: tiles running at once in one workflow, child workflows running at once in a parent
    tile_parallelism: int = 25
    batch_parallelism: int = 4
    retry_limit: int = 3
    retry_backoff: str = "2m"
    retry_factor: int = 2
    retry_max_duration: str = "4h"
    tile_deadline_s: int = 6 * 3600  # one attempt of one tile
    step_deadline_s: int = 24 * 3600  # merge / validate
    workflow_deadline_s: int = 14 * 24 * 3600
    ttl_success_s: int = 3 * 24 * 3600
    ttl_failure_s: int = 14 * 24 * 3600
    max_nodes: int = 1000

    def __post_init__(self) -> None:
        check_image(self.image)
        if self.image_pull_policy not in _PULL_POLICIES:
            raise InputError(f"invalid image pull policy {self.image_pull_policy!r}: expected one of "
                             f"{', '.join(_PULL_POLICIES)}")
        for name in ("service_account", "sentinelhub_secret", "s3_secret"):
            check_dns_name(getattr(self, name), name.replace("_", " "))
        for f in fields(self):
            value = getattr(self, f.name)
            if f.type == "int" and (not isinstance(value, int) or isinstance(value, bool) or value < 0):
                raise InputError(f"invalid {f.name.replace('_', ' ')} {value!r}: expected a non-negative integer")
        for name in ("retry_backoff", "retry_max_duration"):
            if not _DURATION.fullmatch(getattr(self, name)):
                raise InputError(f"invalid {name.replace('_', ' ')} {getattr(self, name)!r}: expected a duration "
                                 "like 90s, 2m or 1h30m")
        if self.tile_parallelism < 1 or self.batch_parallelism < 1 or self.run_as_user < 1:
            raise InputError("parallelism and run-as user must be at least 1 (pods never run as root)")


# -- metadata ---------------------------------------------------------------------------------

def stage_label(plan) -> str:
    return plan.stage or "custom"


def campaign_labels(plan, role: str) -> dict[str, str]:
    return {**PART_OF, LABEL_CAMPAIGN: plan.name, LABEL_STAGE: stage_label(plan), LABEL_YEAR: str(plan.year),
            LABEL_ROLE: role}


def ui(title: str, description: str) -> dict[str, str]:
    """The two annotations the Argo UI shows (markdown is allowed)."""
    return {TITLE: title, DESCRIPTION: description}


# -- pods ---------------------------------------------------------------------------------------

def pod_security(cfg: RenderConfig) -> m.PodSecurityContext:
    uid = cfg.run_as_user
    return m.PodSecurityContext(run_as_non_root=True, run_as_user=uid, run_as_group=uid, fs_group=uid,
                                seccomp_profile=m.SeccompProfile(type="RuntimeDefault"))


def container_security(cfg: RenderConfig) -> m.SecurityContext:
    uid = cfg.run_as_user
    return m.SecurityContext(
        run_as_non_root=True, run_as_user=uid, run_as_group=uid, read_only_root_filesystem=True,
        allow_privilege_escalation=False, privileged=False, capabilities=m.Capabilities(drop=["ALL"]),
        seccomp_profile=m.SeccompProfile(type="RuntimeDefault"),
    )


def scratch(size: str) -> list:
    """A writable emptyDir on /tmp: the root filesystem is read-only."""
    return [EmptyDirVolume(name="scratch", mount_path=SCRATCH, size_limit=size)]


def base_env() -> list:
    return [
        Env(name="HOME", value=SCRATCH),
        Env(name="MPLCONFIGDIR", value=f"{SCRATCH}/matplotlib"),
        Env(name="PYTHONDONTWRITEBYTECODE", value="1"),
        Env(name="WORLDCOVER_OUTPUTS_DIR", value=OUTPUTS_DIR),
    ]


def credentials_env(cfg: RenderConfig) -> list:
    """Credentials by reference only: the values stay in Kubernetes Secrets."""
    s3, sh = cfg.s3_secret, cfg.sentinelhub_secret
    return [
        SecretEnv(name="AWS_ACCESS_KEY_ID", secret_name=s3, secret_key="access-key-id", optional=True),
        SecretEnv(name="AWS_SECRET_ACCESS_KEY", secret_name=s3, secret_key="secret-access-key", optional=True),
        SecretEnv(name="SH_CLIENT_ID", secret_name=sh, secret_key="client-id", optional=True),
        SecretEnv(name="SH_CLIENT_SECRET", secret_name=sh, secret_key="client-secret", optional=True),
    ]


def resources(cpu: str, memory: str, cpu_limit: str, memory_limit: str, disk: str) -> Resources:
    return Resources(cpu_request=cpu, memory_request=memory, cpu_limit=cpu_limit, memory_limit=memory_limit,
                     ephemeral_request=disk, ephemeral_limit=disk)


def retry(cfg: RenderConfig, policy: str = "Always") -> RetryStrategy:
    return RetryStrategy(
        limit=cfg.retry_limit, retry_policy=policy,
        backoff=m.Backoff(duration=cfg.retry_backoff, factor=cfg.retry_factor, max_duration=cfg.retry_max_duration),
    )


def script_kwargs(cfg: RenderConfig, *, disk: str) -> dict:
    """Keyword arguments every runner script shares: image, security, scratch space, env."""
    return dict(
        constructor="runner", image=cfg.image, image_pull_policy=cfg.image_pull_policy,
        security_context=container_security(cfg), pod_security_context=pod_security(cfg),
        volumes=scratch(disk),
    )


# -- metrics (labels: campaign, stage, status only; never a tile id) ----------------------------

TILE_DURATION_BUCKETS = [60.0, 300.0, 900.0, 1800.0, 3600.0, 7200.0, 14400.0, 21600.0]
METRIC_LABEL_KEYS = ("campaign", "stage", "status")


def _labels(*, status: bool) -> list:
    out = [Label(key="campaign", value="{{inputs.parameters.campaign}}"),
           Label(key="stage", value="{{inputs.parameters.stage}}")]
    if status:
        out.append(Label(key="status", value="{{status}}"))
    return out


def tile_metrics() -> Metrics:
    """Counters of tiles succeeded/failed and pixels classified, and a tile-duration histogram."""
    return Metrics(metrics=[
        Counter(name="worldcover_tiles_succeeded", help="Tiles processed successfully (done or skipped as done)",
                labels=_labels(status=False), when="{{status}} == Succeeded", value="1"),
        Counter(name="worldcover_tiles_failed", help="Tile attempts that failed or errored",
                labels=_labels(status=True), when="{{status}} != Succeeded", value="1"),
        Counter(name="worldcover_pixels_classified", help="Pixels classified (from the step result's 'pixels')",
                labels=_labels(status=False), when="{{status}} == Succeeded",
                value="{{outputs.parameters.pixels}}"),
        Histogram(name="worldcover_tile_duration_seconds", help="Duration of one tile attempt in seconds",
                  labels=_labels(status=True), buckets=TILE_DURATION_BUCKETS, value="{{duration}}"),
    ])


def tile_outputs() -> list:
    return [Parameter(name="pixels", value_from=m.ValueFrom(path=f"{OUTPUTS_DIR}/pixels", default="0"))]


def stage_input() -> Parameter:
    """Only used by metric labels; the runner passes a step just the parameters it declares."""
    return Parameter(name="stage", default="custom")


def campaign_metrics(plan) -> Metrics:
    """Workflow-level: campaign duration (realtime gauge), labelled by campaign and stage."""
    labels = [Label(key="campaign", value=plan.name), Label(key="stage", value=stage_label(plan))]
    from hera.workflows.metrics import Gauge

    return Metrics(metrics=[
        Gauge(name="worldcover_campaign_duration_seconds", help="Duration of a campaign workflow in seconds",
              labels=labels, realtime=True, value="{{workflow.duration}}"),
    ])


# -- workflow spec -------------------------------------------------------------------------------

def workflow_spec(cfg: RenderConfig, *, parallelism: int, ttl: bool = True) -> dict:
    """Spec fields every campaign workflow (single, parent, child) shares."""
    out = dict(
        service_account_name=cfg.service_account,
        security_context=pod_security(cfg),
        pod_gc=m.PodGC(strategy="OnPodSuccess"),
        active_deadline_seconds=cfg.workflow_deadline_s,
        parallelism=parallelism,
    )
    if ttl:
        out["ttl_strategy"] = m.TTLStrategy(seconds_after_success=cfg.ttl_success_s,
                                            seconds_after_failure=cfg.ttl_failure_s)
    return out


def task_name(tile: str) -> str:
    """Tile ids as DNS-safe DAG task names: N00E006 -> n00e006."""
    return tile.lower()


def all_done(tasks: list[str]) -> str:
    """A ``depends`` expression true once every task has finished, whatever its result."""
    return " && ".join(f"({t}.Succeeded || {t}.Failed || {t}.Errored)" for t in tasks)


# -- campaign pieces -------------------------------------------------------------------------------

def step_arguments(call, extra: dict | None = None) -> dict[str, str]:
    """A step call's keyword arguments as Argo parameter values (hera's serialisation: str as is, else JSON)."""
    from hera.shared.serialization import serialize

    args = call.arguments
    order = (["tile"] if "tile" in args else []) + [k for k in args if k != "tile"]  # the tile first, for the UI
    out = {k: serialize(args[k]) for k in order}
    for k, v in (extra or {}).items():
        out.setdefault(k, v)
    for k, v in out.items():
        if "{{" in v or "}}" in v:  # belt and braces: the plan's validators already refuse braces
            raise InputError(f"invalid value {v!r} for {k}: Argo template braces are not allowed")
    return out


def plan_annotation(plan) -> dict[str, str]:
    """The plan without its tile list (small): enough for `campaign retry` to rebuild it."""
    import json

    d = plan.to_dict()
    d.pop("tiles", None)
    return {ANNOTATION_PLAN: json.dumps(d, sort_keys=True, separators=(",", ":"))}


def _fmt(n: int) -> str:
    return f"{n:,}"


def campaign_ui(plan, n_tiles: int, n_batches: int) -> dict[str, str]:
    stage = stage_label(plan)
    layout = (f"{n_batches} child workflows of up to {plan.batch_size} tiles" if n_batches > 1
              else "one workflow")
    return ui(
        f"WorldCover {plan.year} - {stage} - {_fmt(n_tiles)} tiles",
        f"Campaign `{plan.name}`: write-plan (campaign.json in the output root), {_fmt(n_tiles)} tiles in "
        f"{layout}, then collect-failures, merge and validate. Model `{plan.model}`, source `{plan.source}`, "
        f"output `{plan.out_root}`.",
    )


def batch_ui(plan, calls, index: int, count: int) -> dict[str, str]:
    first, last = calls[0].arguments["tile"], calls[-1].arguments["tile"]
    return ui(
        f"{plan.name} - batch {index + 1}/{count} - {len(calls)} tiles",
        f"Tiles {first} .. {last} of campaign `{plan.name}` ({plan.year}, {stage_label(plan)}).",
    )


def child_manifest(plan, extra_labels: dict) -> str:
    """The child Workflow a parent creates for one batch: a reference to the batch's template."""
    import yaml

    labels = {**campaign_labels(plan, "batch"), LABEL_BATCH: "{{inputs.parameters.batch}}",
              LABEL_PARENT: "{{workflow.name}}", **extra_labels}
    child = {
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "Workflow",
        "metadata": {"generateName": "{{workflow.name}}-{{inputs.parameters.batch}}-", "labels": labels},
        "spec": {"workflowTemplateRef": {"name": "{{inputs.parameters.template}}"}},
    }
    return yaml.safe_dump(child, sort_keys=False)
