"""Build the global mosaic of a campaign year from its finished tiles: :func:`build_mosaic`.

Outputs, under ``ROOT/mosaic/<YEAR>/`` (see :class:`MosaicPaths`)::

    worldcover_<Y>_Map.vrt            10 m mosaic of the tile Map COGs (relative paths, colour table,
                                      nodata 0), with the level COGs below as its overviews
    worldcover_<Y>_Map_100m.tif       overview pyramid: categorical mode of the 10 m pixels, COGs in
    worldcover_<Y>_Map_1km.tif        EPSG:4326 over the finished tiles' extent; each one's internal
    worldcover_<Y>_Map_10km.tif       overviews are the coarser levels (10 km: GDAL MODE overviews)
    worldcover_<Y>_quicklook.png      quicklook with the legend
    worldcover_<Y>_areas.csv/.json    mapped km² per class, per stage and per continent
    collection.json, items/<TILE>.json  STAC collection (validated offline) and one item per tile
    cache/<TILE>/                     per-tile pieces and areas, keyed by the Map checksum
    manifest.json                     the build key and outputs, written last

Inputs: a campaign root's finished tiles (under either file naming, see
:func:`worldcover.layout.find_tile_paths`), or with ``maps=FOLDER`` a plain
folder of tile ``*_Map.tif`` files such as ESA's own WorldCover tiles
(:mod:`worldcover.mosaic.maps`); the mosaic then goes under the output root.

Incremental and idempotent: the per-tile cache is keyed by each Map COG's
sha256 (from the tile's STAC item, which :func:`worldcover.layout.finished_tiles`
has verified), so adding tiles computes only the new tiles' pieces. The build
key is the hash of every (tile, checksum) pair, the cache version and the
campaign's stage/seed; when it equals the manifest's and the outputs are
there with their recorded sizes, nothing is recomputed or rewritten. Every
file is written to a temporary name and renamed; the manifest comes last.

Memory is bounded by one tile's pass (pieces) and GDAL's block cache (level
COGs, set by ``gdal_cache_mb``), not by the number of tiles.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from multiprocessing import get_context
from typing import Any

import pystac
import rasterio
from affine import Affine

from worldcover import storage
from worldcover.campaign.plan import CampaignPlan, check_year
from worldcover.errors import InputError
from worldcover.grid import PIXEL_SIZE, PIXELS_PER_DEGREE, TILE_DEGREES, Tile
from worldcover.layout import TilePaths, find_tile_paths, finished_tiles, parse_file_name
from worldcover.legend import BY_CODE, CODES
from worldcover.mosaic import stac as mstac
from worldcover.mosaic.areas import ALL, tile_stages, write_area_tables
from worldcover.mosaic.maps import MapFile, find_map_files
from worldcover.mosaic.overviews import LEVELS, Level, write_level_cog
from worldcover.mosaic.pieces import CACHE_VERSION, cache_dir, compute_tile_pieces, map_checksum, tile_pieces
from worldcover.mosaic.quicklook import pick_level, render_quicklook
from worldcover.mosaic.vrt import VrtSource, write_vrt
from worldcover.stages import DEFAULT_SEED
from worldcover.storage import atomic_write_text

Log = Callable[[str], None]
TileSource = TilePaths | MapFile  # where a tile's Map COG is, and its item (if any)


@dataclass(frozen=True)
class MosaicPaths:
    """Where a campaign year's mosaic products live."""

    root: storage.Location
    year: int

    def __post_init__(self) -> None:
        object.__setattr__(self, "root", storage.path(self.root))  # a str or Path root works too

    @property
    def dir(self) -> storage.Location:
        return self.root / "mosaic" / str(self.year)

    @property
    def stem(self) -> str:
        return f"worldcover_{self.year}"

    @property
    def vrt(self) -> storage.Location:
        return self.dir / f"{self.stem}_Map.vrt"

    def level(self, level: Level | str) -> storage.Location:
        name = level if isinstance(level, str) else level.name
        return self.dir / f"{self.stem}_Map_{name}.tif"

    def level_vrt(self, level: Level) -> storage.Location:
        """The VRT of the cached per-tile pieces of one level (the source of the level COG)."""
        return self.cache / f"level_{level.name}.vrt"

    @property
    def quicklook(self) -> storage.Location:
        return self.dir / f"{self.stem}_quicklook.png"

    @property
    def areas_csv(self) -> storage.Location:
        return self.dir / f"{self.stem}_areas.csv"

    @property
    def areas_json(self) -> storage.Location:
        return self.dir / f"{self.stem}_areas.json"

    @property
    def collection(self) -> storage.Location:
        return self.dir / "collection.json"

    @property
    def items(self) -> storage.Location:
        return self.dir / "items"

    @property
    def cache(self) -> storage.Location:
        return self.dir / "cache"

    @property
    def manifest(self) -> storage.Location:
        return self.dir / "manifest.json"

    def outputs(self) -> dict[str, storage.Location]:
        """Every product the build writes (besides the cache and the items), by key."""
        out = {"vrt": self.vrt}
        out.update({f"map_{lv.name}": self.level(lv) for lv in LEVELS})
        out.update(quicklook=self.quicklook, areas_csv=self.areas_csv, areas_json=self.areas_json,
                   collection=self.collection)
        return out


