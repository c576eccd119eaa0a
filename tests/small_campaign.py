"""The small simulated campaign several tests share: 2 tiles x 2 blocks of 60 px, two months of 2021.

Two tiles in different latitude zones (temperate Europe, subtropical southern
Africa); two months keep the simulation and the chain fast. The archive is
generated once per session (the ``small_archive`` fixture in conftest.py) and
served by ``small_api``.
"""

from __future__ import annotations

from pathlib import Path

from worldcover.grid import Block, Tile

YEAR = 2021
BLOCK = 60
TILES = ("N45E003", "S24E021")
ONE_BLOCK = "r300c300"
TWO_BLOCKS = "r300c300,r300c301"
PERIOD = ("2021-05-01", "2021-06-30")
SEED = 11


def blocks(tile: str) -> list[Block]:
    t = Tile.parse(tile)
    return [t.block(300, 300 + k, BLOCK) for k in range(2)]


def generate(root: Path) -> Path:
    from worldcover import sim

    sim.generate([b for t in TILES for b in blocks(t)], YEAR, root, seed=SEED, period=PERIOD)
    return root
