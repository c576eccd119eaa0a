"""A Copernicus GLO-30-style DEM of a block: EPSG:4326, 1 arcsecond, float32 metres.

The DEM samples the same elevation field that drives the simulated climate
and terrain illumination. Like GLO-30, pixel centres sit on whole arcseconds
(grid origin half a pixel off the degree lines) and the longitude spacing
widens towards the poles (1" below 50 degrees, 1.5" to 60, 2" to 70, 3" to
80, 5" to 85, 10" beyond).
"""

from __future__ import annotations

import math

import numpy as np
import xarray as xr
from affine import Affine
from odc.geo.geobox import GeoBox
from odc.geo.xr import wrap_xr

from worldcover.grid import Block
from worldcover.sim.world import elevation_at, geobox_lonlat

ARCSEC = 1.0 / 3600.0
MARGIN_PX = 3


def lon_spacing_factor(lat: float) -> float:
    """GLO-30 longitude spacing in arcseconds at a latitude."""
    a = abs(lat)
    for limit, f in ((50, 1.0), (60, 1.5), (70, 2.0), (80, 3.0), (85, 5.0)):
        if a < limit:
            return f
    return 10.0


def dem_geobox(block: Block) -> GeoBox:
    """The 1-arcsecond grid covering the block bbox plus a few pixels."""
    w, s, e, n = block.bbox
    ry = ARCSEC
    rx = ARCSEC * lon_spacing_factor(max(abs(s), abs(n)) if s * n > 0 else 0.0)
    # Pixel centres on whole multiples of the spacing: edges half a pixel off.
    c0 = math.floor(w / rx) - MARGIN_PX
    c1 = math.ceil(e / rx) + MARGIN_PX
    r0 = math.floor(s / ry) - MARGIN_PX
    r1 = math.ceil(n / ry) + MARGIN_PX
    transform = Affine(rx, 0.0, (c0 - 0.5) * rx, 0.0, -ry, (r1 + 0.5) * ry)
    return GeoBox((r1 - r0 + 1, c1 - c0 + 1), transform, "EPSG:4326")


def dem(block: Block, seed: int = 0) -> xr.DataArray:
    """Elevation (m, float32) of the block on its GLO-30-style grid."""
    gb = dem_geobox(block)
    lon, lat = geobox_lonlat(gb)
    da = wrap_xr(elevation_at(lon, lat, seed).astype(np.float32), gb, always_yx=True)
    da.name = "dem"
    da.attrs["units"] = "m"
    return da


def dem_tile_name(block: Block) -> str:
    """GLO-30 tile name of the 1 x 1 degree cell holding the block's south-west corner."""
    w, s, _, _ = block.bbox
    lat, lon = math.floor(s + 1e-9), math.floor(w + 1e-9)
    ns, ew = ("N" if lat >= 0 else "S"), ("E" if lon >= 0 else "W")
    return f"Copernicus_DSM_COG_10_{ns}{abs(lat):02d}_00_{ew}{abs(lon):03d}_00_DEM"
