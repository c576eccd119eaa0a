"""Replay rendered Argo objects pod by pod, as the Argo controller would (a test harness, not an engine).

Argo is the engine; this module exists so that the tests can execute the
*rendered* objects (the dicts of ``worldcover campaign render`` / the YAML
under ``argo/``) on one machine, without Kubernetes:

* **Controller.** ``entrypoint``; ``workflowTemplateRef`` (the template's spec
  joined with the Workflow's, ``workflowMetadata`` labels/annotations merged
  in) and ``templateRef`` across the WorkflowTemplates given; DAG tasks in
  dependency order from ``depends`` (Argo's grammar: ``a``, ``a.Succeeded``,
  ``.Failed``, ``.Errored``, ``.Skipped``, ``.Omitted``, ``.Daemoned``,
  ``.AnySucceeded``, ``.AllFailed``, ``&&``, ``||``, ``!``, parentheses; a bare
  ``a`` is ``a.Succeeded || a.Skipped || a.Daemoned``) or ``dependencies``;
  ``failFast``; ``continueOn``; ``when``; ``withItems`` / ``withParam``; the DAG
  phase from its leaf tasks' branch phases (a failure handled by a dependent
  task does not fail the DAG); ``{{inputs.parameters.X}}``,
  ``{{inputs.parameters}}`` (the JSON list Argo writes), ``{{workflow.name}}``,
  ``.namespace``, ``.uid``, ``.serviceAccountName``, ``.creationTimestamp``,
  ``.parameters.X``, ``.labels.X``, ``.annotations.X``, ``{{tasks.X.outputs.result}}``,
  ``{{tasks.X.outputs.parameters.Y}}``, ``{{tasks.X.status}}``, ``{{item}}``,
  ``{{pod.name}}``; parameter defaults and enums; ``retryStrategy`` (``limit``,
  ``retryPolicy``, ``expression`` over ``lastRetry.*``; a retry runs the same
  pod spec again; the backoff is recorded and waited ``backoff_scale`` times);
  ``resource`` templates with ``action: create`` or ``apply`` on Workflows (the
  manifest substituted, parsed, checked like any object, the child Workflow run
  to completion and ``successCondition`` / ``failureCondition`` evaluated
  against its phase; ``create`` of an existing name fails with AlreadyExists,
  ``apply`` of an existing name changes nothing and waits on the existing
  child, as ``kubectl apply`` does) and ``action: patch`` with
  ``mergeStrategy: merge`` of a Workflow by name (recorded in
  :attr:`Replay.patches`; NotFound fails the node); ``onExit`` (run after the
  entrypoint with ``{{workflow.status}}``; a failing handler fails a workflow
  that had succeeded, as in Argo);
  ``activeDeadlineSeconds`` of templates and workflows as pod timeouts.
  **Parallelism**: pods run one at a time, in dependency order and, among
  ready tasks, in declaration order; ``parallelism`` and ``synchronization``
  limits (at least 1) therefore always hold and are only checked and recorded.
* **Kubelet.** Every ``script`` / ``container`` template runs in a container
  with podman: exactly its ``command`` and ``args`` (a script's ``source`` is
  written to ``/argo/staging/script``, mode 0755, and that path appended to the
  args, as Argo's executor does), its ``env`` (``value``;
  ``valueFrom.secretKeyRef`` from the secrets given: a missing key of a
  non-optional ref is a pod Error, of an optional one leaves the variable
  unset), the env Argo adds (``ARGO_POD_NAME``, ``ARGO_NODE_ID``,
  ``ARGO_TEMPLATE``, ...), ``workingDir``, the pod and container
  securityContext (``runAsUser``/``runAsGroup`` -> ``--user``, ``runAsNonRoot``
  checked, ``fsGroup``/``supplementalGroups`` -> ``--group-add``,
  ``readOnlyRootFilesystem`` -> ``--read-only`` without podman's extra tmpfs,
  ``capabilities`` -> ``--cap-drop``/``--cap-add``,
  ``allowPrivilegeEscalation: false`` -> ``no-new-privileges``, seccomp
  ``RuntimeDefault`` -> podman's default profile), ``emptyDir`` volumes as
  per-pod host directories (mode 0777 like the kubelet's; ``medium: Memory``
  as a tmpfs), ``resources.limits`` (memory -> ``--memory``, cpu -> ``--cpus``
  capped at this machine's cores), ``--network=host`` so loopback servers are
  reachable. stdout (without its final newline) is ``outputs.result``; output
  parameters are read from their ``valueFrom.path`` after the container ends.
  Exit 0 -> Succeeded; other codes -> Failed; killed, timed out, a signal
  (exit > 128) or a pod that cannot start -> Error.
* **Not replayed** (refused when present, since nothing renders them): ``steps``
  templates (so no ``{{steps.*}}``), artifacts, lifecycle hooks, sidecars and
  init containers, daemons, ``suspend``/``http``/``data``/``containerSet``
  templates, ``podSpecPatch``, memoization, expression tags ``{{=...}}``,
  env ``fieldRef``/``configMapKeyRef``, volumes other than ``emptyDir``.
* **Refusal.** Every key of every object (and of every child Workflow a
  resource template creates) is walked against an explicit allow-list:
  fields the harness implements, and cluster-only fields that do not change
  what a pod computes, each with a one-line reason (recorded in
  :attr:`Replay.not_applicable`). Anything else raises
  :class:`UnsupportedField` naming its path: nothing is skipped silently.
* **Records.** Every pod (and resource-template step) it ran: workflow,
  node, task, template, parameters, attempt, exit code, phase, seconds.
  :class:`KillRule` kills a named pod's container after some seconds or when
  a condition holds, so a test can show Argo's retry resuming.

``Replay(objects, settings).run()`` executes the submitted Workflow(s);
``Replay(objects).dry_run()`` goes through the same controller logic with
every pod succeeding and nothing started, and lists the pods in order with
their parameters and podman command lines.
"""

from __future__ import annotations

import copy
import json
import os
import random
import re
import shlex
import shutil
import string
import subprocess
import tempfile
import time
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import yaml

API_VERSION = "argoproj.io/v1alpha1"
SCRIPT_PATH = "/argo/staging/script"  # common.ExecutorScriptSourcePath
STAGING_DIR = "/argo/staging"
VAR_RUN_ARGO = "/var/run/argo"
MAX_RESULT_BYTES = 256 * 1024  # Argo's cap on outputs.result

SUCCEEDED, FAILED, ERROR = "Succeeded", "Failed", "Error"
SKIPPED, OMITTED, DAEMONED = "Skipped", "Omitted", "Daemoned"


class ReplayError(Exception):
    """The objects ask for something the harness cannot replay as Argo would (or Argo would refuse)."""


class UnsupportedField(ReplayError):
    """A field the harness does not understand: it refuses rather than skip it."""

    def __init__(self, path: str, detail: str = "") -> None:
        self.path, self.detail = path, detail
        super().__init__(self._message())

    def _message(self) -> str:
        return f"unsupported field {self.path}" + (f": {self.detail}" if self.detail else
                                                   " (not implemented by tests/argo_replay.py and not listed "
                                                   "as cluster-only)")

    def at(self, where: str) -> UnsupportedField:
        """The same refusal with the object it was found in prefixed to its path."""
        self.path = f"{where}: {self.path}"
        self.args = (self._message(),)
        return self


# =================================================================================================
# The allow-list
# =================================================================================================


@dataclass(frozen=True)
class Leaf:
    """A scalar (or free-form value) the harness interprets itself."""

    types: tuple[type, ...] = (str,)
    values: tuple | None = None  # allowed values, when only some are implemented


@dataclass(frozen=True)
class Obj:
    fields: Mapping[str, Any]


@dataclass(frozen=True)
class ListOf:
    item: Any


@dataclass(frozen=True)
class MapOf:
    value: Any


@dataclass(frozen=True)
class NotApplicable:
    """A cluster-only field: accepted and recorded, not replayed (the reason says why that is harmless)."""

    reason: str


@dataclass(frozen=True)
class Checked:
    """A field whose value is checked against what the harness guarantees, then recorded."""

    reason: str
    check: Callable[[Any, str], None]


STR = Leaf((str,))
INT = Leaf((int,))
BOOL = Leaf((bool,))
NUM = Leaf((int, float))
QTY = Leaf((str, int, float))  # Kubernetes quantities and IntOrString
ANYSTR = Leaf((str, int, float, bool))  # Argo's AnyString
ANY = Leaf((str, int, float, bool, dict, list, type(None)))


def _check_sync(value: Any, path: str) -> None:
    if not isinstance(value, dict) or not value:
        raise UnsupportedField(path, "expected a mutex or semaphore")
    for key, spec in value.items():
        items = spec if key in ("mutexes", "semaphores") else [spec]
        if key not in ("mutex", "mutexes", "semaphore", "semaphores") or not isinstance(items, list):
            raise UnsupportedField(f"{path}.{key}")
        for item in items:
            if not isinstance(item, dict):
                raise UnsupportedField(f"{path}.{key}", "expected an object")
            allowed = {"name", "namespace"} if key.startswith("mutex") else {"configMapKeyRef", "namespace"}
            unknown = set(item) - allowed
            if unknown:
                raise UnsupportedField(f"{path}.{key}.{sorted(unknown)[0]}")


def _check_parallelism(value: Any, path: str) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise UnsupportedField(path, f"parallelism {value!r}: expected an integer >= 1")


PARALLELISM = Checked("pods run one at a time here, so any parallelism >= 1 holds (sequential replay)",
                      _check_parallelism)
SYNCHRONIZATION = Checked("mutex/semaphore: pods run one at a time here, so any limit >= 1 holds", _check_sync)
METRICS = NotApplicable("Prometheus metrics are emitted by the controller; they do not change what a pod computes")


def _na(reason: str) -> NotApplicable:
    return NotApplicable(reason)


