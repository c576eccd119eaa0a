"""Stage promotion: 1pct -> 10pct -> 100pct, gated on the validation report.

A stage may be promoted only when its accuracy report meets the bar (default
overall accuracy 75 %, the WorldCover requirement), and only to the next
stage (1pct -> 100pct skips the 10pct check; ``force`` allows it). The next
stage's plan keeps everything but the tiles, the name and the source, which
is given explicitly (the previous stage's may have been a server that is gone).
Since stages are nested and tiles are idempotent, every tile already finished
is reused, not redone.

Plans are kept stage by stage beside each other in the output root::

    ROOT/campaign-1pct.json    the plan of each promoted stage, never overwritten by a promotion
    ROOT/campaign-10pct.json   the plan of the stage promoted to
    ROOT/campaign.json         the current stage's plan (a copy of the latest campaign-<stage>.json):
                               what `campaign run`, `merge`, `campaign status` and the next promotion read
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace

from worldcover import storage
from worldcover.campaign.plan import DEFAULT_MODEL, CampaignPlan, check_source
from worldcover.errors import InputError
from worldcover.grid import DEFAULT_BLOCK_SIZE
from worldcover.layout import finished_tiles
from worldcover.stages import DEFAULT_SEED, STAGES, check_stage, stage_tiles

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


def stage_plan_path(root, stage: str) -> storage.Location:
    """``ROOT/campaign-<stage>.json``: one stage's plan, kept beside the others."""
    return storage.path(root) / f"campaign-{check_stage(stage)}.json"


def check_step(from_stage: str, to_stage: str, force: bool = False) -> None:
    """The target must be a larger stage, and the next one unless ``force``: a skipped stage is never validated."""
    order = list(STAGES)
    i, j = order.index(check_stage(from_stage)), order.index(check_stage(to_stage))
    if j <= i:
        raise InputError(f"cannot promote {from_stage} to {to_stage}: the target must be a larger stage")
    if j > i + 1 and not force:
        skipped = ", ".join(order[i + 1 : j])
        raise InputError(f"cannot promote {from_stage} to {to_stage}: that skips {skipped}, which is never "
                         f"validated; promote to {order[i + 1]} first (or pass --force)")


def promote(root, from_stage: str, to_stage: str, threshold: float = DEFAULT_THRESHOLD, *, source: str,
            force: bool = False) -> Promotion:
    """Check the gate and write the next stage's plan (with ``source``) beside the previous one's.

    Writes ``campaign-<from>.json`` (if not there yet), ``campaign-<to>.json``, then ``campaign.json`` (the
    current stage), each whole; a refusal writes nothing."""
    check_step(from_stage, to_stage, force)
    if not 0 < threshold <= 1:
        raise InputError(f"invalid threshold {threshold!r}: expected a fraction such as 0.75")
    check_source(source)
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
    new = replace(plan, name=name.strip("-"), stage=to_stage, tiles=tuple(tiles), source=source).validate()
    done = set(finished_tiles(root, plan.year))
    reused = tuple(sorted(done & set(tiles)))
    previous = stage_plan_path(root, from_stage)
    if not previous.exists():  # the validated stage's plan, kept as it ran
        plan.save(previous)
    new.save(stage_plan_path(root, to_stage))
    new.save(plan_path)  # last: the current stage
    return Promotion(new, oa, ci, reused, tuple(sorted(set(tiles) - done)))


def run_command(plan: CampaignPlan) -> str:
    """The `worldcover campaign run` command line that runs ``plan`` (options left out where they are defaults)."""
    import shlex

    args = ["worldcover", "campaign", "run", "--stage", plan.stage or "", "--year", str(plan.year),
            "--name", plan.name, "--source", plan.source, "--out", plan.out_root]
    optional = [("--model", plan.model, DEFAULT_MODEL), ("--block-size", plan.block_size, DEFAULT_BLOCK_SIZE),
                ("--blocks", plan.blocks, "all"), ("--seed", plan.seed, DEFAULT_SEED),
                ("--reference", plan.reference, ""), ("--max-cloud", plan.max_cloud, None)]
    for flag, value, default in optional:
        if value != default:
            args += [flag, str(value)]
    return " ".join(shlex.quote(a) for a in args)
