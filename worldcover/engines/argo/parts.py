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
from functools import lru_cache

from hera.workflows import EmptyDirVolume, Env, Parameter, Resources, RetryStrategy, SecretEnv
from hera.workflows import models as m
from hera.workflows.metrics import Counter, Gauge, Label

from worldcover import __version__
from worldcover.campaign.estimate import estimate, measured_throughput
from worldcover.campaign.plan import CampaignPlan
from worldcover.errors import InputError
from worldcover.grid import TILE_PIXELS

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

#: the shared templates' base names; the objects carry the package version (see :func:`template_name`)
BASE_PROCESS_TILE = "worldcover-process-tile"
BASE_MERGE = "worldcover-merge"
BASE_VALIDATE = "worldcover-validate"
BASE_BATCH = "worldcover-batch"
LABEL_VERSION = "app.kubernetes.io/version"
#: the semaphore ConfigMap (install/limits.yaml): operators change its values live, across campaigns
LIMITS_CONFIGMAP = "worldcover-limits"
LIMIT_TILES_KEY = "process-tile"
DEFAULT_TILE_LIMIT = 100
#: exit code of a data or input error (WorldCoverError), as the CLI's: retrying cannot help
DATA_ERROR_EXIT = 2
#: Argo retries any failure except a data or input error; a lost or killed pod ("Error") always
RETRY_EXPRESSION = f'lastRetry.status == "Error" || lastRetry.exitCode != "{DATA_ERROR_EXIT}"'
#: autoscalers must not evict a pod mid-tile to pack nodes (cluster-autoscaler, Karpenter)
NO_DISRUPTION = {"cluster-autoscaler.kubernetes.io/safe-to-evict": "false", "karpenter.sh/do-not-disrupt": "true"}
#: the usual taints of spot / preemptible node pools (GKE, AKS, and a generic one for EKS/Karpenter pools)
SPOT_TOLERATIONS = (("cloud.google.com/gke-spot", "true"), ("kubernetes.azure.com/scalesetpriority", "spot"),
                    ("worldcover.io/spot", "true"))

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


def version_suffix() -> str:
    """The package version as a DNS label piece: 0.1.0 -> v0-1-0 (what shared template names carry)."""
    return ("v" + re.sub(r"[^a-z0-9]+", "-", __version__.lower())).strip("-")[:20].rstrip("-")


def template_name(base: str) -> str:
    """A shared WorkflowTemplate's name: base + package version, so that a submit never changes the code
    of a campaign already running on an older version (each version installs its own templates)."""
    return f"{base}-{version_suffix()}"


TEMPLATE_PROCESS_TILE = template_name(BASE_PROCESS_TILE)
TEMPLATE_MERGE = template_name(BASE_MERGE)
TEMPLATE_VALIDATE = template_name(BASE_VALIDATE)
TEMPLATE_BATCH = template_name(BASE_BATCH)

#: process-tile's parameters other than the tile (campaign.steps.process_tile's, in order) and the metrics'
#: stage: what a batch passes to every tile (the workflow parameters of worldcover-batch), described for the UI
TILE_PARAMETERS = {
    "year": "Year of the map.",
    "source": "Catalogue the tiles read (a preset name or a STAC API URL).",
    "model": "'default' or the URI of a model folder.",
    "out_root": "The campaign's output root.",
    "block_size": "Pixels per block side.",
    "blocks": "'all' or the blocks to process.",
    "max_cloud": "Largest scene cloud cover in percent (null: no limit).",
    "campaign": "Campaign name (metrics and provenance).",
    "stage": "Stage label (metrics).",
}


def image_tag() -> str:
    """The image tag: the package version (characters a tag cannot hold become '-')."""
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