SECCOMP = Obj({"type": Leaf((str,), ("RuntimeDefault", "Unconfined"))})
CAPABILITIES = Obj({"drop": ListOf(STR), "add": ListOf(STR)})
CONTAINER_SECURITY = Obj({
    "runAsUser": INT, "runAsGroup": INT, "runAsNonRoot": BOOL, "readOnlyRootFilesystem": BOOL,
    "allowPrivilegeEscalation": BOOL, "privileged": Leaf((bool,), (False,)), "capabilities": CAPABILITIES,
    "seccompProfile": SECCOMP,
})
POD_SECURITY = Obj({
    "runAsUser": INT, "runAsGroup": INT, "runAsNonRoot": BOOL, "fsGroup": INT,
    "supplementalGroups": ListOf(INT), "seccompProfile": SECCOMP,
})
SECRET_KEY_REF = Obj({"name": STR, "key": STR, "optional": BOOL})
ENV = Obj({"name": STR, "value": STR, "valueFrom": Obj({"secretKeyRef": SECRET_KEY_REF})})
RESOURCES = Obj({
    "limits": Obj({
        "cpu": QTY, "memory": QTY,
        "ephemeral-storage": _na("enforced by kubelet eviction on the node's disk; scratch here is a host "
                                 "temp dir"),
    }),
    "requests": _na("scheduling only: where the pod may run; limits are what the container gets"),
})
VOLUME_MOUNT = Obj({"name": STR, "mountPath": STR, "readOnly": BOOL})
CONTAINER_FIELDS = {
    "image": STR,
    "imagePullPolicy": _na("the image is local (podman --pull=never); the settings' image replaces the ref"),
    "command": ListOf(STR), "args": ListOf(STR), "env": ListOf(ENV), "workingDir": STR,
    "securityContext": CONTAINER_SECURITY, "resources": RESOURCES, "volumeMounts": ListOf(VOLUME_MOUNT),
}
SCRIPT = Obj({**CONTAINER_FIELDS, "source": STR})
CONTAINER = Obj(CONTAINER_FIELDS)
VOLUME = Obj({"name": STR, "emptyDir": Obj({
    "sizeLimit": _na("enforced by kubelet eviction; the emptyDir is a per-pod host directory here"),
    "medium": Leaf((str,), ("", "Memory")),
})})
INPUT_PARAMETER = Obj({
    "name": STR, "value": ANYSTR, "default": ANYSTR, "enum": ListOf(ANYSTR),
    "description": _na("documentation shown by the UI"),
})
OUTPUT_PARAMETER = Obj({
    "name": STR, "valueFrom": Obj({"path": STR, "default": ANYSTR}),
    "description": _na("documentation shown by the UI"),
})
ARGUMENTS = Obj({"parameters": ListOf(Obj({"name": STR, "value": ANYSTR,
                                           "description": _na("documentation shown by the UI")}))})
TEMPLATE_REF = Obj({"name": STR, "template": STR})
TASK = Obj({
    "name": STR, "template": STR, "templateRef": TEMPLATE_REF, "arguments": ARGUMENTS, "depends": STR,
    "dependencies": ListOf(STR), "when": STR, "withItems": ListOf(ANY), "withParam": STR,
    "continueOn": Obj({"failed": BOOL, "error": BOOL}),
})
RETRY = Obj({
    "limit": QTY, "retryPolicy": Leaf((str,), ("Always", "OnFailure", "OnError", "OnTransientError")),
    "backoff": Obj({"duration": QTY, "factor": QTY, "maxDuration": QTY}), "expression": STR,
    "affinity": _na("node anti-affinity between attempts; there is one node here"),
})
RESOURCE = Obj({
    "action": Leaf((str,), ("create", "apply", "patch")), "manifest": STR, "successCondition": STR,
    "failureCondition": STR, "mergeStrategy": Leaf((str,), ("merge",)),
    "setOwnerReference": _na("garbage collection of the child with its parent; nothing is deleted here"),
})
POD_PLACEMENT = {
    "nodeSelector": _na("node placement; there is one node here"),
    "tolerations": _na("node placement; there is one node here"),
    "affinity": _na("node placement; there is one node here"),
    "priorityClassName": _na("scheduling priority between pods of a cluster"),
    "schedulerName": _na("which Kubernetes scheduler places the pod"),
    "serviceAccountName": _na("RBAC of the pod's Kubernetes API token; the steps never call the API"),
    "automountServiceAccountToken": _na("the pod's Kubernetes API token; the steps never call the API"),
}
TEMPLATE = Obj({
    "name": STR, "inputs": Obj({"parameters": ListOf(INPUT_PARAMETER)}),
    "outputs": Obj({"parameters": ListOf(OUTPUT_PARAMETER)}),
    "dag": Obj({"tasks": ListOf(TASK), "failFast": BOOL}), "script": SCRIPT, "container": CONTAINER,
    "resource": RESOURCE, "retryStrategy": RETRY, "activeDeadlineSeconds": QTY, "metrics": METRICS,
    "securityContext": POD_SECURITY, "volumes": ListOf(VOLUME),
    "metadata": _na("labels/annotations of the pod object (selection, monitoring)"),
    "parallelism": PARALLELISM, "synchronization": SYNCHRONIZATION, "failFast": BOOL, **POD_PLACEMENT,
})
METADATA = Obj({"name": STR, "generateName": STR, "namespace": STR, "labels": MapOf(STR),
                "annotations": MapOf(STR)})
SPEC = Obj({
    "entrypoint": STR, "templates": ListOf(TEMPLATE), "onExit": STR,
    "arguments": Obj({"parameters": ListOf(INPUT_PARAMETER)}),
    "workflowTemplateRef": Obj({"name": STR}),
    "workflowMetadata": Obj({"labels": MapOf(STR), "annotations": MapOf(STR)}),
    "activeDeadlineSeconds": QTY, "parallelism": PARALLELISM, "synchronization": SYNCHRONIZATION,
    "securityContext": POD_SECURITY, "volumes": ListOf(VOLUME), "metrics": METRICS,
    "podGC": _na("deletes finished pods; containers here are removed after each pod"),
    "ttlStrategy": _na("deletes finished Workflow objects from the cluster after a while"),
    "archiveLogs": _na("copies pod logs to the artifact repository; logs stay in the records here"),
    "artifactRepositoryRef": _na("where artifacts go; these objects declare no artifacts (refused)"),
    "podMetadata": _na("labels/annotations of the pod objects (selection, monitoring)"),
    "podPriorityClassName": _na("scheduling priority between pods of a cluster"),
    "imagePullSecrets": _na("registry credentials; the image is local"),
    **POD_PLACEMENT,
})
OBJECT = Obj({
    "apiVersion": Leaf((str,), (API_VERSION,)), "kind": Leaf((str,), ("Workflow", "WorkflowTemplate")),
    "metadata": METADATA, "spec": SPEC,
})


def _generic(path: str) -> str:
    return re.sub(r"\[\d+\]", "[]", path)


def check_fields(value: Any, rule: Any = OBJECT, path: str = "", notes: dict | None = None) -> dict[str, str]:
    """Walk ``value`` against ``rule``; raise :class:`UnsupportedField` at the first unknown field.

    Returns the cluster-only and checked fields met (generic path -> reason), for the record.
    """
    notes = {} if notes is None else notes
    if isinstance(rule, NotApplicable):
        notes[_generic(path)] = f"not applicable: {rule.reason}"
    elif isinstance(rule, Checked):
        rule.check(value, path)
        notes[_generic(path)] = f"checked ({value!r}): {rule.reason}"
    elif isinstance(rule, Leaf):
        if isinstance(value, bool) and bool not in rule.types:
            raise UnsupportedField(path, f"unexpected value {value!r}")
        if not isinstance(value, rule.types):
            raise UnsupportedField(path, f"unexpected {type(value).__name__} value {value!r}")
        if rule.values is not None and value not in rule.values:
            raise UnsupportedField(path, f"value {value!r} is not replayed (only {', '.join(map(repr, rule.values))})")
    elif isinstance(rule, Obj):
        if not isinstance(value, dict):
            raise UnsupportedField(path, f"expected an object, got {type(value).__name__}")
        for key, sub in value.items():
            where = f"{path}.{key}" if path else str(key)
            if key not in rule.fields:
                raise UnsupportedField(where)
            check_fields(sub, rule.fields[key], where, notes)
    elif isinstance(rule, ListOf):
        if not isinstance(value, list):
            raise UnsupportedField(path, f"expected a list, got {type(value).__name__}")
        for i, item in enumerate(value):
            check_fields(item, rule.item, f"{path}[{i}]", notes)
    elif isinstance(rule, MapOf):
        if not isinstance(value, dict):
            raise UnsupportedField(path, f"expected a mapping, got {type(value).__name__}")
        for key, sub in value.items():
            check_fields(sub, rule.value, f"{path}.{key}", notes)
    else:  # pragma: no cover - a bug in the allow-list itself
        raise TypeError(f"bad rule {rule!r} at {path}")
    return notes


def describe(obj: dict) -> str:
    meta = obj.get("metadata") or {}
    return f"{obj.get('kind', '?')}/{meta.get('name') or meta.get('generateName') or '?'}"


def check_object(obj: dict, notes: dict | None = None) -> dict[str, str]:
    """Check one Workflow/WorkflowTemplate: every field known, one template type per template, names unique."""
    if not isinstance(obj, dict):
        raise ReplayError(f"expected an object, got {type(obj).__name__}")
    where = describe(obj)
    try:
        notes = check_fields(obj, OBJECT, "", notes)
    except UnsupportedField as exc:
        raise exc.at(where) from None
    spec = obj.get("spec") or {}
    names = set()
    for i, t in enumerate(spec.get("templates", [])):
        kinds = [k for k in ("dag", "script", "container", "resource") if k in t]
        if len(kinds) != 1:
            raise UnsupportedField(f"{where}: spec.templates[{i}]",
                                   f"template {t.get('name')!r} has {kinds or 'no type'}: expected exactly one of "
                                   "dag, script, container, resource")
        if t.get("name") in names:
            raise ReplayError(f"{where}: template name {t.get('name')!r} appears twice")
        names.add(t.get("name"))
    if obj.get("kind") == "WorkflowTemplate" and "workflowTemplateRef" in spec:
        raise UnsupportedField(f"{where}: spec.workflowTemplateRef", "a WorkflowTemplate cannot reference another")
    return notes


# =================================================================================================
# Expressions: depends, when, retry expressions, resource conditions
# =================================================================================================

_DEPENDS_TOKEN = re.compile(r"\s*(?:(\|\||&&|!|\(|\))|([A-Za-z0-9_-]+(?:\.[A-Za-z]+)?))")
TASK_RESULTS = ("Succeeded", "Failed", "Errored", "Skipped", "Omitted", "Daemoned", "AnySucceeded", "AllFailed")


def _tokens(expr: str) -> list[str]:
    out, pos = [], 0
    expr = expr.rstrip()
    while pos < len(expr):
        m = _DEPENDS_TOKEN.match(expr, pos)
        if not m or m.end() == pos:
            raise ReplayError(f"depends {expr!r}: cannot parse at {expr[pos:pos + 20]!r}")
        out.append(m.group(1) or m.group(2))
        pos = m.end()
    return out


def depends_tasks(expr: str) -> list[str]:
    """Task names a ``depends`` expression refers to, in order of appearance."""
    names: list[str] = []
    for tok in _tokens(expr):
        if tok not in ("||", "&&", "!", "(", ")"):
            name = tok.split(".", 1)[0]
            if name not in names:
                names.append(name)
    return names


@dataclass
class TaskState:
    """What the depends grammar reads of a finished task: its phase and, for a task group, its children's."""

    phase: str
    children: tuple[str, ...] = ()


def _term_true(term: str, states: Mapping[str, TaskState]) -> bool:
    name, _, result = term.partition(".")
    if name not in states:
        raise ReplayError(f"depends refers to task {name!r}, which has not finished or does not exist")
    st = states[name]
    if not result:
        return st.phase in (SUCCEEDED, SKIPPED, DAEMONED)
    if result not in TASK_RESULTS:
        raise ReplayError(f"depends {term!r}: unknown task result {result!r} (expected one of "
                          f"{', '.join(TASK_RESULTS)})")
    if result == "Errored":
        return st.phase == ERROR
    if result == "AnySucceeded":
        return any(c == SUCCEEDED for c in (st.children or (st.phase,)))
    if result == "AllFailed":
        kids = st.children or (st.phase,)
        return bool(kids) and all(c == FAILED for c in kids)
    return st.phase == result


