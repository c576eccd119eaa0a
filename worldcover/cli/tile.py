"""``worldcover tile run``: one tile's products, block by block."""

from __future__ import annotations

import typer

from worldcover import storage
from worldcover.cli._common import console, echo_json
from worldcover.grid import Tile, parse_blocks
from worldcover.layout import check_naming

# Each command imports its machinery (models, the tile chain, the simulator) when it runs, so that
# `worldcover --help` and shell completion do not load dask, rasterio and LightGBM.

app = typer.Typer(no_args_is_help=True)


@app.command("run")
def run(
    tile: str = typer.Argument(..., help="Tile id such as N00E006."),
    year: int = typer.Option(..., "--year", help="Year to map."),
    source: str = typer.Option(..., "--source", help="STAC API URL, a preset (earth-search, planetary-computer, "
                               "copernicus-dataspace) or sentinelhub."),
    model: str = typer.Option("default", "--model", help="Model directory (model.txt + card.json), s3:// prefix, "
                               "or 'default' (the packaged model)."),
    out: str = typer.Option(..., "--out", help="Output root."),
    blocks: str = typer.Option("all", "--blocks", help="all, first:N or r0c0,r0c1,..."),
    block_size: int = typer.Option(3000, "--block-size", help="Block size in pixels."),
    max_cloud: float | None = typer.Option(None, "--max-cloud", help="Skip S2 items above this cloud cover (%)."),
    naming: str = typer.Option("worldcover", "--naming", help="Product file names: worldcover "
                               "(worldcover_2021_N00E006_Map.tif) or esa "
                               "(ESA_WorldCover_10m_2021_v010_N00E006_Map.tif)."),
    grid: str = typer.Option("native", "--grid", help="Where inputs are processed: native (their own UTM grid, "
                             "the model's scores resampled once) or product (every input warped to the map's grid "
                             "first)."),
    as_json: bool = typer.Option(False, "--json", help="Print the outcome as JSON."),
) -> None:
    """Load, preprocess, classify and write Map / Prob / InputQuality COGs and a STAC item."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from worldcover.campaign.plan import check_blocks, check_model, check_source, check_uri, check_year
    from worldcover.chain import ChainParams
    from worldcover.tile.run import run_tile

    check_year(year)
    t = Tile.parse(tile)
    check_blocks(blocks)
    check_source(source)
    check_uri(out, "output root")
    check_model(model)
    check_naming(naming)
    params = ChainParams(grid=grid)
    total = len(parse_blocks(t, blocks, block_size))
    bar_columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with storage.lock(out), Progress(*bar_columns, console=console, transient=as_json) as bar:
        task = bar.add_task(f"{t.id} blocks", total=total)
        result = run_tile(t, year, source, model, out, block_size=block_size, blocks=blocks, max_cloud=max_cloud,
                          on_block=lambda b, how: bar.advance(task), naming=naming, params=params)
    if as_json:
        echo_json(result.to_dict())
        return
    console.print(f"{result.tile}: {result.status} ({result.blocks_computed} blocks computed, "
                  f"{result.blocks_reused} reused, {result.seconds:.1f} s)")
    for k, v in result.outputs.items():
        console.print(f"  {k:8s} {v}")
