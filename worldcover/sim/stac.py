"""STAC items and collections of the simulated archive, in the layout of the real catalogues.

Items imitate Microsoft Planetary Computer (``sentinel-2-l2a`` with asset
keys B01..B12, B8A, SCL; ``sentinel-1-rtc`` with vv, vh; ``cop-dem-glo-30``
with data) down to the property names, the per-asset projection fields and
the raster:bands scale/offset of each processing baseline. The
``earth-search`` layout renames the S2 assets (blue, green, red, ...) and
item ids as Earth Search v1 does. One item per block chip and acquisition:
ids carry a ``_<TILE>_<block>_b<size>`` suffix so chips of different
blocks never collide.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from itertools import pairwise
from pathlib import Path

import numpy as np
import pystac
from odc.geo.geobox import GeoBox
from pystac.extensions import eo as eo_ext
from pystac.extensions import projection as proj_ext
from pystac.extensions import raster as raster_ext
from pystac.extensions import sar as sar_ext
from pystac.extensions import sat as sat_ext

from worldcover.bands import S2_ASSET_KEYS, S2_BANDS, S2_QUANTIFICATION, SCL, baseline_has_offset
from worldcover.grid import Block
from worldcover.sim.mgrs import ChipGrid, to_lonlat
from worldcover.sim.schedule import S1Acquisition, S2Acquisition, SwathEdge, solar_geometry

S2_COLLECTION = "sentinel-2-l2a"
S1_COLLECTION = "sentinel-1-rtc"
DEM_COLLECTION = "cop-dem-glo-30"
COLLECTIONS = (S2_COLLECTION, S1_COLLECTION, DEM_COLLECTION)
LAYOUTS = ("planetary-computer", "earth-search")
COG_TYPE = str(pystac.MediaType.COG)
DEM_DATETIME = datetime(2021, 4, 22, tzinfo=UTC)  # as the real GLO-30 items

EXTENSIONS_S2 = [eo_ext.SCHEMA_URI, sat_ext.SCHEMA_URI, proj_ext.SCHEMA_URI, raster_ext.SCHEMA_URI]
EXTENSIONS_S1 = [sar_ext.SCHEMA_URI, sat_ext.SCHEMA_URI, proj_ext.SCHEMA_URI, raster_ext.SCHEMA_URI]
EXTENSIONS_DEM = [proj_ext.SCHEMA_URI, raster_ext.SCHEMA_URI]

# name, common name, description, centre wavelength (um), FWHM (um) -- as in the real items
S2_BAND_INFO: dict[str, tuple[str | None, str, float, float]] = {
    "B01": ("coastal", "Band 1 - Coastal aerosol", 0.443, 0.027),
    "B02": ("blue", "Band 2 - Blue", 0.49, 0.098),
    "B03": ("green", "Band 3 - Green", 0.56, 0.045),
    "B04": ("red", "Band 4 - Red", 0.665, 0.038),
    "B05": ("rededge", "Band 5 - Vegetation red edge 1", 0.704, 0.019),
    "B06": ("rededge", "Band 6 - Vegetation red edge 2", 0.74, 0.018),
    "B07": ("rededge", "Band 7 - Vegetation red edge 3", 0.783, 0.028),
    "B08": ("nir", "Band 8 - NIR", 0.842, 0.145),
    "B8A": ("rededge", "Band 8A - Vegetation red edge 4", 0.865, 0.033),
    "B09": (None, "Band 9 - Water vapor", 0.945, 0.026),
    "B11": ("swir16", "Band 11 - SWIR (1.6)", 1.61, 0.143),
    "B12": ("swir22", "Band 12 - SWIR (2.2)", 2.19, 0.242),
}


def block_suffix(block: Block) -> str:
    """What makes a chip item id unique per block: ``N00E006_r00c01_b256``."""
    return f"{block.tile.id}_{block.key}_b{block.size}"


def _iso(t: datetime) -> str:
    return t.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


# --- geometry ------------------------------------------------------------------------


def _clip_ring(ring: list[tuple[float, float]], edge: SwathEdge) -> list[tuple[float, float]]:
    """Sutherland-Hodgman clip of a closed UTM ring by the valid side of a swath edge."""
    def inside(p):
        return not bool(edge.nodata(np.array([p[0]]), np.array([p[1]]))[0])

    def cross(p, q):
        # Signed distances to the edge line x = x_ref + dx_dy * (y - y_ref).
        fp = p[0] - (edge.x_ref + edge.dx_dy * (p[1] - edge.y_ref))
        fq = q[0] - (edge.x_ref + edge.dx_dy * (q[1] - edge.y_ref))
        t = fp / (fp - fq)
        return (p[0] + t * (q[0] - p[0]), p[1] + t * (q[1] - p[1]))

    out = []
    pts = ring[:-1]
    for i, cur in enumerate(pts):
        prev = pts[i - 1]
        if inside(cur):
            if not inside(prev):
                out.append(cross(prev, cur))
            out.append(cur)
        elif inside(prev):
            out.append(cross(prev, cur))
    if out:
        out.append(out[0])
    return out


def footprint(grid: ChipGrid, edge: SwathEdge | None = None) -> dict:
    """GeoJSON polygon (lon/lat) of the chip's valid data, densified along its edges."""
    x0, y1 = grid.x0, grid.y1
    x1, y0 = x0 + grid.width_m, y1 - grid.height_m
    ring = [(x0, y0), (x1, y0), (x1, y1), (x0, y1), (x0, y0)]
    if edge is not None:
        ring = _clip_ring(ring, edge) or ring
    dense = []
    for (ax, ay), (bx, by) in pairwise(ring):
        for t in np.linspace(0, 1, 6)[:-1]:
            dense.append((ax + t * (bx - ax), ay + t * (by - ay)))
    dense.append(dense[0])
    xs, ys = np.array(dense).T
    lon, lat = to_lonlat(grid.epsg, xs, ys)
    coords = [[round(float(a), 7), round(float(b), 7)] for a, b in zip(lon, lat, strict=True)]
    coords[-1] = coords[0]
    return {"type": "Polygon", "coordinates": [coords]}