def eval_depends(expr: str, states: Mapping[str, TaskState]) -> bool:
    """Evaluate Argo's ``depends`` grammar against finished tasks' states."""
    toks = _tokens(expr)
    pos = 0

    def peek():
        return toks[pos] if pos < len(toks) else None

    def take(expected=None):
        nonlocal pos
        tok = peek()
        if tok is None or (expected is not None and tok != expected):
            raise ReplayError(f"depends {expr!r}: expected {expected or 'a term'}, got {tok!r}")
        pos += 1
        return tok

    def disj():
        value = conj()
        while peek() == "||":
            take()
            value = conj() or value
        return value

    def conj():
        value = unary()
        while peek() == "&&":
            take()
            value = unary() and value
        return value

    def unary():
        tok = peek()
        if tok == "!":
            take()
            return not unary()
        if tok == "(":
            take()
            value = disj()
            take(")")
            return value
        tok = take()
        if tok in ("||", "&&", ")"):
            raise ReplayError(f"depends {expr!r}: unexpected {tok!r}")
        return _term_true(tok, states)

    if not toks:
        raise ReplayError("empty depends expression")
    value = disj()
    if pos != len(toks):
        raise ReplayError(f"depends {expr!r}: unexpected {toks[pos]!r}")
    return value


_EXPR_TOKEN = re.compile(
    r"\s*(?:(\"(?:[^\"\\]|\\.)*\"|'(?:[^'\\]|\\.)*')|(-?\d+(?:\.\d+)?)(?![\w.])|(==|!=|<=|>=|&&|\|\||[<>!()\[\],])"
    r"|([A-Za-z_][\w.-]*))")


def eval_expression(expr: str, variables: Mapping[str, Any] | None = None, *, bare_words_are_strings: bool) -> Any:
    """A small evaluator for the expressions Argo templates carry after substitution.

    ``when`` (govaluate: ``heads == heads``, ``3 > 2 && true``: bare words are
    strings) and ``retryStrategy.expression`` (expr: ``lastRetry.exitCode > 1
    and lastRetry.status == "Error"``, ``x in [1, 2]``: names are variables).
    Literals: numbers, quoted strings, true/false; operators ==, !=, <, <=, >,
    >=, &&/and, ||/or, !/not, in [..], parentheses.
    """
    variables = variables or {}
    toks: list[tuple[str, Any]] = []
    pos, text = 0, expr.strip()
    while pos < len(text):
        m = _EXPR_TOKEN.match(text, pos)
        if not m or m.end() == pos:
            raise ReplayError(f"expression {expr!r}: cannot parse at {text[pos:pos + 20]!r}")
        s, num, op, word = m.groups()
        if s is not None:
            toks.append(("val", json.loads('"' + s[1:-1].replace('\\"', '"').replace('"', '\\"') + '"')))
        elif num is not None:
            toks.append(("val", float(num) if "." in num else int(num)))
        elif op is not None:
            toks.append(("op", op))
        elif word in ("and", "or", "not", "in"):
            toks.append(("op", {"and": "&&", "or": "||", "not": "!", "in": "in"}[word]))
        elif word in ("true", "false"):
            toks.append(("val", word == "true"))
        elif word in variables:
            toks.append(("val", variables[word]))
        elif bare_words_are_strings:
            toks.append(("val", word))
        else:
            raise ReplayError(f"expression {expr!r}: unknown name {word!r}")
        pos = m.end()
    i = 0

    def peek():
        return toks[i] if i < len(toks) else (None, None)

    def take(op=None):
        nonlocal i
        kind, value = peek()
        if kind is None or (op is not None and (kind, value) != ("op", op)):
            raise ReplayError(f"expression {expr!r}: expected {op or 'a value'}")
        i += 1
        return kind, value

    def disj():
        v = conj()
        while peek() == ("op", "||"):
            take()
            r = conj()
            v = bool(v) or bool(r)
        return v

    def conj():
        v = comparison()
        while peek() == ("op", "&&"):
            take()
            r = comparison()
            v = bool(v) and bool(r)
        return v

    def comparison():
        v = unary()
        kind, op = peek()
        if kind == "op" and op in ("==", "!=", "<", "<=", ">", ">=", "in"):
            take()
            r = unary()
            if op == "in":
                return v in r
            a, b = v, r
            if op in ("==", "!="):
                if isinstance(a, (int, float)) != isinstance(b, (int, float)):
                    a, b = str(a), str(b)
                return (a == b) if op == "==" else (a != b)
            try:
                return {"<": a < b, "<=": a <= b, ">": a > b, ">=": a >= b}[op]
            except TypeError:
                raise ReplayError(f"expression {expr!r}: cannot compare {a!r} {op} {b!r}") from None
        return v

    def unary():
        kind, value = peek()
        if (kind, value) == ("op", "!"):
            take()
            return not unary()
        if (kind, value) == ("op", "("):
            take()
            v = disj()
            take(")")
            return v
        if (kind, value) == ("op", "["):
            take()
            items = []
            while peek() != ("op", "]"):
                items.append(unary())
                if peek() == ("op", ","):
                    take()
            take("]")
            return items
        kind, value = take()
        if kind != "val":
            raise ReplayError(f"expression {expr!r}: unexpected {value!r}")
        return value

    result = disj()
    if i != len(toks):
        raise ReplayError(f"expression {expr!r}: unexpected {toks[i][1]!r}")
    return result


def _split_top(text: str, sep: str = ",") -> list[str]:
    parts, depth, cur = [], 0, ""
    for ch in text:
        depth += ch == "("
        depth -= ch == ")"
        if ch == sep and depth == 0:
            parts.append(cur)
            cur = ""
        else:
            cur += ch
    parts.append(cur)
    return [p.strip() for p in parts if p.strip()]


_REQUIREMENT = re.compile(r"^(!?)([A-Za-z0-9_.\[\]-]+)\s*(?:(==|=|!=|>|<|\bnotin\b|\bin\b)\s*(.*))?$")


def _lookup(obj: Any, path: str) -> Any:
    cur = obj
    for part in path.split("."):
        if not isinstance(cur, dict) or part not in cur:
            return None
        cur = cur[part]
    return cur


def eval_condition(condition: str, obj: Mapping) -> bool:
    """A resource template's success/failure condition (label-selector syntax over the object's fields)."""
    for req in _split_top(condition):
        m = _REQUIREMENT.match(req)
        if not m:
            raise ReplayError(f"resource condition {condition!r}: cannot parse {req!r}")
        neg, path, op, rhs = m.groups()
        value = _lookup(obj, path)
        if op is None:
            ok = (value is None) if neg else (value is not None)
        elif neg:
            raise ReplayError(f"resource condition {condition!r}: '!' only goes with a bare field")
        elif op in ("in", "notin"):
            rhs = rhs.strip()
            if not (rhs.startswith("(") and rhs.endswith(")")):
                raise ReplayError(f"resource condition {condition!r}: expected a (list) after {op}")
            values = [v.strip() for v in rhs[1:-1].split(",") if v.strip()]
            ok = (str(value) in values) == (op == "in") if value is not None else op == "notin"
        elif op in ("==", "="):
            ok = value is not None and str(value) == rhs.strip()
        elif op == "!=":
            ok = value is None or str(value) != rhs.strip()
        else:
            try:
                ok = value is not None and (float(value) > float(rhs) if op == ">" else float(value) < float(rhs))
            except ValueError:
                raise ReplayError(f"resource condition {condition!r}: {op} needs numbers") from None
        if not ok:
            return False
    return True


# =================================================================================================
# Substitution
# =================================================================================================

_TAG = re.compile(r"\{\{(\s*)(=?)(.*?)(\s*)\}\}", re.S)


def substitute(text: str, values: Mapping[str, str]) -> str:
    """Replace Argo's simple tags ``{{ name }}`` found in ``values``; leave the others for a later pass.

    Expression tags (``{{=...}}``) are refused: the harness does not evaluate expr-lang templates.
    """
    def repl(m: re.Match) -> str:
        if m.group(2) == "=":
            raise ReplayError(f"expression tag {m.group(0)[:60]!r} is not replayed")
        key = m.group(3).strip()
        return values[key] if key in values else m.group(0)

    return _TAG.sub(repl, text)


def substitute_tree(value: Any, values: Mapping[str, str], skip: Iterable[str] = ()) -> Any:
    """``substitute`` in every string of a JSON-like tree (keys in ``skip`` at the top level are left as is)."""
    skip = set(skip)
    if isinstance(value, str):
        return substitute(value, values)
    if isinstance(value, list):
        return [substitute_tree(v, values) for v in value]
    if isinstance(value, dict):
        return {k: (v if k in skip else substitute_tree(v, values)) for k, v in value.items()}
    return value


def unresolved(value: Any) -> list[str]:
    """Tags still left in a tree."""
    if isinstance(value, str):
        return [m.group(0) for m in _TAG.finditer(value)]
    if isinstance(value, list):
        return [t for v in value for t in unresolved(v)]
    if isinstance(value, dict):
        return [t for v in value.values() for t in unresolved(v)]
    return []


def any_string(value: Any) -> str:
    """Argo's AnyString: YAML numbers and booleans become their text."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (dict, list)):
        return json.dumps(value, separators=(",", ":"))
    return str(value)


def go_json(value: Any) -> str:
    """``json.Marshal`` as Go writes it: compact, HTML characters escaped."""
    text = json.dumps(value, separators=(",", ":"), ensure_ascii=False)
    for ch, esc in (("&", "\\u0026"), ("<", "\\u003c"), (">", "\\u003e"), ("\u2028", "\\u2028"),
                    ("\u2029", "\\u2029")):
        text = text.replace(ch, esc)
    return text


def inputs_json(parameters: list[dict]) -> str:
    """``{{inputs.parameters}}``: the resolved input parameters as Argo marshals ``[]Parameter``."""
    order = ("name", "default", "value", "valueFrom", "globalName", "enum", "description")
    out = []
    for p in parameters:
        out.append({k: p[k] for k in order if k in p and p[k] is not None})
    return go_json(out)


def fnv32a(text: str) -> int:
    h = 0x811C9DC5
    for b in text.encode():
        h = ((h ^ b) * 0x01000193) & 0xFFFFFFFF
    return h


def node_id(workflow: str, node_name: str) -> str:
    """Argo's node ID: workflow name and the FNV-1a hash of the node name."""
    return f"{workflow}-{fnv32a(node_name)}"


def pod_name(workflow: str, template: str, node_name: str) -> str:
    """Argo's pod name (POD_NAMES=v2): workflow-template-hash(node name)."""
    prefix = f"{workflow}-{template}"
    if len(prefix) > 253 - 11:
        prefix = prefix[: 253 - 11]
    return f"{prefix}-{fnv32a(node_name)}"


