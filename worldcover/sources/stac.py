"""Load a block's Sentinel-2, Sentinel-1 and DEM inputs from a STAC API with odc-stac.

Returns the data contract of :mod:`worldcover.bands`: lazy dask arrays on the
block's GeoBox (10 m in EPSG:4326), S2 as harmonised float32 reflectance with
NaN for missing and SCL as uint8, S1 as linear power, the DEM in metres.
20 m and 60 m bands are resampled onto the 10 m grid here (bilinear; SCL nearest).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import odc.stac
import pystac
import xarray as xr
from odc.geo.geobox import GeoBox

from worldcover.bands import S1_POLARISATIONS, S2_ASSET_KEYS, S2_BANDS, S2_QUANTIFICATION, SCL, to_yx
from worldcover.errors import DataError
from worldcover.grid import Block
from worldcover.sources.catalogues import CataloguePreset, open_client, resolve, search_items, signer
from worldcover.sources.harmonise import Harmonisation, harmonisation

# Spatial dask chunk of a block's load (pixels). Each chunk holds a year of 13
# bands in flight (~1 GB at 512 px), so peak memory depends on the chunk, not on
# the block size: at 1024 px one block peaked at 4.4 GB, at 512 px at 2.2 GB.
DEFAULT_CHUNK = 512


@dataclass
class BlockInputs:
    """Everything one block needs, plus the provenance of where it came from."""

    s2: xr.Dataset | None
    s1: xr.Dataset | None
    dem: xr.DataArray | None
    items: dict[str, list[str]] = field(default_factory=dict)
    harmonisation: list[Harmonisation] = field(default_factory=list)


def _year_range(year: int) -> str:
    return f"{year}-01-01T00:00:00Z/{year}-12-31T23:59:59Z"


def _chunks(geobox: GeoBox, chunk: int | None) -> dict[str, int] | None:
    if chunk is None:
        return None
    return {"time": -1, "y": min(chunk, geobox.shape[0]), "x": min(chunk, geobox.shape[1])}


def load_s2(items: list[pystac.Item], geobox: GeoBox, layout: str = "planetary-computer",
            chunk: int | None = DEFAULT_CHUNK) -> tuple[xr.Dataset, list[Harmonisation]]:
    """Harmonised S2 reflectance + SCL on ``geobox``; items grouped by solar day."""
    if not items:
        raise DataError("no Sentinel-2 items to load")
    keys = S2_ASSET_KEYS[layout]
    decisions = [harmonisation(i, keys["B04"]) for i in items]
    parts = []
    for offset in sorted({d.offset_dn for d in decisions}):
        group = [i for i, d in zip(items, decisions) if d.offset_dn == offset]
        parts.append(_load_s2_group(group, geobox, keys, offset, chunk))
    ds = parts[0] if len(parts) == 1 else _fuse_days(xr.concat(parts, dim="time"))
    return ds, decisions


def _load_s2_group(items, geobox, keys, offset, chunk) -> xr.Dataset:
    assets = [keys[b] for b in [*S2_BANDS, SCL]]
    _check_assets(items, assets)
    check_s2_headers(items, keys)
    raw = odc.stac.load(
        items, bands=assets, geobox=geobox, groupby="solar_day", chunks=_chunks(geobox, chunk),
        resampling={"*": "bilinear", keys[SCL]: "nearest"},
        dtype="uint16", nodata=0,  # one dtype: odc-stac's dask path rejects a per-band dict
        fail_on_error=True,
    )
    raw = to_yx(raw).rename({keys[b]: b for b in [*S2_BANDS, SCL]})
    out = xr.Dataset(attrs={"harmonisation_offset_dn": offset})
    for band in S2_BANDS:
        out[band] = xr.apply_ufunc(dn_to_reflectance, raw[band], kwargs={"offset": offset}, dask="parallelized",
                                   output_dtypes=[np.float32], keep_attrs=True)
    out[SCL] = raw[SCL].astype("uint8")
    return out


def dn_to_reflectance(dn: np.ndarray, offset: float) -> np.ndarray:
    """(DN + offset) / 10000 as float32, NaN where DN is 0 (nodata); one output array, no temporaries.

    The obvious xarray expression makes four block-sized copies (astype, +, /,
    where); on a year of 13 bands that was 13 % of a block's time and most of
    its peak memory. Same float32 operations, same bits.
    """
    out = dn.astype(np.float32)
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
    """Refuse S2 COGs that are not L2A digital numbers: the loader would read them as DN without a word.

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
        for band in [*S2_BANDS, SCL]:
            key = keys[band]
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


def _check_assets(items: list[pystac.Item], assets: list[str]) -> None:
    for item in items:
        missing = [a for a in assets if a not in item.assets]
        if missing:
            raise DataError(f"item {item.id!r} lacks asset(s) {', '.join(missing)}")


def load_s1(items: list[pystac.Item], geobox: GeoBox, chunk: int | None = DEFAULT_CHUNK,
            assets: tuple[str, str] = S1_POLARISATIONS) -> xr.Dataset:
    """S1 VV/VH linear power on ``geobox``; non-positive values are missing."""
    if not items:
        raise DataError("no Sentinel-1 items to load")
    _check_assets(items, list(assets))
    raw = odc.stac.load(items, bands=list(assets), geobox=geobox, groupby="solar_day",
                        chunks=_chunks(geobox, chunk), resampling="bilinear", dtype="float32",
                        nodata=float("nan"))
    raw = to_yx(raw).rename(dict(zip(assets, S1_POLARISATIONS)))
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
    """A STAC API (preset or URL) as a provider of block inputs."""

    kind = "stac"

    def __init__(self, source: str, layout: str = "planetary-computer", max_cloud: float | None = None,
                 chunk: int | None = DEFAULT_CHUNK) -> None:
        self.preset: CataloguePreset = resolve(source, layout)
        self.max_cloud = max_cloud
        self.chunk = chunk
        self._client = None

    @property
    def client(self):
        if self._client is None:
            self._client = open_client(self.preset.url)
        return self._client

    def search(self, collection: str | None, block: Block, datetime: str) -> list[pystac.Item]:
        if collection is None:
            return []
        items = search_items(self.client, [collection], block.bbox, datetime,
                             max_cloud=self.max_cloud if collection == self.preset.s2_collection else None)
        sign = signer(self.preset)
        items = [local_hrefs_as_uris(i) for i in items]
        return [sign(i) for i in items] if sign else items

    def load_block(self, block: Block, year: int) -> BlockInputs:
        p = self.preset
        s2_items = self.search(p.s2_collection, block, _year_range(year))
        s1_items = self.search(p.s1_collection, block, _year_range(year))
        dem_items = self.search(p.dem_collection, block, "1900-01-01T00:00:00Z/2100-01-01T00:00:00Z")
        if not s2_items:
            raise DataError(f"no Sentinel-2 items for block {block.id} in {year} at {p.url}")
        s2, decisions = load_s2(s2_items, block.geobox, p.layout, self.chunk)
        s1 = load_s1(s1_items, block.geobox, self.chunk, p.s1_assets) if s1_items else None
        dem = load_dem(dem_items, block.geobox, p.dem_asset) if dem_items else None
        ids = {"s2": [i.id for i in s2_items], "s1": [i.id for i in s1_items], "dem": [i.id for i in dem_items]}
        return BlockInputs(s2=s2, s1=s1, dem=dem, items=ids, harmonisation=decisions)
