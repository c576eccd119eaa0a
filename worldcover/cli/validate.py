"""``worldcover validate``: sampling design, accuracy/area estimates and reports.

A thin layer over :mod:`worldcover.validation`; machine-readable output on stdout,
everything else on stderr; bad input is one line on stderr and exit code 2.
"""

from __future__ import annotations

import sys

import typer

from worldcover.cli._common import _FriendlyErrors, console, echo_json
from worldcover.errors import WorldCoverError

LAND_MASK_DEFAULT = "global-land-mask"
LAND_MASK_HELP = (
    "Which mapped water is ocean (left out with nodata): global-land-mask (GLOBE 1 km), sim:ARCHIVE (a simulated "
    "world's coast), sim-seed:N, a raster (non-zero = land), or none."
)

app = typer.Typer(
    cls=_FriendlyErrors, no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False,
    help="Accuracy validation: sampling design, estimates (Olofsson et al. 2014) and reports.",
)


@app.command("design")
def design(
    map_path: str = typer.Option(..., "--map", help="Class map (uint8 WorldCover codes, nodata 0)."),
    out: str = typer.Option(..., "--out", help="samples.csv, .geojson or .gpkg to write."),
    n: int | None = typer.Option(None, "--n", help="Total sample size (default: from --target-se)."),
    min_per_class: int = typer.Option(50, "--min-per-class", help="Floor of sample units per map class."),
    target_se: float = typer.Option(0.01, "--target-se", help="Target standard error of overall accuracy."),
    conjectured_ua: str | None = typer.Option(
        None, "--users-accuracy",
        help="Conjectured user's accuracy: 0.8, or CODE=UA pairs (10=0.9,50=0.6); default 0.75.",
    ),
    seed: int = typer.Option(0, "--seed", help="Random seed (same seed, same sample)."),
    unit: str = typer.Option(
        "pixel", "--unit", help="Sampling unit: pixel (10 m) or 100m (10x10-pixel PSUs, one row per 10 m sub-pixel)."
    ),
    land_mask: str = typer.Option(LAND_MASK_DEFAULT, "--land-mask", help=LAND_MASK_HELP),
    as_json: bool = typer.Option(False, "--json", help="Print the design summary as JSON."),
) -> None:
    """Draw a stratified random sample of the map's land (strata = map classes) ready for labelling."""
    from worldcover import storage
    from worldcover.validation.design import design_sample, parse_conjectured_ua
    from worldcover.validation.tables import SAMPLE_FORMATS, write_samples

    if storage.path(out).suffix.lower() not in SAMPLE_FORMATS:
        from worldcover.errors import InputError

        raise InputError(f"--out {out}: expected a .csv, .geojson or .gpkg file name")
    result = design_sample(
        map_path, n=n, min_per_class=min_per_class, target_se=target_se,
        conjectured_ua=parse_conjectured_ua(conjectured_ua), seed=seed, land_mask=land_mask, unit=unit,
    )
    write_samples(result.samples, out)
    summary = {**result.summary(), "out": str(out)}
    if as_json:
        echo_json(summary)
        return
    from rich.table import Table

    what = "PSUs of 100 m" if unit == "100m" else "pixels"
    table = Table(title=f"{result.n} sample units ({what}) on land -> {out}")
    for col in ("code", "class", what, "area (ha)", "W_h", "conj. UA", "n_h"):
        table.add_column(col, justify="right")
    for s in result.strata:
        table.add_row(str(s.code), s.name, f"{s.units:,}", f"{s.area_ha:,.1f}", f"{s.weight:.4f}",
                      f"{s.conjectured_ua:.2f}", str(s.n))
    console.print(table)
    console.print(f"land {result.land_area_ha:,.1f} ha; excluded: ocean {result.ocean_area_ha:,.1f} ha, "
                  f"nodata {result.nodata_area_ha:,.1f} ha (land mask {result.land_mask})")
    if result.n_from_target_se is not None:
        console.print(f"n from target SE {target_se}: {result.n_from_target_se} (Olofsson et al. 2014, eq. 13)")