#: what each catalogue needs: (env name, secret field of RenderConfig, key in the Secret)
SOURCE_CREDENTIALS = {
    "planetary-computer": (("PC_SDK_SUBSCRIPTION_KEY", "pc_secret", "subscription-key"),),
    "sentinelhub": (("SH_CLIENT_ID", "sentinelhub_secret", "client-id"),
                    ("SH_CLIENT_SECRET", "sentinelhub_secret", "client-secret")),
    "stac": (),
}


@dataclass(frozen=True)
class RenderConfig:
    """How a plan becomes Argo objects: image, accounts, limits, scheduling. Validated on creation."""

    image: str = field(default_factory=default_image)
    image_pull_policy: str = "IfNotPresent"
    service_account: str = "worldcover-workflow"
    #: Secrets read by ``secretKeyRef`` (never literal values)
    sentinelhub_secret: str = "worldcover-sentinelhub"
    s3_secret: str = "worldcover-s3"
    pc_secret: str = "worldcover-planetary-computer"
    #: the catalogue the cluster reads (planetary-computer, sentinelhub, stac): its credentials are required
    #: (a pod with a missing Secret does not start, instead of failing hours later); the others optional
    source_kind: str = "planetary-computer"
    #: False where pods reach object storage by workload identity (IRSA, GKE WI) instead of keys
    s3_keys: bool = True
    run_as_user: int = 1000
    #: tiles running at once per child workflow (0: no cap; the semaphore is the cluster-wide limit)
    tile_parallelism: int = 0
    #: child workflows running at once in a parent (0: all; their tiles still wait for the semaphore)
    batch_parallelism: int = 0
    retry_limit: int = 3
    retry_backoff: str = "2m"
    retry_factor: int = 2
    tile_deadline_s: int = 0  # one attempt of one tile; 0: sized from the cost estimate (tile_deadline())
    step_deadline_s: int = 24 * 3600  # merge / validate
    workflow_deadline_s: int = 0  # 0: sized from the campaign's estimate (workflow_deadline())
    ttl_success_s: int = 3 * 24 * 3600
    ttl_failure_s: int = 14 * 24 * 3600
    max_nodes: int = 1000
    #: failed tiles the final gate accepts; -1: by stage (0 for 1pct and lists, 1 % of the tiles otherwise)
    max_failed_tiles: int = -1
    #: scheduling hooks for the pods: node labels, tolerations ("key=value:Effect" or "key:Effect"),
    #: a PriorityClass, and whether tile pods may run on spot / preemptible nodes
    node_selector: tuple[tuple[str, str], ...] = ()
    tolerations: tuple[str, ...] = ()
    priority_class: str = ""
    spot: bool = False
    #: semaphore limit written to the limits ConfigMap by `make argo` (the live value is the operator's)
    tile_limit: int = DEFAULT_TILE_LIMIT

    def __post_init__(self) -> None:
        check_image(self.image)
        if self.image_pull_policy not in _PULL_POLICIES:
            raise InputError(f"invalid image pull policy {self.image_pull_policy!r}: expected one of "
                             f"{', '.join(_PULL_POLICIES)}")
        for name in ("service_account", "sentinelhub_secret", "s3_secret", "pc_secret"):
            check_dns_name(getattr(self, name), name.replace("_", " "))
        if self.priority_class:
            check_k8s_name(self.priority_class, "priority class")
        if self.source_kind not in SOURCE_CREDENTIALS:
            raise InputError(f"invalid source kind {self.source_kind!r}: expected one of "
                             f"{', '.join(SOURCE_CREDENTIALS)}")
        for f in fields(self):
            value = getattr(self, f.name)
            bad_int = not isinstance(value, int) or isinstance(value, bool) or value < 0
            if f.type == "int" and bad_int and not (f.name == "max_failed_tiles" and value == -1):
                raise InputError(f"invalid {f.name.replace('_', ' ')} {value!r}: expected a non-negative "
                                     "integer")
        if not _DURATION.fullmatch(self.retry_backoff):
            raise InputError(f"invalid retry backoff {self.retry_backoff!r}: expected a duration like 90s, 2m "
                             "or 1h30m")
        if self.run_as_user < 1 or self.tile_limit < 1:
            raise InputError("run-as user and tile limit must be at least 1 (pods never run as root)")
        for key, value in self.node_selector:
            _check_label(key, value, "node selector")
        for t in self.tolerations:
            toleration(t)

    def scheduling(self, *, spot: bool = False) -> dict:
        """Template keyword arguments placing a pod: nodeSelector, tolerations, priorityClassName."""
        out: dict = {}
        if self.node_selector:
            out["node_selector"] = dict(self.node_selector)
        tols = [toleration(t) for t in self.tolerations]
        if spot and self.spot:
            tols += [m.Toleration(key=k, operator="Equal", value=v, effect="NoSchedule") for k, v in SPOT_TOLERATIONS]
        if tols:
            out["tolerations"] = tols
        if self.priority_class:
            out["priority_class_name"] = self.priority_class
        return out


