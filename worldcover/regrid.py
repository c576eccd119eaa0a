"""Resample rasters from a block's native (UTM) grid onto its product grid (EPSG:4326), once per block.

The chain processes a block's inputs on the grid they come in (:func:`worldcover.grid.native_geobox`)
and moves only its outputs (the model's scores, counts) to the WorldCover grid. Every band of a block shares
the same pixel mapping, so :class:`Regrid` computes it once (exact projection at every 16th pixel,
interpolated in between, as GDAL's approximate transformer does) and applies it to any number of
bands with four gathers each. GDAL's warper recomputes the mapping per call and was 3-4x slower
per band here, which is why this is not ``rasterio.warp.reproject``.

On the native grid itself, :func:`upsample2` doubles 20 m rasters to 10 m and :func:`all_of_2x2` halves a
10 m mask to 20 m (the Sentinel-2 20 m bands are composited at 20 m, then doubled).
"""

from __future__ import annotations

from typing import Any, cast

import numpy as np
from affine import Affine
from odc.geo.geobox import GeoBox
from pyproj import Transformer

from worldcover.errors import InputError

__all__ = ["Regrid", "all_of_2x2", "upsample2"]

_STEP = 16  # exact projection every _STEP pixels; the UTM <-> lon/lat mapping is smooth at this scale


