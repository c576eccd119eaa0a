"""Where a campaign's products live, and how to tell a finished one from a partial one.

Layout under a campaign output root::

    ROOT/campaign.json                                  the plan
    ROOT/tiles/N00E006/worldcover_2021_N00E006_Map.tif            uint8 codes, colour table
    ROOT/tiles/N00E006/worldcover_2021_N00E006_Prob.tif           uint8 0-100
    ROOT/tiles/N00E006/worldcover_2021_N00E006_InputQuality.tif   int16 x3, 0.0005 degree
    ROOT/tiles/N00E006/worldcover_2021_N00E006.json               STAC item, written last
    ROOT/tiles/N00E006/blocks/r00c01.tif, r00c01.json              block results (resume)
    ROOT/mosaic/...                                      merged products
    ROOT/validation/...                                  accuracy reports

A tile is finished when its STAC item exists and every asset it lists has
the recorded sha256 checksum: the item is written only after all assets
are complete, so an interrupted run is never taken for a finished one.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from worldcover.grid import Tile

PRODUCTS = ("Map", "Prob", "InputQuality")


@dataclass(frozen=True)
class TilePaths:
    root: Path
    tile: Tile
    year: int

    @property
    def dir(self) -> Path:
        return self.root / "tiles" / self.tile.id

    @property
    def stem(self) -> str:
        return f"worldcover_{self.year}_{self.tile.id}"

    def product(self, name: str) -> Path:
        if name not in PRODUCTS:
            raise ValueError(f"unknown product {name!r}: expected one of {PRODUCTS}")
        return self.dir / f"{self.stem}_{name}.tif"

    @property
    def map(self) -> Path:
        return self.product("Map")

    @property
    def prob(self) -> Path:
        return self.product("Prob")

    @property
    def quality(self) -> Path:
        return self.product("InputQuality")

    @property
    def item(self) -> Path:
        return self.dir / f"{self.stem}.json"

    @property
    def blocks_dir(self) -> Path:
        return self.dir / "blocks"

    def block_result(self, key: str) -> Path:
        return self.blocks_dir / f"{key}.tif"

    def block_record(self, key: str) -> Path:
        return self.blocks_dir / f"{key}.json"

    @property
    def failure(self) -> Path:
        """Written when a tile fails: the error, for `campaign status` and `retry`."""
        return self.dir / "FAILED.json"


def tile_paths(root: str | Path, tile: Tile | str, year: int) -> TilePaths:
    return TilePaths(Path(root), tile if isinstance(tile, Tile) else Tile.parse(tile), year)


def multihash_sha256(hexdigest: str) -> str:
    """STAC file extension checksum: multihash of sha2-256 (code 0x12, length 0x20)."""
    return "1220" + hexdigest


def is_finished(paths: TilePaths, verify: bool = True) -> bool:
    """True when the tile's STAC item exists and its assets match their checksums."""
    from worldcover.cog import sha256_file

    if not paths.item.exists():
        return False
    try:
        item = json.loads(paths.item.read_text())
    except (OSError, json.JSONDecodeError):
        return False
    for asset in item.get("assets", {}).values():
        href = paths.dir / Path(asset.get("href", "")).name
        if not href.exists():
            return False
        if verify and asset.get("file:checksum") != multihash_sha256(sha256_file(href)):
            return False
    return True


def finished_tiles(root: str | Path, year: int) -> list[str]:
    """Ids of finished tiles under a campaign root, sorted."""
    base = Path(root) / "tiles"
    if not base.is_dir():
        return []
    out = []
    for d in sorted(p for p in base.iterdir() if p.is_dir()):
        try:
            paths = tile_paths(root, d.name, year)
        except ValueError:
            continue
        if is_finished(paths):
            out.append(d.name)
    return out
