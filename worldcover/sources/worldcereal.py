"""Convert a WorldCereal training extraction (NetCDF patch) into a local STAC archive.

WorldCereal's extraction folders (e.g. ``../shared/realdata/worldcereal-flanders-A``)
hold real Sentinel-2 L2A and Sentinel-1 time series of one small UTM patch as
NetCDF, plus parcel labels. :func:`import_extraction` writes them in exactly
the simulated archive's layout (:mod:`worldcover.sim.writer`), so the real
pixels go through the production chain unchanged::

    OUT/stac/collections/<collection-id>.json   sentinel-2-l2a, sentinel-1-sigma0
    OUT/stac/items/<collection-id>.json         one FeatureCollection per collection
    OUT/data/<collection-id>/<item-id>/<asset>.tif
    OUT/labels/<name>_labels.tif                WorldCover codes on the 10 m label grid (0 = unlabelled)
    OUT/realdata.json                           provenance, written last (marks a complete import)

Assets stay in their native UTM grid: S2 uint16 DN (10 m bands at 10 m, 20 m
bands and SCL at 20 m, nodata 0), S1 linear power float32 (NaN nodata) as the
simulated ``sentinel-1-rtc`` assets are encoded, but in collection
``sentinel-1-sigma0``: the extraction is geocoded sigma0, not RTC gamma0.
"""

from __future__ import annotations

import importlib.util
import json
import os
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pystac
import xarray as xr
from affine import Affine
from odc.geo.geobox import GeoBox

from worldcover import __version__
from worldcover.bands import S2_QUANTIFICATION, SCL
from worldcover.cog import write_cog
from worldcover.errors import DataError, InputError
from worldcover.sim.stac import EXTENSIONS_S1, EXTENSIONS_S2, S2_BAND_INFO
from worldcover.storage import Location, atomic_write_text

S2_COLLECTION = "sentinel-2-l2a"
S1_COLLECTION = "sentinel-1-sigma0"
COLLECTIONS = (S2_COLLECTION, S1_COLLECTION)
COG_TYPE = str(pystac.MediaType.COG)
CONVERTER_VERSION = 1  # bump when the archive written for the same source changes

# Where the shared sample came from (see ../shared/realdata/README.md).
SOURCE_REPOSITORY = "WorldCereal/worldcereal-classification"
SOURCE_COMMIT = "81f5ffa415d64a011556b7387b7d69b6b86886a4"

# The extraction was made from Earth Engine's COPERNICUS/S2_SR, which carries no
# processing baseline; every date is 2017-2018, long before baseline 04.00
# (25 Jan 2022), so the DN carry no BOA offset. A 02.xx baseline says exactly that.
ASSUMED_BASELINE = "02.09"

# SCL classes that make an observation cloudy (Sen2Cor: medium, high probability cloud, thin cirrus),
# as in the products' CLOUDY_PIXEL_PERCENTAGE that catalogues publish as eo:cloud_cover.
SCL_CLOUD = (8, 9, 10)

# WorldCereal LC legend -> WorldCover code (README of the shared data); 0 = unlabelled.
# 99 ("non-cropland, unspecified": whatever lies outside the parcels) is left unlabelled.
# 20 (herbaceous vegetation) is WorldCover's grassland definition.
LC_TO_WORLDCOVER: dict[int, int] = {
    10: 40, 11: 40, 12: 40, 13: 30, 20: 30, 30: 20, 40: 10, 41: 10, 42: 10,
    50: 60, 60: 50, 70: 80, 80: 70,
}

_S2_10M = ("B02", "B03", "B04", "B08")
_S2_20M = ("B05", "B06", "B07", "B8A", "B11", "B12")


@dataclass(frozen=True)
class Extraction:
    """The NetCDF files of one WorldCereal extraction folder."""

    folder: Path
    s2_10m: Path
    s2_20m: Path
    s1: list[Path]
    labels: Path | None


