"""``worldcover grid``: tile facts and tile lists."""

from __future__ import annotations

import typer

from worldcover.cli._common import echo_json
from worldcover.grid import CRS, Tile, land_tiles, parse_bbox
from worldcover.stages import DEFAULT_SEED, stage_tiles

app = typer.Typer(no_args_is_help=True)


def tile_info(tile: Tile) -> dict:
    return {
        "tile": tile.id,
        "bbox": list(tile.bbox),
        "shape": list(tile.shape),
        "transform": list(tile.transform)[:6],
        "crs": CRS,
        "land_fraction": round(tile.land_fraction, 6),
    }


@app.command("info")
def info(
    tile_id: str = typer.Argument(..., help="Tile id such as N00E006."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Bounds, shape, transform and land fraction of one tile."""
    info = tile_info(Tile.parse(tile_id))
    if as_json:
        echo_json(info)
        return
    for key, value in info.items():
        typer.echo(f"{key:14s} {value}")


@app.command("tiles")
def tiles(
    stage: str | None = typer.Option(None, "--stage", help="1pct, 10pct or 100pct (default: all land tiles)."),
    bbox: str | None = typer.Option(None, "--bbox", help="W,S,E,N in degrees."),
    seed: int = typer.Option(DEFAULT_SEED, "--seed", help="Stage sampling seed."),
    as_json: bool = typer.Option(False, "--json", help="Print a JSON list of tile ids."),
) -> None:
    """List land tile ids, optionally of one stage and inside a bbox."""
    box = parse_bbox(bbox) if bbox is not None else None
    selected = stage_tiles(stage, seed) if stage else land_tiles()
    if box is not None:
        keep = {t.id for t in land_tiles(box)}
        selected = [t for t in selected if t.id in keep]
    ids = [t.id for t in selected]
    if as_json:
        echo_json(ids)
        return
    for i in ids:
        typer.echo(i)