_QUANTITY = re.compile(r"^([0-9.]+)([a-zA-Z]*)$")
_SUFFIX = {"": 1, "k": 10**3, "M": 10**6, "G": 10**9, "T": 10**12, "Ki": 2**10, "Mi": 2**20, "Gi": 2**30,
           "Ti": 2**40, "m": 1e-3}


def quantity(value: Any) -> float:
    m = _QUANTITY.match(str(value))
    if not m or m.group(2) not in _SUFFIX:
        raise ReplayError(f"cannot read the quantity {value!r}")
    return float(m.group(1)) * _SUFFIX[m.group(2)]


_DURATION = re.compile(r"(\d+(?:\.\d+)?)(h|m|s|ms)")


def duration_s(value: Any) -> float:
    """Argo durations: a number of seconds or a Go duration (``2m``, ``1h30m``)."""
    if isinstance(value, (int, float)):
        return float(value)
    text = str(value)
    if re.fullmatch(r"\d+", text):
        return float(text)
    parts = _DURATION.findall(text)
    if not parts or "".join(a + b for a, b in parts) != text:
        raise ReplayError(f"cannot read the duration {value!r}")
    return sum(float(n) * {"h": 3600, "m": 60, "s": 1, "ms": 1e-3}[u] for n, u in parts)


# =================================================================================================
# Settings, records, pods
# =================================================================================================


@dataclass
class KillRule:
    """Kill one pod's container (SIGKILL, as a node loss or eviction would) once a condition holds.

    ``task`` is the DAG task name (``n45e003``, or ``tile`` for every item of
    a ``withParam`` task); ``parameters`` the input values the pod must have
    (``{"tile": "N45E003"}``: one item); ``template`` its template name;
    ``attempt`` which attempt (0: the first); ``after_s`` seconds after the
    container started and/or ``when`` a callable that returns True (polled
    every ``poll_s`` seconds while the container runs).
    """

    task: str
    template: str | None = None
    attempt: int = 0
    parameters: Mapping[str, str] = field(default_factory=dict)
    after_s: float | None = None
    when: Callable[[], bool] | None = None
    poll_s: float = 0.5
    fired: bool = False
    fired_after_s: float | None = None

    def matches(self, task: str, template: str, attempt: int, parameters: Mapping[str, str] | None = None) -> bool:
        given = parameters or {}
        return (not self.fired and task == self.task and attempt == self.attempt
                and (self.template is None or self.template == template)
                and all(given.get(k) == v for k, v in self.parameters.items()))

    def due(self, elapsed: float) -> bool:
        if self.after_s is not None and elapsed < self.after_s:
            return False
        if self.when is not None:
            try:
                return bool(self.when())
            except Exception:  # a condition that cannot be evaluated yet is not met
                return False
        return self.after_s is not None


@dataclass
class Settings:
    """Controller-side settings: what the cluster would provide around the objects."""

    #: run every container in this image instead of the rendered reference (e.g. the locally built image)
    image: str | None = None
    #: Kubernetes Secrets: secret name -> key -> value (what ``secretKeyRef`` reads)
    secrets: Mapping[str, Mapping[str, str]] = field(default_factory=dict)
    #: extra env for every pod (what a cluster injects, e.g. a loopback S3 endpoint); must not clash with the
    #: template's own env
    env: Mapping[str, str] = field(default_factory=dict)
    #: read-only host paths mounted at the same path (data outside the cluster, e.g. the archive the STAC API
    #: points at)
    mounts: Sequence[str] = ()
    namespace: str = "argo"
    podman: Sequence[str] = ("podman",)
    #: environment for the podman command itself (e.g. CONTAINERS_CONF)
    podman_env: Mapping[str, str] = field(default_factory=dict)
    #: fraction of Argo's retry backoff actually waited (0: record it only)
    backoff_scale: float = 0.0
    max_cpus: float = float(os.cpu_count() or 1)
    #: where per-pod directories, stdout/stderr and scripts go (a temp dir when None)
    work_dir: str | os.PathLike | None = None
    kills: list[KillRule] = field(default_factory=list)
    #: progress lines (e.g. print); None for silence
    log: Callable[[str], None] | None = None
    seed: int | None = None
    #: (task, attempt) of resource steps whose pod is lost (evicted) after the child exists: the node is an
    #: Error, as when Argo loses the pod of a long-running resource step
    lost_resources: Sequence[tuple[str, int]] = ()


@dataclass
class Pod:
    """One pod as the harness runs it: everything podman needs, resolved."""

    name: str
    workflow: str
    node_name: str
    node_id: str
    task: str
    template: str  # "<WorkflowTemplate or Workflow>/<template>"
    template_name: str
    attempt: int
    parameters: dict[str, str]
    image: str
    entrypoint: list[str] | None  # container command (replaces the image's ENTRYPOINT)
    args: list[str]
    env: dict[str, str]  # name -> value (secret values included; never logged)
    secret_env: tuple[str, ...]  # names whose values came from secrets
    workdir: str | None
    user: str | None
    groups: tuple[int, ...]
    run_as_non_root: bool
    read_only: bool
    cap_drop: tuple[str, ...]
    cap_add: tuple[str, ...]
    no_new_privileges: bool
    seccomp: str | None
    memory: int | None
    cpus: float | None
    volumes: list[tuple[str, str, bool, str]]  # (volume name, mount path, read only, medium)
    host_mounts: list[str]
    script: str | None
    outputs: list[dict]
    timeout_s: float | None
    deadline: datetime | None
    notes: list[str] = field(default_factory=list)

    def podman_argv(self, podman: Sequence[str] = ("podman",), dirs: Mapping[str, str] | None = None,
                    cidfile: str | None = None) -> list[str]:
        """The ``podman run`` command line (host dirs as placeholders when ``dirs`` is None)."""
        dirs = dirs or {}
        argv = [*podman, "run", "--name", self.name, "--pull=never", "--network=host"]
        if cidfile:
            argv += ["--cidfile", cidfile]
        if self.user:
            argv += ["--user", self.user]
        for g in self.groups:
            argv += ["--group-add", str(g)]
        if self.read_only:
            argv += ["--read-only", "--read-only-tmpfs=false"]
        for c in self.cap_drop:
            argv += ["--cap-drop", c.lower()]
        for c in self.cap_add:
            argv += ["--cap-add", c.lower()]
        if self.no_new_privileges:
            argv += ["--security-opt", "no-new-privileges"]
        if self.seccomp == "Unconfined":
            argv += ["--security-opt", "seccomp=unconfined"]
        if self.memory:
            argv += ["--memory", str(self.memory)]
        if self.cpus:
            argv += ["--cpus", f"{self.cpus:g}"]
        if self.workdir:
            argv += ["--workdir", self.workdir]
        if self.script is not None:
            argv += ["-v", f"{dirs.get('@staging', '<staging>')}:{STAGING_DIR}:ro"]
        argv += ["-v", f"{dirs.get('@var-run-argo', '<var-run-argo>')}:{VAR_RUN_ARGO}"]
        for name, mount, ro, medium in self.volumes:
            if medium == "Memory":
                argv += ["--tmpfs", f"{mount}:rw,mode=1777" if not ro else f"{mount}:ro,mode=1777"]
            else:
                argv += ["-v", f"{dirs.get(name, '<' + name + '>')}:{mount}" + (":ro" if ro else "")]
        for host in self.host_mounts:
            argv += ["-v", f"{host}:{host}:ro"]
        for name in self.env:
            argv += ["-e", name]  # values travel in podman's environment, not on its command line
        if self.entrypoint is not None:
            argv += ["--entrypoint", json.dumps(self.entrypoint)]
        argv += [self.image, *self.args]
        return argv


@dataclass
class PodRecord:
    """One pod the harness ran (or, in a dry run, would run)."""

    workflow: str
    node: str  # Argo node name, e.g. wc-abcde.n45e003(0)
    task: str
    template: str
    kind: str  # pod | resource
    parameters: dict[str, str]
    attempt: int
    phase: str
    exit_code: int | None
    seconds: float
    message: str = ""
    result: str = ""
    killed: bool = False
    pod: str = ""
    argv: list[str] = field(default_factory=list)
    child: str = ""  # the Workflow a resource template created
    stderr_tail: str = ""
    backoff_s: float = 0.0  # Argo's backoff before this attempt (waited backoff_scale times)

    def line(self) -> str:
        params = " ".join(f"{k}={v}" for k, v in self.parameters.items())
        code = "-" if self.exit_code is None else str(self.exit_code)
        extra = f" -> {self.child}" if self.child else ""
        kill = " KILLED" if self.killed else ""
        return (f"{self.workflow:<28} {self.task + '(' + str(self.attempt) + ')':<22} {self.template:<42} "
                f"{self.phase:<9} exit={code:<4} {self.seconds:7.1f}s{kill}{extra}  {params}")


def format_pods(records: Iterable[PodRecord]) -> str:
    return "\n".join(r.line() for r in records)


@dataclass
class NodeOutcome:
    phase: str
    message: str = ""
    result: str | None = None
    parameters: dict[str, str] = field(default_factory=dict)
    children: tuple[str, ...] = ()
    exit_code: int | None = None
    killed: bool = False


@dataclass
class WorkflowRun:
    name: str
    uid: str
    phase: str
    message: str
    labels: dict[str, str]
    parent: str | None = None
    nodes: dict[str, str] = field(default_factory=dict)  # node name -> phase
    seconds: float = 0.0
    exit_handler: str | None = None  # the onExit template's phase, when the workflow has one


@dataclass
class _Ctx:
    """What a template executes in: its workflow and the templates it can name locally."""

    wf: _Workflow
    templates: Mapping[str, dict]
    owner: str  # "WorkflowTemplate/name" or "Workflow/name"


@dataclass
class _Workflow:
    name: str
    uid: str
    namespace: str
    spec: dict
    labels: dict[str, str]
    annotations: dict[str, str]
    created: datetime
    deadline: float | None  # monotonic
    parent: str | None
    nodes: dict[str, str] = field(default_factory=dict)
    status: str | None = None  # set for the exit handler ({{workflow.status}})

    def globals(self) -> dict[str, str]:
        g = {
            "workflow.name": self.name, "workflow.namespace": self.namespace, "workflow.uid": self.uid,
            "workflow.serviceAccountName": str(self.spec.get("serviceAccountName", "default")),
            "workflow.creationTimestamp": self.created.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "workflow.mainEntrypoint": str(self.spec.get("entrypoint", "")),
        }
        if self.status is not None:
            g["workflow.status"] = self.status
        params = (self.spec.get("arguments") or {}).get("parameters", [])
        for p in params:
            value = p.get("value", p.get("default"))
            if value is not None:
                g[f"workflow.parameters.{p['name']}"] = any_string(value)
        g["workflow.parameters"] = go_json([{k: any_string(v) if k in ("value", "default") else v
                                             for k, v in p.items()} for p in params])
        for k, v in self.labels.items():
            g[f"workflow.labels.{k}"] = v
        for k, v in self.annotations.items():
            g[f"workflow.annotations.{k}"] = v
        return g


