"""Land and ocean for validation: which classified pixels belong to the assessed population.

Definition (documented in every report): a pixel is **ocean** when the map calls it
Permanent water bodies (80) *and* the land mask says sea at its location; **nodata** is
code 0; every other classified pixel is **land** and in the validation population --
inland water (lakes, rivers, reservoirs) included, since it is a land-cover class of the
legend, and land classes on the sea side of a coarse coastline too, since the map is
finer than the mask. The map's own water class decides *what* is water, the mask only
decides *which* water is the sea: the 10 m coastline stays the map's.

The mask is evaluated at the centres of 1/120 degree cells (about 1 km), the resolution
of global-land-mask (GLOBE), so a window of the map costs a few hundred look-ups.

Masks (``--land-mask``):

* ``global-land-mask`` (default): GLOBE's 1 km land/sea mask from the
  ``global-land-mask`` wheel (the test :func:`worldcover.grid.land_fraction` uses).
  Loading it takes about 1 GB and 5 s, so the cells of the 3-degree tiles with both
  land and sea ship bit-packed in ``worldcover/data/land_mask_coast_1km.npz`` (built by
  :func:`build_coast_table`) and the rest is the tile's single value.
* ``sim:ARCHIVE`` or ``sim-seed:N``: the simulated world's own coastline (terrain above
  sea level), for maps of the simulator, whose coasts are not the real ones.
* a raster path: non-zero = land (points outside the raster count as land).
* ``none``: no mask; ocean water stays in the population (the design before issue 16).
"""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Protocol

import numpy as np

from worldcover import storage
from worldcover.errors import InputError
from worldcover.legend import WATER

CELLS_PER_DEGREE = 120  # 1/120 degree: GLOBE's 30 arc-second grid
TILE_DEG = 3
TILE_CELLS = TILE_DEG * CELLS_PER_DEGREE  # 360
COAST_TABLE = "land_mask_coast_1km.npz"
DEFAULT_MASK = "global-land-mask"
ALL_SEA, ALL_LAND = -1, -2  # tile codes of the coast table's index


class LandMask(Protocol):
    """Something that says land (True) or sea (False) at lon/lat points."""

    @property
    def name(self) -> str: ...

    def is_land(self, lon: np.ndarray, lat: np.ndarray) -> np.ndarray: ...


# ----------------------------------------------------------------------------------------------
# GLOBE (global-land-mask), shipped as a coast table
# ----------------------------------------------------------------------------------------------


def build_coast_table(dest: str | Path) -> storage.Location:
    """Write the coast table from global-land-mask (costs ~1 GB once): packed cells of mixed tiles."""
    from global_land_mask import globe

    ocean = globe._mask  # (21600, 43200) True over sea, row 0 at 90 N, column 0 at 180 W
    rows, cols = 180 // TILE_DEG, 360 // TILE_DEG
    land = ~ocean.reshape(rows, TILE_CELLS, cols, TILE_CELLS).transpose(0, 2, 1, 3)
    share = land.mean(axis=(2, 3))
    index = np.where(share == 1.0, ALL_LAND, ALL_SEA).astype(np.int16)
    mixed = np.argwhere((share > 0) & (share < 1))
    index[mixed[:, 0], mixed[:, 1]] = np.arange(len(mixed), dtype=np.int16)
    tiles = np.packbits(land[mixed[:, 0], mixed[:, 1]], axis=-1)  # (n, 360, 45)

    def write(tmp: Path) -> None:
        with open(tmp, "wb") as f:
            np.savez_compressed(f, index=index, tiles=tiles)

    with storage.atomic_path(dest) as tmp:  # a reader never sees half a table
        write(tmp)
    return storage.path(dest)


@functools.lru_cache(maxsize=1)
def _coast_table() -> tuple[np.ndarray, np.ndarray]:
    ref = resources.files("worldcover.data").joinpath(COAST_TABLE)
    with ref.open("rb") as f:
        z = np.load(f)
        return z["index"], np.unpackbits(z["tiles"], axis=-1).astype(bool)


