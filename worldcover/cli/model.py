"""``worldcover model``: train the default model, inspect trained models, compile them for speed."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from worldcover.cli._common import console, echo_json, parse_year
from worldcover.errors import DataError, InputError
from worldcover.legend import BY_CODE

# Each command imports its machinery (models, the tile chain, the simulator) when it runs, so that
# `worldcover --help` and shell completion do not load dask, rasterio and LightGBM.

app = typer.Typer(no_args_is_help=True)


def _fmt(x: float | None, digits: int = 3) -> str:
    return "-" if x is None else f"{x:.{digits}f}"


def card_summary_lines(card) -> list[str]:
    """Human-readable lines summarising a :class:`~worldcover.model.ModelCard`."""
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
            f"n {metrics.get('n')} ({dict(card.provenance).get('metrics_unit') or 'class-balanced sample'}: "
            "the per-class figures below)"
        )
        held = dict(card.provenance).get("held_out_map")
        if held:
            lines.append(f"{'held-out map':16s} OA {_fmt(held.get('overall_accuracy'))}  "
                         f"kappa {_fmt(held.get('kappa'))}  n {held.get('n')} (every pixel of the test blocks)")
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
        prov = dict(card.provenance)
        prov.pop("held_out_map", None)  # shown above; its confusion matrix is in --json
        base = prov.pop("baseline_summer_only", None)
        if isinstance(base, dict):
            lines.append("")
            lines.append(f"{'baseline':16s} summer composite only, {base.get('feature_count')} features: "
                         f"OA {_fmt((base.get('metrics') or {}).get('overall_accuracy'))} (balanced sample), "
                         f"{_fmt((base.get('held_out_map') or {}).get('overall_accuracy'))} (map)")
        lines.append("")
        lines.append(f"{'provenance':16s} {json.dumps(prov, sort_keys=True)}")
    return lines


@app.command("info")
def info(
    model_dir: str = typer.Argument(..., help="'default' (the packaged model), or a model directory (or s3:// "
                                    "prefix) holding model.txt and card.json."),
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


@app.command("compile")
def compile_(
    model_dir: str = typer.Argument("default", help="'default' (the packaged model), or a model directory (or s3:// "
                                    "prefix) holding model.txt and card.json."),
) -> None:
    """Compile a model's trees to native code with lleaves (cached by the model's hash) so predictions run faster.

    The code goes into MODEL_DIR/compiled/ when that folder is local and writable, else into
    $WORLDCOVER_CACHE/compiled (default ~/.cache/worldcover/compiled); an intact cached copy is reused.
    """
    from worldcover.model import Model

    compiled = Model.load(model_dir, predictor="lightgbm").compile()
    if compiled.path is None:
        raise DataError(f"compiled {model_dir} in {compiled.compile_seconds:.1f} s but could not write it to any cache "
                        "(see the log): set WORLDCOVER_CACHE to a writable folder")
    how = f"compiled in {compiled.compile_seconds:.1f} s" if compiled.compile_seconds else "already compiled (cached)"
    typer.echo(f"{compiled.path}: {how}")


@app.command("train")
def train(
    out: Path | None = typer.Option(None, "--out", help="Model directory to (over)write (default models/default "
                                       "without --points; required with --points)."),
    points: str | None = typer.Option(None, "--points", help="Train from reference points instead of the simulated "
                                         "world: CSV, GeoParquet or GeoJSON with lon, lat, class (WorldCover code), "
                                         "year, optional weight and group."),
    source: str | None = typer.Option(None, "--source", help="With --points: STAC API URL or preset the features "
                                         "are loaded from (as tile run)."),
    year: int | None = typer.Option(None, "--year", help="Year (simulated: default 2021; with --points: default "
                                       "the file's only year)."),
    group_by: str = typer.Option("tile", "--group-by", help="With --points: spatial groups of the train/test split: "
                                 "tile, cell (1 degree), chip, or column (the file's group column)."),
    chip_size: int = typer.Option(64, "--chip-size", help="With --points: chip (block) size in px; each chip is "
                                  "loaded once."),
    test_fraction: float = typer.Option(0.25, "--test-fraction", help="With --points: share of the groups held out."),
    features: str = typer.Option("default", "--features", help="With --points: default (S2 + S1 + DEM), no-dem, or "
                                 "s2-only."),
    sim_seed: int = typer.Option(0, "--sim-seed", help="Seed of the simulated world."),
    seed: int = typer.Option(0, "--seed", help="Sampling, split and LightGBM seed."),
    max_per_class: int = typer.Option(200, "--max-per-class", help="Training points per class per block (simulated)."),
    work_dir: Path | None = typer.Option(None, "--work-dir", help="Keep the simulated archive here."),
    as_json: bool = typer.Option(False, "--json", help="Print the metrics as JSON."),
) -> None:
    """Reproduce the default model on the simulated world, or, with --points, train on reference points."""
    if year is not None:
        parse_year(year)
    if points is not None:
        _train_points(points, source, out, year, group_by, chip_size, test_fraction, features, seed, as_json)
        return
    if source is not None:
        raise InputError("--source is for training from --points; the default model trains on the simulated world")
    _train_default(out or Path("models/default"), year or 2021, sim_seed, seed, max_per_class, work_dir, as_json)


def _train_points(points: str, source: str | None, out: Path | None, year: int | None, group_by: str,
                  chip_size: int, test_fraction: float, features: str, seed: int, as_json: bool) -> None:
    """``model train --points``: features through the production chain, split by spatial group, carded."""
    from rich.progress import Progress

    from worldcover.tile.points import train_from_points

    if source is None:
        raise InputError("--points needs --source URL: the STAC API (or preset) the point features are loaded from")
    if out is None:
        raise InputError("--points needs --out DIR: the model directory to write (models/default is the simulated "
                         "world's model)")
    with Progress(console=console, transient=True) as bar:
        task = bar.add_task("loading chips", total=None)

        def step(done: int, total: int, chip: str) -> None:
            bar.update(task, completed=done, total=total, description=f"featurised chip {chip}")

        result = train_from_points(points, source, out, year=year, group_by=group_by, chip_size=chip_size,
                                   test_fraction=test_fraction, seed=seed, features=features, progress=step)
    if as_json:
        echo_json(result)
        return
    ref, split, m = result["reference"], result["split"], result["metrics"]
    console.print(f"model -> {result['model_dir']} ({result['name']} {result['version'][:12]})")
    console.print(f"reference {ref['file']} sha256 {ref['sha256'][:16]}...: {ref['points_used']} of "
                  f"{ref['rows']} points used (year {result['year']}; {ref['points_without_clear_observation']} "
                  f"without a clear observation, {ref['points_in_failed_chips']} in chips without data)")
    console.print(f"split by {split['by']}: {len(split['train_groups'])} train groups ({split['train_points']} "
                  f"points), {len(split['test_groups'])} test groups ({split['test_points']} points)")
    console.print(f"held-out OA {_fmt(m['overall_accuracy'])} kappa {_fmt(m['kappa'])} on {m['n']} points; "
                  f"see `worldcover model info {result['model_dir']}`")


def _train_default(out: Path, year: int, sim_seed: int, seed: int, max_per_class: int, work_dir: Path | None,
                   as_json: bool) -> None:
    """Reproduce the default model: simulate, serve, load with odc-stac, train; report vs a summer-only baseline."""
    from rich.progress import Progress

    from worldcover.model.default import train_default_model

    with Progress(console=console, transient=True) as bar:
        task = bar.add_task("featurising simulated blocks", total=None)

        def step(done: int, total: int, block) -> None:
            bar.update(task, completed=done, total=total, description=f"featurised {block.id}")

        result = train_default_model(out, year=year, sim_seed=sim_seed, seed=seed, max_per_class=max_per_class,
                                     work_dir=work_dir, progress=step)
    if as_json:
        echo_json(result)
        return
    d, b = result["default"], result["baseline"]
    console.print(f"default model -> {result['model_dir']}")
    dm, bm = result["default_map"], result["baseline_map"]
    console.print(f"held-out map OA (all test pixels): temporal + S1 {100 * dm['overall_accuracy']:.1f} %, "
                  f"summer composite only {100 * bm['overall_accuracy']:.1f} %")
    console.print(f"held-out OA (class-balanced sample): temporal + S1 {100 * d['overall_accuracy']:.1f} %, "
                  f"summer composite only {100 * b['overall_accuracy']:.1f} %")