# --- inputs ------------------------------------------------------------------------------


def _years_present(root) -> list[int]:
    names = (parse_file_name(p.name) for p in (root / "tiles").glob("*/*.json"))
    return sorted({n["year"] for n in names if n and n["product"] is None})


def resolve_inputs(root, year: int | None) -> tuple[storage.Location, int, CampaignPlan | None, list[str]]:
    """Check the campaign root and year; the plan (if ``campaign.json`` exists) and the finished tiles."""
    root = storage.path(root)
    if not root.is_dir():
        raise InputError(f"campaign root {str(root)!r} does not exist or is not a folder")
    plan = CampaignPlan.load(root / "campaign.json") if (root / "campaign.json").is_file() else None
    if year is None:
        if plan is None:
            raise InputError(f"no year given and {root / 'campaign.json'} does not exist: pass --year")
        year = plan.year
    check_year(year)
    if plan is not None and plan.year != year:
        raise InputError(f"campaign {plan.name!r} in {str(root)!r} is for year {plan.year}, not {year}")
    tiles = finished_tiles(root, year)
    if not tiles:
        present = [y for y in _years_present(root) if y != year]
        hint = f" (tile items found for {', '.join(map(str, present))})" if present else ""
        raise InputError(f"no finished tiles for year {year} under {root / 'tiles'}{hint}")
    return root, year, plan, tiles


def resolve_sources(root, year: int | None, maps=None) -> tuple[storage.Location, int, CampaignPlan | None,
                                                                  dict[str, TileSource]]:
    """Output root, year, plan and {tile: source}: a campaign's finished tiles, or the Map files of ``maps``."""
    if maps is None:
        root, year, plan, tiles = resolve_inputs(root, year)
        return root, year, plan, {t: find_tile_paths(root, t, year) for t in tiles}
    root = storage.path(root)
    if root.exists() and not root.is_dir():
        raise InputError(f"output root {str(root)!r} is not a folder")
    year, sources = find_map_files(maps, year)
    check_year(year)
    storage.relpath(maps, root)  # the VRT names the maps relative to itself: same store, or a clear error
    return root, year, None, {t: m for t, m in sources.items()}  # dict[str, TileSource]: a dict is invariant


def build_key(checksums: dict[str, str], plan: CampaignPlan | None) -> str:
    """Hash of everything the outputs depend on: tile checksums, cache version, campaign stage/seed."""
    doc = {
        "cache_version": CACHE_VERSION,
        "tiles": dict(sorted(checksums.items())),
        "campaign": plan.name if plan else None,
        "stage": plan.stage if plan else None,
        "seed": plan.seed if plan else DEFAULT_SEED,
    }
    return hashlib.sha256(json.dumps(doc, sort_keys=True).encode()).hexdigest()


