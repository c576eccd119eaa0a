"""Tile Map COGs the mosaic reads: a campaign's finished tiles, or a plain folder of ``*_Map.tif`` files.

A folder of maps holds tiles that no run of ours wrote, such as ESA's own
WorldCover tiles (``ESA_WorldCover_10m_2021_v200_N00E006_Map.tif``) or our
tiles copied without their items. Each file's name gives its tile and year
(either naming, see :func:`worldcover.layout.parse_file_name`); its checksum
is computed (and remembered in the mosaic's cache), and its STAC item is made
from the file itself.
"""

from __future__ import annotations

from dataclasses import dataclass

import rasterio

from worldcover import storage
from worldcover.errors import InputError
from worldcover.grid import Tile
from worldcover.layout import _ChecksumMemo, multihash_sha256, parse_file_name
from worldcover.storage import Location


@dataclass(frozen=True)
class MapFile:
    """One tile's Map COG found as a plain file: the attributes of :class:`TilePaths` the mosaic uses."""

    map: Location
    tile: Tile
    year: int

    @property
    def dir(self) -> Location:
        return self.map.parent

    @property
    def item(self) -> None:
        return None  # no item of ours: see map_file_item

    @property
    def stem(self) -> str:
        return self.map.name.removesuffix("_Map.tif")

    @property
    def quality(self) -> Location:
        return self.dir / f"{self.stem}_InputQuality.tif"


def find_map_files(folder, year: int | None) -> tuple[int, dict[str, MapFile]]:
    """The year and {tile id: MapFile} of the ``*_Map.tif`` files in ``folder`` (ours or ESA's names).

    Without ``year`` the folder must hold a single year. Two files for one tile and year (say v100
    and v200 of the same year) are refused: a mosaic takes one map per tile.
    """
    folder = storage.path(folder)
    if not folder.is_dir():
        raise InputError(f"maps folder {str(folder)!r} does not exist or is not a folder")
    found: dict[int, dict[str, list[Location]]] = {}
    for p in sorted(folder.glob("*_Map.tif"), key=lambda p: p.name):
        info = parse_file_name(p.name)
        if info is not None and info["product"] == "Map":
            found.setdefault(info["year"], {}).setdefault(info["tile"], []).append(p)
    if not found:
        raise InputError(f"maps folder {str(folder)!r}: no tile Map files (expected names such as "
                         "ESA_WorldCover_10m_2021_v200_N00E006_Map.tif or worldcover_2021_N00E006_Map.tif)")
    if year is None:
        if len(found) > 1:
            raise InputError(f"maps folder {str(folder)!r} holds maps of {', '.join(map(str, sorted(found)))}: "
                             "pass --year")
        year = next(iter(found))
    if year not in found:
        raise InputError(f"maps folder {str(folder)!r}: no Map file for year {year} "
                         f"(found {', '.join(map(str, sorted(found)))})")
    tiles = {}
    for tile, files in sorted(found[year].items()):
        if len(files) > 1:
            raise InputError(f"maps folder {str(folder)!r}: {len(files)} maps of tile {tile} for {year} "
                             f"({', '.join(f.name for f in files)}): expected one per tile")
        tiles[tile] = MapFile(files[0], Tile.parse(tile), year)
    return year, tiles


def map_file_checksum(mf: MapFile, memo_folder: Location) -> str:
    """sha256 multihash of a plain Map file, remembered in ``memo_folder`` while the file is unchanged."""
    memo = _ChecksumMemo(memo_folder, name="map_checksums.json")
    try:
        st = storage.stamp(mf.map)
        if st is None:
            raise InputError(f"map {mf.map}: file not found")
        return multihash_sha256(memo.sha256(mf.map, st))
    finally:
        memo.save()


def map_file_item(mf: MapFile) -> dict:
    """A STAC item for a plain Map file (and its InputQuality beside it, if any), from the file's header."""
    with rasterio.open(storage.gdal_path(mf.map)) as src:
        w, s, e, n = (float(v) for v in src.bounds)
        tags = src.tags()
    assets = {"map": {"href": f"./{mf.map.name}", "roles": ["data"], "title": "Land cover classes"}}
    if mf.quality.exists():
        assets["input_quality"] = {"href": f"./{mf.quality.name}", "roles": ["metadata", "quality"],
                                   "title": "InputQuality"}
    props = {"datetime": None, "start_datetime": tags.get("time_start", f"{mf.year}-01-01T00:00:00Z"),
             "end_datetime": tags.get("time_end", f"{mf.year}-12-31T23:59:59Z"), "worldcover:tile": mf.tile.id}
    if "product_version" in tags:
        props["worldcover:product_version"] = tags["product_version"]
    return {"type": "Feature", "stac_version": "1.1.0", "stac_extensions": [], "id": mf.stem,
            "geometry": {"type": "Polygon", "coordinates": [[[w, s], [e, s], [e, n], [w, n], [w, s]]]},
            "bbox": [w, s, e, n], "properties": props, "links": [], "assets": assets}
