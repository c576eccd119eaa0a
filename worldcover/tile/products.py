"""Tile products from block results: Map, Probability and InputQuality COGs and a STAC item.

Block results are small GeoTIFFs (one per block, written atomically with a
JSON record holding their checksum and provenance), so an interrupted tile
resumes at the first unfinished block. Assembly streams block by block into
a temporary tiled GeoTIFF on disk and converts it to a COG with rio-cogeo:
memory stays at a few blocks whatever the tile size.
"""

from __future__ import annotations

import json
import tempfile
import warnings
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import rasterio
from affine import Affine
from odc.geo.geobox import GeoBox
from rasterio.rio.overview import get_maximum_overview_level
from rasterio.windows import Window
from rio_cogeo.cogeo import cog_translate, cog_validate
from rio_cogeo.profiles import cog_profiles

from worldcover import __version__, storage
from worldcover.cog import OverviewResampling
from worldcover.errors import DataError
from worldcover.grid import CRS, PIXELS_PER_DEGREE, QUALITY_PIXELS_PER_DEGREE, Block, Tile
from worldcover.layout import TilePaths, multihash_sha256, product_version
from worldcover.legend import CLASSES, NODATA, colormap
from worldcover.storage import atomic_path, atomic_workdir, atomic_write_text, remove_temps, sha256

# Bands of a block result GeoTIFF (int16 so one file holds them all).
BLOCK_BANDS = ("map", "prob", "n_s1", "n_s2", "pct_discarded")
QUALITY_BANDS = ("n_s1_observations", "n_s2_observations", "pct_s2_discarded")
QUALITY_NODATA = -1
QUALITY_FACTOR = PIXELS_PER_DEGREE // QUALITY_PIXELS_PER_DEGREE  # 6 map pixels per quality pixel
# What the InputQuality bands hold, in the words of the real product's ``description`` tag.
QUALITY_DESCRIPTIONS = {
    "n_s1_observations": "Number of Sentinel-1 backscatter observations (RTC gamma0 or geocoded sigma0) used in "
                         "the classification workflow",
    "n_s2_observations": "Number of Sentinel-2 L2A observations used in the classification workflow",
    "pct_s2_discarded": "Percentage (0-100) of invalid S2 observations discarded in the classification workflow "
                        "(after cloud and cloud shadow filtering)",
}

# The real product's COG layout (ESA WorldCover v100/v200 Map and InputQuality tiles): 1024 px internal
# blocks; overviews halve the raster until it fits in one block (2..64 on a 36000 px Map, 2, 4, 8 on a
# 6000 px InputQuality), which is rio-cogeo's rule at that block size.
PRODUCT_BLOCKSIZE = 1024
PRODUCT_LICENSE = "CC-BY 4.0 - https://creativecommons.org/licenses/by/4.0/"  # the real tiles' tag, verbatim
PRODUCT_TYPES = {"Map": "LandCover Map", "Prob": "Class Probability Layer", "InputQuality": "Input Quality Layer"}