_LABEL_KEY = re.compile(r"^([a-z0-9]([a-z0-9.-]{0,251}[a-z0-9])?/)?[A-Za-z0-9]([A-Za-z0-9_.-]{0,61}[A-Za-z0-9])?$")
_LABEL_VALUE = re.compile(r"^([A-Za-z0-9]([A-Za-z0-9_.-]{0,61}[A-Za-z0-9])?)?$")
_EFFECTS = ("NoSchedule", "PreferNoSchedule", "NoExecute")


def _check_label(key: str, value: str, what: str) -> None:
    if not isinstance(key, str) or not _LABEL_KEY.fullmatch(key) or not isinstance(value, str) \
            or not _LABEL_VALUE.fullmatch(value):
        raise InputError(f"invalid {what} {key!r}={value!r}: expected a Kubernetes label key and value")


def toleration(text: str) -> m.Toleration:
    """``key=value:Effect`` (operator Equal) or ``key:Effect`` (operator Exists) as a Toleration."""
    head, sep, effect = str(text).rpartition(":")
    key, eq, value = head.partition("=")
    if not sep or effect not in _EFFECTS or not key:
        raise InputError(f"invalid toleration {text!r}: expected key=value:Effect or key:Effect, Effect one of "
                         f"{', '.join(_EFFECTS)}")
    _check_label(key, value, "toleration")
    if eq:
        return m.Toleration(key=key, operator="Equal", value=value, effect=effect)
    return m.Toleration(key=key, operator="Exists", effect=effect)