def _up_to_date(paths: MosaicPaths, key: str) -> dict | None:
    """The previous manifest if it has this key and every output is there with its recorded size."""
    try:
        manifest = json.loads(paths.manifest.read_text())
    except (OSError, json.JSONDecodeError):
        return None
    if manifest.get("key") != key:
        return None
    for name, size in manifest.get("sizes", {}).items():
        if storage.size(paths.root / name) != size:
            return None
    return manifest


# --- grid --------------------------------------------------------------------------------


def tiles_extent(tiles: list[str]) -> tuple[int, int, int, int]:
    """(west, south, east, north) degrees of the union of the tiles (3-degree aligned)."""
    ts = [Tile.parse(t) for t in tiles]
    return (min(t.lon for t in ts), min(t.lat for t in ts),
            max(t.lon for t in ts) + TILE_DEGREES, max(t.lat for t in ts) + TILE_DEGREES)


def _tile_offset(tile: Tile, extent: tuple[int, int, int, int]) -> tuple[int, int]:
    """(col, row) of a tile's NW corner in the 10 m mosaic grid."""
    west, _, _, north = extent
    return ((tile.lon - west) * PIXELS_PER_DEGREE, (north - tile.lat - TILE_DEGREES) * PIXELS_PER_DEGREE)


def _grid(extent: tuple[int, int, int, int], factor: int = 1) -> tuple[int, int, Affine]:
    west, south, east, north = extent
    res = PIXEL_SIZE * factor
    n = PIXELS_PER_DEGREE // factor
    return (east - west) * n, (north - south) * n, Affine(res, 0.0, float(west), 0.0, -res, float(north))


# --- steps -------------------------------------------------------------------------------


