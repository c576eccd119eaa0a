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

With ``naming="esa"`` (``worldcover tile run --naming esa``) the products
take ESA's file names instead, ``ESA_WorldCover_10m_2021_v010_N00E006_Map.tif``
(``v010`` is this package's version, 0.1.0, written as ESA writes V2.0.0:
``v200``), and the item ``ESA_WorldCover_10m_2021_v010_N00E006.json``; the
folders stay the same. :func:`find_tile_paths` finds a tile under either
naming, so the campaign tools and the mosaic need not be told.

A tile is finished when its STAC item exists and every asset it lists has
the recorded sha256 checksum: the item is written only after all assets
are complete, so an interrupted run is never taken for a finished one.
"""

from __future__ import annotations

import contextlib
import json
import re
from dataclasses import dataclass

from worldcover import __version__, storage
from worldcover.errors import InputError
from worldcover.grid import Tile
from worldcover.storage import Location

PRODUCTS = ("Map", "Prob", "InputQuality")
NAMINGS = ("worldcover", "esa")
ESA_PREFIX = "ESA_WorldCover_10m"
# a product or item file name in either naming: year, (ESA) version token, tile id, (product)
FILE_NAME = re.compile(
    r"^(?:worldcover_(?P<year>\d{4})|ESA_WorldCover_10m_(?P<esa_year>\d{4})_(?P<version>v\d+))"
    r"_(?P<tile>[NS]\d{2}[EW]\d{3})(?:_(?P<product>[A-Za-z]+))?\.(?:tif|json)$"
)


def product_version(version: str = __version__) -> str:
    """'V0.1.0': the package release as the product's version, written as ESA writes 'V2.0.0'."""
    release = re.match(r"^(\d+)(?:\.(\d+))?(?:\.(\d+))?", version)  # PEP 440's release segment
    parts = [int(n or 0) for n in release.groups()] if release else [0, 0, 0]
    return "V" + ".".join(map(str, parts))


def version_token(version: str = __version__) -> str:
    """'v010': the version part of ESA's file names ('V2.0.0' is 'v200')."""
    return "v" + product_version(version)[1:].replace(".", "")


def check_naming(naming: str) -> str:
    """Refuse a file naming other than ours or ESA's, naming the option."""
    if naming not in NAMINGS:
        raise InputError(f"--naming {naming!r}: expected one of {', '.join(NAMINGS)}")
    return naming


def parse_file_name(name: str) -> dict | None:
    """Year, tile, naming, version token and product of a tile product or item file name; None if neither naming."""
    m = FILE_NAME.match(name)
    if m is None:
        return None
    esa = m.group("esa_year") is not None
    return {"year": int(m.group("esa_year") or m.group("year")), "tile": m.group("tile"),
            "naming": "esa" if esa else "worldcover", "version": m.group("version"), "product": m.group("product")}
RACY_NS = 2_000_000_000  # checksums of files younger than this are not remembered


@dataclass(frozen=True)
class TilePaths:
    """Where one tile's products live under a campaign root (a local folder or an object-store prefix)."""

    root: Location
    tile: Tile
    year: int
    naming: str = "worldcover"  # or "esa": ESA_WorldCover_10m_<year>_<version>_<tile>_<product>.tif
    version: str = version_token()  # the version token of ESA names

    def __post_init__(self) -> None:
        check_naming(self.naming)

    @property
    def dir(self) -> Location:
        return self.root / "tiles" / self.tile.id

    @property
    def stem(self) -> str:
        if self.naming == "esa":
            return f"{ESA_PREFIX}_{self.year}_{self.version}_{self.tile.id}"
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


def tile_paths(root, tile: Tile | str, year: int, naming: str = "worldcover") -> TilePaths:
    return TilePaths(storage.path(root), tile if isinstance(tile, Tile) else Tile.parse(tile), year, naming)


def find_tile_paths(root, tile: Tile | str, year: int) -> TilePaths:
    """The tile's paths in the naming its STAC item was written with: ours if that item exists, else ESA's
    (the highest version present), else ours. Readers use this so they need not know how a tile was run."""
    ours = tile_paths(root, tile, year)
    if ours.item.exists():
        return ours
    found = [parse_file_name(p.name) for p in ours.dir.glob(f"{ESA_PREFIX}_{year}_v*_{ours.tile.id}.json")]
    versions = [f["version"] for f in found if f and f["product"] is None and f["year"] == year]
    if not versions:
        return ours
    best = max(versions, key=lambda v: int(v[1:]))
    return TilePaths(ours.root, ours.tile, year, "esa", best)


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

    def __init__(self, folder: Location, name: str = ".checksums.json") -> None:
        self.path = folder / name
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
        # OSError: a read-only archive: verification still worked, it just is not remembered
        with contextlib.suppress(OSError):
            storage.atomic_write_text(self.path, json.dumps(self.known, sort_keys=True))


def finished_tiles(root, year: int) -> list[str]:
    """Ids of finished tiles under a campaign root, sorted."""
    base = storage.path(root) / "tiles"
    if not base.is_dir():
        return []
    out = []
    for d in sorted((p for p in base.iterdir() if p.is_dir()), key=lambda p: p.name):
        try:
            paths = find_tile_paths(root, d.name, year)
        except ValueError:
            continue
        if is_finished(paths):
            out.append(d.name)
    return out
