"""Load a block's Sentinel-2, Sentinel-1 and DEM inputs from a STAC API with odc-stac.

Returns the data contract of :mod:`worldcover.bands`: lazy dask arrays on the
block's GeoBox (10 m in EPSG:4326), S2 as harmonised float32 reflectance with
NaN for missing and SCL as uint8, S1 as linear power, the DEM in metres.
20 m and 60 m bands are resampled onto the 10 m grid here (bilinear; SCL nearest); on a native grid
the 20 m bands also come at 20 m (:attr:`BlockInputs.s2_20m`), which the chain composites at 20 m.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, NamedTuple

import numpy as np
import odc.stac
import pystac
import xarray as xr
from affine import Affine
from odc.geo.geobox import GeoBox
from odc.geo.xr import xr_coords

from worldcover.bands import (
    S1_POLARISATIONS,
    S2_BANDS,
    S2_BOA_OFFSET_DN,
    S2_QUANTIFICATION,
    SCL,
    s2_asset_keys,
    to_yx,
)
from worldcover.errors import DataError
from worldcover.grid import Block, native_geobox
from worldcover.regrid import upsample2
from worldcover.sources.catalogues import (
    AUTO,
    CataloguePreset,
    check_s1_geocoded,
    choose_s1_collection,
    open_client,
    resolve,
    search_items,
    signer,
)
from worldcover.sources.harmonise import (
    Harmonisation,
    fraction_below_offset,
    harmonisation,
    offset_already_removed,
)

log = logging.getLogger(__name__)

# Spatial dask chunk of a block's load (pixels): peak memory follows the chunk more
# than the block size, and every chunk reads every input COG once more. With only
# the bands the features need, on the native grid, a 2048 px block ran in 92.9 s
# and peaked at 4.0 GB with 1024 px chunks against 122.9 s and 3.7 GB with 512 px
# ones (2048 px chunks: 97.6 s, 5.5 GB); the Map is identical (1024 px block, every pixel).
DEFAULT_CHUNK = 1024


@dataclass
class BlockInputs:
    """Everything one block needs, plus the provenance of where it came from.

    ``s2_skipped``: S2 items left out because they lack a band the model needs
    ({item id: missing bands}); ``s1_info``: the S1 collection, its backscatter
    kind (gamma0-rtc, gamma0-terrain, sigma0) and the orbit directions used.
    """

    s2: xr.Dataset | None
    s1: xr.Dataset | None
    dem: xr.DataArray | None
    items: dict[str, list[str]] = field(default_factory=dict)
    harmonisation: list[Harmonisation] = field(default_factory=list)
    s2_skipped: dict[str, list[str]] = field(default_factory=dict)
    s1_info: dict = field(default_factory=dict)
    geobox: GeoBox | None = None  # the grid the arrays are on (None: the block's product grid)
    # native grid only: the S2 bands read at 20 m (and SCL), at 20 m; ``s2`` holds them doubled to 10 m
    s2_20m: xr.Dataset | None = None


class S2Load(NamedTuple):
    """What :func:`load_s2` gives: the bands on ``geobox``, the harmonisation of every item, and on a
    native grid the bands read at 20 m, at 20 m (None otherwise)."""

    data: xr.Dataset
    decisions: list[Harmonisation]
    data_20m: xr.Dataset | None = None


def _year_range(year: int) -> str:
    return f"{year}-01-01T00:00:00Z/{year}-12-31T23:59:59Z"


#: dask chunks as odc-stac takes them
Chunks = dict[str, int | Literal["auto"]]


def _chunks(geobox: GeoBox, chunk: int | None) -> Chunks | None:
    if chunk is None:
        return None
    return {"time": -1, "y": min(chunk, geobox.shape[0]), "x": min(chunk, geobox.shape[1])}


def load_s2(items: list[pystac.Item], geobox: GeoBox, layout: str = "planetary-computer",
            chunk: int | None = DEFAULT_CHUNK, bands: Sequence[str] | None = None,
            check_offset: bool = True, native: bool = False) -> S2Load:
    """Harmonised S2 reflectance of ``bands`` (default: all) + SCL on ``geobox``; items grouped by solar day.

    With ``check_offset`` a small DN sample of every item that declares the
    baseline-04.00 offset is checked for an offset already removed
    (:func:`worldcover.sources.harmonise.offset_already_removed`).
    ``native``: ``geobox`` is a 10 m grid aligned with the items' own
    (:func:`worldcover.grid.native_geobox`): 10 m bands are read as they are,
    coarser bands and SCL on the 20 m grid of the same extent, then doubled
    (bilinear; SCL repeated), so no band goes through GDAL's warper; those are
    also returned at 20 m (``S2Load.data_20m``).
    """
    if not items:
        raise DataError("no Sentinel-2 items to load")
    keys = s2_asset_keys(layout, S2_BANDS if bands is None else bands)
    _check_assets(items, list(keys.values()))
    ref = keys.get("B04", next(iter(keys.values())))  # raster:bands offset is read from one reflectance asset
    decisions = [harmonisation(i, ref) for i in items]
    if check_offset:
        check_s2_headers(items, keys)  # before sampling: a wrong COG is named as such, not as an offset
        decisions = sample_offsets(items, decisions, geobox, keys)
    parts, coarse = [], []
    for offset in sorted({d.offset_dn for d in decisions}):
        group = [i for i, d in zip(items, decisions, strict=True) if d.offset_dn == offset]
        if native:
            fine, low = _load_s2_native(group, geobox, keys, offset, chunk)
            parts.append(fine)
            coarse.append(low)
        else:
            parts.append(_load_s2_group(group, geobox, keys, offset, chunk))
    return S2Load(_joined(parts), decisions, _joined(coarse) if coarse else None)


def _joined(parts: list[xr.Dataset]) -> xr.Dataset:
    """Item groups loaded apart (one per offset) as one time series."""
    return parts[0] if len(parts) == 1 else _fuse_days(xr.concat(parts, dim="time"))


# Bands sampled for the offset check, darkest over land first (blue is the lowest for soil and vegetation).
_OFFSET_SAMPLE_BANDS = ("B02", "B03", "B04", "B05", "B08", "B8A", "B11", "B12")
OFFSET_SAMPLE_PX = 64
# SCL classes whose DN tell the offset apart: dark features, vegetation, soil, water, unclassified.
_SCL_CLEAR = frozenset({2, 4, 5, 6, 7})


def sample_offsets(items: list[pystac.Item], decisions: list[Harmonisation], geobox: GeoBox,
                   keys: dict[str, str], size: int = OFFSET_SAMPLE_PX) -> list[Harmonisation]:
    """Check the DN of the items that declare the 04.00 offset on a coarse (``size`` px) grid of the block.

    One odc-stac read of one band (one slice per item, COG overviews serve it)
    and one vectorised count: cheap next to the block's load.
    """
    todo = [k for k, d in enumerate(decisions) if d.offset_dn == S2_BOA_OFFSET_DN]
    band = next((b for b in _OFFSET_SAMPLE_BANDS if b in keys), None)
    if not todo or band is None:
        return decisions
    coarse = geobox.zoom_to((min(size, geobox.shape[0]), min(size, geobox.shape[1])))
    picked = [items[k] for k in todo]
    raw = odc.stac.load(picked, bands=[keys[band], keys[SCL]], geobox=coarse, groupby="id", resampling="nearest",
                        dtype="uint16", nodata=0, fail_on_error=True)
    clear = np.isin(raw[keys[SCL]].values, list(_SCL_CLEAR))
    if raw.sizes["time"] != len(picked):  # groupby="id": one slice per item, in the order given
        raise DataError(f"offset sample: {raw.sizes['time']} slices for {len(picked)} Sentinel-2 items")
    fractions = fraction_below_offset(raw[keys[band]].values, clear)
    out = list(decisions)
    for k, frac in zip(todo, fractions, strict=True):
        out[k] = offset_already_removed(decisions[k], float(frac))
    return out


def _load_s2_group(items, geobox, keys, offset, chunk, align: bool = False) -> xr.Dataset:
    """One odc-stac load of the bands of ``keys`` ({band: asset key}; SCL optional) as reflectance.

    ``align``: ``geobox`` is on the items' own pixel grid; the dask chunks are then laid on the COGs'
    internal tiles (:func:`tile_aligned`), so each tile of each file is decoded once, not once per chunk
    it straddles, and each file is read in a few windows of whole chunk rows (:func:`read_chunks`).
    """
    bands = [b for b in keys if b != SCL]
    check_s2_headers(items, keys)
    raw = _load_by_day(
        items, list(keys.values()), geobox, chunk, items[0].assets[next(iter(keys.values()))].href if align else None,
        resampling={"*": "bilinear", **({keys[SCL]: "nearest"} if SCL in keys else {})},
        dtype="uint16", nodata=0,  # one dtype: odc-stac's dask path rejects a per-band dict
        fail_on_error=True,
    ).rename({key: b for b, key in keys.items()})
    out = xr.Dataset(attrs={"harmonisation_offset_dn": offset})
    for band in bands:
        out[band] = xr.apply_ufunc(dn_to_reflectance, raw[band], kwargs={"offset": offset}, dask="parallelized",
                                   output_dtypes=[np.float32], keep_attrs=True)
    if SCL in keys:
        out[SCL] = raw[SCL].astype("uint8")
    return out


def tile_aligned(geobox: GeoBox, href: str,
                 chunk: int | None) -> tuple[GeoBox, tuple[slice, slice] | None, Chunks | None]:
    """(a grid extended up and left to the internal tiling of the COG at ``href``, the window of ``geobox``
    in it, dask chunks of whole tiles near ``chunk``); ``geobox`` unchanged when the COG is not on its grid.

    A chunk that straddles a tile boundary makes GDAL decode every tile it touches, and its neighbour
    decodes them again: with 512 px chunks offset from 512 px tiles each tile was decoded up to four times.
    The extension is cut off again before anything is computed from it.
    """
    import rasterio

    plain = (geobox, None, _chunks(geobox, chunk))
    if chunk is None:
        return plain
    with rasterio.open(href) as f:
        t, (bh, bw), crs = f.transform, f.block_shapes[0], f.crs
    a = geobox.affine
    if crs != geobox.crs or (t.a, t.b, t.d, t.e) != (a.a, a.b, a.d, a.e) or bw >= f.width and f.width > 512:
        return plain
    col, row = (a.c - t.c) / t.a, (a.f - t.f) / t.e
    if not (float(col).is_integer() and float(row).is_integer()):
        return plain
    dc, dr = int(col) % bw, int(row) % bh
    ext = GeoBox((geobox.shape[0] + dr, geobox.shape[1] + dc), a @ Affine.translation(-dc, -dr), geobox.crs)
    chunks: Chunks = {"time": -1, "y": max(bh, chunk // bh * bh), "x": max(bw, chunk // bw * bw)}
    return ext, (slice(dr, dr + geobox.shape[0]), slice(dc, dc + geobox.shape[1])), chunks


# Pixels per file in one read window: odc-stac pays a set-up per read (open, GDAL environment, grid checks:
# ~4 ms, 15 % of a 2048 px block's CPU with one read per chunk), so a file is read in windows of whole rows of
# chunks, up to this size, and cut into the chunks after. Bounds one load task's memory (all dates of one band).
READ_WINDOW_PX = 2_000_000


def read_chunks(geobox: GeoBox, chunks: Chunks | None, max_px: int | None = None) -> Chunks | None:
    """The dask chunks to read ``chunks`` (of a grid ``geobox``) with: the full width and as many whole rows of
    chunks as fit in ``max_px`` pixels (at least one), so fewer, larger reads that split on the same edges."""
    if chunks is None:
        return None
    cy = chunks.get("y")
    if not isinstance(cy, int) or cy <= 0:  # "auto": odc-stac chooses
        return chunks
    height, width = geobox.shape
    max_px = READ_WINDOW_PX if max_px is None else max_px
    rows = min(height, cy * max(1, max_px // (cy * width)))
    return {**chunks, "y": rows, "x": width}


def _load_by_day(items, bands: list[str], geobox: GeoBox, chunk: int | None, aligned_on: str | None,
                 **options) -> xr.Dataset:
    """odc-stac's load of ``bands`` on ``geobox``, one slice per solar day, dims y/x.

    ``aligned_on``: the href of a COG whose pixel grid ``geobox`` lies on: the chunks are then its internal
    tiles (:func:`tile_aligned`), each file is read in windows of whole chunk rows (:func:`read_chunks`) and
    cut into those chunks (a view each).
    """
    if aligned_on is None:
        return to_yx(odc.stac.load(items, bands=bands, geobox=geobox, groupby="solar_day",
                                   chunks=_chunks(geobox, chunk), **options))
    load_box, window, chunks = tile_aligned(geobox, aligned_on, chunk)
    raw = to_yx(odc.stac.load(items, bands=bands, geobox=load_box, groupby="solar_day",
                              chunks=read_chunks(load_box, chunks), **options))
    if chunks is not None and raw.chunks:
        raw = raw.chunk({"y": chunks["y"], "x": chunks["x"]})
    return raw if window is None else raw.isel(y=window[0], x=window[1])


def _load_s2_native(items, geobox, keys, offset, chunk) -> tuple[xr.Dataset, xr.Dataset]:
    """:func:`_load_s2_group` on a native 10 m grid: 10 m bands pasted, the others read at 20 m and doubled;
    and those others at 20 m."""
    fine = {b: k for b, k in keys.items() if b != SCL and S2_BANDS[b] <= 10}
    coarse = {b: k for b, k in keys.items() if b not in fine}
    gb20 = GeoBox.from_bbox(geobox.boundingbox, geobox.crs, resolution=2 * abs(geobox.resolution.x))
    if tuple(gb20.shape) != (geobox.shape[0] // 2, geobox.shape[1] // 2) or geobox.shape[0] % 2 or geobox.shape[1] % 2:
        raise DataError(f"native grid {tuple(geobox.shape)} is not a whole number of 20 m pixels")
    out = xr.Dataset(attrs={"harmonisation_offset_dn": offset})
    if fine:
        out = _load_s2_group(items, geobox, fine, offset, chunk, align=True)
    low = _load_s2_group(items, gb20, coarse, offset, None if chunk is None else max(chunk // 2, 1), align=True)
    template = out[next(iter(fine))] if fine else None
    for band in [b for b in keys if b in coarse]:
        data = upsample2(low[band].data, nearest=band == SCL)
        if template is None:  # no 10 m band asked for: coordinates of the 10 m grid from odc-geo
            coords = {**xr_coords(geobox, crs_coord_name="spatial_ref"), "time": low["time"]}
            dims = ("time", *geobox.dimensions)
        else:
            coords, dims = template.coords, template.dims
        out[band] = xr.DataArray(data, dims=dims, coords=coords, name=band)
    return out[[b for b in keys if b in out]], low


def dn_to_reflectance(dn: np.ndarray, offset: float) -> np.ndarray:
    """(max(DN, -offset) + offset) / 10000 as float32, NaN where DN is 0 (nodata); one output array.

    DN are clipped to the offset (1000 from baseline 04.00) before it is removed:
    reflectance >= 0, as before 04.00, where uint16 DN could not go negative;
    otherwise dark water and shadow would change with the processing date.

    The obvious xarray expression makes four block-sized copies (astype, +, /,
    where); on a year of 13 bands that was 13 % of a block's time and most of
    its peak memory. Same float32 operations, same bits.
    """
    out = dn.astype(np.float32)
    if offset < 0:
        np.maximum(out, np.float32(-offset), out=out)
    out += np.float32(offset)
    out /= np.float32(S2_QUANTIFICATION)
    out[dn == 0] = np.nan
    return out


def _fuse_days(ds: xr.Dataset) -> xr.Dataset:
    """One slice per day: first valid value when two item groups share a day."""
    ds = ds.sortby("time")
    day = ds.time.dt.floor("D")
    if day.to_index().is_unique:
        return ds
    return ds.groupby(day.rename("time")).first(skipna=True)


def check_s2_headers(items: list[pystac.Item], keys: dict[str, str], sample: int = 2) -> None:
    """Refuse S2 COGs (of the bands in ``keys``, {band: asset key}) that are not L2A digital numbers.

    The loader would read them as DN without a word.

    odc-stac casts whatever it reads to uint16, so a float reflectance COG
    becomes zeros (nodata) and a COG without a CRS is placed by the item's
    metadata: either way the map comes out different, silently. The headers of
    the first and last ``sample // 2`` items (GDAL caches them for the load) must
    say uint16 (SCL: uint8 or uint16), a CRS, and nodata 0 or none.
    """
    import rasterio

    half = max(1, sample // 2)
    picks = sorted({*range(min(half, len(items))), *range(max(0, len(items) - half), len(items))})
    for item in (items[k] for k in picks):
        for band, key in keys.items():
            href = item.assets[key].href
            try:
                with rasterio.open(href) as src:
                    dtype, crs, nodata = src.dtypes[0], src.crs, src.nodata
            except rasterio.errors.RasterioIOError as exc:
                raise DataError(f"item {item.id!r} asset {key!r}: cannot be opened as a raster "
                                f"({str(exc).splitlines()[0][:200]})") from None
            expected = ("uint8", "uint16") if band == SCL else ("uint16",)
            if dtype not in expected:
                raise DataError(f"item {item.id!r} asset {key!r} is {dtype}, expected {' or '.join(expected)} "
                                "Sentinel-2 L2A digital numbers")
            if crs is None:
                raise DataError(f"item {item.id!r} asset {key!r} has no CRS")
            if nodata not in (None, 0):
                raise DataError(f"item {item.id!r} asset {key!r} declares nodata {nodata:g}, expected 0 (or none)")


def split_by_assets(items: list[pystac.Item], keys: dict[str, str]) -> tuple[list[pystac.Item], dict[str, list[str]]]:
    """(items holding every asset of ``keys``, {id of any other item: the bands it lacks})."""
    kept, skipped = [], {}
    for item in items:
        missing = [b for b, key in keys.items() if key not in item.assets]
        if missing:
            skipped[item.id] = missing
        else:
            kept.append(item)
    return kept, skipped


def _missing_summary(skipped: dict[str, list[str]]) -> str:
    """'B04 (3 items), SCL (1 item)': what the skipped items lack, for an error message."""
    counts = Counter(b for bands in skipped.values() for b in bands)
    return ", ".join(f"{b} ({n} item{'s' if n > 1 else ''})" for b, n in sorted(counts.items()))


def dominant_orbit(items: list[pystac.Item]) -> tuple[list[pystac.Item], dict[str, int], str | None]:
    """Only the S1 items of the most frequent ``sat:orbit_state`` (ties: ascending), with the counts.

    Backscatter depends on the look direction (slopes face or turn away from the
    sensor), so a percentile over a mix of passes depends on the mix; the
    simulated world the model learnt from has one direction per MGRS tile.
    Items without the property count as "unknown" and are kept only if they
    are all there is.
    """
    states = [str(i.properties.get("sat:orbit_state") or "unknown") for i in items]
    counts = dict(sorted(Counter(states).items()))
    if not counts:
        return items, counts, None
    known = {s: n for s, n in counts.items() if s != "unknown"} or counts
    used = max(sorted(known), key=lambda s: known[s])
    return [i for i, s in zip(items, states, strict=True) if s == used], counts, used


def _backscatter(items: list[pystac.Item], collection_kind: str | None) -> str | None:
    """The backscatter kind the items declare (``worldcover:backscatter``), else the collection's."""
    declared = sorted({str(v) for i in items if (v := i.properties.get("worldcover:backscatter"))})
    if not declared:
        return collection_kind
    return "+".join(declared)


