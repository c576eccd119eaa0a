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

from worldcover import storage
from worldcover.grid import Tile
from worldcover.storage import Location

PRODUCTS = ("Map", "Prob", "InputQuality")
RACY_NS = 2_000_000_000  # checksums of files younger than this are not remembered


@dataclass(frozen=True)
class TilePaths:
    """Where one tile's products live under a campaign root (a local folder or an object-store prefix)."""

    root: Location
    tile: Tile
    year: int

    @property
    def dir(self) -> Location:
        return self.root / "tiles" / self.tile.id

    @property
    def stem(self) -> str:
        return f"worldcover_{self.year}_{self.tile.id}"

    def product(self, name: str) -> Location:
        if name not in PRODUCTS:
            raise ValueError(f"unknown product {name!r}: expected one of {PRODUCTS}")
        return self.dir / f"{self.stem}_{name}.tif"

    @property
    def map(self) -> Location:
        return self.product("Map")

    @property
    def prob(self) -> Location:
        return self.product("Prob")

    @property
    def quality(self) -> Location:
        return self.product("InputQuality")

    @property
    def item(self) -> Location:
        return self.dir / f"{self.stem}.json"

    @property
    def blocks_dir(self) -> Location:
        return self.dir / "blocks"

    def block_result(self, key: str) -> Location:
        return self.blocks_dir / f"{key}.tif"

    def block_record(self, key: str) -> Location:
        return self.blocks_dir / f"{key}.json"

    @property
    def failure(self) -> Location:
        """Written when a tile fails: the error, for `campaign status` and `retry`."""
        return self.dir / "FAILED.json"


def tile_paths(root, tile: Tile | str, year: int) -> TilePaths:
    return TilePaths(storage.path(root), tile if isinstance(tile, Tile) else Tile.parse(tile), year)


def multihash_sha256(hexdigest: str) -> str:
    """STAC file extension checksum: multihash of sha2-256 (code 0x12, length 0x20)."""
    return "1220" + hexdigest


def is_finished(paths: TilePaths, verify: bool = True) -> bool:
    """True when the tile's STAC item exists and its assets match their checksums.

    A file's sha256 is remembered in ``tiles/<TILE>/.checksums.json`` with its
    stamp (size, mtime and inode on disk; size and ETag of an object) and
    recomputed only when that changed (as make and rsync decide): a 100pct
    merge would otherwise re-read every tile's products, terabytes, each time
    it asks which tiles are done.
    """
    try:
        item = json.loads(paths.item.read_text())
    except (OSError, json.JSONDecodeError):
        return False
    memo = _ChecksumMemo(paths.dir)
    try:
        for asset in item.get("assets", {}).values():
            href = paths.dir / str(asset.get("href", "")).rsplit("/", 1)[-1]
            st = storage.stamp(href)
            if st is None:
                return False
            if "file:size" in asset and st[0] != asset["file:size"]:
                return False
            if verify and asset.get("file:checksum") != multihash_sha256(memo.sha256(href, st)):
                return False
        return True
    finally:
        memo.save()


class _ChecksumMemo:
    """sha256 of the files of one folder, keyed by their storage stamp; saved atomically."""

    def __init__(self, folder: Location) -> None:
        self.path = folder / ".checksums.json"
        try:
            self.known = json.loads(self.path.read_text())
        except (OSError, ValueError):
            self.known = {}
        self.changed = False

    def sha256(self, file: Location, stamp: list) -> str:
        hit = self.known.get(file.name)
        if isinstance(hit, dict) and hit.get("stamp") == stamp and isinstance(hit.get("sha256"), str):
            return hit["sha256"]
        digest = storage.sha256(file)
        # a file modified within the filesystem's timestamp granularity of now could
        # change again without its mtime changing: remember only settled files (git's
        # "racily clean" rule; an object's ETag changes with its content, but its
        # stamp is read before the digest, so the same rule keeps the two in step)
        if storage.age_ns(file) > RACY_NS:
            self.known[file.name] = {"stamp": stamp, "sha256": digest}
            self.changed = True
        return digest

    def save(self) -> None:
        if not self.changed:
            return
        try:
            storage.atomic_write_text(self.path, json.dumps(self.known, sort_keys=True))
        except OSError:
            pass  # a read-only archive: verification still worked, it just is not remembered


def finished_tiles(root, year: int) -> list[str]:
    """Ids of finished tiles under a campaign root, sorted."""
    base = storage.path(root) / "tiles"
    if not base.is_dir():
        return []
    out = []
    for d in sorted((p for p in base.iterdir() if p.is_dir()), key=lambda p: p.name):
        try:
            paths = tile_paths(root, d.name, year)
        except ValueError:
            continue
        if is_finished(paths):
            out.append(d.name)
    return out