def _axis_nodes(n: int, step: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Coarse sample positions along an axis of ``n`` pixels; for every pixel, the node before it and its
    linear weight toward the next one."""
    nodes = np.unique(np.r_[np.arange(0, n, step), n - 1]).astype(np.float64)
    pos = np.arange(n, dtype=np.float64)
    if len(nodes) == 1:
        return nodes, np.zeros(n, np.int64), np.zeros(n)
    k = np.clip(np.searchsorted(nodes, pos, side="right") - 1, 0, len(nodes) - 2)
    return nodes, k, (pos - nodes[k]) / (nodes[k + 1] - nodes[k])


def _interpolate(a: np.ndarray, k: np.ndarray, t: np.ndarray, axis: int) -> np.ndarray:
    """``a`` sampled at the nodes, linearly interpolated along ``axis`` to every pixel (``_axis_nodes``'s k, t).

    Two gathers and one weighted sum, not a product with the (pixels x nodes) weight matrix: BLAS picks
    its kernel (summation order, FMA) per CPU and environment, so the mapping, and the products, could
    differ in the last bits between a pod and the host.
    """
    hi = np.minimum(k + 1, a.shape[axis] - 1)
    shape = [1, 1]
    shape[axis] = len(t)
    w = t.reshape(shape)
    return np.take(a, k, axis=axis) * (1 - w) + np.take(a, hi, axis=axis) * w


def _bilinear_band(band: np.ndarray, taps: list[np.ndarray], weights: list[np.ndarray], res: np.ndarray) -> None:
    """One band's bilinear values into ``res``: four gathers; the NaN-aware path only when a tap is NaN."""
    vals = [band.take(t) for t in taps]
    if not any(np.isnan(v).any() for v in vals):
        np.multiply(vals[0], weights[0], out=res)
        for v, w in zip(vals[1:], weights[1:], strict=True):
            res += v * w
        return
    total = np.zeros_like(res)
    res[:] = 0
    for v, w in zip(vals, weights, strict=True):
        ok = ~np.isnan(v)
        res += np.where(ok, v, 0) * w
        total += np.where(ok, w, 0)
    with np.errstate(invalid="ignore", divide="ignore"):
        res /= total  # 0 / 0: all four taps missing -> NaN



def _apply(t: Affine, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``t`` applied to arrays of x and y (``@``: affine 3 deprecates ``*``; its type hints cover floats only)."""
    return cast(Any, t) @ (x, y)

class Regrid:
    """The mapping of ``dst`` pixel centres into ``src`` pixels: bilinear (NaN-aware) and nearest resampling.

    ``src`` must cover ``dst`` (the native grid has a margin); arrays are ``(..., y, x)`` on ``src``.
    """

    def __init__(self, src: GeoBox, dst: GeoBox) -> None:
        self.src, self.dst = src, dst
        rows, cols = self._source_coords()
        hs, ws = src.shape
        r0 = np.clip(np.floor(rows), 0, hs - 2).astype(np.int64)
        c0 = np.clip(np.floor(cols), 0, ws - 2).astype(np.int64)
        fr = np.clip(rows - r0, 0, 1).astype(np.float32)
        fc = np.clip(cols - c0, 0, 1).astype(np.float32)
        i00 = (r0 * ws + c0).ravel()
        self._taps = (i00, i00 + 1, i00 + ws, i00 + ws + 1)
        fr, fc = fr.ravel(), fc.ravel()
        self._weights = ((1 - fr) * (1 - fc), (1 - fr) * fc, fr * (1 - fc), fr * fc)
        rn = np.clip(np.rint(rows), 0, hs - 1).astype(np.int64)
        cn = np.clip(np.rint(cols), 0, ws - 1).astype(np.int64)
        self._nearest = (rn * ws + cn).ravel()

    def _source_coords(self) -> tuple[np.ndarray, np.ndarray]:
        """(rows, cols) of every dst pixel centre in src pixel-centre units (0 = centre of the first pixel)."""
        h, w = self.dst.shape
        ys, ky, ty = _axis_nodes(h, _STEP)
        xs, kx, tx = _axis_nodes(w, _STEP)
        gx, gy = np.meshgrid(xs + 0.5, ys + 0.5)
        lon, lat = _apply(self.dst.affine, gx, gy)
        if self.dst.crs is None or self.src.crs is None:
            raise InputError(f"regrid needs two grids with a CRS, got {self.src.crs} -> {self.dst.crs}")
        to_src = Transformer.from_crs(self.dst.crs.to_wkt(), self.src.crs.to_wkt(), always_xy=True)
        x, y = to_src.transform(lon, lat)
        c, r = _apply(~self.src.affine, x, y)
        rows = _interpolate(_interpolate(r - 0.5, ky, ty, 0), kx, tx, 1)
        cols = _interpolate(_interpolate(c - 0.5, ky, ty, 0), kx, tx, 1)
        return rows, cols

    @property
    def shape(self) -> tuple[int, int]:
        h, w = self.dst.shape
        return (h, w)

    def _check(self, a: np.ndarray) -> np.ndarray:
        a = np.asarray(a)
        if a.shape[-2:] != tuple(self.src.shape):
            raise ValueError(f"array of shape {a.shape} is not on the source grid {tuple(self.src.shape)}")
        return a.reshape(-1, a.shape[-2] * a.shape[-1])

    def bilinear(self, a: np.ndarray, rows: slice | None = None) -> np.ndarray:
        """Bilinear resampling of ``(..., y, x)`` float data; NaN taps are left out (weights renormalised),
        NaN only where all four are NaN. Returns float32 ``(..., *dst.shape)``, or only the dst ``rows``
        (a strip: memory for one strip of every band, not the whole block)."""
        flat = self._check(a)
        lo, hi, _ = (rows or slice(None)).indices(self.shape[0])
        span = slice(lo * self.shape[1], hi * self.shape[1])
        taps = [t[span] for t in self._taps]
        weights = [w[span] for w in self._weights]
        out = np.empty((flat.shape[0], span.stop - span.start), np.float32)
        for k, band in enumerate(flat):
            _bilinear_band(band.astype(np.float32, copy=False), taps, weights, out[k])
        return out.reshape(*np.shape(a)[:-2], hi - lo, self.shape[1])

    def reads(self) -> np.ndarray:
        """(y, x) bool on ``src``: the pixels that resampling reads (the bilinear taps and the nearest
        pixels); the others (the margin, the corners a skewed footprint leaves) need not be computed."""
        used = np.zeros(self.src.shape[0] * self.src.shape[1], dtype=bool)
        for index in (*self._taps, self._nearest):
            used[index] = True
        return used.reshape(tuple(self.src.shape))

    def nearest(self, a: np.ndarray) -> np.ndarray:
        """Nearest-neighbour resampling of ``(..., y, x)`` data of any dtype (counts, masks, codes)."""
        flat = self._check(a)
        return flat[:, self._nearest].reshape(*np.shape(a)[:-2], *self.shape)


# --- 20 m -> 10 m on the same native grid ------------------------------------------


def upsample2(data, nearest: bool = False):
    """(time, y, x) -> (time, 2y, 2x): each pixel split in four, bilinear between pixel centres (weights 3/4,
    1/4, edges clamped, a NaN neighbour replaced by the pixel itself) or repeated (``nearest``); numpy or dask."""
    if nearest:
        return data.repeat(2, axis=1).repeat(2, axis=2)
    if not hasattr(data, "dask"):
        return _upsample2_block(np.pad(data, ((0, 0), (1, 1), (1, 1)), mode="edge"))
    import dask.array as dsa

    halo = dsa.overlap.overlap(data, depth={0: 0, 1: 1, 2: 1}, boundary={1: "nearest", 2: "nearest"})
    chunks = (data.chunks[0], tuple(2 * c for c in data.chunks[1]), tuple(2 * c for c in data.chunks[2]))
    return halo.map_blocks(_upsample2_block, chunks=chunks, dtype=data.dtype, meta=np.array((), data.dtype))


def _upsample2_block(b: np.ndarray) -> np.ndarray:
    """A (t, h+2, w+2) block with a one-pixel halo -> (t, 2h, 2w), separable 3/4-1/4 weights."""
    gaps = bool(np.isnan(b).any())  # most blocks have none: then no NaN pass over the 2x and 4x outputs
    rows = _split(b[:, 1:-1, :], b[:, :-2, :], b[:, 2:, :], axis=1, gaps=gaps)
    return _split(rows[:, :, 1:-1], rows[:, :, :-2], rows[:, :, 2:], axis=2, gaps=gaps)


def _split(centre: np.ndarray, before: np.ndarray, after: np.ndarray, axis: int, gaps: bool = True) -> np.ndarray:
    """Each pixel of ``centre`` split in two along ``axis``: c + (neighbour - c) / 4, in place (no temporaries
    of the output's size); a NaN neighbour gives the pixel's own value (``gaps`` False: the caller knows there
    is no NaN)."""
    shape = list(centre.shape)
    shape[axis] *= 2
    res = np.empty(shape, dtype=centre.dtype)
    quarter = centre.dtype.type(0.25)
    for start, neighbour in ((0, before), (1, after)):
        part = res[(slice(None),) * axis + (slice(start, None, 2),)]
        np.subtract(neighbour, centre, out=part)
        part *= quarter
        part += centre
        if not gaps:
            continue
        nan = np.isnan(part)
        if nan.any():
            np.copyto(part, centre, where=nan)  # NaN neighbour -> the pixel itself (NaN stays NaN)
    return res


def all_of_2x2(mask, chunks: tuple[tuple[int, ...], ...] | None = None):
    """(time, 2y, 2x) bool -> (time, y, x): True where all four pixels are; numpy or dask (``chunks``: the
    output's dask chunks, e.g. those of the 20 m rasters it masks; default: half the input's, which must be
    even)."""
    if not hasattr(mask, "dask"):
        rows = mask[:, 0::2] & mask[:, 1::2]  # strided ANDs: ~20x numpy's all() over a reshaped block
        return rows[:, :, 0::2] & rows[:, :, 1::2]
    if chunks is None:
        chunks = (mask.chunks[0], *(tuple(c // 2 for c in cs) for cs in mask.chunks[1:]))
    doubled = (chunks[0], *(tuple(2 * c for c in cs) for cs in chunks[1:]))
    return mask.rechunk(doubled).map_blocks(all_of_2x2, chunks=chunks, dtype=bool, meta=np.array((), bool))