def find_files(src_dir: str | os.PathLike) -> Extraction:
    """Locate the S2 10 m / 20 m, S1 and label NetCDF files of an extraction folder (else InputError)."""
    folder = Path(src_dir)
    if not folder.is_dir():
        raise InputError(f"WorldCereal extraction {str(folder)!r} is not a directory: expected a folder of "
                         "S2_L2A_10m_*.nc, S2_L2A_20m_*.nc, S1_GRD-*_20m_*.nc files")

    def maybe(pattern: str) -> Path | None:
        found = sorted(folder.glob(pattern))
        if len(found) > 1:
            raise InputError(f"WorldCereal extraction {str(folder)!r} has {len(found)} files matching {pattern}, "
                             "expected one")
        return found[0] if found else None

    def one(pattern: str) -> Path:
        found = maybe(pattern)
        if found is None:
            raise InputError(f"WorldCereal extraction {str(folder)!r} has no {pattern} file")
        return found

    return Extraction(folder, one("S2_L2A_10m_*.nc"), one("S2_L2A_20m_*.nc"),
                      sorted(folder.glob("S1_GRD-*_20m_*.nc")), maybe("OUTPUT_POLY-*_10m_*.nc"))


def open_netcdf(path: Path) -> xr.Dataset:
    """One extraction file, raw (no fill masking or scaling: the DN are written as they are)."""
    if importlib.util.find_spec("h5netcdf") is None or importlib.util.find_spec("h5py") is None:
        raise InputError("reading WorldCereal NetCDF needs h5netcdf: pip install 'h5netcdf[h5py]'")
    try:
        return xr.open_dataset(path, mask_and_scale=False, engine="h5netcdf")
    except (OSError, ValueError) as exc:
        raise InputError(f"cannot read {str(path)!r} as NetCDF4: {exc}") from None


def grid_of(ds: xr.Dataset, epsg: int) -> GeoBox:
    """The GeoBox of a dataset whose x/y coordinates are pixel centres on a regular north-up grid."""
    x, y = ds["x"].values, ds["y"].values
    dx, dy = np.diff(x), np.diff(y)
    if x.size < 2 or y.size < 2 or not (np.allclose(dx, dx[0]) and np.allclose(dy, dx[0] * -1)):
        raise DataError(f"{ds.attrs.get('name', 'dataset')}: x/y are not a regular north-up grid "
                        f"(steps {np.unique(dx)[:3]}, {np.unique(dy)[:3]})")
    res = float(dx[0])
    transform = Affine(res, 0.0, float(x[0]) - res / 2, 0.0, -res, float(y[0]) + res / 2)
    return GeoBox((y.size, x.size), transform, f"EPSG:{epsg}")


def epsg_of(ds: xr.Dataset) -> int:
    """The dataset's EPSG code from its ``epsg`` attribute (the extractions carry one)."""
    try:
        return int(ds.attrs["epsg"])
    except (KeyError, ValueError):
        raise DataError(f"{ds.attrs.get('name', 'dataset')}: no integer 'epsg' attribute") from None


def db_to_linear(db_e4: np.ndarray) -> np.ndarray:
    """WorldCereal's S1 encoding (int dB x 1e4, 0 = fill) -> linear power float32, NaN where missing."""
    db = np.where(db_e4 == 0, np.nan, db_e4.astype(np.float64) / 1e4)
    return np.power(10.0, db / 10.0).astype(np.float32)


def scl_stats(scl: np.ndarray) -> dict[str, float]:
    """Per-acquisition SCL percentages as the catalogues publish them (of the valid, non-zero pixels)."""
    counts = np.bincount(scl.ravel(), minlength=12).astype(np.float64)
    valid = counts[1:].sum()
    pct = 100.0 * counts / valid if valid else np.zeros_like(counts)
    return {
        "eo:cloud_cover": round(float(pct[list(SCL_CLOUD)].sum()), 4),
        "s2:nodata_pixel_percentage": round(100.0 * counts[0] / counts.sum(), 4),
        "s2:cloud_shadow_percentage": round(float(pct[3]), 4),
        "s2:vegetation_percentage": round(float(pct[4]), 4),
        "s2:not_vegetated_percentage": round(float(pct[5]), 4),
        "s2:water_percentage": round(float(pct[6]), 4),
        "s2:thin_cirrus_percentage": round(float(pct[10]), 4),
        "s2:snow_ice_percentage": round(float(pct[11]), 4),
    }


