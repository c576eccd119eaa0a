"""Validate Argo objects against the Argo Workflows JSON schema (vendored copies).

The schemas in ``schemas/<version>/schema.json`` are verbatim copies of
``api/jsonschema/schema.json`` of argo-workflows (Apache-2.0, see
``schemas/SOURCE.txt``). Before validating we patch the known quirks:

* ``io.k8s.apimachinery.pkg.util.intstr.IntOrString`` is typed as a string,
  although the cluster (and the CRDs) accept integers: it becomes
  ``{"type": ["integer", "string"]}``;
* v3.7.18 only: ``memoize.cache.configMap`` requires ``key``, which Argo
  ignores: the cache's ConfigMap reference no longer requires it;
* strict mode (the default): ``additionalProperties: false`` on every
  definition that has ``properties``, so that a misspelt key fails.

Validators are built once per (version, kind, strict) and cached.

Speed: the Argo schema constrains only keys and JSON types (no patterns, no
array-length keywords; ``const``/``enum`` on a handful of keys). Whether an
object validates therefore depends only on its *shape*, so a list whose items
share one shape (a DAG of 50 tile tasks) needs only one of them validated.
:func:`validate_object` validates the object with each list reduced to one
item per distinct shape (strings under ``const``/``enum`` keys keep their
value in the shape), and, only when that fails, the full object to report
the real paths. If a schema ever uses another value-level keyword, the
reduction is switched off (see :func:`_reducible`).
"""

from __future__ import annotations

import copy
import json
from functools import lru_cache
from pathlib import Path
from typing import Any

from worldcover.errors import DataError, InputError

SCHEMA_DIR = Path(__file__).resolve().parent / "schemas"
VERSIONS = ("v4.1.2", "v3.7.18")
DEFAULT_VERSION = "v4.1.2"
KINDS = {
    "Workflow": "io.argoproj.workflow.v1alpha1.Workflow",
    "WorkflowTemplate": "io.argoproj.workflow.v1alpha1.WorkflowTemplate",
    "CronWorkflow": "io.argoproj.workflow.v1alpha1.CronWorkflow",
    "ClusterWorkflowTemplate": "io.argoproj.workflow.v1alpha1.ClusterWorkflowTemplate",
}
#: other definitions worth validating alone (e.g. the artifact repository in a ConfigMap)
EXTRA_DEFINITIONS = {
    "ArtifactRepository": "io.argoproj.workflow.v1alpha1.ArtifactRepository",
    "Template": "io.argoproj.workflow.v1alpha1.Template",
}
API_VERSION = "argoproj.io/v1alpha1"
MAX_ERRORS = 20

_INT_OR_STRING = "io.k8s.apimachinery.pkg.util.intstr.IntOrString"
_CACHE = "io.argoproj.workflow.v1alpha1.Cache"
_CM_SELECTOR = "io.k8s.api.core.v1.ConfigMapKeySelector"
_CACHE_CM = "worldcover.patch.CacheConfigMapKeySelector"


class ArgoSchemaError(DataError):
    """An object does not validate; ``errors`` holds ``(path, message)`` pairs."""

    def __init__(self, what: str, errors: list[tuple[str, str]], total: int):
        self.errors = errors
        self.total = total
        shown = "; ".join(f"{p}: {m}" for p, m in errors)
        more = f" (and {total - len(errors)} more)" if total > len(errors) else ""
        super().__init__(f"{what} does not validate against the Argo schema: {shown}{more}")


def _check_version(version: str) -> str:
    if version not in VERSIONS:
        raise InputError(f"unknown Argo schema version {version!r}: expected one of {', '.join(VERSIONS)}")
    return version


@lru_cache(maxsize=4)
def _raw_schema(version: str) -> dict:
    return json.loads((SCHEMA_DIR / _check_version(version) / "schema.json").read_text())


@lru_cache(maxsize=8)
def patched_definitions(version: str = DEFAULT_VERSION, strict: bool = True) -> dict:
    """The schema's definitions with the quirks patched (and strict mode applied)."""
    defs = copy.deepcopy(_raw_schema(version)["definitions"])
    defs[_INT_OR_STRING] = {"type": ["integer", "string"]}
    cache_cm = defs.get(_CACHE, {}).get("properties", {}).get("configMap", {})
    if cache_cm.get("$ref", "").endswith(_CM_SELECTOR):  # v3.7.18: key is required there
        selector = copy.deepcopy(defs[_CM_SELECTOR])
        selector["required"] = [r for r in selector.get("required", []) if r != "key"]
        if not selector["required"]:
            del selector["required"]
        defs[_CACHE_CM] = selector
        cache_cm["$ref"] = f"#/definitions/{_CACHE_CM}"
    if strict:
        for d in defs.values():
            if "properties" in d and "additionalProperties" not in d:
                d["additionalProperties"] = False
    return defs


@lru_cache(maxsize=32)
def _validator(version: str, definition: str, strict: bool):
    from jsonschema import Draft202012Validator

    defs = patched_definitions(version, strict)
    if definition not in defs:
        raise InputError(f"the Argo {version} schema has no definition {definition!r}")
    root = {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "definitions": defs,
        "$ref": f"#/definitions/{definition}",
    }
    return Draft202012Validator(root)


def _path(error) -> str:
    parts = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in error.absolute_path)
    return "$" + parts


def _leaf_errors(error):
    """Descend into anyOf/oneOf contexts to the most specific messages."""
    if error.context:
        for sub in error.context:
            yield from _leaf_errors(sub)
    else:
        yield error