def _bbox(geom: dict) -> list[float]:
    pts = np.array(geom["coordinates"][0])
    return [float(pts[:, 0].min()), float(pts[:, 1].min()), float(pts[:, 0].max()), float(pts[:, 1].max())]


def _proj_fields(geobox: GeoBox) -> dict:
    t = geobox.transform
    h, w = geobox.shape
    b = geobox.extent.boundingbox
    return {
        "proj:shape": [int(h), int(w)],
        "proj:transform": [float(t.a), float(t.b), float(t.c), float(t.d), float(t.e), float(t.f)],
        "proj:bbox": [float(b.left), float(b.bottom), float(b.right), float(b.top)],
    }


def _href(path: Path) -> str:
    return str(Path(path).resolve())


# --- Sentinel-2 ---------------------------------------------------------------------


def s2_item_id(block: Block, acq: S2Acquisition, layout: str = "planetary-computer") -> str:
    base = f"S2{acq.unit}_{acq.mgrs}_{acq.sensed:%Y%m%d}_0_L2A" if layout == "earth-search" else acq.item_base_id
    return f"{base}_{block_suffix(block)}"


def s2_item(block: Block, grid: ChipGrid, acq: S2Acquisition, stats: dict, hrefs: dict[str, Path],
            layout: str = "planetary-computer", seed: int = 0) -> pystac.Item:
    """The STAC item of one S2 chip; ``hrefs`` maps band names (B01.., SCL) to files."""
    geom = footprint(grid, acq.swath)
    lat_c = float(to_lonlat(grid.epsg, grid.x0 + grid.width_m / 2, grid.y1 - grid.height_m / 2)[1])
    zen, az = solar_geometry(lat_c, acq.day)
    b = acq.baseline.replace(".", "")
    uri = acq.product_id
    gen = acq.generated
    absolute = int((acq.sensed.date() - datetime(2015, 6, 23).date()).days * 143 / 10) + acq.relative_orbit
    props = {
        "datetime": _iso(acq.sensed),
        "platform": acq.platform,
        "constellation": "Sentinel 2",
        "instruments": ["msi"],
        "s2:mgrs_tile": acq.mgrs,
        "s2:processing_baseline": acq.baseline,
        "s2:product_uri": f"{uri}.SAFE",
        "s2:product_type": "S2MSI2A",
        "s2:granule_id": f"S2{acq.unit}_OPER_MSI_L2A_TL_2{acq.unit}PS_{gen:%Y%m%dT%H%M%S}_A{absolute:06d}"
                         f"_T{acq.mgrs}_N{b[:2]}.{b[2:]}",
        "s2:datatake_id": f"GS2{acq.unit}_{acq.sensed:%Y%m%dT%H%M%S}_{absolute:06d}_N{b[:2]}.{b[2:]}",
        "s2:datastrip_id": f"S2{acq.unit}_OPER_MSI_L2A_DS_2{acq.unit}PS_{gen:%Y%m%dT%H%M%S}"
                           f"_S{acq.sensed:%Y%m%dT%H%M%S}_N{b[:2]}.{b[2:]}",
        "s2:datatake_type": "INS-NOBS",
        "s2:generation_time": _iso(gen),
        "s2:mean_solar_zenith": round(zen, 6),
        "s2:mean_solar_azimuth": round(az, 6),
        "s2:degraded_msi_data_percentage": 0.0,
        "sat:orbit_state": "descending",
        "sat:relative_orbit": acq.relative_orbit,
        "proj:epsg": grid.epsg,
        "proj:code": grid.crs,
        "worldcover:block": block.id,
        "worldcover:block_size": block.size,
        "worldcover:seed": seed,
        "worldcover:simulated": True,
    }
    props.update({k: v for k, v in stats.items() if k.startswith(("s2:", "eo:"))})
    if layout == "earth-search":
        tile = acq.mgrs
        props.update({"mgrs:utm_zone": int(tile[:2]), "mgrs:latitude_band": tile[2], "mgrs:grid_square": tile[3:],
                      "grid:code": f"MGRS-{tile}", "earthsearch:boa_offset_applied": False})
    item = pystac.Item(id=s2_item_id(block, acq, layout), geometry=geom, bbox=_bbox(geom),
                       datetime=acq.sensed, properties={}, collection=S2_COLLECTION,
                       stac_extensions=list(EXTENSIONS_S2))
    item.properties.update(props)
    keys = S2_ASSET_KEYS[layout]
    offset = -1000.0 / S2_QUANTIFICATION if baseline_has_offset(acq.baseline) else 0.0
    for band, res in S2_BANDS.items():
        common, desc, wl, fwhm = S2_BAND_INFO[band]
        eo_band = {"name": band, "description": desc, "center_wavelength": wl, "full_width_half_max": fwhm}
        if common:
            eo_band["common_name"] = common
        extra = {
            **_proj_fields(grid.geobox(res)),
            "gsd": float(res),
            "eo:bands": [eo_band],
            "raster:bands": [{"nodata": 0, "data_type": "uint16", "spatial_resolution": float(res),
                              "scale": 1.0 / S2_QUANTIFICATION, "offset": offset}],
        }
        item.add_asset(keys[band], pystac.Asset(href=_href(hrefs[band]), title=f"{desc} - {res}m", media_type=COG_TYPE,
                                                roles=["data", "reflectance"] if layout == "earth-search" else ["data"],
                                                extra_fields=extra))
    scl_extra = {**_proj_fields(grid.geobox(20)), "gsd": 20.0,
                 "raster:bands": [{"nodata": 0, "data_type": "uint8", "spatial_resolution": 20.0}]}
    item.add_asset(keys[SCL], pystac.Asset(href=_href(hrefs[SCL]), title="Scene classfication map (SCL)",
                                           media_type=COG_TYPE, roles=["data"], extra_fields=scl_extra))
    return item