def map_labels(lc: np.ndarray) -> np.ndarray:
    """WorldCereal LC codes -> WorldCover codes (uint8), 0 where unlabelled (99, 0 or unmapped)."""
    lut = np.zeros(max(int(lc.max(initial=0)) + 1, 100), dtype=np.uint8)
    for src, dst in LC_TO_WORLDCOVER.items():
        lut[src] = dst
    return lut[lc.astype(np.int64)]


# --- STAC -----------------------------------------------------------------------------


def _iso(t: datetime) -> str:
    return t.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _epsg(geobox: GeoBox) -> int | None:
    """The grid's EPSG code (None for a CRS without one); grids here come from :func:`grid_of`, which sets one."""
    if geobox.crs is None:
        raise DataError("grid without a CRS: the extractions' grids carry their EPSG code")
    return geobox.crs.epsg


def _proj(geobox: GeoBox) -> dict:
    t, (h, w), b = geobox.transform, geobox.shape, geobox.extent.boundingbox
    return {"proj:shape": [int(h), int(w)], "proj:transform": [t.a, t.b, t.c, t.d, t.e, t.f],
            "proj:bbox": [b.left, b.bottom, b.right, b.top], "proj:epsg": _epsg(geobox)}


def _footprint(geobox: GeoBox) -> tuple[dict, list[float]]:
    """GeoJSON polygon (lon/lat) of the grid's extent, densified, and its bbox."""
    geom = geobox.extent.to_crs("EPSG:4326", resolution=float("inf")).json
    pts = np.array(geom["coordinates"][0])
    return geom, [float(pts[:, 0].min()), float(pts[:, 1].min()), float(pts[:, 0].max()), float(pts[:, 1].max())]


def _href(path: Path | Location) -> str:
    """Absolute path of a file written here (the extractions are converted onto local disk)."""
    if not isinstance(path, Path):
        raise InputError(f"{path}: WorldCereal archives are written to local disk")
    return str(path.resolve())


def _item(item_id: str, collection: str, when: datetime, geobox: GeoBox, props: dict,
          extensions: list[str]) -> pystac.Item:
    geom, bbox = _footprint(geobox)
    item = pystac.Item(id=item_id, geometry=geom, bbox=bbox, datetime=when, properties={}, collection=collection,
                       stac_extensions=list(extensions))
    item.properties.update({"datetime": _iso(when), "proj:epsg": _epsg(geobox),
                            "proj:code": f"EPSG:{_epsg(geobox)}", **props})
    return item


def _as_dict(out: Path, item: pystac.Item) -> dict:
    """Item dict with the ``collection`` link pointing at the archive's collection file (as the simulator does)."""
    d = item.to_dict(include_self_link=False)
    d["links"] = [link for link in d.get("links", []) if link.get("rel") != "collection"]
    href = str((out / "stac" / "collections" / f"{d['collection']}.json").resolve())
    d["links"].append({"rel": "collection", "href": href, "type": "application/json"})
    return d


_COLLECTION_TEXT = {
    S2_COLLECTION: ("Sentinel-2 Level-2A (WorldCereal extraction)",
                    "Real Sentinel-2 L2A acquisitions of a WorldCereal training extraction, in their native UTM "
                    "grid: B02-B08 at 10 m, B05-B07/B8A/B11/B12 and SCL at 20 m, uint16 DN = reflectance x 1e4 "
                    "(processing baselines before 04.00: no BOA offset). No B01/B09."),
    S1_COLLECTION: ("Sentinel-1 geocoded sigma0 (WorldCereal extraction)",
                    "Real Sentinel-1 IW GRD backscatter of a WorldCereal training extraction, geocoded sigma0 "
                    "(Earth Engine S1_GRD processing, not terrain-flattened gamma0), VV/VH linear power float32 "
                    "(NaN nodata) at 20 m in the native UTM grid."),
}


