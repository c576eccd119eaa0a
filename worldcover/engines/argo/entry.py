"""Runner entrypoints: what ``python -m hera.workflows.runner -e ...`` imports in the image.

Each entrypoint is a thin adapter around one function of
:mod:`worldcover.campaign.steps` (the functions both engines call):

* it carries the step's signature with *evaluated* annotations. The steps
  module uses ``from __future__ import annotations`` and hera's runner cannot
  read string annotations (``issubclass() arg 1 must be a class``), so it
  would fail on the step function itself;
* it looks the step up at call time, so the runner always calls the current
  ``worldcover.campaign.steps.<name>``;
* it calls the step with keyword arguments only and returns its result
  unchanged (hera prints it as JSON: the node's ``outputs.result``);
* it writes the few numbers the Prometheus metrics and the gate need
  (``pixels``, ``failed``, ``finished``) to small files under ``$WORLDCOVER_OUTPUTS_DIR``
  (default ``/tmp/outputs``), which the templates declare as output parameters
  with a default;
* a data or input error (:class:`~worldcover.errors.WorldCoverError`) ends the
  pod with one line on stderr and exit code 2, as the CLI does, which the
  templates' ``retryStrategy.expression`` does not retry (a retry cannot fix
  the data); anything else keeps its traceback and exit code 1, and is retried;
* ``collect_failures`` returns counts only (the node's result is stored in the
  workflow's status, which must stay small); the list is in the output root.
"""

import inspect
import os
import sys
import typing
from collections.abc import Callable
from pathlib import Path
from typing import Any

from worldcover.credentials import install as _install_log_redaction
from worldcover.credentials import redact
from worldcover.errors import WorldCoverError

STEPS_MODULE = "worldcover.campaign.steps"
OUTPUTS_DIR_ENV = "WORLDCOVER_OUTPUTS_DIR"
DEFAULT_OUTPUTS_DIR = "/tmp/outputs"
#: result keys written as output-parameter files (name -> file name)
OUTPUT_FILES = {"pixels": "pixels", "failed": "failed", "finished": "finished"}
#: the exit code of a data or input error (the CLI's; parts.DATA_ERROR_EXIT)
DATA_ERROR_EXIT = 2

_install_log_redaction()  # the pod's process: no secret value reaches a log record, whoever logs it


def _steps():
    import importlib

    return importlib.import_module(STEPS_MODULE)


def _write_outputs(result: Any) -> None:
    if not isinstance(result, dict):
        return
    root = Path(os.environ.get(OUTPUTS_DIR_ENV, DEFAULT_OUTPUTS_DIR))
    for key, fname in OUTPUT_FILES.items():
        value = result.get(key)
        if isinstance(value, list):
            value = len(value)
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            try:
                root.mkdir(parents=True, exist_ok=True)
                (root / fname).write_text(str(value))
            except OSError:  # metrics are best effort; the step's result stands
                pass


def _adapter(name: str) -> Callable[..., Any]:
    step = getattr(_steps(), name)
    hints = typing.get_type_hints(step)
    sig = inspect.signature(step)
    params = [p.replace(annotation=hints.get(p.name, p.annotation)) for p in sig.parameters.values()]
    resolved = sig.replace(parameters=params, return_annotation=hints.get("return", sig.return_annotation))

    def call(*args: Any, **kwargs: Any) -> Any:
        bound = resolved.bind(*args, **kwargs)
        try:
            result = getattr(_steps(), name)(**bound.arguments)
        except WorldCoverError as exc:
            print(f"error: {type(exc).__name__}: {redact(' '.join(str(exc).split()))}", file=sys.stderr)
            raise SystemExit(DATA_ERROR_EXIT) from None
        _write_outputs(result)
        return COMPACT.get(name, lambda r: r)(result)

    call.__name__ = call.__qualname__ = name
    call.__module__ = __name__
    call.__doc__ = step.__doc__
    call.__signature__ = resolved  # type: ignore[attr-defined]
    call.__annotations__ = dict(hints)
    call.step = f"{STEPS_MODULE}.{name}"  # type: ignore[attr-defined]
    return call


def _failure_counts(result: Any) -> Any:
    """collect_failures' result without the tile list and messages (those are in failed_tiles.json)."""
    if not isinstance(result, dict):
        return result
    failed = result.get("failed") or []
    return {"campaign": result.get("campaign"), "tiles": result.get("tiles"), "finished": result.get("finished"),
            "failed": len(failed) if isinstance(failed, list) else failed, "list": "failed_tiles.json"}


COMPACT: dict[str, Callable[[Any], Any]] = {"collect_failures": _failure_counts}

write_plan = _adapter("write_plan")
process_tile = _adapter("process_tile")
collect_failures = _adapter("collect_failures")
merge = _adapter("merge")
validate = _adapter("validate")

ENTRYPOINTS: dict[str, Callable[..., Any]] = {
    "write_plan": write_plan,
    "process_tile": process_tile,
    "collect_failures": collect_failures,
    "merge": merge,
    "validate": validate,
}


def step_of(entrypoint: str) -> str:
    """Dotted path of the step function a runner entrypoint ``module:function`` calls."""
    import importlib

    module, _, fn = entrypoint.partition(":")
    obj = getattr(importlib.import_module(module), fn)
    obj = getattr(obj, "wrapped_function", obj)
    return getattr(obj, "step", f"{obj.__module__}.{obj.__name__}")