# --- Sentinel-1 ---------------------------------------------------------------------


def s1_item_id(block: Block, acq: S1Acquisition) -> str:
    return f"{acq.item_base_id}_{block_suffix(block)}"


def s1_item(block: Block, grid: ChipGrid, acq: S1Acquisition, looks: float, hrefs: dict[str, Path],
            seed: int = 0) -> pystac.Item:
    geom = footprint(grid, acq.frame)
    end = acq.sensed + timedelta(seconds=25)
    props = {
        "datetime": _iso(acq.sensed),
        "start_datetime": _iso(acq.sensed),
        "end_datetime": _iso(end),
        "platform": acq.platform,
        "constellation": "Sentinel-1",
        "instruments": ["c-sar"],
        "sar:instrument_mode": "IW",
        "sar:frequency_band": "C",
        "sar:center_frequency": 5.405,
        "sar:polarizations": ["VV", "VH"],
        "sar:product_type": "GRD",
        "sar:resolution_range": 20,
        "sar:resolution_azimuth": 22,
        "sar:pixel_spacing_range": 10,
        "sar:pixel_spacing_azimuth": 10,
        "sar:looks_range": 5,
        "sar:looks_azimuth": 1,
        "sar:looks_equivalent_number": float(looks),
        "sat:orbit_state": acq.orbit_state,
        "sat:relative_orbit": acq.relative_orbit,
        "sat:absolute_orbit": acq.absolute_orbit,
        "s1:datatake_id": str(acq.datatake),
        "s1:instrument_configuration_ID": "7",
        "s1:product_timeliness": "Fast-24h",
        "s1:processing_level": "1",
        "s1:resolution": "high",
        "proj:epsg": grid.epsg,
        "proj:code": grid.crs,
        "worldcover:block": block.id,
        "worldcover:block_size": block.size,
        "worldcover:seed": seed,
        "worldcover:simulated": True,
    }
    item = pystac.Item(id=s1_item_id(block, acq), geometry=geom, bbox=_bbox(geom), datetime=acq.sensed,
                       properties={}, collection=S1_COLLECTION, stac_extensions=list(EXTENSIONS_S1))
    item.properties.update(props)
    titles = {"vv": "VV: vertical transmit, vertical receive", "vh": "VH: vertical transmit, horizontal receive"}
    for pol in ("vv", "vh"):
        extra = {**_proj_fields(grid.geobox(10)), "gsd": 10.0,
                 "raster:bands": [{"nodata": "nan", "data_type": "float32", "spatial_resolution": 10.0,
                                   "unit": "linear power (gamma0)"}]}
        item.add_asset(pol, pystac.Asset(href=_href(hrefs[pol]), title=titles[pol], media_type=COG_TYPE,
                                         roles=["data"], extra_fields=extra))
    return item