def write_level(
    paths: MosaicPaths, level: Level, records: dict[str, dict], extent: tuple[int, int, int, int]
) -> storage.Location:
    """Assemble one level COG from the cached pieces of every tile (VRT of pieces -> COG driver).

    The coarser level COGs, already written, are the VRT's overviews: the COG
    driver copies them as this COG's internal overviews, so those are exact
    modes of the 10 m pixels too, and GDAL computes (MODE) only the internal
    overviews of the coarsest level, which is small.
    """
    width, height, transform = _grid(extent, level.factor)
    sources = []
    for t, rec in sorted(records.items()):
        tile = Tile.parse(t)
        col, row = _tile_offset(tile, extent)
        r0, c0 = rec["box"][0], rec["box"][1]
        info = rec["levels"][level.name]
        h, w = info["shape"]
        offset = ((col + c0) // level.factor, (row + r0) // level.factor)
        sources.append(VrtSource(cache_dir(paths.dir, tile) / info["file"], offset, (w, h), tuple(info["block"])))
    coarser = [paths.level(lv) for lv in LEVELS if lv.factor > level.factor]
    src = write_vrt(paths.level_vrt(level), width=width, height=height, transform=transform, sources=sources,
                    overviews=coarser, description=f"class mode at {level.name}")
    return write_level_cog(src, paths.level(level))


def write_map_vrt(paths: MosaicPaths, records: dict[str, dict], extent: tuple[int, int, int, int],
                  sources: dict[str, TileSource]) -> storage.Location:
    """The 10 m VRT of the tile Map COGs, with the level COGs as its overviews."""
    width, height, transform = _grid(extent)
    vrt_sources = []
    for t, rec in sorted(records.items()):
        tile = Tile.parse(t)
        col, row = _tile_offset(tile, extent)
        r, c, h, w = rec["window"]
        vrt_sources.append(VrtSource(sources[t].map, (col + c, row + r), (w, h), tuple(rec["map_block"])))
    return write_vrt(paths.vrt, width=width, height=height, transform=transform, sources=vrt_sources,
                     overviews=[paths.level(lv) for lv in LEVELS], description="land cover class (10 m)")


def collection_id(plan: CampaignPlan | None, year: int) -> str:
    """``worldcover-<campaign>-<year>``, the year left out when the campaign's name already holds it
    (``wc-1pct-2021`` gives ``worldcover-wc-1pct-2021``, not ``...-2021-2021``)."""
    if plan is None:
        return f"worldcover-{year}"
    return f"worldcover-{plan.name}" if str(year) in plan.name.split("-") else f"worldcover-{plan.name}-{year}"


def write_stac(paths: MosaicPaths, plan: CampaignPlan | None, sources: dict[str, TileSource],
               checksums: dict[str, str], extent: tuple[int, int, int, int], validate: bool = True) -> dict:
    """Items for the tiles and the collection with the mosaic assets, each validated offline before it is
    written (one item at a time: memory does not grow with the tiles); items of tiles no longer in the
    mosaic are removed."""
    cid = collection_id(plan, paths.year)
    validator = mstac.OfflineValidator() if validate else None
    validated: set[str] = set()
    not_vendored: set[str] = set()

    def check(d: dict) -> dict:
        if validator is not None:
            report = mstac.validate_offline(d, validator)
            validated.update(report.validated)
            not_vendored.update(report.not_vendored)
        return d

    tiles = sorted(sources)
    for t in tiles:
        item = mstac.tile_item(sources[t], paths.items, cid, checksums[t])
        mstac.write_json(paths.items / f"{t}.json", check(item))
    assets = [
        mstac.MosaicAsset("map", paths.vrt, mstac.MEDIA_VRT, ("data",), "Land cover map, 10 m (GDAL VRT mosaic)",
                          metres=10, categorical=True),
        *[mstac.MosaicAsset(f"map_{lv.name}", paths.level(lv), str(pystac.MediaType.COG), ("data", "overview"),
                            f"Land cover map, {lv.name} (categorical mode)", metres=lv.metres, categorical=True)
          for lv in LEVELS],
        mstac.MosaicAsset("quicklook", paths.quicklook, str(pystac.MediaType.PNG), ("thumbnail", "overview"),
                          "Quicklook with legend"),
        mstac.MosaicAsset("areas_csv", paths.areas_csv, "text/csv", ("metadata",), "Mapped area per class (km²), CSV"),
        mstac.MosaicAsset("areas_json", paths.areas_json, str(pystac.MediaType.JSON), ("metadata",),
                          "Mapped area per class (km²), JSON"),
    ]
    description = (
        f"10 m land-cover map for {paths.year} in the way of ESA WorldCover: {len(tiles)} tiles"
        + (f" of campaign {plan.name}" + (f" (stage {plan.stage})" if plan.stage else "") if plan else "")
        + ", mosaicked as a GDAL VRT with categorical-mode overviews at 100 m, 1 km and 10 km."
    )
    bbox = (float(extent[0]), float(extent[1]), float(extent[2]), float(extent[3]))
    coll = mstac.collection_dict(cid, paths.year, bbox, paths.dir, assets, tiles, description)
    mstac.write_json(paths.collection, check(coll))
    keep = {f"{t}.json" for t in tiles}
    for stale in paths.items.glob("*.json"):
        if stale.name not in keep:
            storage.remove(stale)
    return {"collection_id": cid, "items": len(tiles), "validated_against": sorted(validated),
            "not_vendored": sorted(not_vendored), "validated": validate}


def _one_tile_pieces(tp: TileSource, mosaic_dir: storage.Location, checksum: str, force: bool,
                     gdal_cache_mb: int) -> tuple[dict, bool]:
    """The cached pieces of one tile, computed if stale (or ``force``); runs in a worker process too."""
    with rasterio.Env(GDAL_CACHEMAX=int(gdal_cache_mb)):
        if force:
            return compute_tile_pieces(tp, cache_dir(mosaic_dir, tp.tile), checksum), True
        return tile_pieces(tp, mosaic_dir, checksum)


def _all_pieces(paths: MosaicPaths, sources: dict[str, TileSource], checksums: dict[str, str], force: bool,
                workers: int, gdal_cache_mb: int) -> Iterator[tuple[dict, bool]]:
    """Pieces of every tile, in order; with ``workers`` > 1 computed in that many processes.

    Each worker holds one tile's pass at a time, so memory is ``workers`` x one tile.
    """
    args = [(sources[t], paths.dir, checksums[t], force, gdal_cache_mb) for t in sorted(sources)]
    if workers <= 1 or len(args) < 2:
        yield from (_one_tile_pieces(*a) for a in args)
        return
    with ProcessPoolExecutor(max_workers=workers, mp_context=get_context("spawn")) as pool:
        yield from pool.map(_one_tile_pieces, *zip(*args, strict=True))


def build_mosaic(
    root,
    year: int | None = None,
    *,
    maps=None,
    force: bool = False,
    workers: int = 1,
    validate: bool = True,
    gdal_cache_mb: int = 64,
    log: Log | None = None,
) -> dict:
    """Build (or bring up to date) the mosaic of a campaign year; return a JSON-able summary.

    ``maps`` mosaics the ``*_Map.tif`` files of that folder (ESA's tiles, say) instead of a
    campaign's finished tiles, into ``root``/mosaic/<year>; ``force`` recomputes every tile's pieces;
    ``workers`` > 1 computes tile pieces in that many processes; ``validate`` validates the STAC collection
    and items offline before writing them; ``gdal_cache_mb`` bounds GDAL's
    block cache (the level COGs stream through it).
    """
    t0 = time.perf_counter()
    say = log or (lambda _msg: None)
    root, year, plan, sources = resolve_sources(root, year, maps)
    tiles = sorted(sources)
    paths = MosaicPaths(root, year)
    checksums = {t: map_checksum(sources[t], memo_folder=paths.cache) for t in tiles}
    key = build_key(checksums, plan)
    if not force and (manifest := _up_to_date(paths, key)) is not None:
        say(f"mosaic {year}: up to date ({len(tiles)} tiles)")
        return {**manifest["summary"], "status": "up-to-date", "computed": [], "reused": tiles,
                "seconds": round(time.perf_counter() - t0, 3)}
    with rasterio.Env(GDAL_CACHEMAX=int(gdal_cache_mb), GDAL_NUM_THREADS="ALL_CPUS"):
        records, computed = {}, []
        pieces = _all_pieces(paths, sources, checksums, force, workers, gdal_cache_mb)
        for i, (t, (rec, done)) in enumerate(zip(tiles, pieces, strict=True), 1):
            if done:
                computed.append(t)
                say(f"[{i}/{len(tiles)}] {t}: pieces computed")
            records[t] = {k: rec[k] for k in ("window", "map_block", "box", "levels", "area_m2")}
        extent = tiles_extent(tiles)
        for lv in sorted(LEVELS, key=lambda lv: -lv.factor):  # coarse first: they are the finer ones' overviews
            say(f"level {lv.name}: writing COG")
            write_level(paths, lv, records, extent)
        write_map_vrt(paths, records, extent, sources)
        stages_of = tile_stages(tiles, plan.seed if plan else DEFAULT_SEED)
        meta = {"year": year, "campaign": plan.name if plan else None, "campaign_stage": plan.stage if plan else None}
        groups = write_area_tables(paths.areas_csv, paths.areas_json, records, stages_of, meta)
        say("quicklook")
        outlines = [(t, Tile.parse(t).bbox, sources[t].map) for t in tiles]
        count = f"{len(tiles)} tile" + ("" if len(tiles) == 1 else "s")
        render_quicklook(paths.quicklook, pick_level([paths.level("1km"), paths.level("10km")]),
                         f"Land cover {year}" + (f", campaign {plan.name}" if plan else "") + f" ({count})",
                         tiles=outlines)
        say("STAC collection")
        stac_info = write_stac(paths, plan, sources, checksums, extent, validate)
        if stac_info["not_vendored"]:
            say(f"warning: STAC extensions not validated (no schema offline): {', '.join(stac_info['not_vendored'])}")
    total = next(g for g in groups if g["stage"] == ALL and g["continent"] == ALL)
    summary: dict[str, Any] = {
        "status": "built",
        "root": str(root),
        "maps": str(storage.path(maps)) if maps is not None else None,
        "year": year,
        "campaign": plan.name if plan else None,
        "campaign_stage": plan.stage if plan else None,
        "tiles": len(tiles),
        "pending": sorted(set(plan.tiles) - set(tiles)) if plan else [],
        "computed": computed,
        "reused": [t for t in tiles if t not in computed],
        "extent": list(extent),
        "mosaic_dir": str(paths.dir),
        "outputs": {k: storage.relpath(p, root) for k, p in paths.outputs().items()},
        "area_km2": {str(c): total["area_km2"][str(c)] for c in CODES},
        "stac": stac_info,
    }
    sizes = {storage.relpath(p, root): storage.size(p) for p in paths.outputs().values()}
    atomic_write_text(paths.manifest, json.dumps({"key": key, "sizes": sizes, "summary": summary}, indent=1))
    summary["seconds"] = round(time.perf_counter() - t0, 3)
    return summary


# --- summary for people ------------------------------------------------------------------


def _km2(value: float) -> str:
    """An area to three significant digits or whole km²: '1,234 km²', '1.62 km²', '0.0123 km²'."""
    return f"{value:,.0f} km²" if value >= 1000 else f"{value:.3g} km²"


def _share(part: float, total: float) -> str:
    pct = 100 * part / total if total else 0.0
    return "<1 %" if 0 < pct < 1 else f"{pct:.0f} %"


def summary_table(summary: dict, top: int = 5):
    """A short rich table of a build summary (what ``mosaic build`` prints instead of its JSON):
    tiles, extent, the largest classes, outputs and the STAC check; ``--json`` gives the whole summary."""
    from rich.table import Table

    campaign = summary.get("campaign")
    stage = summary.get("campaign_stage")
    title = f"Mosaic {summary['year']}" + (f" of campaign {campaign}" if campaign else "") + \
        (f" (stage {stage})" if stage else "")
    status = summary.get("status", "")
    if "seconds" in summary:
        status += f" in {summary['seconds']:.1f} s"
    table = Table(title=title, show_header=False, title_justify="left")
    table.add_column(style="bold")
    table.add_column()
    computed, pending = summary.get("computed", []), summary.get("pending", [])
    reused = summary["tiles"] - len(computed)
    tiles = f"{summary['tiles']} finished ({len(computed)} read, {reused} from the cache)"
    if pending:
        tiles += f"; {len(pending)} of the campaign's tiles not finished"
    west, south, east, north = summary.get("extent", [0, 0, 0, 0])
    areas = {int(k): v for k, v in summary.get("area_km2", {}).items()}
    total = sum(areas.values())
    largest = sorted(((v, k) for k, v in areas.items() if v > 0), reverse=True)[:top]
    area_text = f"{_km2(total)} mapped" + "".join(
        f"\n{BY_CODE[k].name} {_km2(v)} ({_share(v, total)})" for v, k in largest if k in BY_CODE)
    stac = summary.get("stac", {})
    stac_text = f"{stac.get('collection_id', '?')}: {stac.get('items', 0)} items"
    if stac.get("validated"):
        stac_text += f", valid against {len(stac.get('validated_against', []))} schemas"
    if stac.get("not_vendored"):
        stac_text += f" ({len(stac['not_vendored'])} extension schemas not held offline: not checked)"
    outputs = summary.get("outputs", {})
    out_text = summary.get("mosaic_dir", "")
    for key in ("vrt", "quicklook", "areas_csv", "collection"):
        if key in outputs:
            out_text += f"\n{key}: {outputs[key]}"
    for k, v in (("status", status), ("tiles", tiles),
                 ("extent", f"lon {west}..{east}, lat {south}..{north}"), ("area", area_text),
                 ("STAC", stac_text), ("outputs", out_text)):
        table.add_row(k, v)
    return table