def collection(collection_id: str, items: list[dict]) -> pystac.Collection:
    """A collection whose extent covers ``items``."""
    boxes = np.array([i["bbox"] for i in items], dtype=np.float64)
    bbox = [float(boxes[:, 0].min()), float(boxes[:, 1].min()), float(boxes[:, 2].max()), float(boxes[:, 3].max())]
    times = sorted(datetime.fromisoformat(i["properties"]["datetime"].replace("Z", "+00:00")) for i in items)
    title, description = _COLLECTION_TEXT[collection_id]
    providers = [
        pystac.Provider("ESA", roles=[pystac.ProviderRole.PRODUCER, pystac.ProviderRole.LICENSOR],
                        url="https://sentinel.esa.int/"),
        pystac.Provider("WorldCereal", roles=[pystac.ProviderRole.PROCESSOR],
                        url=f"https://github.com/{SOURCE_REPOSITORY}"),
        pystac.Provider("worldcover.sources.worldcereal", roles=[pystac.ProviderRole.HOST],
                        description="NetCDF extraction converted to COGs and STAC items"),
    ]
    col = pystac.Collection(
        id=collection_id, title=title, description=description,
        extent=pystac.Extent(pystac.SpatialExtent([bbox]), pystac.TemporalExtent([[times[0], times[-1]]])),
        license="proprietary", providers=providers, keywords=["worldcereal", "real", collection_id])
    if collection_id == S2_COLLECTION:
        col.summaries.add("constellation", ["Sentinel 2"])
        col.summaries.add("gsd", [10, 20])
    else:
        col.summaries.add("sar:instrument_mode", ["IW"])
        col.summaries.add("sar:polarizations", ["VV", "VH"])
    return col


def _write_catalogue(out: Path, items: dict[str, list[dict]]) -> None:
    for cid, features in items.items():
        features = sorted(features, key=lambda f: (f["properties"]["datetime"], f["id"]))
        atomic_write_text(out / "stac" / "items" / f"{cid}.json",
                          json.dumps({"type": "FeatureCollection", "features": features}))
        col = collection(cid, features)
        atomic_write_text(out / "stac" / "collections" / f"{cid}.json",
                          json.dumps(col.to_dict(include_self_link=False), indent=1))


# --- conversion -------------------------------------------------------------------------


def _asset_path(out: Path, cid: str, item_id: str, asset: str) -> Path:
    return out / "data" / cid / item_id / f"{asset}.tif"


def _times(ds: xr.Dataset) -> list[datetime]:
    return [t.to_pydatetime().replace(tzinfo=UTC) for t in pd.DatetimeIndex(ds["timestamp"].values)]


def convert_s2(ten: xr.Dataset, twenty: xr.Dataset, out: Path, tile: str, location: str) -> list[dict]:
    """One STAC item per S2 acquisition, each band a COG at its native resolution."""
    epsg = epsg_of(ten)
    gb10, gb20 = grid_of(ten, epsg), grid_of(twenty, epsg)
    if not np.array_equal(ten["timestamp"].values, twenty["timestamp"].values):
        raise DataError("S2 10 m and 20 m files do not have the same acquisitions")
    arrays = {b: ten[b].values for b in _S2_10M} | {b: twenty[b].values for b in (*_S2_20M, SCL)}
    items = []
    for i, when in enumerate(_times(ten)):
        iid = f"S2_L2A_T{tile}_{when:%Y%m%dT%H%M%S}_{location}"
        props = {
            "constellation": "Sentinel 2", "instruments": ["msi"], "s2:mgrs_tile": tile,
            "s2:processing_baseline": ASSUMED_BASELINE, "s2:product_type": "S2MSI2A",
            "worldcover:processing_baseline_assumed": True,
            "worldcover:source": "worldcereal-extraction", "worldcover:location_id": location,
            **scl_stats(arrays[SCL][i]),
        }
        if "sunZenithAngles" in twenty:
            props["s2:mean_solar_zenith"] = float(twenty["sunZenithAngles"].values[i])
            props["s2:mean_solar_azimuth"] = float(twenty["sunAzimuthAngles"].values[i])
        item = _item(iid, S2_COLLECTION, when, gb10, props, EXTENSIONS_S2)
        for band in (*_S2_10M, *_S2_20M, SCL):
            gb = gb10 if band in _S2_10M else gb20
            path = write_cog(_asset_path(out, S2_COLLECTION, iid, band), arrays[band][i], gb, nodata=0,
                             overview_resampling="nearest" if band == SCL else "average")
            res = float(gb.resolution.x)
            if band == SCL:
                extra = {**_proj(gb), "gsd": res,
                         "raster:bands": [{"nodata": 0, "data_type": "uint8", "spatial_resolution": res}]}
                title = "Scene classfication map (SCL)"
            else:
                common, desc, wl, fwhm = S2_BAND_INFO[band]
                eo_band = {"name": band, "description": desc, "center_wavelength": wl, "full_width_half_max": fwhm}
                if common:
                    eo_band["common_name"] = common
                extra = {**_proj(gb), "gsd": res, "eo:bands": [eo_band],
                         "raster:bands": [{"nodata": 0, "data_type": "uint16", "spatial_resolution": res,
                                           "scale": 1.0 / S2_QUANTIFICATION, "offset": 0.0}]}
                title = f"{desc} - {res:g}m"
            item.add_asset(band, pystac.Asset(href=_href(path), title=title, media_type=COG_TYPE, roles=["data"],
                                              extra_fields=extra))
        items.append(_as_dict(out, item))
    return items


