"""The array kernels of preprocessing, shared by :mod:`.s2`, :mod:`.s1` and :mod:`worldcover.features`.

The two wrappers run a numpy kernel on xarray objects eagerly (numpy) or
lazily (dask) with identical results:

* :func:`apply_along_time` -- a kernel that needs the whole time axis of each
  pixel (composites, percentiles, counts).  Blocks keep the whole time axis and
  a y/x window, so no data moves between chunks.
* :func:`map_overlap_yx` -- a kernel that needs spatial neighbours (cloud
  dilation, boxcar means, gradients): dask ``map_overlap`` with a halo of
  ``depth`` pixels and no padding at the outer edge, so the kernel sees exactly
  what it would see on the whole numpy array.

Kernels never call numpy's ``nan*`` reductions: they count valid values and
divide explicitly, so all-NaN pixels give NaN without "All-NaN slice" or
"Mean of empty slice" warnings, and they are much faster on short time axes.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Sequence
from functools import partial
from typing import Any

import numpy as np
import xarray as xr

__all__ = [
    "TIME",
    "apply_along_time",
    "count_valid",
    "group_mean",
    "group_median",
    "is_dask",
    "map_overlap_yx",
    "nan_std",
    "sorted_quantiles",
    "spatial_dims",
]

TIME = "time"


# --- xarray / dask plumbing ----------------------------------------------------------


def is_dask(obj: Any) -> bool:
    """True when ``obj`` (array, DataArray or Dataset) is backed by dask."""
    if isinstance(obj, xr.Dataset):
        return any(is_dask(v) for v in obj.data_vars.values())
    data = obj.data if isinstance(obj, xr.DataArray) else obj
    return type(data).__module__.startswith("dask")


def spatial_dims(obj: xr.DataArray | xr.Dataset) -> tuple[str, str]:
    """Names of the (y, x) dims: ``("y", "x")`` or ``("latitude", "longitude")``.

    odc-geo names the dims of a geographic GeoBox latitude/longitude and of a
    projected one y/x; loaders may rename either way, so never hard-code them.
    """
    for pair in (("y", "x"), ("latitude", "longitude"), ("lat", "lon")):
        if all(d in obj.dims for d in pair):
            return pair
    raise ValueError(f"no spatial dims found in {tuple(obj.dims)}: expected (y, x) or (latitude, longitude)")


def _single_chunk(da: xr.DataArray, dims: Sequence[Hashable]) -> xr.DataArray:
    """Rechunk a dask-backed ``da`` so that each of ``dims`` is one chunk."""
    if not is_dask(da):
        return da
    need = {d: -1 for d in dims if d in da.dims and len(da.chunksizes.get(d, ())) > 1}
    return da.chunk(need) if need else da


def apply_along_time(
    func: Callable[..., np.ndarray],
    *arrays: xr.DataArray,
    dim: str = TIME,
    out_dim: str | None = None,
    out_size: int | None = None,
    dtype: Any = np.float32,
    kwargs: dict | None = None,
) -> xr.DataArray:
    """Run ``func`` on time-first numpy blocks ``(T, ...)`` of ``arrays``; lazy on dask.

    ``func(*blocks, **kwargs)`` receives each input with ``dim`` on axis 0 and
    returns either ``(out_size, ...)`` (then the result has ``out_dim`` first) or
    ``(...)`` when ``out_dim`` is None (a reduction over time).  Chunks must hold
    the whole time axis (rechunked here if they do not).

    Inputs with the same dims go through :func:`dask.array.map_blocks` on the
    time-first arrays themselves, so a time-major block reaches ``func``
    C-contiguous.  (``xarray.apply_ufunc`` moves the core dim last, and an
    elementwise step fused before it, e.g. a ``where`` mask, then materialises
    the block time-fastest: every time slice becomes a strided gather, 3-5x
    slower.)  Other inputs fall back to ``apply_ufunc``.
    """
    arrays = tuple(_single_chunk(a, [dim]) for a in arrays)
    if any(is_dask(a) and a.sizes[dim] == 0 for a in arrays):
        # dask's gufunc cannot chunk an empty core dim: give it one missing step
        # (NaN / False / 0), which every kernel here treats as no observation.
        arrays = tuple(_pad_missing_step(a, dim) if a.sizes[dim] == 0 else a for a in arrays)
    kernel = partial(func, **kwargs) if kwargs else func
    if all(a.dims == arrays[0].dims and a.shape == arrays[0].shape for a in arrays):
        return _apply_time_first(kernel, arrays, dim, out_dim, out_size, dtype)

    def _wrapped(*blocks: np.ndarray) -> np.ndarray:
        out = kernel(*(np.moveaxis(b, -1, 0) for b in blocks))
        return np.moveaxis(out, 0, -1) if out_dim is not None else out

    gufunc_kwargs = {"output_sizes": {out_dim: out_size}} if out_dim is not None else {}
    res = xr.apply_ufunc(
        _wrapped,
        *arrays,
        input_core_dims=[[dim]] * len(arrays),
        output_core_dims=[[out_dim]] if out_dim is not None else [[]],
        exclude_dims={dim},
        dask="parallelized",
        output_dtypes=[dtype],
        dask_gufunc_kwargs=gufunc_kwargs,
        keep_attrs=True,  # keeps the coordinates' attrs: spatial_ref carries the CRS
    )
    if out_dim is not None:
        res = res.transpose(out_dim, ...)
    return res


def _apply_time_first(
    kernel: Callable[..., np.ndarray],
    arrays: tuple[xr.DataArray, ...],
    dim: str,
    out_dim: str | None,
    out_size: int | None,
    dtype: Any,
) -> xr.DataArray:
    """:func:`apply_along_time` for inputs of identical dims: one kernel call per block, no transposes."""
    first = arrays[0]
    order = (dim, *(d for d in first.dims if d != dim))
    arrays = tuple(a.transpose(*order) for a in arrays)  # a no-op on time-major input
    rest = order[1:]
    if any(is_dask(a) for a in arrays):
        import dask.array as dsa

        chunks = next(a for a in arrays if is_dask(a)).data.chunks
        datas = [
            (a.data if a.data.chunks == chunks else a.data.rechunk(chunks)) if is_dask(a)
            else dsa.from_array(a.data, chunks=chunks)
            for a in arrays
        ]
        meta = np.array((), dtype=dtype)
        if out_dim is not None:
            out = dsa.map_blocks(kernel, *datas, chunks=((out_size,), *chunks[1:]), dtype=dtype, meta=meta)
        else:
            out = dsa.map_blocks(kernel, *datas, drop_axis=0, dtype=dtype, meta=meta)
    else:
        out = kernel(*(np.asarray(a.data) for a in arrays))
    # what apply_ufunc(keep_attrs=True, exclude_dims={dim}) keeps: coords off the time dim, the
    # first input's attrs, the common name
    coords = {}
    for a in arrays:
        for k, v in a.coords.items():
            if k not in coords and dim not in v.dims:
                coords[k] = v.variable
    names = {a.name for a in arrays}
    return xr.DataArray(
        out,
        dims=((out_dim,) if out_dim is not None else ()) + rest,
        coords=coords,
        attrs=dict(first.attrs),
        name=names.pop() if len(names) == 1 else None,
    )


def _pad_missing_step(da: xr.DataArray, dim: str) -> xr.DataArray:
    fill = np.nan if np.issubdtype(da.dtype, np.floating) else False if da.dtype == bool else 0
    import dask.array as dsa

    axis = da.dims.index(dim)
    chunks = list(da.data.chunks)
    chunks[axis] = (1,)
    shape = tuple(1 if i == axis else n for i, n in enumerate(da.shape))
    data = dsa.full(shape, fill, dtype=da.dtype, chunks=tuple(chunks))
    coords = {k: v for k, v in da.coords.items() if dim not in v.dims}
    return xr.DataArray(data, dims=da.dims, coords=coords, name=da.name, attrs=da.attrs)


def map_overlap_yx(
    func: Callable[..., np.ndarray],
    *arrays: xr.DataArray,
    depth: int,
    dtype: Any = np.float32,
    **kwargs: Any,
) -> xr.DataArray:
    """Run a same-shape kernel that needs ``depth`` spatial neighbours; lazy on dask.

    Inputs share dims and are passed with the spatial dims last; leading dims
    (time) are made one chunk.  On dask, :func:`dask.array.map_overlap` adds a
    halo of ``depth`` pixels with ``boundary="none"``: blocks at the outer edge
    are not padded, so the kernel handles the edge exactly as it does on the
    whole numpy array, and results are bit-identical to the eager path.
    """
    first = arrays[0]
    ydim, xdim = spatial_dims(first)
    order = [*(d for d in first.dims if d not in (ydim, xdim)), ydim, xdim]
    arrays = tuple(a.transpose(*order) for a in arrays)
    kernel = partial(func, **kwargs) if kwargs else func
    if any(is_dask(a) for a in arrays):
        import dask.array as dsa

        lead = order[:-2]
        template = _single_chunk(next(a for a in arrays if is_dask(a)), lead)
        chunks = template.data.chunks
        datas = [
            a.data.rechunk(chunks) if is_dask(a) else dsa.from_array(a.data, chunks=chunks)
            for a in arrays
        ]
        nd = len(order)
        dep = {i: 0 for i in range(nd)}
        dep[nd - 2] = dep[nd - 1] = int(depth)
        if depth > 0:
            out = dsa.map_overlap(
                kernel, *datas, depth=[dep] * len(datas), boundary="none", trim=True,
                dtype=dtype, meta=np.array((), dtype=dtype),
            )
        else:
            out = dsa.map_blocks(kernel, *datas, dtype=dtype, meta=np.array((), dtype=dtype))
    else:
        out = kernel(*(a.data for a in arrays))
    return xr.DataArray(out, dims=order, coords=arrays[0].coords, name=first.name)


# --- numpy kernels (time on axis 0) ------------------------------------------------


def _lerp(lo: np.ndarray, hi: np.ndarray, t: np.ndarray) -> np.ndarray:
    """numpy's own linear interpolation (``np.quantile(method="linear")``), exact at t=0/1."""
    with np.errstate(invalid="ignore"):
        diff = hi - lo
        return np.where(t >= 0.5, hi - diff * (1 - t), lo + diff * t)