# --- DEM ---------------------------------------------------------------------------------


def dem_item_id(block: Block, tile_name: str) -> str:
    return f"{tile_name}_{block_suffix(block)}"


def dem_item(block: Block, geobox: GeoBox, tile_name: str, href: Path, seed: int = 0) -> pystac.Item:
    b = geobox.extent.boundingbox
    ring = [[b.left, b.bottom], [b.right, b.bottom], [b.right, b.top], [b.left, b.top], [b.left, b.bottom]]
    geom = {"type": "Polygon", "coordinates": [[[round(x, 9), round(y, 9)] for x, y in ring]]}
    item = pystac.Item(id=dem_item_id(block, tile_name), geometry=geom, bbox=_bbox(geom), datetime=DEM_DATETIME,
                       properties={}, collection=DEM_COLLECTION, stac_extensions=list(EXTENSIONS_DEM))
    item.properties.update({
        "datetime": _iso(DEM_DATETIME), "platform": "TanDEM-X", "gsd": 30, "proj:epsg": 4326, "proj:code": "EPSG:4326",
        "worldcover:block": block.id, "worldcover:block_size": block.size, "worldcover:seed": seed,
        "worldcover:simulated": True,
    })
    extra = {**_proj_fields(geobox),
             "raster:bands": [{"data_type": "float32", "spatial_resolution": 30, "unit": "metre"}]}
    item.add_asset("data", pystac.Asset(href=_href(href), title=tile_name, media_type=COG_TYPE, roles=["data"],
                                        extra_fields=extra))
    return item


