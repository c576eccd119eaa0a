"""Install manifests: the workflows' ServiceAccount, a least-privilege Role, its binding,
the artifact repository ConfigMap, and a kustomization listing them with the templates.

Least privilege for what our workflows do (Argo v3.4+ / v4 emissary executor):

* ``workflowtaskresults`` create/patch: how the executor reports outputs
  (``outputs.result``, output parameters) back to the controller;
* ``workflows`` create/get/list/watch/patch: only for the workflow of
  workflows, whose resource templates apply child Workflows (get + create, or
  patch when one exists: a retried apply), wait on their phase, and stop them
  from the exit handler (a merge patch ``spec.shutdown: Stop``);
* ``workflows/finalizers`` update: a child carries an owner reference to its
  parent with ``blockOwnerDeletion``, which clusters enforcing
  ``OwnerReferencesPermissionEnforcement`` (OpenShift) only allow with it.

The ``worldcover-limits`` ConfigMap holds the semaphore of ``process-tile``
(tiles running at once, across campaigns); operators edit it live.

No pod permissions: since v3.4 the emissary executor does not patch pods.
Credentials are Secrets created by the operator (never rendered here); the
ConfigMap and the templates refer to them by name and key only.
"""

from __future__ import annotations

from worldcover.engines.argo.parts import LIMIT_TILES_KEY, LIMITS_CONFIGMAP, PART_OF, RenderConfig
from worldcover.engines.argo.yamlio import dump
from worldcover.errors import DataError

ARTIFACT_REPOSITORY_KEY = "worldcover-s3"


def service_account(cfg: RenderConfig) -> dict:
    return {"apiVersion": "v1", "kind": "ServiceAccount",
            "metadata": {"name": cfg.service_account, "labels": dict(PART_OF)}}


def role(cfg: RenderConfig) -> dict:
    return {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "Role",
        "metadata": {"name": cfg.service_account, "labels": dict(PART_OF)},
        "rules": [
            {"apiGroups": ["argoproj.io"], "resources": ["workflowtaskresults"], "verbs": ["create", "patch"]},
            {"apiGroups": ["argoproj.io"], "resources": ["workflows"],
             "verbs": ["create", "get", "list", "watch", "patch"]},
            {"apiGroups": ["argoproj.io"], "resources": ["workflows/finalizers"], "verbs": ["update"]},
        ],
    }


def role_binding(cfg: RenderConfig) -> dict:
    return {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "RoleBinding",
        "metadata": {"name": cfg.service_account, "labels": dict(PART_OF)},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": cfg.service_account},
        "subjects": [{"kind": "ServiceAccount", "name": cfg.service_account}],
    }


def artifact_repository(cfg: RenderConfig, bucket: str = "worldcover-argo", endpoint: str = "minio:9000",
                        insecure: bool = True) -> dict:
    """The repository itself (validated against Argo's ArtifactRepository definition)."""
    return {
        "archiveLogs": True,
        "s3": {
            "bucket": bucket,
            "endpoint": endpoint,
            "insecure": insecure,
            "keyFormat": "{{workflow.name}}/{{pod.name}}",
            "accessKeySecret": {"name": cfg.s3_secret, "key": "access-key-id"},
            "secretKeySecret": {"name": cfg.s3_secret, "key": "secret-access-key"},
        },
    }


def artifact_repositories(cfg: RenderConfig) -> dict:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": "artifact-repositories",
            "labels": dict(PART_OF),
            "annotations": {"workflows.argoproj.io/default-artifact-repository": ARTIFACT_REPOSITORY_KEY},
        },
        "data": {ARTIFACT_REPOSITORY_KEY: dump(artifact_repository(cfg))},
    }


def limits(cfg: RenderConfig) -> dict:
    """The semaphore ConfigMap: ``process-tile`` = tiles running at once in the namespace, every campaign
    together. `kubectl edit configmap worldcover-limits` changes it live (Argo re-reads it)."""
    return {"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": LIMITS_CONFIGMAP, "labels": dict(PART_OF)},
            "data": {LIMIT_TILES_KEY: str(cfg.tile_limit)}}


LAUNCHER = "worldcover-launcher"


def launcher(cfg: RenderConfig) -> list[dict]:
    """The launch form's ServiceAccount and Role: it submits campaigns through the Argo Server with its own
    token (``--auth-mode=client``), so it may create workflows and create or update WorkflowTemplates (the
    shared ones of its version), nothing else."""
    meta = {"name": LAUNCHER, "labels": dict(PART_OF)}
    return [
        {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": dict(meta)},
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role", "metadata": dict(meta), "rules": [
            {"apiGroups": ["argoproj.io"], "resources": ["workflows"], "verbs": ["create", "get"]},
            {"apiGroups": ["argoproj.io"], "resources": ["workflowtemplates"], "verbs": ["create", "get", "update"]},
        ]},
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding", "metadata": dict(meta),
         "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": LAUNCHER},
         "subjects": [{"kind": "ServiceAccount", "name": LAUNCHER}]},
    ]


def manifests(cfg: RenderConfig | None = None) -> dict[str, dict]:
    """File name (under install/) -> object."""
    cfg = cfg or RenderConfig()
    return {
        "install/serviceaccount.yaml": service_account(cfg),
        "install/role.yaml": role(cfg),
        "install/rolebinding.yaml": role_binding(cfg),
        "install/artifact-repositories.yaml": artifact_repositories(cfg),
        "install/limits.yaml": limits(cfg),
        **{f"install/launcher-{o['kind'].lower()}.yaml": o for o in launcher(cfg)},
    }


def kustomization(resources: list[str]) -> dict:
    return {
        "apiVersion": "kustomize.config.k8s.io/v1beta1",
        "kind": "Kustomization",
        "labels": [{"pairs": dict(PART_OF)}],
        "resources": list(resources),
    }


def check_manifest(obj: dict) -> dict:
    """Structural checks of the core objects (the Argo schema does not cover RBAC)."""
    kind = obj.get("kind")
    required = {
        "ServiceAccount": ("apiVersion", "kind", "metadata"),
        "Role": ("apiVersion", "kind", "metadata", "rules"),
        "RoleBinding": ("apiVersion", "kind", "metadata", "roleRef", "subjects"),
        "ConfigMap": ("apiVersion", "kind", "metadata", "data"),
        "Kustomization": ("apiVersion", "kind", "resources"),
    }.get(kind) if isinstance(kind, str) else None
    if required is None:
        raise DataError(f"unexpected install manifest kind {kind!r}")
    missing = [k for k in required if k not in obj]
    extra = set(obj) - set(required) - {"labels"}
    if missing or extra:
        raise DataError(f"{kind}: missing {missing} / unexpected {sorted(extra)}")
    if kind == "Role":
        for rule in obj["rules"]:
            if "*" in rule["verbs"] or "*" in rule["resources"] or "*" in rule["apiGroups"]:
                raise DataError("Role: wildcards are not least privilege")
    return obj