def cog_layout(height: int, width: int, blocksize: int = PRODUCT_BLOCKSIZE) -> tuple[int, list[int]]:
    """Internal block size and overview factors of a product COG of this size.

    A full tile gets the real product's 1024 px blocks and overviews 2..64. A partial tile (a few
    blocks) keeps 1024 px blocks when it is that large, else the largest power of two that fits
    (>= 16), and the same rule for overviews: halve until the raster fits in one block. When the raster
    or one of its overviews would be exactly one block wide and over 512 px (a 1024 or 2048 px block), the
    block size is halved: GDAL stores such a level as a strip, and a COG must be tiled.
    """
    side = min(height, width)
    size = blocksize if side >= blocksize else max(16, 1 << int(np.log2(max(side, 1))))
    while True:
        overviews = [2**i for i in range(1, get_maximum_overview_level(width, height, minsize=size) + 1)]
        # a level exactly one block wide is a strip to GDAL (untiled), which a COG may not hold above 512 px
        strips = [f for f in (1, *overviews) if -(-width // f) == size and max(-(-width // f), -(-height // f)) > 512]
        if not strips or size <= 16:
            return size, overviews
        size //= 2


def legend_tag() -> str:
    """The ``legend`` tag exactly as the real v200 Map carries it: one 'CODE NAME' line per class."""
    return "".join(f"{c.code:<3} {c.name.replace(' / ', '/')}\n" for c in CLASSES)


def quality_description() -> str:
    """The InputQuality ``description`` tag, in the real product's wording, for our bands."""
    lines = [f"Band {i}: {QUALITY_DESCRIPTIONS.get(name, name)}" for i, name in enumerate(QUALITY_BANDS, 1)]
    return (",\n".join(lines) + ".\n\nCombining Band 2 and Band 3 yields the total absolute number of valid "
            "Sentinel-2 L2A observations used in the classification workflow.")


def product_tags(paths: TilePaths, product: str, model_card: dict, created: datetime | None = None) -> dict[str, str]:
    """GeoTIFF metadata of one tile product: the real product's keys and formats, our values.

    Keys as on ESA's tiles (algorithm_version, copyright, creation_time, legend or description,
    license, product_crs/grid/tile/type/version, reference, time_start/end, title); the values
    name this package, its version and the model, and the Copernicus attribution CC-BY 4.0 asks for.
    """
    year, name = paths.year, model_card.get("name") or "unnamed model"
    created = created or datetime.now(UTC)
    tags = {
        "algorithm_version": f"{name} {str(model_card.get('version') or '')[:12]}".strip(),
        "copyright": f"worldcover {__version__} / Contains modified Copernicus Sentinel data ({year}) "
                     "processed with worldcover",
        "creation_time": created.strftime("%Y-%m-%d %H:%M:%S.%f"),
        "license": PRODUCT_LICENSE,
        "product_crs": CRS,
        "product_grid": "3x3 degree tiling grid",
        "product_tile": paths.tile.id,
        "product_type": PRODUCT_TYPES[product],
        "product_version": product_version(),
        "reference": "https://esa-worldcover.org (the method followed; this product is not ESA's)",
        "time_end": f"{year}-12-31T23:59:59Z",
        "time_start": f"{year}-01-01T00:00:00Z",
        "title": f"worldcover product at 10m resolution for year {year}",
    }
    if product == "Map":
        tags["legend"] = legend_tag()
    elif product == "InputQuality":
        tags["description"] = quality_description()
    else:
        tags["description"] = "Probability (0-100 %) the classifier gave the mapped class; 0 where the map has no data."
    return dict(sorted(tags.items()))


@dataclass
class BlockResult:
    """The per-pixel outcome of one block (all arrays (y, x) on the block's GeoBox)."""

    block: Block
    codes: np.ndarray  # uint8 WorldCover codes, 0 = nodata
    prob: np.ndarray  # uint8 0-100
    n_s1: np.ndarray  # int16 observations
    n_s2: np.ndarray  # int16 observations (clear or not)
    pct_discarded: np.ndarray  # int16 % of S2 observations masked
    provenance: dict = field(default_factory=dict)

    def stack(self) -> np.ndarray:
        arrays = [self.codes, self.prob, self.n_s1, self.n_s2, self.pct_discarded]
        for a in arrays:
            if a.shape != self.block.shape:
                raise DataError(f"block {self.block.id}: result shape {a.shape} != block shape {self.block.shape}")
        return np.stack([a.astype("int16") for a in arrays])


def write_block_result(paths: TilePaths, result: BlockResult) -> storage.Location:
    """Block GeoTIFF then its record (checksum + provenance); the record marks it done."""
    key = result.block.key
    dest = paths.block_result(key)
    gb = result.block.geobox
    profile = dict(driver="GTiff", height=gb.shape[0], width=gb.shape[1], count=len(BLOCK_BANDS), dtype="int16",
                   crs=CRS, transform=gb.transform, nodata=None, tiled=True, blockxsize=256, blockysize=256,
                   compress="deflate", num_threads="ALL_CPUS")
    if gb.shape[0] < 256 or gb.shape[1] < 256:
        profile.update(tiled=False, blockxsize=None, blockysize=None)
        profile = {k: v for k, v in profile.items() if v is not None}
    with atomic_path(dest, suffix=".tif") as tmp:
        with rasterio.open(tmp, "w", **profile) as dst:
            dst.write(result.stack())
            dst.descriptions = BLOCK_BANDS
        digest = sha256(tmp)  # of the bytes stored, hashed before they leave local scratch
    record = {"block": result.block.id, "key": key, "size": result.block.size,
              "sha256": digest, "provenance": result.provenance,
              "written": datetime.now(UTC).isoformat()}
    atomic_write_text(paths.block_record(key), json.dumps(record, indent=1, default=str))
    return dest


def block_done(paths: TilePaths, block: Block) -> bool:
    """True when the block's result exists, matches its record, and was made at this block size."""
    rec_path, tif = paths.block_record(block.key), paths.block_result(block.key)
    if not (rec_path.exists() and tif.exists()):
        return False
    try:
        rec = json.loads(rec_path.read_text())
    except (OSError, json.JSONDecodeError):
        return False
    return rec.get("size") == block.size and rec.get("sha256") == sha256(tif)


def block_provenance(paths: TilePaths, block: Block) -> dict:
    return json.loads(paths.block_record(block.key).read_text()).get("provenance", {})


def union_window(blocks: Sequence[Block], align: int = 1) -> tuple[int, int, int, int]:
    """(row0, col0, row1, col1) in tile pixels covering ``blocks``, expanded to multiples of ``align``."""
    r0 = min(b.window[0].start for b in blocks)
    c0 = min(b.window[1].start for b in blocks)
    r1 = max(b.window[0].stop for b in blocks)
    c1 = max(b.window[1].stop for b in blocks)
    down = lambda v: (v // align) * align  # noqa: E731
    up = lambda v: -(-v // align) * align  # noqa: E731
    return down(r0), down(c0), up(r1), up(c1)


def _window_geobox(tile: Tile, window: tuple[int, int, int, int], factor: int = 1) -> GeoBox:
    r0, c0, r1, c1 = window
    res = 1.0 / PIXELS_PER_DEGREE * factor
    x0 = tile.lon + c0 / PIXELS_PER_DEGREE
    y0 = tile.lat + 3 - r0 / PIXELS_PER_DEGREE
    return GeoBox(((r1 - r0) // factor, (c1 - c0) // factor), Affine(res, 0, x0, 0, -res, y0), CRS)


def _to_cog(src_path: Path, dest: storage.Location, overview_resampling: OverviewResampling, cmap: dict | None = None,
            tags: dict[str, str] | None = None) -> None:
    profile = cog_profiles.get("deflate")
    # on disk, rio-cogeo writes its own temporary file beside its output: keep it in a hidden scratch folder
    with rasterio.open(src_path) as src, atomic_workdir(dest) as tmp:
        size, overviews = cog_layout(*src.shape)
        profile.update(blockxsize=size, blockysize=size)
        cog_translate(src, tmp, profile, overview_resampling=overview_resampling, in_memory=False, quiet=True,
                      colormap=cmap, forward_band_tags=True, overview_level=len(overviews),
                      additional_cog_metadata=tags)
        ok, errors, _ = cog_validate(tmp, quiet=True)
        if not ok:
            raise DataError(f"{dest.name} is not a valid COG: {'; '.join(errors)}")


def _scratch(folder: Path, geobox: GeoBox, count: int, dtype: str, nodata, name: str) -> Path:
    path = folder / f".{name}.scratch.tif"
    with rasterio.open(path, "w", driver="GTiff", height=geobox.shape[0], width=geobox.shape[1], count=count,
                       dtype=dtype, crs=CRS, transform=geobox.transform, nodata=nodata, tiled=True,
                       blockxsize=256, blockysize=256, compress="deflate", sparse_ok=True):
        pass  # sparse: blocks never written read back as nodata, so nothing is filled in memory
    return path


def assemble_tile(paths: TilePaths, blocks: Sequence[Block], *, model_card: dict, params: dict,
                  source: str) -> dict:
    """Write Map, Prob, InputQuality COGs and the STAC item (last) from finished block results."""
    tile = paths.tile
    win = union_window(blocks)
    qwin = union_window(blocks, QUALITY_FACTOR)
    gb, qgb = _window_geobox(tile, win), _window_geobox(tile, qwin, QUALITY_FACTOR)
    full_q = _window_geobox(tile, qwin)  # 10 m grid of the quality window, for aggregation
    tags = {p: product_tags(paths, p, model_card) for p in PRODUCT_TYPES}
    with _scratch_folder(paths) as folder:
        _assemble_cogs(paths, blocks, folder, win, qwin, gb, qgb, full_q, tags)
    item = tile_item(paths, blocks, gb, qgb, model_card=model_card, params=params, source=source)
    atomic_write_text(paths.item, json.dumps(item, indent=1))
    return item


@contextmanager
def _scratch_folder(paths: TilePaths) -> Iterator[Path]:
    """Where assembly writes its scratch rasters: the tile folder on local disk (swept after a crash by
    :func:`cleanup_scratch`), a local temporary folder when the products go to object storage."""
    if isinstance(paths.dir, Path):  # local disk (storage.path gives a UPath only for object storage)
        paths.dir.mkdir(parents=True, exist_ok=True)
        yield paths.dir
        return
    with tempfile.TemporaryDirectory(prefix="worldcover-tile-") as tmp:
        yield Path(tmp)


def _assemble_cogs(paths: TilePaths, blocks: Sequence[Block], folder: Path, win, qwin, gb: GeoBox, qgb: GeoBox,
                   full_q: GeoBox, tags: dict[str, dict[str, str]]) -> None:
    """Stream the block results into scratch rasters, then the Map, Prob and InputQuality COGs."""
    scratch = {
        "map": _scratch(folder, gb, 1, "uint8", NODATA, "map"),
        "prob": _scratch(folder, gb, 1, "uint8", 0, "prob"),
        "q10": _scratch(folder, full_q, 3, "int16", QUALITY_NODATA, "q10"),
    }
    try:
        with rasterio.open(scratch["map"], "r+") as m, rasterio.open(scratch["prob"], "r+") as p, \
                rasterio.open(scratch["q10"], "r+") as q:
            for b in blocks:
                with rasterio.open(storage.gdal_path(paths.block_result(b.key))) as src:
                    data = src.read()
                ys, xs = b.window
                w = Window(xs.start - win[1], ys.start - win[0], xs.stop - xs.start, ys.stop - ys.start)
                wq = Window(xs.start - qwin[1], ys.start - qwin[0], xs.stop - xs.start, ys.stop - ys.start)
                m.write(data[0].astype("uint8"), 1, window=w)
                p.write(np.where(data[0] > 0, data[1], 0).astype("uint8"), 1, window=w)
                valid = data[0] > 0
                q.write(np.where(valid, data[2:5], QUALITY_NODATA).astype("int16"), window=wq)
        quality = scratch["q"] = scratch["q10"].with_name(".quality.scratch.tif")
        # the three COGs side by side: GDAL compresses and builds overviews outside the GIL (one core each);
        # warning filters are process-wide, so they are set here, around the threads, not in each
        with warnings.catch_warnings(), ThreadPoolExecutor(max_workers=3, thread_name_prefix="worldcover-cog") as pool:
            # rio-cogeo says so whenever it is given a colour map; the Map's palette is the point of giving one
            warnings.filterwarnings("ignore", "Dataset color interpretation was set to `Palette`", UserWarning)
            done = [pool.submit(_to_cog, scratch["map"], paths.map, "mode", colormap(), tags["Map"]),
                    pool.submit(_to_cog, scratch["prob"], paths.prob, "average", tags=tags["Prob"]),
                    pool.submit(lambda: _to_cog(_coarsen_quality(scratch["q10"], qgb, quality), paths.quality,
                                                "average", tags=tags["InputQuality"]))]
            for future in done:
                future.result()  # the first failure is raised; the finally below removes every scratch file
    finally:
        for s in scratch.values():
            Path(s).unlink(missing_ok=True)


def _coarsen_quality(q10: Path, qgb: GeoBox, out: Path, rows_per_strip: int = 1200) -> Path:
    """Average 6x6 blocks of valid 10 m quality values onto the 0.0005 degree grid, by strips, into ``out``."""
    f = QUALITY_FACTOR
    with rasterio.open(q10) as src, rasterio.open(
        out, "w", driver="GTiff", height=qgb.shape[0], width=qgb.shape[1], count=3, dtype="int16", crs=CRS,
        transform=qgb.transform, nodata=QUALITY_NODATA, tiled=False, compress="deflate",
    ) as dst:
        for r in range(0, src.height, rows_per_strip):
            h = min(rows_per_strip, src.height - r)
            data = src.read(window=Window(0, r, src.width, h)).astype("float32")
            data[data == QUALITY_NODATA] = np.nan
            blocks = data.reshape(3, h // f, f, src.width // f, f)
            with np.errstate(invalid="ignore"):
                valid = np.isfinite(blocks).sum(axis=(2, 4))
                mean = np.nansum(blocks, axis=(2, 4)) / np.maximum(valid, 1)
            result = np.where(valid > 0, np.rint(mean), QUALITY_NODATA).astype("int16")
            dst.write(result, window=Window(0, r // f, src.width // f, h // f))
        dst.descriptions = QUALITY_BANDS
    return out


def _asset(paths: TilePaths, path: storage.Location, title: str, roles: list[str], extra: dict) -> dict:
    return {"href": f"./{path.name}", "type": "image/tiff; application=geotiff; profile=cloud-optimized",
            "title": title, "roles": roles, "file:checksum": multihash_sha256(sha256(path)),
            "file:size": storage.size(path), **extra}


def tile_item(paths: TilePaths, blocks: Sequence[Block], gb: GeoBox, qgb: GeoBox, *, model_card: dict,
              params: dict, source: str) -> dict:
    """The tile's STAC item (classification, raster, projection, file extensions) with provenance."""
    w, s, e, n = (gb.extent.boundingbox.left, gb.extent.boundingbox.bottom, gb.extent.boundingbox.right,
                  gb.extent.boundingbox.top)
    inputs: dict[str, set] = {}
    records = [block_provenance(paths, b) for b in blocks]
    for rec in records:
        for coll, ids in rec.get("items", {}).items():
            inputs.setdefault(coll, set()).update(ids)
    classes = [{"value": c.code, "name": c.name.lower().replace(" / ", "-").replace(" ", "-"),
                "description": c.name, "color_hint": c.colour} for c in CLASSES]
    proj = lambda g: {"proj:code": CRS, "proj:shape": list(g.shape), "proj:transform": list(g.transform)[:6]}  # noqa: E731
    year = paths.year
    return {
        "type": "Feature",
        "stac_version": "1.1.0",
        "stac_extensions": [
            "https://stac-extensions.github.io/classification/v1.1.0/schema.json",
            "https://stac-extensions.github.io/raster/v1.1.0/schema.json",
            "https://stac-extensions.github.io/projection/v2.0.0/schema.json",
            "https://stac-extensions.github.io/file/v2.1.0/schema.json",
        ],
        "id": paths.stem,
        "geometry": {"type": "Polygon", "coordinates": [[[w, s], [e, s], [e, n], [w, n], [w, s]]]},
        "bbox": [w, s, e, n],
        "properties": {
            "datetime": None,
            "start_datetime": f"{year}-01-01T00:00:00Z",
            "end_datetime": f"{year}-12-31T23:59:59Z",
            "worldcover:tile": paths.tile.id,
            "worldcover:blocks": sorted(b.key for b in blocks),
            "worldcover:block_size": blocks[0].size,
            "worldcover:source": source,
            "worldcover:parameters": params,
            "worldcover:input_items": {k: sorted(v) for k, v in sorted(inputs.items())},
            "worldcover:missing_inputs": missing_inputs(records),
            **input_summary(records),
            "worldcover:model": {k: model_card.get(k) for k in ("name", "version", "created")},
            "worldcover:software": {"worldcover": __version__},
            "created": datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z"),
            **proj(gb),
        },
        "links": [],
        "assets": {
            "map": _asset(paths, paths.map, "Land cover classes (WorldCover legend)", ["data"], {
                "classification:classes": classes,
                "raster:bands": [{"nodata": NODATA, "data_type": "uint8", "spatial_resolution": 10}],
            }),
            "probability": _asset(paths, paths.prob, "Probability of the mapped class (%)", ["data"], {
                "raster:bands": [{"nodata": 0, "data_type": "uint8", "unit": "percent"}],
            }),
            "input_quality": _asset(paths, paths.quality, "InputQuality: S1 obs, S2 obs, % S2 discarded",
                                    ["metadata", "quality"], {
                "raster:bands": [{"nodata": QUALITY_NODATA, "data_type": "int16", "name": n} for n in QUALITY_BANDS],
                **proj(qgb),
            }),
        },
    }


def input_summary(records: Sequence[dict]) -> dict:
    """What the loader decided over the tile's blocks: S2 items skipped for missing bands, S1 kind and
    orbit, and how DN were harmonised (items whose metadata disagreed with their data are named)."""
    skipped: dict[str, list[str]] = {}
    s1: dict[str, set[str]] = {"collections": set(), "backscatter": set(), "orbit_states_used": set()}
    offsets: dict[str, set] = {}
    disagree: set[str] = set()
    for rec in records:
        skipped.update(rec.get("s2_skipped") or {})
        info = rec.get("s1") or {}
        for key, value in (("collections", info.get("collection")), ("backscatter", info.get("backscatter")),
                           ("orbit_states_used", info.get("orbit_state_used"))):
            if value:
                s1[key].add(value)
        for h in rec.get("harmonisation") or []:
            offsets.setdefault(str(h.get("offset_dn")), set()).add(h.get("item_id"))
            if h.get("metadata_disagrees"):
                disagree.add(h.get("item_id"))
    return {
        "worldcover:s2_items_skipped": {"count": len(skipped), "items": dict(sorted(skipped.items()))},
        "worldcover:s1": {k: sorted(v) for k, v in s1.items()},
        "worldcover:harmonisation": {"items_by_offset_dn": {k: len(v) for k, v in sorted(offsets.items())},
                                     "metadata_disagrees": sorted(disagree)},
    }


def missing_inputs(records: Sequence[dict]) -> dict:
    """Per input group (s1, dem): mapped pixels whose features missed it, their share, and the share of
    training rows the model learnt that group missing in (0: the model read the missing values as 0)."""
    mapped = sum(r.get("missing_inputs", {}).get("mapped_pixels", 0) for r in records)
    out = {}
    for group in sorted({g for r in records for g in r.get("model_trained_missing", {})}):
        n = sum(r.get("missing_inputs", {}).get(group, 0) for r in records)
        trained = max(r.get("model_trained_missing", {}).get(group, 0.0) for r in records)
        out[group] = {"pixels": n, "fraction": round(n / mapped, 6) if mapped else 0.0,
                      "model_trained_missing_share": trained}
    return out


def cleanup_scratch(paths: TilePaths) -> None:
    """Remove leftovers of an interrupted assembly or write (never a finished product or block).

    Only local folders have any: on object storage, scratch lives in local temporary space.
    """
    if not storage.is_remote(paths.dir) and paths.dir.exists():
        for p in paths.dir.glob(".*.scratch.tif"):
            p.unlink(missing_ok=True)
        remove_temps(paths.dir)
        remove_temps(paths.blocks_dir)