def schema_errors(
    obj: Any, definition: str, version: str = DEFAULT_VERSION, strict: bool = True
) -> list[tuple[str, str]]:
    """All ``(path, message)`` pairs for ``obj`` against one schema definition (empty when valid)."""
    validator = _validator(_check_version(version), definition, strict)
    out: list[tuple[str, str]] = []
    for err in sorted(validator.iter_errors(obj), key=lambda e: list(map(str, e.absolute_path))):
        for leaf in _leaf_errors(err):
            out.append((_path(leaf), leaf.message))
    return out


#: keywords that do not depend on string values or array lengths (besides const/enum, handled by key)
_SHAPE_KEYWORDS = {"type", "properties", "items", "required", "additionalProperties", "$ref", "const", "enum",
                   "format", "description", "title", "default", "discriminator", "fields-to-discriminateBy",
                   "group", "kind", "version", "localhostProfile"}


def _has_value_keyword(schema: dict, defs: dict) -> bool:
    """Whether ``schema`` (or the definition it refers to) pins string values with const/enum."""
    if "const" in schema or "enum" in schema:
        return True
    ref = schema.get("$ref", "")
    target = defs.get(ref.rsplit("/", 1)[-1], {}) if ref else {}
    return "const" in target or "enum" in target or "enum" in target.get("items", {})


def _shape_only(x: Any, defs: dict, sensitive: set[str], in_props: bool = False) -> bool:
    """Whether ``x`` uses shape keywords only; adds the property names whose values matter to ``sensitive``."""
    if isinstance(x, list):
        return all(_shape_only(v, defs, sensitive) for v in x)
    if not isinstance(x, dict):
        return True
    for k, v in x.items():
        if in_props:  # k is a property name, v its schema
            if isinstance(v, dict) and (_has_value_keyword(v, defs) or _has_value_keyword(v.get("items", {}), defs)):
                sensitive.add(k)
            if not _shape_only(v, defs, sensitive):
                return False
            continue
        known = k in _SHAPE_KEYWORDS or k.startswith("x-kubernetes-")
        if not known or not _shape_only(v, defs, sensitive, in_props=k == "properties"):
            return False
    return True


@lru_cache(maxsize=8)
def _reducible(version: str, strict: bool) -> frozenset[str] | None:
    """Keys whose string values matter (const/enum), or None when shapes alone do not decide validity."""
    defs = patched_definitions(version, strict)
    sensitive: set[str] = set()
    if not all(_shape_only(d, defs, sensitive) for d in defs.values()):
        return None
    return frozenset(sensitive)


def _shape(x: Any, key: str, sensitive: frozenset[str]) -> Any:
    if isinstance(x, dict):
        return ("d",) + tuple(sorted((k, _shape(v, k, sensitive)) for k, v in x.items()))
    if isinstance(x, list):
        return ("l",) + tuple(dict.fromkeys(_shape(v, key, sensitive) for v in x))
    if isinstance(x, str):
        return ("s", x) if key in sensitive else "s"
    if isinstance(x, bool):
        return "b"
    if isinstance(x, int):
        return "i"
    if isinstance(x, float):
        return "f"
    return type(x).__name__


def reduce_lists(x: Any, sensitive: frozenset[str], key: str = "") -> Any:
    """``x`` with every list cut to its first item of each distinct shape (same validity, see above)."""
    if isinstance(x, dict):
        return {k: reduce_lists(v, sensitive, k) for k, v in x.items()}
    if isinstance(x, list):
        seen: dict[Any, Any] = {}
        for v in x:
            seen.setdefault(_shape(v, key, sensitive), v)
        return [reduce_lists(v, sensitive, key) for v in seen.values()]
    return x


def is_valid(obj: Any, definition: str, version: str = DEFAULT_VERSION, strict: bool = True,
             reduce: bool = True) -> bool:
    validator = _validator(_check_version(version), definition, strict)
    sensitive = _reducible(version, strict) if reduce else None
    return validator.is_valid(obj if sensitive is None else reduce_lists(obj, sensitive))


def kind_of(obj: Any) -> str:
    if not isinstance(obj, dict):
        raise InputError(f"an Argo object must be a mapping, got {type(obj).__name__}")
    kind = obj.get("kind")
    if kind not in KINDS:
        raise InputError(f"unknown Argo kind {kind!r}: expected one of {', '.join(KINDS)}")
    if obj.get("apiVersion") != API_VERSION:
        raise InputError(f"{kind} has apiVersion {obj.get('apiVersion')!r}: expected {API_VERSION!r}")
    return kind


def describe(obj: dict) -> str:
    meta = obj.get("metadata") or {}
    name = meta.get("name") or (meta.get("generateName") or "?") + "*"
    return f"{obj.get('kind', '?')} {name}"


def validate_object(obj: dict, version: str = DEFAULT_VERSION, strict: bool = True) -> dict:
    """Validate one Argo object (Workflow, WorkflowTemplate, CronWorkflow, ClusterWorkflowTemplate).

    Returns the object unchanged. Raises :class:`InputError` for an unknown
    version or kind and :class:`ArgoSchemaError` (a :class:`DataError`) listing
    the failing paths otherwise.
    """
    kind = kind_of(obj)
    if is_valid(obj, KINDS[kind], version, strict):
        return obj
    errors = schema_errors(obj, KINDS[kind], version, strict)
    if errors:
        raise ArgoSchemaError(describe(obj), errors[:MAX_ERRORS], len(errors))
    return obj


def validate_definition(value: Any, name: str, version: str = DEFAULT_VERSION, strict: bool = True,
                        what: str | None = None) -> Any:
    """Validate a value against one named definition (e.g. ``ArtifactRepository``)."""
    definition = EXTRA_DEFINITIONS.get(name, name)
    if is_valid(value, definition, version, strict):
        return value
    errors = schema_errors(value, definition, version, strict)
    if errors:
        raise ArgoSchemaError(what or name, errors[:MAX_ERRORS], len(errors))
    return value