@app.command("estimate")
def estimate(
    counts: str = typer.Option(..., "--counts", help="COUNTS.csv: map classes as rows, reference classes as columns."),
    mapped_area: str = typer.Option(
        ..., "--mapped-area", help="AREA.csv: class,mapped_pixels or class,mapped_area_ha."
    ),
    pixel_area_ha: float | None = typer.Option(
        None, "--pixel-area-ha", help="Area of one pixel in ha (for mapped_pixels)."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Accuracy and area estimates with 95 % CIs from an error matrix of sample counts."""
    from worldcover.validation.tables import estimate_from_tables

    result = estimate_from_tables(counts, mapped_area, pixel_area_ha)
    if as_json:
        echo_json(result.to_dict())
        return
    from rich.console import Console
    from rich.table import Table

    oa = result.overall_accuracy
    table = Table(title=f"n = {result.n}; overall accuracy {oa.estimate:.4f} ± {oa.ci95_halfwidth:.4f}")
    for col in ("class", "user's", "producer's", "area (ha)"):
        table.add_column(col, justify="right")
    for name, c in zip(result.classes, result.per_class, strict=True):
        table.add_row(
            name,
            f"{c.users_accuracy.estimate:.4f} ± {c.users_accuracy.ci95_halfwidth:.4f}",
            f"{c.producers_accuracy.estimate:.4f} ± {c.producers_accuracy.ci95_halfwidth:.4f}",
            f"{c.area_ha.estimate:,.1f} ± {c.area_ha.ci95_halfwidth:,.1f}",
        )
    Console().print(table)


@app.command("label")
def label(
    samples: str = typer.Option(..., "--samples", help="Design output (samples.csv) to label."),
    from_map: str = typer.Option(..., "--from-map", help="A second class map whose class becomes the reference."),
    out: str = typer.Option(..., "--out", help="labelled.csv to write (samples off the map's data are dropped)."),
) -> None:
    """Label a design from another map (e.g. WorldCover v200): the report then measures map agreement."""
    from worldcover.validation.labels import label_from_map

    echo_json(label_from_map(samples, from_map, out))


@app.command("report")
def report(
    map_path: str = typer.Option(..., "--map", help="The assessed map (the one the design was drawn on)."),
    reference: str = typer.Option(
        ..., "--reference", help="Design output with reference_class filled (codes or names)."
    ),
    out: str = typer.Option(..., "--out", help="Directory for report.html, metrics.json, error_matrix.csv."),
    compare: str | None = typer.Option(
        None, "--compare", help="A second map (or stage) to assess with the same sample; reports OA(map) - OA(compare)."
    ),
    title: str | None = typer.Option(None, "--title", help="Report title."),
    land_mask: str = typer.Option(LAND_MASK_DEFAULT, "--land-mask", help=LAND_MASK_HELP),
    interval: str = typer.Option(
        "wilson", "--interval", help="95 % intervals of proportions: wilson (never zero width) or normal (±1.96 SE)."
    ),
) -> None:
    """Write an HTML accuracy report of the map's land with plots, plus metrics.json and error_matrix.csv."""
    from worldcover.validation.report import assess, write_report

    assessment = assess(map_path, reference, compare_path=compare, title=title, land_mask=land_mask,
                        interval=interval)
    result = write_report(assessment, out)
    oa = assessment.result.overall_accuracy
    lo, hi = oa.ci95(interval)
    ex = assessment.excluded
    population = ("no land mask: ocean water not separated" if ex["land_mask"] == "none" else
                  f"land only: ocean {ex['ocean_area_ha']:,.1f} ha excluded ({ex['ocean_samples_dropped']} samples)")
    import math

    half = f"± {oa.ci95_halfwidth:.4f}" if math.isfinite(oa.se) else "(no SE: a stratum has a single sample unit)"
    console.print(f"overall accuracy {oa.estimate:.4f} {half} ({interval} 95 % CI "
                  f"{lo:.4f}-{hi:.4f}; {population}) -> {result.html}")
    if assessment.comparison is not None:
        console.print(assessment.comparison["line"])


def main() -> None:
    """``python -m worldcover.cli.validate``: the sub-command on its own, with the CLI's error contract."""
    try:
        app()
    except WorldCoverError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    main()
