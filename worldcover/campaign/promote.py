"""Stage promotion: 1pct -> 10pct -> 100pct, gated on the validation report.

A stage may be promoted only when its accuracy report meets the bar (default
overall accuracy 75 %, the WorldCover requirement). The next stage's plan
keeps everything but the tiles, and since stages are nested and tiles are
idempotent, every tile already finished is reused, not redone.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace

from worldcover import storage
from worldcover.campaign.plan import CampaignPlan
from worldcover.errors import InputError
from worldcover.products import finished_tiles
from worldcover.stages import STAGES, check_stage, stage_tiles

DEFAULT_THRESHOLD = 0.75
METRICS = "validation/metrics.json"


class PromotionRefused(InputError):
    """The stage's validation report does not meet the accuracy bar (or is missing)."""


@dataclass(frozen=True)
class Promotion:
    plan: CampaignPlan
    overall_accuracy: float
    ci95_halfwidth: float
    reused_tiles: tuple[str, ...]
    new_tiles: tuple[str, ...]


def read_overall_accuracy(root) -> tuple[float, float]:
    path = storage.path(root) / METRICS
    try:
        metrics = json.loads(path.read_text())
        oa = metrics["overall_accuracy"]
        return float(oa["estimate"]), float(oa.get("ci95_halfwidth", float("nan")))
    except FileNotFoundError:
        raise PromotionRefused(f"no validation report at {path}: validate the stage before promoting it") from None
    except (KeyError, TypeError, ValueError, json.JSONDecodeError):
        raise PromotionRefused(f"validation report {path} has no overall_accuracy.estimate") from None


def promote(root, from_stage: str, to_stage: str, threshold: float = DEFAULT_THRESHOLD) -> Promotion:
    """Check the gate and write the next stage's plan into the same output root."""
    check_stage(from_stage)
    check_stage(to_stage)
    if STAGES[to_stage] <= STAGES[from_stage]:
        raise InputError(f"cannot promote {from_stage} to {to_stage}: the target must be a larger stage")
    if not 0 < threshold <= 1:
        raise InputError(f"invalid threshold {threshold!r}: expected a fraction such as 0.75")
    plan_path = storage.path(root) / "campaign.json"
    plan = CampaignPlan.load(plan_path)
    if plan.stage != from_stage:
        raise InputError(f"{plan_path} holds stage {plan.stage!r}, not {from_stage!r}")
    oa, ci = read_overall_accuracy(root)
    if oa < threshold:
        raise PromotionRefused(
            f"{from_stage} overall accuracy {100 * oa:.1f} % (±{100 * ci:.1f}) is below the "
            f"{100 * threshold:.1f} % bar: not promoting to {to_stage}"
        )
    tiles = [t.id for t in stage_tiles(to_stage, plan.seed)]
    name = plan.name.replace(from_stage, to_stage) if from_stage in plan.name else f"{plan.name}-{to_stage}"[:40]
    new = replace(plan, name=name, stage=to_stage, tiles=tuple(tiles)).validate()
    done = set(finished_tiles(root, plan.year))
    reused = tuple(sorted(done & set(tiles)))
    new.save(plan_path)
    return Promotion(new, oa, ci, reused, tuple(sorted(set(tiles) - done)))