def _check_assets(items: list[pystac.Item], assets: list[str]) -> None:
    for item in items:
        missing = [a for a in assets if a not in item.assets]
        if missing:
            raise DataError(f"item {item.id!r} lacks asset(s) {', '.join(missing)}")


def load_s1(items: list[pystac.Item], geobox: GeoBox, chunk: int | None = DEFAULT_CHUNK,
            assets: tuple[str, str] = S1_POLARISATIONS, align: bool = False) -> xr.Dataset:
    """S1 VV/VH linear power on ``geobox``; non-positive values are missing (``align``: see :func:`tile_aligned`)."""
    if not items:
        raise DataError("no Sentinel-1 items to load")
    _check_assets(items, list(assets))
    raw = _load_by_day(items, list(assets), geobox, chunk, items[0].assets[assets[0]].href if align else None,
                       resampling="bilinear", dtype="float32", nodata=float("nan"),
                       ).rename(dict(zip(assets, S1_POLARISATIONS, strict=True)))
    return xr.Dataset({p: raw[p].where(raw[p] > 0) for p in S1_POLARISATIONS})


def load_dem(items: list[pystac.Item], geobox: GeoBox, asset: str = "data") -> xr.DataArray:
    """DEM in metres on ``geobox`` (all tiles mosaicked)."""
    if not items:
        raise DataError("no DEM items to load")
    _check_assets(items, [asset])
    raw = odc.stac.load(items, bands=[asset], geobox=geobox, groupby=lambda *_: 0,
                        resampling="bilinear", dtype="float32", nodata=float("nan"))
    return to_yx(raw[asset].isel(time=0, drop=True)).rename("dem")