def _orbit_state(path: Path) -> str:
    name = path.name.upper()
    for state in ("ASCENDING", "DESCENDING"):
        if f"-{state}_" in name:
            return state.lower()
    raise InputError(f"{path.name}: cannot tell the orbit direction (expected S1_GRD-ASCENDING_ or -DESCENDING_)")


def convert_s1(ds: xr.Dataset, orbit_state: str, out: Path, location: str) -> list[dict]:
    """One STAC item per S1 acquisition: VV/VH as linear power float32 COGs (NaN nodata) at 20 m."""
    gb = grid_of(ds, epsg_of(ds))
    lin = {pol: db_to_linear(ds[pol.upper()].values) for pol in ("vv", "vh")}
    res = float(gb.resolution.x)
    titles = {"vv": "VV: vertical transmit, vertical receive", "vh": "VH: vertical transmit, horizontal receive"}
    items = []
    for i, when in enumerate(_times(ds)):
        iid = f"S1_GRD_{orbit_state[:3].upper()}_{when:%Y%m%dT%H%M%S}_{location}"
        props = {
            "start_datetime": _iso(when), "end_datetime": _iso(when + timedelta(seconds=25)),
            "constellation": "Sentinel-1", "instruments": ["c-sar"], "sar:instrument_mode": "IW",
            "sar:frequency_band": "C", "sar:center_frequency": 5.405, "sar:polarizations": ["VV", "VH"],
            "sar:product_type": "GRD", "sat:orbit_state": orbit_state,
            "worldcover:backscatter": "sigma0",
            "worldcover:source": "worldcereal-extraction", "worldcover:location_id": location,
        }
        item = _item(iid, S1_COLLECTION, when, gb, props, EXTENSIONS_S1)
        for pol in ("vv", "vh"):
            path = write_cog(_asset_path(out, S1_COLLECTION, iid, pol), lin[pol][i], gb, nodata=float("nan"),
                             overview_resampling="average")
            extra = {**_proj(gb), "gsd": res,
                     "raster:bands": [{"nodata": "nan", "data_type": "float32", "spatial_resolution": res,
                                       "unit": "linear power (sigma0)"}]}
            item.add_asset(pol, pystac.Asset(href=_href(path), title=titles[pol], media_type=COG_TYPE,
                                             roles=["data"], extra_fields=extra))
        items.append(_as_dict(out, item))
    return items


def labels_path(out: str | os.PathLike, name: str) -> Path:
    return Path(out) / "labels" / f"{name}_labels.tif"