def _random_suffix(rng: random.Random, n: int = 5) -> str:
    return "".join(rng.choice(string.ascii_lowercase + string.digits) for _ in range(n))


def _merge_spec(template_spec: dict, wf_spec: dict) -> dict:
    """Argo's JoinWorkflowSpec: the Workflow's fields over the WorkflowTemplate's; arguments merged by name."""
    out = copy.deepcopy(template_spec)
    for key, value in wf_spec.items():
        if key == "workflowTemplateRef":
            continue
        if key == "arguments":
            merged = {p["name"]: p for p in (out.get("arguments") or {}).get("parameters", [])}
            for p in (value or {}).get("parameters", []):
                merged[p["name"]] = {**merged.get(p["name"], {}), **p}
            out["arguments"] = {"parameters": list(merged.values())}
        elif isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = {**out[key], **copy.deepcopy(value)}
        else:
            out[key] = copy.deepcopy(value)
    return out


# =================================================================================================
# Executors
# =================================================================================================


@dataclass
class PodResult:
    exit_code: int | None
    phase: str
    message: str
    stdout: str
    stderr: str
    outputs: dict[str, str]
    seconds: float
    killed: bool = False
    argv: list[str] = field(default_factory=list)


class DryRunExecutor:
    """Runs nothing: every pod succeeds with an empty stdout (or what ``results`` gives for it)."""

    def __init__(self, results: Callable[[Pod], str] | None = None) -> None:
        self.results = results

    def run(self, pod: Pod, settings: Settings) -> PodResult:
        stdout = self.results(pod) if self.results else ""
        outputs = {o["name"]: any_string(o["valueFrom"]["default"]) for o in pod.outputs
                   if "default" in (o.get("valueFrom") or {})}
        return PodResult(0, SUCCEEDED, "", stdout, "", outputs, 0.0, argv=pod.podman_argv(settings.podman))


class PodmanExecutor:
    """Runs each pod as one podman container (no --rm: outputs are read, then the container is removed by id)."""

    def __init__(self, work_dir: Path) -> None:
        self.work_dir = work_dir
        self._inspected: dict[str, str] = {}

    def _image_user(self, image: str, settings: Settings) -> str:
        if image not in self._inspected:
            proc = subprocess.run([*settings.podman, "image", "inspect", "--format", "{{.Config.User}}", image],
                                  capture_output=True, text=True, env={**os.environ, **settings.podman_env})
            if proc.returncode != 0:
                raise ReplayError(f"image {image!r} is not available to podman: {_one_line(proc.stderr)}")
            self._inspected[image] = proc.stdout.strip()
        return self._inspected[image]

    def run(self, pod: Pod, settings: Settings) -> PodResult:
        penv = {**os.environ, **settings.podman_env}
        if pod.run_as_non_root:
            user = (pod.user or "").split(":")[0] or self._image_user(pod.image, settings).split(":")[0]
            if not user.isdigit():
                return PodResult(None, ERROR, "CreateContainerConfigError: container has runAsNonRoot and image "
                                 f"has non-numeric user ({user or 'none'}), cannot verify user is non-root",
                                 "", "", {}, 0.0)
            if int(user) == 0:
                return PodResult(None, ERROR, "CreateContainerConfigError: container has runAsNonRoot and image "
                                 "will run as root", "", "", {}, 0.0)
        base = Path(tempfile.mkdtemp(prefix=f"{pod.name[-40:]}-{pod.attempt}-", dir=self.work_dir))
        dirs: dict[str, str] = {}
        if pod.script is not None:
            staging = base / "staging"
            staging.mkdir()
            script = staging / "script"
            script.write_text(pod.script)
            script.chmod(0o755)
            dirs["@staging"] = str(staging)
        for key in ["@var-run-argo"] + [name for name, _, _, medium in pod.volumes if medium != "Memory"]:
            d = base / ("vol-" + key.lstrip("@"))
            d.mkdir(exist_ok=True)
            d.chmod(0o777)  # the kubelet's emptyDir mode: any runAsUser can write
            dirs[key] = str(d)
        cidfile = base / "cid"
        argv = pod.podman_argv(settings.podman, dirs, str(cidfile))
        env = {**penv, **pod.env}
        out_path, err_path = base / "stdout", base / "stderr"
        kills = [k for k in settings.kills if k.matches(pod.task, pod.template_name, pod.attempt, pod.parameters)]
        start = time.monotonic()
        killed, timed_out = False, False
        with open(out_path, "wb") as out, open(err_path, "wb") as err:
            proc = subprocess.Popen(argv, stdout=out, stderr=err, stdin=subprocess.DEVNULL, env=env)
            try:
                while proc.poll() is None:
                    elapsed = time.monotonic() - start
                    if pod.timeout_s is not None and elapsed > pod.timeout_s:
                        timed_out = True
                        self._kill(cidfile, settings, penv)
                        break
                    for rule in kills:
                        if not rule.fired and rule.due(elapsed):
                            rule.fired, rule.fired_after_s = True, round(elapsed, 1)
                            killed = self._kill(cidfile, settings, penv)
                    time.sleep(min([0.2] + [k.poll_s for k in kills]))
                code = proc.wait(timeout=120)
            except BaseException:
                self._kill(cidfile, settings, penv)
                proc.wait(timeout=60)
                self._remove(cidfile, settings, penv)
                raise
        seconds = time.monotonic() - start
        stdout = out_path.read_text(errors="replace")
        stderr = err_path.read_text(errors="replace")
        outputs, missing = {}, []
        for o in pod.outputs:
            vf = o.get("valueFrom") or {}
            value = self._read_output(vf["path"], pod, dirs, cidfile, settings, penv)
            if value is None and "default" in vf:
                value = any_string(vf["default"])
            if value is None:
                missing.append(o["name"])
            else:
                outputs[o["name"]] = value
        self._remove(cidfile, settings, penv)
        for name, d in dirs.items():
            if name != "@staging":
                shutil.rmtree(d, ignore_errors=True)
        if timed_out:
            phase = ERROR
            message = f"Pod was active on the node longer than the specified deadline ({pod.timeout_s:g} s)"
        elif killed:
            phase, message = ERROR, f"container killed by the harness (exit code {code}): pod lost, as a node failure"
        elif code == 0:
            phase, message = SUCCEEDED, ""
        elif code in (125, 126, 127) and not stdout and _podman_error(stderr):
            phase, message = ERROR, f"pod could not start: {_podman_error(stderr)}"
        elif code > 128:
            phase, message = ERROR, f"Error (exit code {code}): terminated by signal {code - 128}"
        else:
            phase, message = FAILED, f"Error (exit code {code})"
        if phase == SUCCEEDED and missing:
            phase, message = ERROR, f"output parameter(s) {', '.join(missing)} not found and no default"
        if phase == SUCCEEDED and len(stdout.encode()) > MAX_RESULT_BYTES:
            phase, message = ERROR, "outputs.result over Argo's 256 kB"
        return PodResult(code, phase, message, stdout, stderr, outputs, seconds, killed, argv)

    def _read_output(self, path: str, pod: Pod, dirs, cidfile: Path, settings, penv) -> str | None:
        for name, mount, _, medium in sorted(pod.volumes, key=lambda v: -len(v[1])):
            if medium != "Memory" and (path == mount or path.startswith(mount.rstrip("/") + "/")):
                host = Path(dirs[name]) / os.path.relpath(path, mount)
                return host.read_text() if host.is_file() else None
        cid = cidfile.read_text().strip() if cidfile.exists() else ""
        if not cid:
            return None
        with tempfile.TemporaryDirectory(dir=self.work_dir) as tmp:
            proc = subprocess.run([*settings.podman, "cp", f"{cid}:{path}", tmp + "/out"], capture_output=True,
                                  env=penv)
            target = Path(tmp) / "out"
            return target.read_text() if proc.returncode == 0 and target.is_file() else None

    def _kill(self, cidfile: Path, settings: Settings, penv) -> bool:
        for _ in range(50):  # the cidfile appears once podman has created the container
            if cidfile.exists() and cidfile.read_text().strip():
                break
            time.sleep(0.1)
        else:
            return False
        cid = cidfile.read_text().strip()
        proc = subprocess.run([*settings.podman, "kill", "--signal", "KILL", cid], capture_output=True, env=penv)
        return proc.returncode == 0

    def _remove(self, cidfile: Path, settings: Settings, penv) -> None:
        if cidfile.exists() and cidfile.read_text().strip():
            subprocess.run([*settings.podman, "rm", "--force", cidfile.read_text().strip()], capture_output=True,
                           env=penv)


def _one_line(text: str) -> str:
    lines = [ln.strip() for ln in (text or "").strip().splitlines() if ln.strip()]
    return lines[-1] if lines else "(no message)"


def _podman_error(stderr: str) -> str:
    for ln in stderr.splitlines():
        if ln.startswith("Error:") or "OCI runtime" in ln or "runc" in ln:
            return ln.strip()
    return ""


def podman_problem(image: str, podman: Sequence[str] = ("podman",), env: Mapping[str, str] | None = None,
                   timeout: float = 120) -> str | None:
    """None when podman can run a container of ``image`` like a restricted pod; else one line saying why."""
    if shutil.which(podman[0]) is None:
        return f"podman is not installed ({podman[0]!r} not on PATH)"
    argv = [*podman, "run", "--rm", "--pull=never", "--network=host", "--read-only", "--read-only-tmpfs=false",
            "--user", "1000:1000", "--cap-drop", "all", "--security-opt", "no-new-privileges",
            "--entrypoint", '["python", "-c", "print(1)"]', image]
    try:
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=timeout,
                              env={**os.environ, **(env or {})})
    except subprocess.TimeoutExpired:
        return f"podman could not run a container of {image} within {timeout:g} s"
    if proc.returncode != 0 or proc.stdout.strip() != "1":
        return f"podman cannot run containers here ({' '.join(argv[:2])} {image} -> exit {proc.returncode}: " \
               f"{_one_line(proc.stderr)})"
    return None


# =================================================================================================
# The controller
# =================================================================================================