def tile_deadline(cfg: RenderConfig, cores: int = 4) -> int:
    """Seconds one attempt of one tile may run: cfg's, or 3x the estimate of a whole land tile on ``cores``
    cores at the measured throughput (the benchmark's figure), rounded up to the hour, 2 to 48 h."""
    if cfg.tile_deadline_s:
        return cfg.tile_deadline_s
    rate, _ = measured_throughput()
    seconds = 3 * TILE_PIXELS**2 / (rate * 1e6 * cores)
    return int(min(max(-(-seconds // 3600), 2), 48)) * 3600


def workflow_deadline(cfg: RenderConfig, plan, cores: int = 4) -> int:
    """Seconds a campaign workflow may run: cfg's, or 3x its estimated wall time with the semaphore's
    default number of tiles at once (at least 2 days, at most 60)."""
    if cfg.workflow_deadline_s:
        return cfg.workflow_deadline_s
    return _estimated_deadline(plan.year, tuple(plan.tiles), cfg.tile_limit, cores)


@lru_cache(maxsize=16)
def _estimated_deadline(year: int, tiles: tuple[str, ...], tile_limit: int, cores: int) -> int:
    """Cached: every child workflow of a campaign asks (the estimate reads each tile's land fraction)."""
    plan = CampaignPlan.create("deadline", year, tiles=list(tiles), out_root="s3://estimate/only")
    concurrent = max(1, min(len(tiles), tile_limit))
    hours = estimate(plan).core_hours / (cores * concurrent)
    days = min(max(-(-3 * hours // 24), 2), 60)
    return int(days) * 24 * 3600


def max_failed_tiles(cfg: RenderConfig, plan) -> int:
    """The gate's threshold: cfg's, else 0 for 1pct or a tile list, 1 % of the tiles for 10pct / 100pct."""
    if cfg.max_failed_tiles >= 0:
        return cfg.max_failed_tiles
    if plan.stage in (None, "1pct"):
        return 0
    return len(plan.tiles) // 100


# -- metadata ---------------------------------------------------------------------------------

def workflow_parameter(name: str) -> str:
    """The Argo expression for workflow parameter ``name`` (concatenated: its braces are Argo's, not Python's)."""
    return "{{workflow.parameters." + name + "}}"


def input_parameter(name: str) -> str:
    """The Argo expression for template input ``name`` (concatenated: its braces are Argo's, not Python's)."""
    return "{{inputs.parameters." + name + "}}"


def stage_label(plan) -> str:
    return plan.stage or "custom"


def shared_template(name: str, title: str, description: str) -> dict:
    """A shared WorkflowTemplate's name, labels (part-of, role, version) and UI title and description."""
    return {"name": name, "labels": {**PART_OF, LABEL_ROLE: "template", LABEL_VERSION: version_suffix()},
            "annotations": ui(title, description)}


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
    return [EmptyDirVolume(name="scratch", mount_path=SCRATCH, size_limit=m.Quantity(size))]


def base_env() -> list:
    return [
        Env(name="HOME", value=SCRATCH),
        Env(name="MPLCONFIGDIR", value=f"{SCRATCH}/matplotlib"),
        Env(name="PYTHONDONTWRITEBYTECODE", value="1"),
        Env(name="WORLDCOVER_OUTPUTS_DIR", value=OUTPUTS_DIR),
    ]


def credentials_env(cfg: RenderConfig) -> list:
    """Credentials by reference only: the values stay in Kubernetes Secrets.

    The object-store keys and the configured catalogue's credentials are required
    (``optional: false``): a pod whose Secret is missing does not start, so a
    campaign fails in minutes, not hours in. Other catalogues' are optional.
    """
    out = []
    if cfg.s3_keys:
        out += [SecretEnv(name="AWS_ACCESS_KEY_ID", secret_name=cfg.s3_secret, secret_key="access-key-id",
                          optional=False),
                SecretEnv(name="AWS_SECRET_ACCESS_KEY", secret_name=cfg.s3_secret, secret_key="secret-access-key",
                          optional=False)]
    for kind, creds in SOURCE_CREDENTIALS.items():
        for env, secret_field, key in creds:
            out.append(SecretEnv(name=env, secret_name=getattr(cfg, secret_field), secret_key=key,
                                 optional=kind != cfg.source_kind))
    return out


def resources(cpu: str, memory: str, cpu_limit: str, disk: str) -> Resources:
    """Memory request = limit (a pod using more than it asked is evicted first under pressure); CPU may burst."""
    return Resources(cpu_request=cpu, memory_request=memory, cpu_limit=cpu_limit, memory_limit=memory,
                     ephemeral_request=disk, ephemeral_limit=disk)


def _seconds(duration: str) -> int:
    return sum(int(n) * {"s": 1, "m": 60, "h": 3600}[u] for n, u in re.findall(r"([0-9]+)(s|m|h)", duration))


# a deadline as an operator writes it: days, hours, minutes, seconds in that order, each optional
_DEADLINE = re.compile(r"(?:([0-9]+)d)?(?:([0-9]+)h)?(?:([0-9]+)m)?(?:([0-9]+)s)?")


def parse_duration(text: str, what: str = "duration") -> int:
    """Seconds of ``"6h"``, ``"1h30m"``, ``"2d"``, ``"90m"`` or plain seconds (``"5400"``); positive.

    A deadline an operator sets where nodes are slower than the benchmark's machine (the estimate
    sizes deadlines at 3x its throughput).
    """
    t = text.strip().lower()
    if t.isdigit():
        seconds = int(t)
    elif m := _DEADLINE.fullmatch(t):
        d, h, mi, sec = (int(g or 0) for g in m.groups())
        seconds = ((d * 24 + h) * 60 + mi) * 60 + sec
    else:
        seconds = 0
    if seconds <= 0:
        raise InputError(f"invalid {what} {text!r}: expected a positive duration like 6h, 1h30m, 2d or seconds")
    return seconds


def retry_max_duration(cfg: RenderConfig, deadline_s: int) -> int:
    """Seconds from the first attempt within which Argo may start another: every attempt may run to its
    deadline and every backoff be waited (Argo counts ``maxDuration`` from the first attempt)."""
    backoffs = sum(_seconds(cfg.retry_backoff) * cfg.retry_factor**i for i in range(cfg.retry_limit))
    return (cfg.retry_limit + 1) * deadline_s + backoffs


def retry(cfg: RenderConfig, deadline_s: int) -> RetryStrategy:
    """Retry failures and lost pods, never a data or input error (exit 2), each attempt on another node."""
    return RetryStrategy(
        limit=cfg.retry_limit, retry_policy="Always", expression=RETRY_EXPRESSION,
        backoff=m.Backoff(duration=cfg.retry_backoff, factor=m.IntOrString(cfg.retry_factor),
                          max_duration=f"{retry_max_duration(cfg, deadline_s)}s"),
        affinity=m.RetryAffinity(node_anti_affinity=m.RetryNodeAntiAffinity()),
    )


def script_kwargs(cfg: RenderConfig, *, disk: str, spot: bool = False) -> dict:
    """Keyword arguments every runner script shares: image, security, scratch space, scheduling,
    and the annotations that keep autoscalers from evicting a running step."""
    return dict(
        constructor="runner", image=cfg.image, image_pull_policy=cfg.image_pull_policy,
        security_context=container_security(cfg), pod_security_context=pod_security(cfg),
        volumes=scratch(disk), annotations=dict(NO_DISRUPTION), **cfg.scheduling(spot=spot),
    )


def tile_semaphore() -> m.Synchronization:
    """The cluster-wide limit of tiles running at once, across campaigns (a key of a ConfigMap)."""
    return m.Synchronization(semaphores=[m.SemaphoreRef(
        config_map_key_ref=m.ConfigMapKeySelector(name=LIMITS_CONFIGMAP, key=LIMIT_TILES_KEY))])


# -- metrics (labels: campaign, stage, status only; never a tile id) ----------------------------

METRIC_LABEL_KEYS = ("campaign", "stage", "status")


def _labels(*, status: bool) -> list:
    out = [Label(key="campaign", value="{{inputs.parameters.campaign}}"),
           Label(key="stage", value="{{inputs.parameters.stage}}")]
    if status:
        out.append(Label(key="status", value="{{status}}"))
    return out


def tile_metrics() -> list[Counter]:
    """Tiles finished and failed, once per campaign run: on collect-failures, which has no retryStrategy.

    Argo emits a template's metrics for its retry node and again for each attempt
    (argoproj/argo-workflows#15526), so counters on the retried process-tile template
    would count a tile two or more times; collect-failures counts each tile once.
    """
    # a plain list: hera's Metrics wrapper is typed for Metric only, the template's field takes any metric
    return [
        Counter(name="worldcover_tiles_succeeded", help="Tiles with a valid finished product (done or reused)",
                labels=_labels(status=False), when="{{status}} == Succeeded", value="{{outputs.parameters.finished}}"),
        Counter(name="worldcover_tiles_failed", help="Tiles without a finished product after every retry",
                labels=_labels(status=False), when="{{status}} == Succeeded", value="{{outputs.parameters.failed}}"),
    ]


def tile_outputs() -> list:
    return [Parameter(name="pixels", value_from=m.ValueFrom(path=f"{OUTPUTS_DIR}/pixels", default="0"))]


def failure_outputs() -> list:
    """collect-failures' counts: failed tiles (the final gate compares them with its threshold), finished tiles."""
    return [Parameter(name=n, value_from=m.ValueFrom(path=f"{OUTPUTS_DIR}/{n}", default="0"))
            for n in ("failed", "finished")]


def stage_input() -> Parameter:
    """Only used by metric labels; the runner passes a step just the parameters it declares."""
    return Parameter(name="stage", default="custom")


def campaign_metrics(plan) -> list[Gauge]:
    """Workflow-level: campaign duration (realtime gauge), labelled by campaign and stage."""
    labels = [Label(key="campaign", value=plan.name), Label(key="stage", value=stage_label(plan))]
    return [
        Gauge(name="worldcover_campaign_duration_seconds", help="Duration of a campaign workflow in seconds",
              labels=labels, realtime=True, value="{{workflow.duration}}"),
    ]


# -- workflow spec -------------------------------------------------------------------------------

def workflow_spec(cfg: RenderConfig, plan, *, parallelism: int = 0, ttl: bool = True) -> dict:
    """Spec fields every campaign workflow (single, parent, the batch template) shares; with a plan, its
    deadline, and pods carry the campaign's labels (cost attribution by campaign, stage and year). The shared
    batch template (``plan=None``) knows no campaign: a child sets those two in its own manifest."""
    out = dict(
        service_account_name=cfg.service_account,
        security_context=pod_security(cfg),
        pod_gc=m.PodGC(strategy="OnPodSuccess"),
    )
    if plan is not None:
        out["active_deadline_seconds"] = workflow_deadline(cfg, plan)
        out["pod_metadata"] = m.Metadata(labels=pod_labels(plan))
    if parallelism:
        out["parallelism"] = parallelism
    if ttl:
        out["ttl_strategy"] = m.TTLStrategy(seconds_after_success=cfg.ttl_success_s,
                                            seconds_after_failure=cfg.ttl_failure_s)
    return out


def pod_labels(plan) -> dict[str, str]:
    return {**PART_OF, LABEL_CAMPAIGN: plan.name, LABEL_STAGE: stage_label(plan), LABEL_YEAR: str(plan.year)}


def task_name(tile: str) -> str:
    """Tile ids as DNS-safe DAG task names: N00E006 -> n00e006."""
    return tile.lower()


def all_done(tasks: list[str], *, errored: bool = True) -> str:
    """A ``depends`` expression true once every task has finished, whatever its result.

    ``errored=False`` for batches: a batch node is Errored only when its resource
    pod was lost (the child's own failure makes it Failed), and then the child may
    still be running, so nothing after it may start.
    """
    results = ("Succeeded", "Failed", "Errored") if errored else ("Succeeded", "Failed")
    return " && ".join("(" + " || ".join(f"{t}.{r}" for r in results) + ")" for t in tasks)


# -- campaign pieces -------------------------------------------------------------------------------

def step_arguments(call, extra: dict | None = None) -> dict[str, str]:
    """A step call's keyword arguments as Argo parameter values (hera's serialisation: str as is, else JSON)."""
    from hera.shared.serialization import serialize

    args = call.arguments
    order = (["tile"] if "tile" in args else []) + [k for k in args if k != "tile"]  # the tile first, for the UI
    out: dict[str, str] = {}
    for k in order:
        text = serialize(args[k])
        if text is None:  # hera's MISSING: a step call always carries its values, so this is a bug upstream
            raise InputError(f"argument {k!r} of step {call.name!r} has no value")
        out[k] = text
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


def child_name(batch: str) -> str:
    """A child workflow's name: the parent's name and the batch, so that creating it twice is a no-op."""
    return "{{workflow.name}}-" + batch


def child_manifest(plan, cfg: RenderConfig, extra_labels: dict, tile_arguments: dict[str, str]) -> str:
    """The child Workflow a parent creates for one batch: the shared ``worldcover-batch`` template fed the
    batch's tiles (``{{inputs.parameters.tiles}}``) and the campaign's tile arguments, named
    deterministically (``{{workflow.name}}-b000``) so that a retried ``apply`` finds it instead of starting a
    duplicate. The campaign's deadline and pod labels are set here: the shared template knows no campaign."""
    import yaml

    labels = {**campaign_labels(plan, "batch"), LABEL_BATCH: "{{inputs.parameters.batch}}",
              LABEL_PARENT: "{{workflow.name}}", **extra_labels}
    parameters = [{"name": "tiles", "value": "{{inputs.parameters.tiles}}"}]
    parameters += [{"name": k, "value": tile_arguments[k]} for k in TILE_PARAMETERS]
    child = {
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "Workflow",
        "metadata": {"name": child_name("{{inputs.parameters.batch}}"), "labels": labels,
                     "annotations": ui(f"{plan.name} - batch {{{{inputs.parameters.batch}}}}",
                                       f"Tiles of campaign `{plan.name}` ({plan.year}, {stage_label(plan)}): "
                                       "the `tiles` parameter.")},
        "spec": {"workflowTemplateRef": {"name": TEMPLATE_BATCH},
                 "arguments": {"parameters": parameters},
                 "activeDeadlineSeconds": workflow_deadline(cfg, plan),
                 "podMetadata": {"labels": pod_labels(plan)}},
    }
    return yaml.safe_dump(child, sort_keys=False)


def stop_manifest() -> str:
    """The merge patch that stops a child workflow (Argo's ``shutdown: Stop``: running pods get SIGTERM,
    exit handlers run)."""
    import yaml

    return yaml.safe_dump({
        "apiVersion": "argoproj.io/v1alpha1", "kind": "Workflow",
        "metadata": {"name": child_name("{{inputs.parameters.batch}}")},
        "spec": {"shutdown": "Stop"},
    }, sort_keys=False)


def batch_resource(plan, cfg: RenderConfig, extra_labels: dict, tile_arguments: dict[str, str]):
    """The parent's ``batch`` template: apply one child Workflow (inputs: the batch's name and its tiles as a
    JSON list), wait for its phase."""
    from hera.workflows import Resource

    return Resource(
        name="batch",
        inputs=[m.Parameter(name="batch"), m.Parameter(name="tiles")],
        action="apply",
        set_owner_reference=True,
        manifest=child_manifest(plan, cfg, extra_labels, tile_arguments),
        success_condition="status.phase == Succeeded",
        failure_condition="status.phase in (Failed, Error)",
        # a lost resource pod (eviction, node drain) is an Error: apply again (a no-op) and wait again
        retry_strategy=m.RetryStrategy(limit=m.IntOrString(cfg.retry_limit), retry_policy="OnError",
                                       backoff=m.Backoff(duration="30s", factor=m.IntOrString(2))),
    )


def stop_resource():
    """The exit handler's ``stop-child`` template: a merge patch ``spec.shutdown: Stop`` of one child."""
    from hera.workflows import Resource

    return Resource(name="stop-child", inputs=[m.Parameter(name="batch")], action="patch", merge_strategy="merge",
                    manifest=stop_manifest())


#: the workflow parameter the final gate compares the failed tiles with
GATE_PARAMETER = "max-failed-tiles"


def campaign_arguments(cfg: RenderConfig, plan) -> list:
    """The parameters the Argo UI shows on resubmission (described)."""
    return [m.Parameter(name=GATE_PARAMETER, value=str(max_failed_tiles(cfg, plan)),
                        description="Failed tiles the campaign accepts; with more, the final gate fails it "
                                    "(the list is failed_tiles.json in the output root).")]
