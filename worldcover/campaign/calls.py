"""A plan as a list of step calls: the one description both engines execute.

The local engine runs these calls through dask; the Argo rendering turns the
same calls into DAG tasks whose runner scripts call the same functions. A
test compares the two lists.
"""

from __future__ import annotations

import importlib
import inspect
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from worldcover.campaign.plan import CampaignPlan

STEPS_MODULE = "worldcover.campaign.steps"


@dataclass(frozen=True)
class StepCall:
    """One call of a step function with JSON-able keyword arguments."""

    function: str  # dotted path, e.g. worldcover.campaign.steps.process_tile
    kwargs: tuple[tuple[str, Any], ...]

    @classmethod
    def of(cls, name: str, **kwargs: Any) -> StepCall:
        return cls(f"{STEPS_MODULE}.{name}", tuple(sorted(kwargs.items())))

    @property
    def name(self) -> str:
        return self.function.rsplit(".", 1)[1]

    @property
    def arguments(self) -> dict[str, Any]:
        return dict(self.kwargs)

    def resolve(self) -> Callable[..., dict]:
        module, _, name = self.function.rpartition(".")
        return getattr(importlib.import_module(module), name)

    def __call__(self) -> dict:
        return self.resolve()(**self.arguments)

    def to_json(self) -> str:
        return json.dumps({"function": self.function, "kwargs": self.arguments}, sort_keys=True)


def normalise(function: Callable, kwargs: dict[str, Any]) -> dict[str, Any]:
    """Coerce string arguments (as Argo parameters arrive) to the function's annotated types."""
    sig = inspect.signature(function)
    out = {}
    for name, value in kwargs.items():
        ann = sig.parameters[name].annotation
        if isinstance(value, str):
            if ann in ("int", int):
                value = int(value)
            elif ann in ("float | None", "float"):
                value = None if value in ("", "None", "null") else float(value)
        out[name] = value
    return out


def tile_call(plan: CampaignPlan, tile: str) -> StepCall:
    return StepCall.of(
        "process_tile", tile=tile, year=plan.year, source=plan.source, model=plan.model,
        out_root=plan.out_root, block_size=plan.block_size, blocks=plan.blocks, max_cloud=plan.max_cloud,
        campaign=plan.name,
    )


def plan_call(plan: CampaignPlan) -> StepCall:
    """The first call: the campaign records its own plan in its output root."""
    return StepCall.of("write_plan", out_root=plan.out_root, campaign=plan.name, plan=plan.to_json())


#: steps that run before the tiles (every tile waits for them); the rest run after every tile has finished
SETUP_STEPS = ("write_plan",)


def phases(calls: list[StepCall]) -> tuple[list[StepCall], list[StepCall], list[StepCall]]:
    """(setup calls, tile calls, final calls) of :func:`step_calls`, each in order."""
    setup = [c for c in calls if c.name in SETUP_STEPS]
    tiles = [c for c in calls if c.name == "process_tile"]
    final = [c for c in calls if c.name not in SETUP_STEPS and c.name != "process_tile"]
    return setup, tiles, final


def step_calls(plan: CampaignPlan) -> list[StepCall]:
    """Every call a campaign makes, in dependency order: plan, tiles, failures, merge, validate."""
    calls = [plan_call(plan)]
    calls += [tile_call(plan, t) for t in plan.tiles]
    calls.append(StepCall.of("collect_failures", out_root=plan.out_root, campaign=plan.name, year=plan.year))
    calls.append(StepCall.of("merge", out_root=plan.out_root, campaign=plan.name, year=plan.year))
    calls.append(StepCall.of("validate", out_root=plan.out_root, campaign=plan.name, year=plan.year,
                             reference=plan.reference))
    return calls
