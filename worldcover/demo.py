"""The end-to-end demo behind ``make demo``: everything on this machine, nothing from the internet.

It plans the 1pct stage, simulates a few blocks of a few of its tiles,
serves them as a real STAC API on loopback, searches them with pystac-client
and prints what it found. Later parts of the pipeline add their steps here.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

from worldcover.grid import Block, Tile
from worldcover.stages import stage_tiles, stratum, summary

console = Console()

DEMO_YEAR = 2021
DEMO_BLOCK_SIZE = 256
DEMO_SEED = 0


def pick_demo_tiles(n: int = 2, seed: int = 2021) -> list[Tile]:
    """The ``n`` 1pct tiles with most land, each from a different latitude zone."""
    tiles = sorted(stage_tiles("1pct", seed), key=lambda t: (-t.land_fraction, t.id))
    picked: list[Tile] = []
    zones: set[str] = set()
    for t in tiles:
        z = stratum(t).zone
        if z not in zones:
            picked.append(t)
            zones.add(z)
        if len(picked) == n:
            break
    return picked


def centre_block(tile: Tile, block_size: int = DEMO_BLOCK_SIZE) -> Block:
    nrows, ncols = tile.block_grid(block_size)
    return tile.block(nrows // 2, ncols // 2, block_size)


def stage_table(seed: int) -> Table:
    rows = summary(seed)
    table = Table(title="1. Stage plan (land tiles per latitude zone)")
    for col in ("zone", "1pct", "10pct", "100pct"):
        table.add_column(col, justify="left" if col == "zone" else "right")
    for r in rows:
        table.add_row(r["zone"], str(r["1pct"]), str(r["10pct"]), str(r["100pct"]))
    return table


def run(out: Path, n_tiles: int = 2, year: int = DEMO_YEAR, seed: int = DEMO_SEED) -> dict:
    from worldcover import sim
    from worldcover.sources.catalogues import open_client, search_items
    from worldcover.sources.local_api import LocalStacApi

    out = Path(out)
    t0 = time.perf_counter()
    console.print(stage_table(2021))

    tiles = pick_demo_tiles(n_tiles)
    blocks = [centre_block(t) for t in tiles]
    console.rule(f"2. Simulating {len(blocks)} blocks of {DEMO_BLOCK_SIZE} px for {year}")
    archive = out / "archive"
    generated = sim.generate(blocks, year, archive, seed=seed)
    console.print(f"   archive: {archive}  ({generated})")

    console.rule("3. Serving the archive as a STAC API on loopback and searching it")
    found = {}
    with LocalStacApi(archive) as api:
        console.print(f"   rustac serve at {api.url}")
        client = open_client(api.url)
        table = Table(title="Items found per block (pystac-client, POST /search)")
        for col in ("block", "zone", "S2", "S2 <= 30 % cloud", "S1", "DEM"):
            table.add_column(col)
        for b in blocks:
            dt = f"{year}-01-01/{year}-12-31"
            s2 = search_items(client, ["sentinel-2-l2a"], b.bbox, dt)
            clear = search_items(client, ["sentinel-2-l2a"], b.bbox, dt, max_cloud=30)
            s1 = search_items(client, ["sentinel-1-rtc"], b.bbox, dt)
            dem = search_items(client, ["cop-dem-glo-30"], b.bbox, "2021-04-22/2021-04-23") or \
                search_items(client, ["cop-dem-glo-30"], b.bbox, "1900-01-01/2100-01-01")
            found[b.id] = {"s2": len(s2), "s2_clear": len(clear), "s1": len(s1), "dem": len(dem)}
            table.add_row(b.id, stratum(b.tile).zone, str(len(s2)), str(len(clear)), str(len(s1)), str(len(dem)))
        console.print(table)

    elapsed = time.perf_counter() - t0
    console.rule("Summary")
    console.print(f"   tiles: {', '.join(t.id for t in tiles)}")
    console.print(f"   archive: {archive.resolve()}")
    console.print(f"   done in {elapsed:.1f} s")
    return {"tiles": [t.id for t in tiles], "blocks": [b.id for b in blocks], "found": found,
            "archive": str(archive), "elapsed_s": elapsed}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="demo-output", help="output folder")
    parser.add_argument("--tiles", type=int, default=2, help="number of 1pct tiles")
    args = parser.parse_args(argv)
    run(Path(args.out), n_tiles=args.tiles)


if __name__ == "__main__":
    main()
