"""Pixel and per-class areas of maps on a lat/lon grid (EPSG:4326), streamed by windows.

The area of a lat/lon cell on the WGS84 ellipsoid is exact in closed form through the
authalic latitude beta: A = R_q^2 * dlambda * (sin beta2 - sin beta1), with R_q the WGS84
authalic radius (6371007.2 m). ``model="sphere"`` uses the geodetic latitude instead (a
sphere of radius R_q: same global total, but up to ~0.9 % off per cell at high latitude).
Pixel areas depend on the row only, so a map is summed per row: no per-pixel area array.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Literal

import numpy as np
from affine import Affine

from worldcover import storage
from worldcover.errors import DataError, InputError

WGS84_A = 6378137.0
WGS84_F = 1 / 298.257223563
WGS84_E2 = WGS84_F * (2 - WGS84_F)
AUTHALIC_RADIUS_M = 6371007.2  # rounded WGS84 R_q (exact: a * sqrt(q_p / 2) = 6371007.1809 m)
M2_PER_HA = 10_000.0
DEFAULT_WINDOW = 2048  # rows x columns read at a time when streaming a map

AreaModel = Literal["ellipsoid", "sphere"]


def _q(lat_deg: np.ndarray) -> np.ndarray:
    """Authalic function q(phi) of the WGS84 ellipsoid (Snyder 1987, eq. 3-12)."""
    s = np.sin(np.radians(lat_deg))
    e = np.sqrt(WGS84_E2)
    return (1 - WGS84_E2) * (s / (1 - WGS84_E2 * s * s) - np.log((1 - e * s) / (1 + e * s)) / (2 * e))


_Q_POLE = float(_q(np.array(90.0)))
AUTHALIC_RADIUS_EXACT_M = WGS84_A * float(np.sqrt(_Q_POLE / 2))


def sin_authalic_latitude(lat_deg: np.ndarray | float) -> np.ndarray:
    """sin(beta) for geodetic latitudes in degrees: equal-area latitude on the authalic sphere."""
    return _q(np.asarray(lat_deg, dtype=float)) / _Q_POLE


def cell_area_m2(
    lat1_deg: np.ndarray | float,
    lat2_deg: np.ndarray | float,
    dlon_deg: np.ndarray | float,
    model: AreaModel = "ellipsoid",
) -> np.ndarray:
    """Area in m^2 of lat/lon cells between two latitudes and ``dlon_deg`` wide (vectorised)."""
    if model == "ellipsoid":
        s1, s2 = sin_authalic_latitude(lat1_deg), sin_authalic_latitude(lat2_deg)
        radius = AUTHALIC_RADIUS_EXACT_M
    elif model == "sphere":
        s1, s2 = np.sin(np.radians(lat1_deg)), np.sin(np.radians(lat2_deg))
        radius = AUTHALIC_RADIUS_M
    else:
        raise InputError(f"area model {model!r}: expected 'ellipsoid' or 'sphere'")
    return radius**2 * np.radians(np.abs(np.asarray(dlon_deg, dtype=float))) * np.abs(s2 - s1)


def _check_north_up(transform: Affine) -> None:
    if transform.b != 0 or transform.d != 0:
        raise DataError(f"map transform {tuple(transform)[:6]} is rotated: expected a north-up grid")


def row_areas_m2(
    transform: Affine, row_start: int, n_rows: int, *, geographic: bool = True, model: AreaModel = "ellipsoid"
) -> np.ndarray:
    """Area in m^2 of one pixel in each of ``n_rows`` rows starting at ``row_start``.

    ``geographic=False`` (a projected CRS in metres) gives the constant |a * e| per pixel.
    """
    _check_north_up(transform)
    if not geographic:
        return np.full(n_rows, abs(transform.a * transform.e))
    rows = np.arange(row_start, row_start + n_rows + 1, dtype=float)
    edges = transform.f + transform.e * rows  # latitudes of the row edges
    if np.abs(edges).max(initial=0) > 90 + 1e-9:
        raise DataError("map rows extend beyond +-90 degrees latitude: expected a lat/lon grid")
    edges = np.clip(edges, -90, 90)
    return cell_area_m2(edges[:-1], edges[1:], transform.a, model)


def _is_geographic(crs, path: str | storage.Location | None = None) -> bool:
    what = f"map {path}" if path is not None else "map"
    if crs is None:
        raise DataError(f"{what} has no CRS: expected EPSG:4326 (or a projected CRS in metres)")
    if crs.is_geographic:
        return True
    units = (crs.linear_units or "").lower()
    if units not in ("metre", "meter", "m") or not crs.is_projected:
        raise DataError(f"{what}: CRS {crs.to_string()[:80]!r} has units {units!r}: expected EPSG:4326 (degrees) "
                        "or a projected CRS in metres")
    return False


def check_class_map(src, path: str | storage.Location) -> bool:
    """A class map is uint8 codes with nodata 0 (or none declared) in a usable CRS; True if geographic."""
    if src.dtypes[0] != "uint8":
        raise DataError(f"map {path}: band 1 is {src.dtypes[0]}, expected uint8 class codes")
    nodata = src.nodata
    if nodata is not None and nodata != 0:
        raise DataError(f"map {path}: declares nodata {nodata:g}, expected 0 (the WorldCover nodata) or none")
    return _is_geographic(src.crs, path)


def iter_windows(height: int, width: int, size: int = DEFAULT_WINDOW) -> Iterator[tuple[int, int, int, int]]:
    """(row, col, rows, cols) of square windows covering a raster, row-major."""
    for r in range(0, height, size):
        for c in range(0, width, size):
            yield r, c, min(size, height - r), min(size, width - c)


def data_windows(src, size: int = DEFAULT_WINDOW, nodata: int = 0) -> Iterator[tuple[int, int, int, int]]:
    """The windows of ``iter_windows`` that may hold data, found from the coarsest overview.

    A global mosaic VRT spans the whole extent of its tiles but holds data in
    only a few of them; its overview levels are categorical modes in which a
    cell is nodata only when no pixel under it has a class, so windows under
    nodata cells can be skipped without reading them. Rasters without
    overviews yield every window.
    """
    overviews = src.overviews(1)
    if not overviews:
        yield from iter_windows(src.height, src.width, size)
        return
    factor = max(overviews)
    coarse = src.read(1, out_shape=(max(1, src.height // factor), max(1, src.width // factor)))
    sy, sx = src.height / coarse.shape[0], src.width / coarse.shape[1]
    has = coarse != nodata
    for r, c, h, w in iter_windows(src.height, src.width, size):
        r0, r1 = int(r // sy), min(coarse.shape[0], int(np.ceil((r + h) / sy)) + 1)
        c0, c1 = int(c // sx), min(coarse.shape[1], int(np.ceil((c + w) / sx)) + 1)
        if has[max(0, r0 - 1):r1, max(0, c0 - 1):c1].any():
            yield r, c, h, w


def weighted_sum(weights: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """``weights @ rows`` (a weight per row of ``rows``) summed in a fixed order: the same bits on every machine.

    BLAS picks its kernel per CPU and per environment (``OPENBLAS_CORETYPE``), and with it the
    summation order and the use of FMA, so ``@`` gave areas and accuracy estimates that differed in
    the last digit between a pod of the image and the host on one machine. Row by row numpy adds do not.
    """
    w = np.asarray(weights, dtype=np.float64)
    r = np.asarray(rows)
    return (w.reshape(w.shape + (1,) * (r.ndim - 1)) * r).sum(axis=0)


def window_class_area_m2(
    data: np.ndarray, row_area_m2: np.ndarray, n_codes: int = 256
) -> tuple[np.ndarray, np.ndarray]:
    """Pixel count and area (m^2) of every code in a uint8 window whose rows have the given areas."""
    rows, cols = data.shape
    per_row = np.bincount(
        (np.arange(rows, dtype=np.int64)[:, None] * n_codes + data).ravel(), minlength=rows * n_codes
    ).reshape(rows, n_codes)
    return per_row.sum(axis=0), weighted_sum(row_area_m2, per_row)


def class_areas(
    path: str | Path,
    *,
    nodata: int = 0,
    window: int = DEFAULT_WINDOW,
    model: AreaModel = "ellipsoid",
) -> dict[int, tuple[int, float]]:
    """Per-class pixel count and geodesic area (ha) of a uint8 class map, read window by window.

    Returns ``{code: (pixels, area_ha)}`` for every code present except ``nodata``.
    """
    import rasterio

    try:
        src = rasterio.open(storage.gdal_path(path))
    except rasterio.errors.RasterioIOError as exc:
        raise InputError(f"map {path}: cannot be opened as a raster ({exc})") from None
    with src:
        geographic = check_class_map(src, path)
        counts = np.zeros(256, dtype=np.int64)
        area = np.zeros(256)
        for r, c, h, w in data_windows(src, window, nodata):
            data = src.read(1, window=((r, r + h), (c, c + w)))
            n, a = window_class_area_m2(data, row_areas_m2(src.transform, r, h, geographic=geographic, model=model))
            counts += n
            area += a
    return {
        int(k): (int(counts[k]), float(area[k] / M2_PER_HA))
        for k in np.flatnonzero(counts)
        if k != nodata
    }