@dataclass(frozen=True)
class GlobeLandMask:
    """GLOBE's 1 km land mask (global-land-mask), from the shipped coast table."""

    name: str = DEFAULT_MASK

    def is_land(self, lon: np.ndarray, lat: np.ndarray) -> np.ndarray:
        index, tiles = _coast_table()
        lon = (np.asarray(lon, float) + 180.0) % 360.0  # 0..360 from 180 W
        lat = np.clip(90.0 - np.asarray(lat, float), 0.0, 180.0 - 1e-9)  # 0..180 from 90 N
        ci = np.minimum((lat * CELLS_PER_DEGREE).astype(np.int64), 180 * CELLS_PER_DEGREE - 1)
        cj = np.minimum((lon * CELLS_PER_DEGREE).astype(np.int64), 360 * CELLS_PER_DEGREE - 1)
        k = index[ci // TILE_CELLS, cj // TILE_CELLS].astype(np.int64)
        out = k == ALL_LAND
        mixed = k >= 0
        out[mixed] = tiles[k[mixed], ci[mixed] % TILE_CELLS, cj[mixed] % TILE_CELLS]
        return out


# ----------------------------------------------------------------------------------------------
# the simulated world, a raster
# ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SimLandMask:
    """The simulator's coastline: terrain above sea level (``worldcover.sim.world``)."""

    seed: int
    name: str = "sim"

    def is_land(self, lon: np.ndarray, lat: np.ndarray) -> np.ndarray:
        from worldcover.sim.world import elevation_at  # lazy: pulls xarray, odc, rasterio (landmask stays light)

        return elevation_at(np.asarray(lon, float), np.asarray(lat, float), self.seed) > 0


@dataclass(frozen=True)
class RasterLandMask:
    """A land mask raster: non-zero = land; points outside it count as land."""

    path: str
    name: str = "raster"

    def is_land(self, lon: np.ndarray, lat: np.ndarray) -> np.ndarray:
        import rasterio
        from rasterio.transform import rowcol

        with rasterio.open(storage.gdal_path(self.path)) as src:
            xs, ys = np.asarray(lon, float), np.asarray(lat, float)
            if src.crs is not None and src.crs.to_epsg() != 4326:
                from rasterio.warp import transform as warp

                xs, ys = map(np.asarray, warp("EPSG:4326", src.crs, xs, ys))
            r, c = (np.asarray(a, dtype=np.int64) for a in rowcol(src.transform, xs, ys, op=np.floor))
            inside = (r >= 0) & (r < src.height) & (c >= 0) & (c < src.width)
            out = np.ones(len(xs), dtype=bool)
            if inside.any():
                r0, c0 = r[inside].min(), c[inside].min()
                block = src.read(1, window=((r0, r[inside].max() + 1), (c0, c[inside].max() + 1)))
                out[inside] = block[r[inside] - r0, c[inside] - c0] != 0
        return out


def parse_land_mask(spec: str | None) -> LandMask | None:
    """``global-land-mask`` (default), ``none``, ``sim:ARCHIVE``, ``sim-seed:N`` or a raster path."""
    spec = (spec or DEFAULT_MASK).strip()
    if spec == DEFAULT_MASK:
        return GlobeLandMask()
    if spec == "none":
        return None
    if spec.startswith("sim-seed:"):
        try:
            return SimLandMask(int(spec[9:]), name=spec)
        except ValueError:
            raise InputError(f"land mask {spec!r}: expected sim-seed:N with an integer seed") from None
    if spec.startswith("sim:"):
        manifest = storage.path(spec[4:]) / "sim.json"
        try:
            seed = int(json.loads(manifest.read_text())["seed"])
        except (OSError, ValueError, KeyError, TypeError):
            raise InputError(f"land mask {spec!r}: {manifest} has no seed; expected a `worldcover sim generate` "
                             "archive") from None
        return SimLandMask(seed, name=f"sim-seed:{seed}")
    if not storage.path(spec).exists():
        raise InputError(f"land mask {spec!r}: expected global-land-mask, none, sim:ARCHIVE, sim-seed:N "
                         "or an existing raster (non-zero = land)")
    return RasterLandMask(spec, name=spec)


def describe(name: str) -> str:
    """One line for reports: which mask (by name, ``none`` for none) defines the ocean."""
    if name == "none":
        return "none: ocean water is not separated (every classified pixel is in the population)"
    return (f"{name}: ocean = pixels mapped as Permanent water bodies (80) where the mask (evaluated at "
            f"1/{CELLS_PER_DEGREE} degree cell centres) is sea; nodata = 0; everything else is land")


# ----------------------------------------------------------------------------------------------
# per window of a map
# ----------------------------------------------------------------------------------------------


def ocean_in_window(
    data: np.ndarray, transform, row0: int, col0: int, crs, mask: LandMask | None
) -> np.ndarray:
    """Boolean (h, w): pixels of the window mapped as water where the mask is sea."""
    water = data == WATER
    if mask is None or not water.any():
        return np.zeros(data.shape, dtype=bool)
    h, w = data.shape
    if crs is None or crs.is_geographic:  # lon depends on the column, lat on the row: separable
        lon = transform.c + transform.a * (col0 + np.arange(w) + 0.5)
        lat = transform.f + transform.e * (row0 + np.arange(h) + 0.5)
        ci, inv_r = np.unique(np.floor((90.0 - lat) * CELLS_PER_DEGREE).astype(np.int64), return_inverse=True)
        cj, inv_c = np.unique(np.floor((lon + 180.0) * CELLS_PER_DEGREE).astype(np.int64), return_inverse=True)
        clat = 90.0 - (ci + 0.5) / CELLS_PER_DEGREE
        clon = (cj + 0.5) / CELLS_PER_DEGREE - 180.0
        glon, glat = np.meshgrid(clon, clat)
        land = mask.is_land(glon.ravel(), glat.ravel()).reshape(glat.shape)
        return water & ~land[np.ix_(inv_r.ravel(), inv_c.ravel())]
    from rasterio.warp import transform as warp

    rr, cc = np.nonzero(water)  # projected maps: water pixels' cells, each cell looked up once
    xs = transform.c + transform.a * (col0 + cc + 0.5)
    ys = transform.f + transform.e * (row0 + rr + 0.5)
    lon, lat = map(np.asarray, warp(crs, "EPSG:4326", xs, ys))
    key = np.floor((90.0 - lat) * CELLS_PER_DEGREE).astype(np.int64) * 100_000 + np.floor(
        (lon + 180.0) * CELLS_PER_DEGREE).astype(np.int64)
    cells, inv = np.unique(key, return_inverse=True)
    clon = (cells % 100_000 + 0.5) / CELLS_PER_DEGREE - 180.0
    clat = 90.0 - (cells // 100_000 + 0.5) / CELLS_PER_DEGREE
    land = mask.is_land(clon, clat)
    out = np.zeros(data.shape, dtype=bool)
    out[rr, cc] = ~land[inv.ravel()]
    return out