def convert_labels(ds: xr.Dataset, out: Path, name: str) -> tuple[Location, dict[str, int]]:
    """The LC raster as WorldCover codes (0 = unlabelled) on its own grid; counts per code."""
    codes = map_labels(ds["LC"].values)
    path = write_cog(labels_path(out, name), codes, grid_of(ds, epsg_of(ds)), nodata=0, overview_resampling="mode",
                     tags={"source": ds.attrs.get("source", ""), "legend": "WorldCover codes, 0 = unlabelled",
                           "mapping": json.dumps(LC_TO_WORLDCOVER)})
    values, counts = np.unique(codes[codes > 0], return_counts=True)
    return path, {str(int(v)): int(c) for v, c in zip(values, counts, strict=True)}


def patch_name(src_dir: Path) -> str:
    """``worldcereal-flanders-A`` -> ``flanders-A`` (the folder name without the source prefix)."""
    name = Path(src_dir).resolve().name
    return name.removeprefix("worldcereal-") or name


def import_extraction(src_dir: str | os.PathLike, out_dir: str | os.PathLike, name: str | None = None) -> dict:
    """Convert a WorldCereal extraction folder into an archive under ``out_dir`` (see the module docstring).

    Returns the provenance record written to ``OUT/realdata.json``. An archive
    already imported from the same folder by this converter version is kept
    as it is (the record is written last, so its presence means complete).
    """
    files = find_files(src_dir)
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise InputError(f"output {str(out)!r} exists and is not a directory")
    name = name or patch_name(files.folder)
    record_path = out / "realdata.json"
    if record_path.exists():
        record = json.loads(record_path.read_text())
        if record.get("source_folder") == str(files.folder.resolve()) and \
                record.get("converter_version") == CONVERTER_VERSION:
            return record
    out.mkdir(parents=True, exist_ok=True)
    record_path.unlink(missing_ok=True)  # an import under way is not complete

    ten, twenty = open_netcdf(files.s2_10m), open_netcdf(files.s2_20m)
    location = str(ten.attrs.get("location_id", name))
    tile = str(ten.attrs.get("tile", ""))
    items = {S2_COLLECTION: convert_s2(ten, twenty, out, tile, location), S1_COLLECTION: []}
    for f in files.s1:
        items[S1_COLLECTION] += convert_s1(open_netcdf(f), _orbit_state(f), out, location)
    if not items[S1_COLLECTION]:
        del items[S1_COLLECTION]
    _write_catalogue(out, items)

    labels = None
    if files.labels is not None:
        lab = open_netcdf(files.labels)
        _, counts = convert_labels(lab, out, name)
        labels = {"path": str(labels_path(out, name).relative_to(out)), "file": files.labels.name,
                  "source": lab.attrs.get("source"),
                  "counts": counts, "mapping": {str(k): v for k, v in LC_TO_WORLDCOVER.items()},
                  "unlabelled": "LC 0 and 99 (non-cropland, unspecified) -> 0"}
    gb = grid_of(ten, epsg_of(ten))

    record = {
        "name": name,
        "source_folder": str(files.folder.resolve()),
        "source_repository": SOURCE_REPOSITORY,
        "source_commit": SOURCE_COMMIT,
        "location_id": location,
        "mgrs_tile": tile,
        "epsg": _epsg(gb),
        "bounds": list(gb.extent.boundingbox),
        "bbox_lonlat": _footprint(gb)[1],
        "converter_version": CONVERTER_VERSION,
        "code_version": __version__,
        "collections": {cid: len(v) for cid, v in items.items()},
        "converted": {
            S2_COLLECTION: {"files": [files.s2_10m.name, files.s2_20m.name], "assets": [*_S2_10M, *_S2_20M, SCL],
                            "encoding": "uint16 DN as in the source, nodata 0, scale 1e-4, offset 0",
                            "processing_baseline": f"{ASSUMED_BASELINE} (assumed: source has none; all dates "
                                                   "before 04.00)"},
            S1_COLLECTION: {"files": [f.name for f in files.s1], "assets": ["vv", "vh"],
                            "encoding": "dB x 1e4 (fill 0) -> linear power float32, NaN nodata",
                            "backscatter": "sigma0 (geocoded, not RTC gamma0)"},
            "dem": None,
        },
        "labels": labels,
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    atomic_write_text(record_path, json.dumps(record, indent=1))
    return record
