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
import time
from dataclasses import dataclass
from pathlib import Path

from worldcover.grid import Tile

PRODUCTS = ("Map", "Prob", "InputQuality")
RACY_NS = 2_000_000_000  # checksums of files younger than this are not remembered


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
    """True when the tile's STAC item exists and its assets match their checksums.

    A file's sha256 is remembered in ``tiles/<TILE>/.checksums.json`` with its
    size, mtime and inode, and recomputed only when one of those changed (as
    make and rsync decide): a 100pct merge would otherwise re-read every tile's
    products, terabytes, each time it asks which tiles are done.
    """
    if not paths.item.exists():
        return False
    try:
        item = json.loads(paths.item.read_text())
    except (OSError, json.JSONDecodeError):
        return False
    memo = _ChecksumMemo(paths.dir)
    try:
        for asset in item.get("assets", {}).values():
            href = paths.dir / Path(asset.get("href", "")).name
            if not href.exists():
                return False
            if "file:size" in asset and href.stat().st_size != asset["file:size"]:
                return False
            if verify and asset.get("file:checksum") != multihash_sha256(memo.sha256(href)):
                return False
        return True
    finally:
        memo.save()


class _ChecksumMemo:
    """sha256 of the files of one folder, keyed by (size, mtime_ns, inode); saved atomically."""

    def __init__(self, folder: Path) -> None:
        self.path = folder / ".checksums.json"
        try:
            self.known = json.loads(self.path.read_text())
        except (OSError, ValueError):
            self.known = {}
        self.changed = False

    def sha256(self, file: Path) -> str:
        from worldcover.cog import sha256_file

        st = file.stat()
        stamp = [st.st_size, st.st_mtime_ns, st.st_ino]
        hit = self.known.get(file.name)
        if isinstance(hit, dict) and hit.get("stamp") == stamp and isinstance(hit.get("sha256"), str):
            return hit["sha256"]
        digest = sha256_file(file)
        # a file modified within the filesystem's timestamp granularity of now could
        # change again without its mtime changing: remember only settled files (git's
        # "racily clean" rule)
        if time.time_ns() - st.st_mtime_ns > RACY_NS:
            self.known[file.name] = {"stamp": stamp, "sha256": digest}
            self.changed = True
        return digest

    def save(self) -> None:
        if not self.changed:
            return
        from worldcover.cog import atomic_write_text

        try:
            atomic_write_text(self.path, json.dumps(self.known, sort_keys=True))
        except OSError:
            pass  # a read-only archive: verification still worked, it just is not remembered


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