# --- collections ---------------------------------------------------------------------------

_COLLECTION_TEXT = {
    S2_COLLECTION: ("Sentinel-2 Level-2A (simulated)",
                    "Simulated Sentinel-2 L2A surface reflectance chips from worldcover.sim, in the layout of "
                    "the Planetary Computer sentinel-2-l2a collection: 12 bands at 10/20/60 m and the scene "
                    "classification (SCL), DN with the baseline-04.00 offset from 25 January 2022."),
    S1_COLLECTION: ("Sentinel 1 Radiometrically Terrain Corrected (RTC) (simulated)",
                    "Simulated Sentinel-1 IW gamma0 VV/VH backscatter chips (linear power, float32, NaN nodata) "
                    "from worldcover.sim, in the layout of the Planetary Computer sentinel-1-rtc collection."),
    DEM_COLLECTION: ("Copernicus DEM GLO-30 (simulated)",
                     "Simulated Copernicus DEM GLO-30 chips (1 arcsecond, float32 metres) from worldcover.sim."),
}


def collection(collection_id: str, items: list[dict]) -> pystac.Collection:
    """A collection whose spatial and temporal extent covers ``items`` (dicts)."""
    if items:
        boxes = np.array([i["bbox"] for i in items], dtype=np.float64)
        bbox = [float(boxes[:, 0].min()), float(boxes[:, 1].min()), float(boxes[:, 2].max()), float(boxes[:, 3].max())]
        times = sorted(_parse_time(i["properties"]["datetime"]) for i in items)
        interval: list[datetime | None] = [times[0], times[-1]]
    else:
        bbox = [-180.0, -90.0, 180.0, 90.0]
        interval = [None, None]
    title, description = _COLLECTION_TEXT[collection_id]
    providers = [
        pystac.Provider("ESA", roles=[pystac.ProviderRole.PRODUCER, pystac.ProviderRole.LICENSOR],
                        url="https://sentinel.esa.int/"),
        pystac.Provider("worldcover.sim", roles=[pystac.ProviderRole.PROCESSOR, pystac.ProviderRole.HOST],
                        description="deterministic simulation of the Sentinel archive"),
    ]
    col = pystac.Collection(
        id=collection_id, title=title, description=description,
        extent=pystac.Extent(pystac.SpatialExtent([bbox]), pystac.TemporalExtent([interval])),
        license="proprietary", providers=providers, keywords=["simulated", collection_id],
    )
    if collection_id == S2_COLLECTION:
        col.stac_extensions = [eo_ext.SCHEMA_URI, raster_ext.SCHEMA_URI]
        col.summaries.add("platform", ["Sentinel-2A", "Sentinel-2B", "Sentinel-2C"])
        col.summaries.add("constellation", ["Sentinel 2"])
        col.summaries.add("instruments", ["msi"])
        col.summaries.add("gsd", [10, 20, 60])
    elif collection_id == S1_COLLECTION:
        col.stac_extensions = [sar_ext.SCHEMA_URI]
        col.summaries.add("platform", ["SENTINEL-1A", "SENTINEL-1B", "SENTINEL-1C"])
        col.summaries.add("sar:instrument_mode", ["IW"])
        col.summaries.add("sar:polarizations", ["VV", "VH"])
    else:
        col.summaries.add("gsd", [30])
    return col


def _parse_time(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))
