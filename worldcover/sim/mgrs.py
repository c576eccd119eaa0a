"""MGRS tile names and the UTM pixel grids of simulated Sentinel chips.

Real Sentinel-2 L2A products are cut in MGRS 100 km squares (``31UFU``) on
the UTM grid of their zone, with pixel edges on multiples of 60 m (tile
origins such as 399960 m). The simulator writes one *chip* per block and
acquisition on that same grid: the UTM zone of the block centre, the chip
covering the block bbox plus a small margin, its edges snapped outwards to
multiples of 60 m so that the 10, 20 and 60 m rasters share one extent.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import numpy as np
import numpy.typing as npt
from affine import Affine
from odc.geo.geobox import GeoBox
from pyproj import Transformer

from worldcover.grid import Block, utm_epsg, utm_zone  # noqa: F401 (this module's API too)

# Latitude bands C..X of 8 degrees from 80 S (X spans 72..84 N).
_BANDS = "CDEFGHJKLMNPQRSTUVWX"
# 100 km column letters cycle over three sets of eight; row letters over twenty.
_COL_SETS = ("ABCDEFGH", "JKLMNPQR", "STUVWXYZ")
_ROW_LETTERS = "ABCDEFGHJKLMNPQRSTUV"

GRID_SNAP_M = 60  # pixel edges on multiples of 60 m, like real S2 tiles
DEFAULT_MARGIN_M = 120  # beyond the block bbox, so resampling to the block grid has neighbours


def latitude_band(lat: float) -> str:
    """MGRS latitude band letter (C..X); clamps to the UTM domain 80 S..84 N."""
    lat = min(max(lat, -80.0), 83.999)
    return _BANDS[min(int((lat + 80.0) // 8), len(_BANDS) - 1)]



def square_letters(zone: int, easting: float, northing: float) -> str:
    """The two MGRS 100 km square letters of a UTM coordinate (northing with its false northing)."""
    col = int(easting // 100_000)
    row = int(northing // 100_000)
    col_letter = _COL_SETS[(zone - 1) % 3][(col - 1) % 8]
    row_letter = _ROW_LETTERS[(row + (0 if zone % 2 else 5)) % 20]
    return col_letter + row_letter


@lru_cache(maxsize=64)
def _to_utm(epsg: int) -> Transformer:
    return Transformer.from_crs("EPSG:4326", f"EPSG:{epsg}", always_xy=True)


@lru_cache(maxsize=64)
def _to_lonlat(epsg: int) -> Transformer:
    return Transformer.from_crs(f"EPSG:{epsg}", "EPSG:4326", always_xy=True)


def to_lonlat(epsg: int, x: npt.ArrayLike, y: npt.ArrayLike) -> tuple[Any, Any]:
    """UTM (x, y) of ``epsg`` to (lon, lat): arrays for arrays, floats for floats."""
    return _to_lonlat(epsg).transform(x, y)


def to_utm(epsg: int, lon: npt.ArrayLike, lat: npt.ArrayLike) -> tuple[Any, Any]:
    """(lon, lat) to UTM (x, y) of ``epsg``: arrays for arrays, floats for floats."""
    return _to_utm(epsg).transform(lon, lat)


@dataclass(frozen=True)
class MgrsTile:
    """The MGRS tile holding a point: zone, band, square and its UTM EPSG code."""

    zone: int
    band: str
    square: str
    epsg: int
    origin: tuple[float, float]  # (x, y) of the upper-left corner of the real 109.8 km S2 tile

    @property
    def id(self) -> str:
        return f"{self.zone:02d}{self.band}{self.square}"


def mgrs_centre(tile: MgrsTile) -> tuple[float, float]:
    """(lon, lat) of the centre of an MGRS 100 km square: per-overpass quantities are keyed to it."""
    x0, y1 = tile.origin
    lon, lat = to_lonlat(tile.epsg, x0 + 50_040.0, y1 - 50_000.0)
    return float(lon), float(lat)


def mgrs_tile(lon: float, lat: float) -> MgrsTile:
    """The MGRS tile (as Sentinel-2 names it) whose 100 km square holds (lon, lat)."""
    zone = utm_zone(lon, lat)
    north = lat >= 0
    epsg = utm_epsg(zone, north)
    x, y = to_utm(epsg, lon, lat)
    sq = square_letters(zone, float(x), float(y))
    # Real S2 tiles start 40 m west of the 100 km line and reach 109.8 km.
    origin = (math.floor(x / 100_000) * 100_000 - 40.0, (math.floor(y / 100_000) + 1) * 100_000.0)
    return MgrsTile(zone, latitude_band(lat), sq, epsg, origin)


@dataclass(frozen=True)
class ChipGrid:
    """The UTM pixel grids of one block's chips: 10, 20 and 60 m, same extent."""

    mgrs: MgrsTile
    epsg: int
    x0: float  # west edge, m
    y1: float  # north edge, m
    width_m: int
    height_m: int

    @property
    def crs(self) -> str:
        return f"EPSG:{self.epsg}"

    def geobox(self, res: int) -> GeoBox:
        """GeoBox at ``res`` metres (10, 20 or 60)."""
        if self.width_m % res or self.height_m % res:
            raise ValueError(f"chip extent is not a multiple of {res} m")
        transform = Affine(res, 0.0, self.x0, 0.0, -res, self.y1)
        return GeoBox((self.height_m // res, self.width_m // res), transform, self.crs)

    def shape(self, res: int) -> tuple[int, int]:
        return (self.height_m // res, self.width_m // res)

    def lattice_origin(self, res: int) -> tuple[int, int]:
        """(column, row) of the chip's first pixel on the zone-wide absolute lattice at ``res``."""
        return (int(round(self.x0 / res)), int(round(-self.y1 / res)))

    def centres(self, res: int, pad: int = 0) -> tuple[np.ndarray, np.ndarray]:
        """UTM (x, y) of pixel centres, 2-D arrays, with ``pad`` extra pixels on every side."""
        h, w = self.shape(res)
        xs = self.x0 + (np.arange(-pad, w + pad) + 0.5) * res
        ys = self.y1 - (np.arange(-pad, h + pad) + 0.5) * res
        return np.meshgrid(xs, ys)

    def lonlat(self, res: int, pad: int = 0) -> tuple[np.ndarray, np.ndarray]:
        """Longitude and latitude of pixel centres at ``res`` (``pad`` extra pixels on every side)."""
        x, y = self.centres(res, pad)
        lon, lat = to_lonlat(self.epsg, x, y)
        return np.asarray(lon), np.asarray(lat)

    def footprint_lonlat(self) -> list[tuple[float, float]]:
        """Chip outline in lon/lat (closed ring, counter-clockwise), densified along edges."""
        x1, y0 = self.x0 + self.width_m, self.y1 - self.height_m
        n = 8
        xs = np.concatenate(
            [np.linspace(self.x0, x1, n), np.full(n, x1), np.linspace(x1, self.x0, n), np.full(n, self.x0)]
        )
        ys = np.concatenate(
            [np.full(n, y0), np.linspace(y0, self.y1, n), np.full(n, self.y1), np.linspace(self.y1, y0, n)]
        )
        lon, lat = to_lonlat(self.epsg, xs, ys)
        ring = [(float(a), float(b)) for a, b in zip(lon, lat, strict=True)]
        ring.append(ring[0])
        return ring


def chip_grid(block: Block, margin_m: float = DEFAULT_MARGIN_M) -> ChipGrid:
    """The UTM chip grid of a block: MGRS tile of the block centre, bbox + margin, snapped to 60 m."""
    w, s, e, n = block.bbox
    tile = mgrs_tile((w + e) / 2, (s + n) / 2)
    k = 16
    lons = np.concatenate([np.linspace(w, e, k), np.full(k, e), np.linspace(e, w, k), np.full(k, w)])
    lats = np.concatenate([np.full(k, s), np.linspace(s, n, k), np.full(k, n), np.linspace(n, s, k)])
    x, y = to_utm(tile.epsg, lons, lats)
    snap = GRID_SNAP_M
    x0 = math.floor((float(np.min(x)) - margin_m) / snap) * snap
    x1 = math.ceil((float(np.max(x)) + margin_m) / snap) * snap
    y0 = math.floor((float(np.min(y)) - margin_m) / snap) * snap
    y1 = math.ceil((float(np.max(y)) + margin_m) / snap) * snap
    return ChipGrid(tile, tile.epsg, float(x0), float(y1), int(x1 - x0), int(y1 - y0))