def local_hrefs_as_uris(item: pystac.Item) -> pystac.Item:
    """Absolute filesystem hrefs become file:// URIs.

    A local archive served over HTTP (the simulated one) carries hrefs like
    ``/data/B04.tif``; pystac would resolve those against the API's http://
    self link and odc-stac would then ask the server for the file.
    """
    for asset in item.assets.values():
        if asset.href.startswith("/") and not asset.href.startswith("//"):
            asset.href = Path(asset.href).as_uri()
    return item


class StacSource:
    """A STAC API (preset or URL) as a provider of block inputs.

    ``s2_bands``: the S2 bands to load (default all; the tile chain passes the
    model's :func:`worldcover.features.required_s2_bands`); items lacking one are
    skipped. ``need_s1``: refuse a preset whose S1 is radar-geometry GRD (with
    False, such a preset's S1 is simply not loaded).
    """

    kind = "stac"
    native_grid = True  # load_block(native=True) gives the inputs on their own UTM grid

    def __init__(self, source: str, layout: str = "planetary-computer", max_cloud: float | None = None,
                 chunk: int | None = DEFAULT_CHUNK, s2_bands: Sequence[str] | None = None,
                 need_s1: bool = True) -> None:
        self.preset: CataloguePreset = resolve(source, layout)
        if need_s1:
            check_s1_geocoded(self.preset)
        self.max_cloud = max_cloud
        self.chunk = chunk
        self.s2_bands = tuple(S2_BANDS) if s2_bands is None else tuple(s2_bands)
        unknown = [b for b in self.s2_bands if b not in S2_BANDS]
        if unknown:
            raise DataError(f"unknown Sentinel-2 band(s) {', '.join(unknown)}: expected some of {', '.join(S2_BANDS)}")
        self.need_s1 = need_s1
        self._client = None
        self._s1: tuple[str | None, str | None] | None = None

    @property
    def client(self):
        if self._client is None:
            self._client = open_client(self.preset.url)
        return self._client

    def s1_collection(self) -> tuple[str | None, str | None]:
        """(collection, backscatter kind): the preset's, or for a custom API what it offers (asked once)."""
        if self._s1 is None:
            p = self.preset
            if p.s1_collection == AUTO:
                self._s1 = choose_s1_collection(self.client)
            elif p.s1_backscatter == "grd" or p.s1_collection is None:
                self._s1 = (None, None)  # radar geometry is never loaded (refused when S1 is needed)
            else:
                self._s1 = (p.s1_collection, p.s1_backscatter)
        return self._s1

    def search(self, collection: str | None, block: Block, datetime: str) -> list[pystac.Item]:
        if collection is None:
            return []
        items = search_items(self.client, [collection], block.bbox, datetime,
                             max_cloud=self.max_cloud if collection == self.preset.s2_collection else None)
        sign = signer(self.preset)
        items = [local_hrefs_as_uris(i) for i in items]
        return [sign(i) for i in items] if sign else items

    def load_block(self, block: Block, year: int, native: bool = False) -> BlockInputs:
        """The block's inputs on its product grid, or with ``native`` on its native UTM grid
        (:func:`worldcover.grid.native_geobox` in the CRS most of its S2 items use); ``BlockInputs.geobox``
        says which."""
        p = self.preset
        s2_found = self.search(p.s2_collection, block, _year_range(year))
        if not s2_found:
            raise DataError(f"no Sentinel-2 items for block {block.id} in {year} at {p.url}")
        keys = s2_asset_keys(p.layout, self.s2_bands)
        s2_items, skipped = split_by_assets(s2_found, keys)
        if skipped:
            log.warning("block %s: %d of %d Sentinel-2 items skipped, lacking %s", block.id, len(skipped),
                        len(s2_found), _missing_summary(skipped))
        if not s2_items:
            raise DataError(f"block {block.id}: none of the {len(s2_found)} Sentinel-2 items at {p.url} has every "
                            f"band the model needs; missing: {_missing_summary(skipped)}")
        s1_coll, s1_kind = self.s1_collection()
        s1_found = self.search(s1_coll, block, _year_range(year))
        s1_items, orbits, orbit_used = dominant_orbit(s1_found)
        dem_items = self.search(p.dem_collection, block, "1900-01-01T00:00:00Z/2100-01-01T00:00:00Z")
        geobox = native_geobox(block, items_crs(s2_items)) if native else block.geobox
        s2, decisions, s2_20m = load_s2(s2_items, geobox, p.layout, self.chunk, bands=self.s2_bands, native=native)
        s1 = load_s1(s1_items, geobox, self.chunk, p.s1_assets, align=native) if s1_items else None
        dem = load_dem(dem_items, geobox, p.dem_asset) if dem_items else None
        ids = {"s2": [i.id for i in s2_items], "s1": [i.id for i in s1_items], "dem": [i.id for i in dem_items]}
        s1_info = {"collection": s1_coll, "backscatter": _backscatter(s1_items, s1_kind) if s1_items else None,
                   "orbit_states": orbits, "orbit_state_used": orbit_used}
        return BlockInputs(s2=s2, s1=s1, dem=dem, items=ids, harmonisation=decisions, s2_skipped=skipped,
                           s1_info=s1_info, geobox=geobox, s2_20m=s2_20m)


def items_crs(items: list[pystac.Item]) -> str | None:
    """The CRS most items declare (``proj:code`` or ``proj:epsg``), None when none does."""
    codes = Counter(c for i in items if (c := _item_crs(i)))
    return codes.most_common(1)[0][0] if codes else None


def _item_crs(item: pystac.Item) -> str | None:
    code = item.properties.get("proj:code")
    if code:
        return str(code)
    epsg = item.properties.get("proj:epsg")
    return f"EPSG:{int(epsg)}" if epsg else None