# Pixels per strip in sorted_quantiles: a strip of lanes (T values each) of about
# 1 MiB is sorted while it sits in the L2 cache.
_STRIP_BYTES = 1 << 20


def sorted_quantiles(a: np.ndarray, qs: Sequence[float]) -> np.ndarray:
    """NaN-skipping quantiles over axis 0: ``(T, ...) -> (len(qs), ...)``, float32.

    A sort per pixel (NaN sort last) and a gather per quantile, with numpy's
    "linear" interpolation between order statistics; identical to
    ``np.nanquantile`` but ~100x faster on (36, 512, 512) and silent on all-NaN
    pixels (which give NaN).  ``qs`` are fractions in [0, 1].

    Pixels go through in strips copied pixel-major, so each sort reads one
    contiguous lane of a cache-resident buffer: 3-4x faster than ``np.sort``
    over axis 0 of the whole block (which gathers every lane with a stride of
    the block's plane) and no block-sized copy.  Each lane is sorted by the
    same numpy routine, so the order statistics are the same values, bit for
    bit; the interpolation is the same float arithmetic as :func:`_lerp`.
    """
    a = np.asarray(a)
    out = np.full((len(qs), *a.shape[1:]), np.nan, dtype=np.float32)
    n_t = a.shape[0]
    if n_t == 0 or out.size == 0:
        return out
    x = a.reshape(n_t, -1)
    res = out.reshape(len(qs), -1)
    n_px = x.shape[1]
    step = max(64, _STRIP_BYTES // (n_t * a.itemsize))
    buf = np.empty((min(step, n_px), n_t), dtype=a.dtype)
    qs = [float(q) for q in qs]
    for start in range(0, n_px, step):
        stop = min(start + step, n_px)
        lanes = buf[: stop - start]
        for t in range(n_t):  # row by row: ~2x numpy's copy of the transposed strip
            lanes[:, t] = x[t, start:stop]
        lanes.sort(axis=1)
        if not np.isnan(lanes[:, -1]).any():  # every pixel has n_t values: positions are shared
            _quantiles_full(lanes, qs, res[:, start:stop])
        else:
            _quantiles_ragged(lanes, qs, res[:, start:stop])
    return out


def _quantiles_full(lanes: np.ndarray, qs: Sequence[float], res: np.ndarray) -> None:
    """Quantiles of sorted lanes without NaN into ``res`` rows: scalar positions, :func:`_lerp`'s arithmetic."""
    last = lanes.shape[1] - 1
    one = lanes.dtype.type(1)
    for i, q in enumerate(qs):
        pos = last * q  # float64, as numpy's intp-array * float
        lo = int(np.floor(pos))
        hi = min(lo + 1, last)
        t = lanes.dtype.type(pos - lo)
        vlo, vhi = lanes[:, lo], lanes[:, hi]
        with np.errstate(invalid="ignore"):
            diff = vhi - vlo
            res[i] = vhi - diff * (one - t) if t >= 0.5 else vlo + diff * t


def _quantiles_ragged(lanes: np.ndarray, qs: Sequence[float], res: np.ndarray) -> None:
    """Quantiles of sorted lanes with NaN last (n valid values per lane) into ``res`` rows."""
    n = lanes.shape[1] - np.count_nonzero(np.isnan(lanes), axis=1)
    last = np.maximum(n - 1, 0)
    for i, q in enumerate(qs):
        pos = last * float(q)
        lo = np.floor(pos).astype(np.intp)
        hi = np.minimum(lo + 1, last)
        t = (pos - lo).astype(lanes.dtype)
        vlo = np.take_along_axis(lanes, lo[:, None], axis=1)[:, 0]
        vhi = np.take_along_axis(lanes, hi[:, None], axis=1)[:, 0]
        res[i] = _lerp(vlo, vhi, t)


_NAN_BITS = np.float32(np.nan).view(np.int32)  # numpy's quiet NaN, as np.where(valid, x, np.nan) writes it
_ONE_BITS = np.float32(1).view(np.int32)


def _nan_factor(valid: np.ndarray, scratch: np.ndarray) -> np.ndarray:
    """float32 1 where ``valid``, NaN where not, built in ``scratch`` (int32 like ``valid``).

    ``x * factor`` masks a float32 plane like ``np.where(valid, x, np.nan)``
    (x * 1 is x, bit for bit; x * NaN is that NaN) in SIMD passes; numpy's
    ``where`` and masked ``copyto`` run ~5x slower.
    """
    np.multiply(valid, _ONE_BITS - _NAN_BITS, out=scratch)
    np.add(scratch, _NAN_BITS, out=scratch)
    return scratch.view(np.float32)


def _median_small(
    g: np.ndarray, valid: np.ndarray | None = None, out: np.ndarray | None = None, planes: list | None = None
) -> np.ndarray:
    """NaN-skipping median over axis 0 of a short stack; exact for 1..3 values.

    Composites see 1-3 observations per dekad (5-day revisit), where comparison
    networks beat any sort by 5-10x; longer stacks fall back to
    :func:`sorted_quantiles`.  ``valid`` (bool, like ``g``): where False the
    observation counts as NaN -- the mask is applied here, one plane at a time,
    instead of on a masked copy of the whole band.  Writes into ``out`` (float32)
    when given; ``planes`` (three float32 planes and an int32 one) are scratch.
    """
    k = g.shape[0]
    if out is None:
        out = np.empty(g.shape[1:], dtype=np.float32)
    if k == 0:
        out.fill(np.nan)
        return out
    if g.dtype != np.float32:
        if valid is not None:
            g = np.where(valid, g, np.nan)
        out[...] = _median_small_any(g)
        return out
    if k >= 4:
        if valid is not None:
            g = np.where(valid, g, np.nan)
        out[...] = sorted_quantiles(g, [0.5])[0]
        return out
    if valid is None:
        planes = list(g)
    else:
        bufs = planes or [np.empty(g.shape[1:], np.float32) for _ in range(3)] + [np.empty(g.shape[1:], np.int32)]
        planes = [np.multiply(g[j], _nan_factor(valid[j], bufs[3]), out=bufs[j]) for j in range(k)]
    if k == 1:
        out[...] = planes[0]
        return out
    with np.errstate(invalid="ignore", over="ignore"):
        if k == 2:
            # fmin/fmax skip NaN: both valid -> (a + b) / 2 as before (the sum is the same in
            # either order); one valid -> (x + x) / 2 = x exactly, unless 2x overflows
            a, b = planes
            hi = np.fmax(a, b, out=bufs[2]) if valid is not None else np.fmax(a, b)
            np.fmin(a, b, out=out)
            out += hi
            out *= np.float32(0.5)
            if np.isinf(out).any():  # an overflow (|x| >= 2**127) or infinite input: the select form
                out[...] = _median_small_any(np.stack(planes))
            return out
    out[...] = _median_small_any(np.stack(planes))
    return out


def _median_small_any(g: np.ndarray) -> np.ndarray:
    """:func:`_median_small` of 1-3 (NaN-masked) observations of any float dtype, selects written out."""
    k = g.shape[0]
    if k >= 4:
        return sorted_quantiles(g, [0.5])[0]
    if k == 1:
        return g[0].astype(np.float32, copy=True)
    with np.errstate(invalid="ignore"):
        if k == 2:
            a, b = g[0], g[1]
            mean = (a + b) * np.float32(0.5)  # within [a, b], subnormals included
            return np.where(np.isnan(a), b, np.where(np.isnan(b), a, mean)).astype(np.float32)
        a, b, c = g[0], g[1], g[2]
        n = (~np.isnan(a)).astype(np.int8) + ~np.isnan(b) + ~np.isnan(c)
        lo = np.fmin(np.fmin(a, b), c)  # fmin/fmax skip NaN
        hi = np.fmax(np.fmax(a, b), c)
        mid = np.fmax(np.fmin(a, b), np.fmin(np.fmax(a, b), c))  # median of 3 (all valid)
        two = (lo + hi) * np.float32(0.5)  # n=2: mean of the two; n=1: the one
        return np.where(n == 3, mid, two).astype(np.float32)


def group_median(
    a: np.ndarray,
    bounds: Sequence[tuple[int, int]],
    valid: np.ndarray | None = None,
    out: np.ndarray | None = None,
) -> np.ndarray:
    """Median of contiguous time groups: ``(T, ...) -> (len(bounds), ...)``.

    ``bounds[i] = (start, stop)`` slices the (time-sorted) axis 0; an empty group
    gives NaN.  ``valid`` (bool, like ``a``): observations where it is False are
    skipped, as if ``a`` were NaN there.  Writes into ``out`` (float32) when given.
    """
    if out is None:
        out = np.empty((len(bounds), *a.shape[1:]), dtype=np.float32)
    planes = None
    if valid is not None and a.dtype == np.float32:
        planes = [np.empty(a.shape[1:], np.float32) for _ in range(3)] + [np.empty(a.shape[1:], np.int32)]
    for i, (start, stop) in enumerate(bounds):
        _median_small(a[start:stop], None if valid is None else valid[start:stop], out=out[i], planes=planes)
    return out


def group_mean(
    a: np.ndarray, groups: Sequence[Sequence[int] | slice], positive: bool = False
) -> np.ndarray:
    """NaN-skipping mean of time groups: ``(T, ...) -> (len(groups), ...)``, float32.

    Each group is a slice or index list of axis 0; accumulates in float64.
    ``positive``: only values > 0 count (linear power: <= 0 is nodata), as if
    the others were NaN.  float32 input goes one plane at a time with bitwise
    selects (the sums add the same values in the same order as the former
    ``np.where(...).sum(axis=0)``, which is 3-5x slower).
    """
    if a.dtype != np.float32:
        if positive:
            with np.errstate(invalid="ignore"):
                a = np.where(a > 0, a, np.nan)
        return _group_mean_select(a, groups)
    n_t = a.shape[0]
    flat = a.reshape(n_t, int(np.prod(a.shape[1:], dtype=np.int64)))
    out = np.empty((len(groups), flat.shape[1]), dtype=np.float32)
    acc = np.empty(flat.shape[1], np.float64)
    n = np.empty(flat.shape[1], np.int32)
    ok = np.empty(flat.shape[1], bool)
    mask = np.empty(flat.shape[1], np.int32)
    x = np.empty(flat.shape[1], np.float32)
    for i, g in enumerate(groups):
        steps = range(n_t)[g] if isinstance(g, slice) else [int(k) for k in np.asarray(g).reshape(-1)]
        for j, k in enumerate(steps):
            v = flat[k]
            _valid_into(v, positive, ok, mask)
            np.bitwise_and(v.view(np.int32), mask, out=x.view(np.int32))  # where(ok, v, +0.0)
            if j == 0:  # a reduction starts from its first element
                acc[...] = x
                n[...] = ok
            else:
                acc += x
                n += ok
        if not steps:
            out[i] = np.nan
            continue
        with np.errstate(invalid="ignore", divide="ignore"):
            out[i] = acc / n
        _nan_where(out[i], n > 0, mask)
    return out.reshape((len(groups), *a.shape[1:]))


def _valid_into(v: np.ndarray, positive: bool, ok: np.ndarray, mask: np.ndarray) -> None:
    """``ok`` = v is a value (not NaN; > 0 with ``positive``), ``mask`` = -1 there, 0 elsewhere."""
    with np.errstate(invalid="ignore"):
        if positive:
            np.greater(v, 0, out=ok)
        else:
            np.isnan(v, out=ok)
            np.logical_not(ok, out=ok)
    np.negative(ok.view(np.int8), out=mask, casting="unsafe")


def _nan_where(x: np.ndarray, keep: np.ndarray, mask: np.ndarray) -> None:
    """``x[~keep] = NaN`` (numpy's quiet NaN) on float32 ``x``: bitwise, no masked copy."""
    np.negative(keep.view(np.int8), out=mask, casting="unsafe")
    xb = x.view(np.int32)
    xb ^= _NAN_BITS
    xb &= mask
    xb ^= _NAN_BITS


def _group_mean_select(a: np.ndarray, groups: Sequence[Sequence[int] | slice]) -> np.ndarray:
    """:func:`group_mean` with ``np.where`` selects, any float dtype."""
    out = np.empty((len(groups), *a.shape[1:]), dtype=np.float32)
    for i, g in enumerate(groups):
        sub = a[g]
        ok = ~np.isnan(sub)
        n = ok.sum(axis=0)
        s = np.where(ok, sub, 0).sum(axis=0, dtype=np.float64)
        with np.errstate(invalid="ignore", divide="ignore"):
            out[i] = np.where(n > 0, s / n, np.nan)
    return out


def nan_std(a: np.ndarray) -> np.ndarray:
    """NaN-skipping population standard deviation over axis 0 (two-pass, float64).

    float32 input goes one plane at a time with bitwise selects, adding the
    same values in the same order as the former ``np.where(...).sum(axis=0)``.
    """
    if a.dtype != np.float32 or a.shape[0] == 0:
        return _nan_std_select(a)
    n_t = a.shape[0]
    flat = a.reshape(n_t, -1)
    size = flat.shape[1]
    ok = np.empty((n_t, size), bool)
    mask = np.empty(size, np.int32)
    mask64 = np.empty(size, np.int64)
    x = np.empty(size, np.float32)
    d = np.empty(size, np.float64)
    s = np.empty(size, np.float64)
    for k in range(n_t):
        _valid_into(flat[k], False, ok[k], mask)
        np.bitwise_and(flat[k].view(np.int32), mask, out=x.view(np.int32))
        if k == 0:
            s[...] = x
        else:
            s += x
    n = np.count_nonzero(ok, axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = s / n
        for k in range(n_t):
            np.subtract(flat[k], mean, out=d)
            np.negative(ok[k].view(np.int8), out=mask64, casting="unsafe")
            dv = d.view(np.int64)
            dv &= mask64  # where(ok, a - mean, 0.0)
            np.multiply(d, d, out=d)
            if k == 0:
                s[...] = d
            else:
                s += d
        s /= n
        out = np.sqrt(s).astype(np.float32)
    _nan_where(out, n > 0, mask)
    return out.reshape(a.shape[1:])


def _nan_std_select(a: np.ndarray) -> np.ndarray:
    """:func:`nan_std` with ``np.where`` selects, any float dtype."""
    ok = ~np.isnan(a)
    n = ok.sum(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.where(ok, a, 0).sum(axis=0, dtype=np.float64) / n
        var = (np.where(ok, a - mean, 0.0) ** 2).sum(axis=0) / n
        return np.where(n > 0, np.sqrt(var), np.nan).astype(np.float32)


def count_valid(a: np.ndarray) -> np.ndarray:
    """Number of True (bool) or non-NaN (float) values over axis 0, int16."""
    ok = a if a.dtype == bool else ~np.isnan(a)
    return ok.sum(axis=0, dtype=np.int32).astype(np.int16)
