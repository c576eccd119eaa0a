"""``worldcover sim``: generate an archive of the simulated Sentinel world."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from worldcover.cli._common import console, echo_json, parse_year
from worldcover.errors import InputError
from worldcover.grid import DEFAULT_BLOCK_SIZE, Tile, check_block_size, parse_blocks

# Each command imports its machinery (models, the tile chain, the simulator) when it runs, so that
# `worldcover --help` and shell completion do not load dask, rasterio and LightGBM.

app = typer.Typer(no_args_is_help=True)


def _tiles(text: str) -> list[Tile]:
    ids = [t.strip() for t in text.split(",") if t.strip()]
    if not ids:
        raise InputError(f"invalid --tiles {text!r}: expected tile ids such as N00E006,S03W063")
    return [Tile.parse(t) for t in ids]


@app.command("generate")
def generate(
    tiles: str = typer.Option(..., "--tiles", help="Comma-separated tile ids, e.g. N00E006,S03W063."),
    year: int = typer.Option(..., "--year", help="Year to simulate (2015..2100)."),
    out: Path = typer.Option(..., "--out", help="Archive folder (created; re-runs add to it)."),
    blocks: str | None = typer.Option("first:1", "--blocks", help="r0c0,r0c1 | first:N | all (per tile)."),
    block_size: int = typer.Option(DEFAULT_BLOCK_SIZE, "--block-size", help="Block size in pixels."),
    seed: int = typer.Option(0, "--seed", help="World seed."),
    layout: str = typer.Option("planetary-computer", "--layout", help="planetary-computer or earth-search."),
    looks: float = typer.Option(4.4, "--looks", help="Equivalent number of looks of the S1 speckle."),
    period: str | None = typer.Option(None, "--period", help="Only dates START/END (ISO), e.g. 2021-06-01/2021-06-30."),
    as_json: bool = typer.Option(False, "--json", help="Print the summary as JSON."),
) -> None:
    """Simulate blocks of tiles for one year: COGs, STAC items, truth maps, manifest."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from worldcover import sim
    from worldcover.sim.stac import LAYOUTS

    year = parse_year(year)
    check_block_size(block_size)
    if layout not in LAYOUTS:
        raise InputError(f"unknown layout {layout!r}: expected one of {', '.join(LAYOUTS)}")
    selected = [b for t in _tiles(tiles) for b in parse_blocks(t, blocks, block_size)]
    options: dict[str, Any] = {"looks": looks}
    if period:
        parts = period.split("/")
        if len(parts) != 2:
            raise InputError(f"invalid --period {period!r}: expected START/END, e.g. 2021-06-01/2021-06-30")
        options["period"] = (parts[0].strip(), parts[1].strip())
    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  console=console, transient=False) as bar:
        overall = bar.add_task(f"{len(selected)} block(s)", total=len(selected))
        current = bar.add_task("", total=1, visible=False)

        def on_block(block, i, n):
            if i:
                bar.advance(overall)
            bar.update(current, description=f"  {block.id}", completed=0, total=1, visible=True)

        def progress(what, done, total):
            bar.update(current, completed=done, total=total, description=f"  {what}")

        summary = sim.generate(selected, year, out, seed=seed, layout=layout, progress=progress,
                               on_block=on_block, **options)
        bar.advance(overall)
    if as_json:
        echo_json(summary)
        return
    w = summary["items_written"]
    console.print(f"wrote {w['sentinel-2-l2a']} S2, {w['sentinel-1-rtc']} S1 and {w['cop-dem-glo-30']} DEM items, "
                  f"{summary['bytes'] / 1e6:.1f} MB in {summary['elapsed_s']:.1f} s to {summary['out']}")


@app.command("publish")
def publish(
    archive: Path = typer.Argument(..., help="Archive written by `worldcover sim generate`."),
    to: str = typer.Option(..., "--to", help="Object-store URL to publish to, e.g. s3://bucket/archive."),
) -> None:
    """Upload an archive to object storage with its STAC hrefs naming the uploaded objects.

    Pods read the published archive (through GDAL's /vsis3/); serve its catalogue
    with `worldcover stac serve URL`.
    """
    from worldcover.sim.publish import publish as publish_archive

    console.print(f"published {archive} to {publish_archive(archive, to)}")