class Replay:
    """Execute rendered Argo objects as the controller would; see the module docstring."""

    def __init__(self, objects: Iterable[dict | Any], settings: Settings | None = None) -> None:
        self.settings = settings or Settings()
        self.objects = [copy.deepcopy(getattr(o, "obj", o)) for o in objects]
        self.not_applicable: dict[str, str] = {}
        for obj in self.objects:
            check_object(obj, self.not_applicable)
        self.templates: dict[str, dict] = {}
        for obj in self.objects:
            if obj["kind"] == "WorkflowTemplate":
                name = obj["metadata"].get("name")
                if not name:
                    raise ReplayError(f"{describe(obj)}: a WorkflowTemplate needs metadata.name")
                if name in self.templates:
                    raise ReplayError(f"WorkflowTemplate {name!r} given twice")
                self.templates[name] = obj
        self.submitted = [o for o in self.objects if o["kind"] == "Workflow"]
        self.pods: list[PodRecord] = []
        self.workflows: list[WorkflowRun] = []
        self._rng = random.Random(self.settings.seed)
        self._executor: Any = None
        self._pending_backoff = 0.0  # Argo's backoff before the next attempt, recorded on its first pod
        #: the Workflows "in the cluster" by name (what create / apply / patch find)
        self.cluster: dict[str, WorkflowRun] = {}
        #: (workflow name, merge patch) of every patch a resource template applied
        self.patches: list[tuple[str, dict]] = []

    # -- entry points -------------------------------------------------------------------------------

    def run(self, executor: Any = None) -> list[WorkflowRun]:
        """Run every submitted Workflow (in the order given) to completion with podman."""
        if executor is None:
            work = Path(self.settings.work_dir or tempfile.mkdtemp(prefix="argo-replay-"))
            work.mkdir(parents=True, exist_ok=True)
            executor = PodmanExecutor(work)
        self._executor = executor
        if not self.submitted:
            raise ReplayError("no Workflow among the objects: nothing is submitted")
        return [self.run_workflow(obj) for obj in self.submitted]

    def dry_run(self, results: Callable[[Pod], str] | None = None) -> list[PodRecord]:
        """The pods in the order they would run, each succeeding; nothing is started."""
        self.run(DryRunExecutor(results))
        return self.pods

    # -- workflows -----------------------------------------------------------------------------------

    def _log(self, text: str) -> None:
        if self.settings.log:
            self.settings.log(text)

    def run_workflow(self, obj: dict, parent: str | None = None) -> WorkflowRun:
        meta = obj.get("metadata") or {}
        spec = obj.get("spec") or {}
        labels = dict(meta.get("labels") or {})
        annotations = dict(meta.get("annotations") or {})
        owner = describe(obj)
        local_spec = spec
        if "workflowTemplateRef" in spec:
            ref = spec["workflowTemplateRef"]["name"]
            if ref not in self.templates:
                raise ReplayError(f"{owner} refers to WorkflowTemplate {ref!r}, which is not among the objects")
            wt = self.templates[ref]
            local_spec = _merge_spec(wt["spec"], spec)
            wm = wt["spec"].get("workflowMetadata") or {}
            for k, v in (wm.get("labels") or {}).items():
                labels.setdefault(k, v)
            for k, v in (wm.get("annotations") or {}).items():
                annotations.setdefault(k, v)
            owner = f"WorkflowTemplate/{ref}"
        name = meta.get("name") or (meta.get("generateName", "") + _random_suffix(self._rng))
        if not meta.get("name") and not meta.get("generateName"):
            raise ReplayError(f"{describe(obj)} has neither metadata.name nor metadata.generateName")
        if "workflowTemplateRef" not in spec:
            owner = f"Workflow/{name}"
        if "entrypoint" not in local_spec:
            raise ReplayError(f"{describe(obj)}: no entrypoint")
        deadline = local_spec.get("activeDeadlineSeconds")
        started = time.monotonic()
        wf = _Workflow(
            name=name, uid=str(uuid.UUID(int=self._rng.getrandbits(128), version=4)),
            namespace=meta.get("namespace") or self.settings.namespace, spec=local_spec, labels=labels,
            annotations=annotations, created=datetime.now(UTC),
            deadline=started + duration_s(deadline) if deadline is not None else None, parent=parent,
        )
        templates = {t["name"]: t for t in local_spec.get("templates", [])}
        entry = local_spec["entrypoint"]
        if entry not in templates:
            raise ReplayError(f"{describe(obj)}: entrypoint {entry!r} is not one of its templates")
        self._log(f"workflow {name} started" + (f" (created by {parent})" if parent else ""))
        ctx = _Ctx(wf, templates, owner)
        args = (local_spec.get("arguments") or {}).get("parameters", [])
        outcome = self.execute(ctx, templates[entry], {p["name"]: any_string(p.get("value", p.get("default")))
                                                       for p in args if "value" in p or "default" in p},
                               node_name=name, task=entry)
        exit_phase = None
        if local_spec.get("onExit"):
            handler = local_spec["onExit"]
            if handler not in templates:
                raise ReplayError(f"{describe(obj)}: onExit {handler!r} is not one of its templates")
            wf.status = outcome.phase
            self._log(f"workflow {name} {outcome.phase}: exit handler {handler}")
            exit_out = self.execute(ctx, templates[handler], {}, node_name=f"{name}.onExit", task=handler)
            exit_phase = exit_out.phase
            if outcome.phase == SUCCEEDED and exit_phase in (FAILED, ERROR):
                outcome = NodeOutcome(FAILED, f"exit handler {handler} {exit_phase.lower()}: {exit_out.message}")
        run = WorkflowRun(name, wf.uid, outcome.phase, outcome.message, labels, parent, wf.nodes,
                          round(time.monotonic() - started, 1), exit_handler=exit_phase)
        self.cluster[name] = run
        self.workflows.append(run)
        self._log(f"workflow {name} {outcome.phase}" + (f": {outcome.message}" if outcome.message else ""))
        return run

    # -- templates -----------------------------------------------------------------------------------

    def _resolve(self, ctx: _Ctx, task: dict) -> tuple[dict, _Ctx]:
        if "templateRef" in task:
            ref = task["templateRef"]
            wt = self.templates.get(ref["name"])
            if wt is None:
                raise ReplayError(f"task {task['name']!r}: WorkflowTemplate {ref['name']!r} is not among the objects")
            local = {t["name"]: t for t in wt["spec"].get("templates", [])}
            if ref["template"] not in local:
                raise ReplayError(f"task {task['name']!r}: {ref['name']} has no template {ref['template']!r}")
            return local[ref["template"]], _Ctx(ctx.wf, local, f"WorkflowTemplate/{ref['name']}")
        if "template" not in task:
            raise ReplayError(f"task {task['name']!r} names no template")
        if task["template"] not in ctx.templates:
            raise ReplayError(f"task {task['name']!r}: no template {task['template']!r} in {ctx.owner}")
        return ctx.templates[task["template"]], ctx

    def _inputs(self, tmpl: dict, given: Mapping[str, str]) -> list[dict]:
        out = []
        for p in (tmpl.get("inputs") or {}).get("parameters", []):
            q = {k: v for k, v in p.items() if k != "description"}
            if p["name"] in given:
                q["value"] = given[p["name"]]
            elif "value" in p:
                q["value"] = any_string(p["value"])
            elif "default" in p:
                q["value"] = any_string(p["default"])
            else:
                raise _NodeError(f"inputs.parameters.{p['name']} had no value")
            if "default" in q:
                q["default"] = any_string(q["default"])
            if "enum" in p:
                allowed = [any_string(v) for v in p["enum"]]
                q["enum"] = allowed
                if q["value"] not in allowed:
                    raise _NodeError(f"inputs.parameters.{p['name']} value {q['value']!r} is not in its enum {allowed}")
            out.append(q)
        return out

    def execute(self, ctx: _Ctx, tmpl: dict, arguments: Mapping[str, str], *, node_name: str,
                task: str) -> NodeOutcome:
        """Run one template (with its retries) for one node."""
        try:
            inputs = self._inputs(tmpl, arguments)
        except _NodeError as exc:
            ctx.wf.nodes[node_name] = ERROR
            return NodeOutcome(ERROR, str(exc))
        values = ctx.wf.globals()
        for p in inputs:
            values[f"inputs.parameters.{p['name']}"] = p["value"]
        values["inputs.parameters"] = inputs_json(inputs)
        for o in (tmpl.get("outputs") or {}).get("parameters", []):
            if (o.get("valueFrom") or {}).get("path"):
                values[f"outputs.parameters.{o['name']}.path"] = o["valueFrom"]["path"]
        resolved = substitute_tree({k: v for k, v in tmpl.items() if k != "inputs"}, values,
                                   skip=("metrics", "dag"))
        resolved["inputs"] = {"parameters": inputs} if inputs else {}
        if "dag" in tmpl:  # task arguments are resolved per task, with the DAG's inputs in scope
            resolved["dag"] = tmpl["dag"]
        retry = resolved.get("retryStrategy")
        limit = int(quantity(retry.get("limit", 0))) if retry else 0
        policy = (retry or {}).get("retryPolicy", "OnFailure")
        attempt = 0
        started = time.monotonic()
        while True:
            name = f"{node_name}({attempt})" if retry else node_name
            outcome = self._execute_once(ctx, resolved, values, inputs, node_name=name, task=task, attempt=attempt)
            ctx.wf.nodes[name] = outcome.phase
            if outcome.phase in (SUCCEEDED, SKIPPED, OMITTED) or not retry or attempt >= limit:
                break
            if not self._should_retry(retry, policy, outcome, time.monotonic() - started):
                break
            attempt += 1
            wait = self._backoff(retry, attempt)
            self._pending_backoff = wait
            self._log(f"  retry {attempt}/{limit} of {task} after {outcome.phase} "
                      f"(Argo backoff {wait:g} s, waited {wait * self.settings.backoff_scale:g} s)")
            if wait and self.settings.backoff_scale:
                time.sleep(wait * self.settings.backoff_scale)
        if retry:
            ctx.wf.nodes[node_name] = outcome.phase
        return outcome

    def _should_retry(self, retry: dict, policy: str, outcome: NodeOutcome, elapsed: float) -> bool:
        if policy == "Always":
            ok = outcome.phase in (FAILED, ERROR)
        elif policy == "OnFailure":
            ok = outcome.phase == FAILED
        elif policy == "OnError":
            ok = outcome.phase == ERROR
        else:  # OnTransientError: no error the harness produces is classed transient by Argo
            ok = False
        if ok and "expression" in retry:
            last = {"lastRetry.exitCode": outcome.exit_code if outcome.exit_code is not None else -1,
                    "lastRetry.status": outcome.phase, "lastRetry.duration": elapsed,
                    "lastRetry.message": outcome.message}
            ok = bool(eval_expression(retry["expression"], last, bare_words_are_strings=False))
        backoff = retry.get("backoff") or {}
        if ok and "maxDuration" in backoff and elapsed > duration_s(backoff["maxDuration"]):
            ok = False
        return ok

    @staticmethod
    def _backoff(retry: dict, attempt: int) -> float:
        b = retry.get("backoff") or {}
        if "duration" not in b:
            return 0.0
        wait = duration_s(b["duration"]) * float(quantity(b.get("factor", 1))) ** (attempt - 1)
        return wait

    def _execute_once(self, ctx: _Ctx, tmpl: dict, values: dict, inputs: list[dict], *, node_name: str,
                      task: str, attempt: int) -> NodeOutcome:
        if "dag" in tmpl:
            return self._run_dag(ctx, tmpl, values, node_name)
        if "resource" in tmpl:
            return self._run_resource(ctx, tmpl, inputs, node_name, task, attempt)
        return self._run_pod(ctx, tmpl, inputs, node_name, task, attempt)

    # -- DAG -------------------------------------------------------------------------------------------

    def _run_dag(self, ctx: _Ctx, tmpl: dict, values: dict, node_name: str) -> NodeOutcome:
        dag = tmpl["dag"]
        tasks = dag.get("tasks", [])
        by_name = {}
        for t in tasks:
            if t["name"] in by_name:
                raise ReplayError(f"{ctx.owner}: DAG task {t['name']!r} appears twice")
            by_name[t["name"]] = t
        deps: dict[str, list[str]] = {}
        logic: dict[str, str | None] = {}
        for t in tasks:
            if "depends" in t and "dependencies" in t:
                raise ReplayError(f"task {t['name']!r} has both depends and dependencies (Argo refuses this)")
            if "depends" in t:
                logic[t["name"]] = t["depends"]
                deps[t["name"]] = depends_tasks(t["depends"])
            elif t.get("dependencies"):
                deps[t["name"]] = list(t["dependencies"])
                logic[t["name"]] = " && ".join(t["dependencies"])
            else:
                deps[t["name"]], logic[t["name"]] = [], None
            for d in deps[t["name"]]:
                if d not in by_name:
                    raise ReplayError(f"task {t['name']!r} depends on {d!r}, which is not a task of this DAG")
        fail_fast = dag.get("failFast", tmpl.get("failFast", True))
        if "failFast" in dag and "failFast" in tmpl and dag["failFast"] != tmpl["failFast"]:
            raise ReplayError(f"{ctx.owner}/{tmpl['name']}: template failFast {tmpl['failFast']} and dag failFast "
                              f"{dag['failFast']} disagree")
        states: dict[str, TaskState] = {}
        outcomes: dict[str, NodeOutcome] = {}
        stopped = False
        while True:
            ready = [t for t in tasks if t["name"] not in states and all(d in states for d in deps[t["name"]])]
            if not ready:
                break
            t = ready[0]
            tname = t["name"]
            full = f"{node_name}.{tname}"
            if stopped:
                states[tname] = TaskState(OMITTED)
                outcomes[tname] = NodeOutcome(OMITTED, "not scheduled: failFast after a failed task")
                ctx.wf.nodes[full] = OMITTED
                continue
            if logic[tname] is not None and not eval_depends(logic[tname], states):
                states[tname] = TaskState(OMITTED)
                outcomes[tname] = NodeOutcome(OMITTED, "omitted: depends condition not met")
                ctx.wf.nodes[full] = OMITTED
                continue
            out = self._run_task(ctx, t, values, outcomes, full)
            outcomes[tname] = out
            states[tname] = TaskState(out.phase, out.children)
            ctx.wf.nodes[full] = out.phase
            if fail_fast and out.phase in (FAILED, ERROR) and not _continues_on(t, out.phase):
                stopped = True
        left = [t["name"] for t in tasks if t["name"] not in states]
        if left:
            raise ReplayError(f"{ctx.owner}: DAG tasks {left} can never run (a dependency cycle)")
        phase, message = self._dag_phase(tasks, deps, outcomes, stopped)
        return NodeOutcome(phase, message)

    @staticmethod
    def _dag_phase(tasks: list[dict], deps: dict[str, list[str]], outcomes: dict[str, NodeOutcome],
                   stopped: bool) -> tuple[str, str]:
        """Argo's assessDAGPhase: leaf tasks' branch phases (an omitted task inherits its parents', failures first)."""
        dependents = {d for t in tasks for d in deps[t["name"]]}
        branch: dict[str, str] = {}
        order: list[str] = []
        seen: set[str] = set()

        def visit(name: str) -> None:
            if name in seen:
                return
            seen.add(name)
            for d in deps[name]:
                visit(d)
            order.append(name)

        for t in tasks:
            visit(t["name"])
        origin: dict[str, str] = {}  # the task whose own phase a branch carries
        for name in order:
            phase = outcomes[name].phase
            if phase in (SUCCEEDED, FAILED, ERROR, SKIPPED):
                branch[name], origin[name] = (SUCCEEDED if phase == SKIPPED else phase), name
            else:
                failed = [d for d in deps[name] if branch[d] in (FAILED, ERROR)]
                branch[name] = branch[failed[0]] if failed else SUCCEEDED
                origin[name] = origin[failed[0]] if failed else name
        task_by = {t["name"]: t for t in tasks}
        for t in tasks:
            name = t["name"]
            if name in dependents:
                continue
            if branch[name] in (FAILED, ERROR) and not _continues_on(task_by[name], branch[name]):
                src = origin[name]
                return branch[name], f"task {src!r} {branch[name].lower()}: {outcomes[src].message}".rstrip(": ")
        if stopped:
            return FAILED, "failFast: a task failed"
        return SUCCEEDED, ""

    def _task_values(self, ctx: _Ctx, values: dict, outcomes: Mapping[str, NodeOutcome]) -> dict:
        scope = dict(values)
        for name, out in outcomes.items():
            scope[f"tasks.{name}.status"] = out.phase
            if out.result is not None:
                scope[f"tasks.{name}.outputs.result"] = out.result
            for k, v in out.parameters.items():
                scope[f"tasks.{name}.outputs.parameters.{k}"] = v
        return scope

    def _run_task(self, ctx: _Ctx, task: dict, values: dict, outcomes: Mapping[str, NodeOutcome],
                  node_name: str) -> NodeOutcome:
        scope = self._task_values(ctx, values, outcomes)
        if "withItems" in task or "withParam" in task:
            if "withItems" in task:
                items = task["withItems"]
            else:
                text = substitute(task["withParam"], scope)
                if unresolved(text):
                    raise ReplayError(f"task {task['name']!r}: withParam {text!r} is not resolved")
                try:
                    items = json.loads(text)
                except json.JSONDecodeError:
                    return NodeOutcome(ERROR, f"withParam value {text[:60]!r} is not a JSON list")
                if not isinstance(items, list):
                    return NodeOutcome(ERROR, f"withParam value {text[:60]!r} is not a JSON list")
            phases = []
            for i, item in enumerate(items):
                item_scope = dict(scope)
                item_scope["item"] = any_string(item)
                if isinstance(item, dict):
                    for k, v in item.items():
                        item_scope[f"item.{k}"] = any_string(v)
                label = any_string(item) if not isinstance(item, (dict, list)) else go_json(item)
                out = self._run_one_task(ctx, task, item_scope, f"{node_name}({i}:{label})")
                phases.append(out.phase)
            group = SUCCEEDED if all(p in (SUCCEEDED, SKIPPED) for p in phases) else \
                next(p for p in phases if p not in (SUCCEEDED, SKIPPED))
            return NodeOutcome(group, children=tuple(phases))
        return self._run_one_task(ctx, task, scope, node_name)

    def _run_one_task(self, ctx: _Ctx, task: dict, scope: dict, node_name: str) -> NodeOutcome:
        if "when" in task:
            cond = substitute(task["when"], scope)
            if unresolved(cond):
                raise ReplayError(f"task {task['name']!r}: when {cond!r} is not resolved")
            if not eval_expression(cond, bare_words_are_strings=True):
                return NodeOutcome(SKIPPED, f"when '{cond}' evaluated false")
        args = {}
        for p in (task.get("arguments") or {}).get("parameters", []):
            if "value" not in p:
                raise ReplayError(f"task {task['name']!r}: argument {p['name']!r} has no value")
            value = substitute(any_string(p["value"]), scope)
            if unresolved(value):
                return NodeOutcome(ERROR, f"argument {p['name']!r}: unable to resolve {unresolved(value)[0]}")
            args[p["name"]] = value
        tmpl, sub = self._resolve(ctx, task)
        return self.execute(sub, tmpl, args, node_name=node_name, task=task["name"])

    # -- resource templates ----------------------------------------------------------------------------

    def _run_resource(self, ctx: _Ctx, tmpl: dict, inputs: list[dict], node_name: str, task: str,
                      attempt: int) -> NodeOutcome:
        res = tmpl["resource"]
        left = unresolved(res)
        if left:
            raise ReplayError(f"{ctx.owner}/{tmpl['name']}: resource manifest has unresolved {left[0]}")
        start = time.monotonic()
        record = PodRecord(ctx.wf.name, node_name, task, f"{ctx.owner.split('/', 1)[1]}/{tmpl['name']}", "resource",
                           {p["name"]: p["value"] for p in inputs}, attempt, "", None, 0.0,
                           backoff_s=self._take_backoff())
        action = res.get("action", "")
        try:
            child = yaml.safe_load(res["manifest"])
        except yaml.YAMLError as exc:
            return self._finish(record, NodeOutcome(ERROR, f"manifest is not YAML: {exc}"), start)
        if action == "patch":
            return self._patch(res, child, record, start)
        check_object(child, self.not_applicable)
        if child.get("kind") != "Workflow":
            raise UnsupportedField(f"{ctx.owner}/{tmpl['name']}: resource.manifest.kind",
                                   f"creates a {child.get('kind')}; only Workflows are replayed")
        wanted = (child.get("metadata") or {}).get("name")
        if action == "apply" and not wanted:
            out = NodeOutcome(ERROR, "apply needs metadata.name (kubectl apply refuses generateName)", exit_code=1)
            return self._finish(record, out, start)
        self.pods.append(record)
        if wanted in self.cluster and action == "create":
            out = NodeOutcome(FAILED, f'workflows.argoproj.io "{wanted}" already exists', exit_code=1)
            return self._finish(record, out, start, append=False)
        if wanted in self.cluster:  # apply of an existing object: unchanged, wait on it
            run = self.cluster[wanted]
            record.message = f"{wanted} unchanged"
            self._log(f"  {ctx.wf.name}: {task} applies {wanted}: unchanged")
        else:
            self._log(f"  {ctx.wf.name}: {task} ({action}) {describe(child)}")
            run = self.run_workflow(child, parent=ctx.wf.name)
        record.child = run.name
        state = {"apiVersion": child["apiVersion"], "kind": "Workflow",
                 "metadata": {"name": run.name, "namespace": ctx.wf.namespace, "labels": run.labels},
                 "status": {"phase": run.phase, "message": run.message}}
        if (task, attempt) in self.settings.lost_resources:
            out = NodeOutcome(ERROR, f"pod deleted (evicted) while waiting on {run.name}")
            return self._finish(record, out, start, append=False)
        failure, success = res.get("failureCondition"), res.get("successCondition")
        if failure and eval_condition(failure, state):
            out = NodeOutcome(FAILED, f"failureCondition '{failure}' met (child {run.name} {run.phase})", exit_code=1)
        elif success and eval_condition(success, state):
            out = NodeOutcome(SUCCEEDED, exit_code=0)
        elif not success and not failure:
            out = NodeOutcome(SUCCEEDED, exit_code=0)  # create without conditions: done once created
        else:
            out = NodeOutcome(ERROR, f"neither condition holds for the finished child {run.name} ({run.phase}): "
                                     "Argo would wait until the deadline")
        out.parameters = {}
        if record.message:  # "<child> unchanged": a re-applied child
            out.message = f"{record.message}; {out.message}" if out.message else record.message
        return self._finish(record, out, start, append=False)

    def _patch(self, res: dict, patch: Any, record: PodRecord, start: float) -> NodeOutcome:
        """``kubectl patch --type merge``: the named Workflow must exist; the patch is recorded (the
        sequential replay has already finished it, and Argo ignores a shutdown of a finished workflow)."""
        if res.get("mergeStrategy") != "merge" or not isinstance(patch, dict) or patch.get("kind") != "Workflow":
            raise UnsupportedField("resource.mergeStrategy", "only merge patches of Workflows are replayed")
        name = (patch.get("metadata") or {}).get("name")
        if name not in self.cluster:
            out = NodeOutcome(FAILED, f'workflows.argoproj.io "{name}" not found', exit_code=1)
            return self._finish(record, out, start)
        self.patches.append((name, {k: v for k, v in patch.items() if k not in ("apiVersion", "kind", "metadata")}))
        record.child = name
        return self._finish(record, NodeOutcome(SUCCEEDED, exit_code=0), start)

    def _take_backoff(self) -> float:
        wait, self._pending_backoff = self._pending_backoff, 0.0
        return wait

    def _finish(self, record: PodRecord, out: NodeOutcome, start: float, append: bool = True) -> NodeOutcome:
        record.phase, record.message, record.exit_code = out.phase, out.message, out.exit_code
        record.seconds = round(time.monotonic() - start, 1)
        if append:
            self.pods.append(record)
        return out

    # -- pods --------------------------------------------------------------------------------------------

    def _run_pod(self, ctx: _Ctx, tmpl: dict, inputs: list[dict], node_name: str, task: str,
                 attempt: int) -> NodeOutcome:
        kind = "script" if "script" in tmpl else "container"
        template_id = f"{ctx.owner.split('/', 1)[1]}/{tmpl['name']}"
        params = {p["name"]: p["value"] for p in inputs}
        record = PodRecord(ctx.wf.name, node_name, task, template_id, "pod", params, attempt, "", None, 0.0,
                           backoff_s=self._take_backoff())
        try:
            pod = self._pod(ctx, tmpl, kind, node_name, task, attempt, params)
        except _NodeError as exc:
            return self._finish(record, NodeOutcome(ERROR, str(exc)), time.monotonic())
        record.pod = pod.name
        self._log(f"  {ctx.wf.name}: pod {task} ({template_id}) attempt {attempt} started")
        result = self._executor.run(pod, self.settings)
        record.argv = result.argv
        record.killed = result.killed
        record.result = result.stdout[:2000]
        record.stderr_tail = "\n".join(result.stderr.splitlines()[-15:])
        out = NodeOutcome(result.phase, result.message, result.stdout.removesuffix("\n"), result.outputs,
                          exit_code=result.exit_code, killed=result.killed)
        record.phase, record.message, record.exit_code = out.phase, out.message, out.exit_code
        record.seconds = round(result.seconds, 1)
        self.pods.append(record)
        self._log(f"  {ctx.wf.name}: pod {task} {out.phase} (exit {result.exit_code}, {result.seconds:.1f} s)"
                  + (f": {out.message}" if out.message else ""))
        return out

    def _pod(self, ctx: _Ctx, tmpl: dict, kind: str, node_name: str, task: str, attempt: int,
             params: dict[str, str]) -> Pod:
        c = tmpl[kind]
        wf = ctx.wf
        spec = wf.spec
        name = pod_name(wf.name, tmpl["name"], node_name)
        values = {"pod.name": name}
        c = substitute_tree(c, values)
        left = unresolved({k: v for k, v in c.items()})
        if left:
            raise ReplayError(f"{ctx.owner}/{tmpl['name']}: unresolved {left[0]} in the {kind} (Argo would refuse "
                              "the workflow)")
        image = self.settings.image or c.get("image")
        if not image:
            raise ReplayError(f"{ctx.owner}/{tmpl['name']}: no image")
        pod_sc = tmpl.get("securityContext", spec.get("securityContext")) or {}
        sc = {**{k: v for k, v in pod_sc.items() if k in ("runAsUser", "runAsGroup", "runAsNonRoot",
                                                           "seccompProfile")},
              **(c.get("securityContext") or {})}
        user = None
        if "runAsUser" in sc:
            user = str(sc["runAsUser"]) + (f":{sc['runAsGroup']}" if "runAsGroup" in sc else "")
        elif "runAsGroup" in sc:
            raise ReplayError(f"{ctx.owner}/{tmpl['name']}: runAsGroup without runAsUser is not replayed")
        groups = tuple(dict.fromkeys(([pod_sc["fsGroup"]] if "fsGroup" in pod_sc else [])
                                     + list(pod_sc.get("supplementalGroups", []))))
        caps = sc.get("capabilities") or {}
        # volumes: the template's, then the workflow's
        declared = {v["name"]: v for v in spec.get("volumes", [])}
        declared.update({v["name"]: v for v in tmpl.get("volumes", [])})
        volumes = []
        for m in c.get("volumeMounts", []):
            if m["name"] not in declared:
                raise ReplayError(f"{ctx.owner}/{tmpl['name']}: volumeMount {m['name']!r} names no volume")
            medium = (declared[m["name"]].get("emptyDir") or {}).get("medium", "")
            volumes.append((m["name"], m["mountPath"], bool(m.get("readOnly", False)), medium))
        # env: the template's (secrets resolved), Argo's own, the settings'
        env: dict[str, str] = {}
        secret_names = []
        for e in c.get("env", []):
            if "valueFrom" in e:
                ref = e["valueFrom"]["secretKeyRef"]
                secret = self.settings.secrets.get(ref["name"])
                if secret is None or ref["key"] not in secret:
                    if ref.get("optional", False):
                        env.pop(e["name"], None)
                        continue
                    what = f"secret {ref['name']!r} not found" if secret is None else \
                        f"couldn't find key {ref['key']} in Secret {ref['name']}"
                    raise _NodeError(f"CreateContainerConfigError: {what}")
                env[e["name"]] = secret[ref["key"]]
                secret_names.append(e["name"])
            else:
                env[e["name"]] = e.get("value", "")
        declared_env = {e["name"] for e in c.get("env", [])}
        clash = sorted(declared_env & set(self.settings.env))
        if clash:
            raise ReplayError(f"settings env {clash} would override the template's own env: pass it as a secret")
        deadline_s = self._timeout(wf, tmpl)
        deadline = (datetime.now(UTC) + timedelta(seconds=deadline_s)) if deadline_s is not None else None
        template_json = go_json({k: v for k, v in tmpl.items()})
        argo_env = {
            "ARGO_POD_NAME": name, "ARGO_POD_UID": str(uuid.UUID(int=self._rng.getrandbits(128), version=4)),
            "ARGO_NODE_ID": node_id(wf.name, node_name), "ARGO_CONTAINER_NAME": "main",
            "ARGO_TEMPLATE": template_json, "ARGO_INCLUDE_SCRIPT_OUTPUT": "true" if kind == "script" else "false",
            "ARGO_DEADLINE": deadline.strftime("%Y-%m-%dT%H:%M:%SZ") if deadline else "0001-01-01T00:00:00Z",
            "ARGO_WORKFLOW_NAME": wf.name, "ARGO_WORKFLOW_UID": wf.uid,
            "ARGO_PROGRESS_FILE": f"{VAR_RUN_ARGO}/progress", "ARGO_PROGRESS_PATCH_TICK_DURATION": "1m0s",
            "ARGO_PROGRESS_FILE_TICK_DURATION": "3s",
        }
        env = {**argo_env, **dict(self.settings.env), **env}
        limits = (c.get("resources") or {}).get("limits") or {}
        memory = int(quantity(limits["memory"])) if "memory" in limits else None
        notes = []
        cpus = None
        if "cpu" in limits:
            cpus = quantity(limits["cpu"])
            if cpus > self.settings.max_cpus:
                notes.append(f"cpu limit {limits['cpu']} capped at this machine's {self.settings.max_cpus:g} cores")
                cpus = self.settings.max_cpus
        script = c.get("source") if kind == "script" else None
        args = list(c.get("args", [])) + ([SCRIPT_PATH] if kind == "script" else [])
        if kind == "script" and not c.get("command"):
            raise ReplayError(f"{ctx.owner}/{tmpl['name']}: a script template needs a command")
        return Pod(
            name=name, workflow=wf.name, node_name=node_name, node_id=node_id(wf.name, node_name), task=task,
            template=f"{ctx.owner.split('/', 1)[1]}/{tmpl['name']}", template_name=tmpl["name"], attempt=attempt,
            parameters=params, image=image, entrypoint=list(c["command"]) if c.get("command") else None, args=args,
            env=env, secret_env=tuple(secret_names), workdir=c.get("workingDir"), user=user, groups=groups,
            run_as_non_root=bool(sc.get("runAsNonRoot", False)),
            read_only=bool(sc.get("readOnlyRootFilesystem", False)),
            cap_drop=tuple(caps.get("drop", [])), cap_add=tuple(caps.get("add", [])),
            no_new_privileges=sc.get("allowPrivilegeEscalation") is False,
            seccomp=(sc.get("seccompProfile") or {}).get("type"), memory=memory, cpus=cpus, volumes=volumes,
            host_mounts=list(self.settings.mounts), script=script,
            outputs=list((tmpl.get("outputs") or {}).get("parameters", [])), timeout_s=deadline_s,
            deadline=deadline, notes=notes,
        )

    @staticmethod
    def _timeout(wf: _Workflow, tmpl: dict) -> float | None:
        limits = []
        if "activeDeadlineSeconds" in tmpl:
            limits.append(duration_s(tmpl["activeDeadlineSeconds"]))
        if wf.deadline is not None:
            limits.append(max(0.0, wf.deadline - time.monotonic()))
        return min(limits) if limits else None


class _NodeError(Exception):
    """A node that Argo marks Error before any container runs (unresolvable input, missing secret)."""


def _continues_on(task: dict, phase: str) -> bool:
    c = task.get("continueOn") or {}
    return (phase == FAILED and c.get("failed", False)) or (phase == ERROR and c.get("error", False))


def load_objects(paths: Iterable[str | os.PathLike]) -> list[dict]:
    """Rendered objects from YAML files (one or more documents each)."""
    out = []
    for p in paths:
        for doc in yaml.safe_load_all(Path(p).read_text()):
            if doc is not None:
                out.append(doc)
    return out


def secrets_from_env(spec: Mapping[str, Mapping[str, str]], environ: Mapping[str, str] | None = None
                     ) -> dict[str, dict[str, str]]:
    """Kubernetes Secrets made from the host environment: ``{secret: {key: ENV_VAR}}`` -> values.

    Keys whose variable is not set are left out (a non-optional ref to them is then a pod Error).
    """
    environ = os.environ if environ is None else environ
    return {name: {key: environ[var] for key, var in keys.items() if var in environ} for name, keys in spec.items()}


def shell_line(argv: Sequence[str]) -> str:
    return " ".join(shlex.quote(a) for a in argv)
