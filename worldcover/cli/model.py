"""``worldcover model``: inspect trained models (training and evaluation to come)."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from worldcover.cli._common import echo_json

app = typer.Typer(no_args_is_help=True)


def _fmt(x: float | None, digits: int = 3) -> str:
    return "-" if x is None else f"{x:.{digits}f}"


def card_summary_lines(card) -> list[str]:
    """Human-readable lines summarising a :class:`~worldcover.model.ModelCard`."""
    from worldcover.legend import BY_CODE

    names = list(card.feature_names)
    shown = ", ".join(names[:8]) + (f", ... ({len(names) - 8} more)" if len(names) > 8 else "")
    lines = [
        f"{'name':16s} {card.name}",
        f"{'version':16s} {card.version}",
        f"{'created':16s} {card.created}",
        f"{'software':16s} worldcover {card.worldcover_version}, lightgbm {card.lightgbm_version}",
        f"{'model sha256':16s} {card.model_sha256}",
        f"{'features':16s} {len(names)}: {shown}",
        f"{'classes':16s} {len(card.trained_classes)} of {len(card.classes)} trained",
        f"{'training blocks':16s} {len(card.training_blocks)}",
        f"{'test blocks':16s} {len(card.test_blocks)}",
        f"{'seed':16s} {card.seed}",
    ]
    metrics = card.metrics
    per_class = (metrics or {}).get("per_class", {})
    if metrics:
        lines.append(
            f"{'held-out':16s} OA {_fmt(metrics.get('overall_accuracy'))}  kappa {_fmt(metrics.get('kappa'))}  "
            f"n {metrics.get('n')}"
        )
    else:
        lines.append(f"{'held-out':16s} no metrics (trained without test blocks)")
    lines.append("")
    lines.append(f"{'code':>4s}  {'class':26s} {'train':>7s} {'prec':>6s} {'recall':>6s} {'f1':>6s} {'test':>6s}")
    for code in card.classes:
        m = per_class.get(str(code), {})
        trained = code in card.trained_classes
        lines.append(
            f"{code:>4d}  {BY_CODE[code].name if code in BY_CODE else '?':26s} "
            f"{card.samples_per_class.get(code, 0) if trained else '-':>7} "
            f"{_fmt(m.get('precision')):>6s} {_fmt(m.get('recall')):>6s} {_fmt(m.get('f1')):>6s} "
            f"{m.get('support', '-'):>6}"
        )
    if card.provenance:
        lines.append("")
        lines.append(f"{'provenance':16s} {json.dumps(dict(card.provenance), sort_keys=True)}")
    return lines


@app.command("info")
def info(
    model_dir: Path = typer.Argument(..., help="A model directory holding model.txt and card.json."),
    as_json: bool = typer.Option(False, "--json", help="Print the whole card as JSON."),
) -> None:
    """Summarise a model's card after checking model.txt matches it."""
    from worldcover.model import Model

    model = Model.load(model_dir)  # verifies the hash; a mismatch is an error, not a summary
    if as_json:
        echo_json(model.card.to_dict())
        return
    for line in card_summary_lines(model.card):
        typer.echo(line)


# TODO(lead): `worldcover model train` -> worldcover.model.train_default_model(out_dir, ...)
# once the simulator and feature module are in; `worldcover model evaluate` can wait.
