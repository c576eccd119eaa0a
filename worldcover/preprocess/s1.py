"""Sentinel-1 preprocessing: multi-temporal speckle filter, linear-mean composites, dB, VH/VV.

Input (the contract of :mod:`worldcover.bands`): a Dataset with dims ``(time, y, x)`` (or ``latitude,
longitude``) and float32 ``vv``, ``vh`` backscatter in linear power (gamma0 or
sigma0), NaN for missing.  Values <= 0 are treated as missing too: they are
nodata fill or below the noise floor, and their logarithm is undefined.

Order of calls (or just :func:`preprocess_s1`)::

    ds = select_year(ds, year)
    count = s1_count(ds)                     # InputQuality band 1
    filtered = speckle_filter(ds)            # Quegan & Yu, on the acquisitions
    means = composite(filtered, year)        # monthly (or N-day) mean, linear units
    db = to_db(means)                        # vv_db, vh_db, ratio_db = vh_db - vv_db
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import xarray as xr

from worldcover.bands import S1_POLARISATIONS
from worldcover.errors import InputError
from worldcover.preprocess.kernels import TIME, apply_along_time, count_valid, group_mean, map_overlap_yx
from worldcover.preprocess.s2 import infer_year, select_year

__all__ = [
    "S1Result",
    "composite",
    "period_bins",
    "preprocess_s1",
    "s1_count",
    "select_year",
    "speckle_filter",
    "to_db",
]

DEFAULT_WINDOW = 7  # boxcar side, pixels (70 m at 10 m)


@dataclass(frozen=True)
class S1Result:
    """What :func:`preprocess_s1` returns."""

    db: xr.Dataset  # (time, y, x) float32: vv_db, vh_db, ratio_db
    count: xr.DataArray  # (y, x) int16: number of S1 observations


def _check(ds: xr.Dataset) -> list[str]:
    missing = [p for p in S1_POLARISATIONS if p not in ds.data_vars]
    if missing:
        raise InputError(f"Sentinel-1 input lacks {missing}: expected variables vv and vh in linear power")
    if TIME not in ds.dims:
        raise InputError(f"Sentinel-1 input has dims {tuple(ds.dims)}: expected a 'time' dim")
    return list(S1_POLARISATIONS)


def _valid_power(da: xr.DataArray) -> xr.DataArray:
    """Linear power with values <= 0 (and NaN) as NaN, float32."""
    return da.where(da > 0).astype(np.float32, copy=False)


def _power32(da: xr.DataArray) -> xr.DataArray:
    """``da`` as it is when float32; else :func:`_valid_power` (its where() runs before the cast)."""
    return da if da.dtype == np.float32 else _valid_power(da)


def s1_count(ds: xr.Dataset) -> xr.DataArray:
    """Number of S1 acquisitions per pixel with a valid VV or VH value, (y, x) int16."""
    pols = _check(ds)
    ok = ds[pols[0]] > 0  # NaN compares False
    for p in pols[1:]:
        ok = ok | (ds[p] > 0)
    return apply_along_time(count_valid, ok, dtype=np.int16).rename("s1_obs")


# --- speckle filter -----------------------------------------------------------------


def _box_sum(a: np.ndarray, r: int) -> np.ndarray:
    """Sum over a (2r+1)^2 window on the last two axes; outside the array counts as 0.

    Separable sums of shifted slices, always added in the same order: unlike a
    running (cumulative) sum, the result at a pixel does not depend on where
    the array starts, so dask blocks with a halo reproduce numpy exactly.
    """
    if r == 0:
        return a.copy()
    ny, nx = a.shape[-2:]
    pad = [(0, 0)] * (a.ndim - 2) + [(r, r), (r, r)]
    p = np.pad(a, pad)
    rows = p[..., 0:ny, :].copy()
    for k in range(1, 2 * r + 1):
        rows += p[..., k : k + ny, :]
    out = rows[..., :, 0:nx].copy()
    for k in range(1, 2 * r + 1):
        out += rows[..., :, k : k + nx]
    return out


def _quegan_kernel(a: np.ndarray, *, radius: int) -> np.ndarray:
    """Quegan & Yu (2001) multi-temporal filter on (T, y, x) linear power.

    J_t = m_t * (1/N) * sum_k I_k / m_k, with m_k the boxcar mean of image k
    and the sum over the N valid acquisitions of the pixel.  NaN-aware: the
    boxcar mean uses valid neighbours only, acquisitions missing at a pixel
    stay NaN there (so counts remain honest).

    One acquisition at a time, so every temporary is a (y, x) plane in cache:
    the boxcar sums add the same shifted slices in the same order as
    :func:`_box_sum` (the valid counts, small integers, as bytes), and the
    selects are bitwise or fmax forms of the former ``np.where`` calls, with
    identical results (:func:`_quegan_kernel_select` keeps that form for
    non-float32 input).
    """
    if a.dtype != np.float32 or a.ndim != 3 or a.shape[0] == 0 or radius == 0:
        return _quegan_kernel_select(a, radius=radius)
    n_t, ny, nx = a.shape
    r = radius
    count_dtype = np.uint8 if (2 * r + 1) ** 2 <= 255 else np.uint16
    out = np.empty(a.shape, np.float32)  # m_t first, J_t in the end
    ok = np.empty(a.shape, bool)
    acc = np.zeros((ny, nx), np.float64)  # sum_k I_k / m_k, in the order of the former float64 sum
    n_ok = np.zeros((ny, nx), np.int32)
    pad = np.zeros((ny + 2 * r, nx + 2 * r), np.float32)  # outside the array counts as 0
    pad_n = np.zeros((ny + 2 * r, nx + 2 * r), count_dtype)
    okm = np.empty((ny, nx), np.int32)
    ratio = np.empty((ny, nx), np.float32)
    full_win = None
    with np.errstate(invalid="ignore", divide="ignore"):
        for i in range(n_t):
            ai = a[i]
            o = ok[i]
            np.isfinite(ai, out=o)
            o &= ai > 0
            np.negative(o.view(np.int8), out=okm, casting="unsafe")  # -1 where ok
            x = pad[r : r + ny, r : r + nx]
            np.bitwise_and(ai.view(np.int32), okm, out=x.view(np.int32))  # x = where(ok, a, +0.0)
            if o.all():  # the usual acquisition: the counts of a full plane, computed once
                if full_win is None:
                    pad_n[r : r + ny, r : r + nx] = True
                    full_win = _box_sum_plane(pad_n, r, ny, nx)
                n_win = full_win
            else:
                pad_n[r : r + ny, r : r + nx] = o
                n_win = _box_sum_plane(pad_n, r, ny, nx)
            m = _box_sum_plane(pad, r, ny, nx, out=out[i])
            m /= n_win  # local mean per acquisition (NaN where no neighbour)
            np.divide(x, m, out=ratio)
            np.fmax(ratio, np.float32(0), out=ratio)  # where(ok, x / m, 0): x / m is 0 or NaN off ok
            acc += ratio
            n_ok += o
        texture = (acc / n_ok).astype(np.float32)  # (1/N) sum_k I_k/m_k
        nan_bits = np.float32(np.nan).view(np.int32)
        for i in range(n_t):
            oi = out[i]
            oi *= texture
            np.negative(ok[i].view(np.int8), out=okm, casting="unsafe")
            ob = oi.view(np.int32)  # where(ok, out, nan): nan ^ ((out ^ nan) & ok)
            ob ^= nan_bits
            ob &= okm
            ob ^= nan_bits
    return out


def _box_sum_plane(p: np.ndarray, r: int, ny: int, nx: int, out: np.ndarray | None = None) -> np.ndarray:
    """:func:`_box_sum` of one zero-padded plane ``p`` (ny + 2r, nx + 2r): rows first, the same additions."""
    rows = p[0:ny, :].copy()
    for k in range(1, 2 * r + 1):
        rows += p[k : k + ny, :]
    if out is None:
        out = rows[:, 0:nx].copy()
    else:
        out[...] = rows[:, 0:nx]
    for k in range(1, 2 * r + 1):
        out += rows[:, k : k + nx]
    return out.astype(np.float32, copy=False)


def _quegan_kernel_select(a: np.ndarray, *, radius: int) -> np.ndarray:
    """:func:`_quegan_kernel` on the whole stack at once, with ``np.where`` selects (any float dtype)."""
    with np.errstate(invalid="ignore"):
        ok = np.isfinite(a) & (a > 0)
    x = np.where(ok, a, 0).astype(np.float32)  # float32 halves the block's memory; sums of
    n_win = _box_sum(ok.astype(np.float32), radius)  # <= 49 terms lose ~1e-7 relative
    with np.errstate(invalid="ignore", divide="ignore"):
        m = _box_sum(x, radius) / n_win  # local mean per acquisition (NaN where no neighbour)
        ratio = np.where(ok, x / m, np.float32(0))
        n_t = ok.sum(axis=0)
        texture = (ratio.sum(axis=0, dtype=np.float64) / n_t).astype(np.float32)  # (1/N) sum_k I_k/m_k
        out = m * texture[None]
    return np.where(ok, out, np.nan).astype(np.float32)


def speckle_filter(ds: xr.Dataset, window: int = DEFAULT_WINDOW) -> xr.Dataset:
    """Multi-temporal speckle filter of Quegan & Yu (2001), per polarisation.

    Each acquisition is replaced by its ``window`` x ``window`` boxcar mean
    times the pixel's average over time of (image / its boxcar mean): the
    spatial mean sets the level, the temporal average of normalised images
    keeps the point detail, and speckle variance drops by up to the number of
    acquisitions while the mean is preserved.  Chosen over a (single-date) Lee
    filter because a year holds 30-60 co-registered acquisitions per block.
    Mixing orbits is acceptable: each term is normalised by its own local mean.
    ``window`` must be odd; 1 disables the spatial part (then J_t = I_t * mean ratio = I_t).
    """
    pols = _check(ds)
    if not isinstance(window, (int, np.integer)) or window < 1 or window % 2 == 0:
        raise InputError(f"invalid speckle window {window!r}: expected an odd integer >= 1")
    r = int(window) // 2
    # the kernel treats values <= 0 as missing itself: float32 input needs no masked copy
    out = {
        p: map_overlap_yx(_quegan_kernel, _power32(ds[p]), depth=r, dtype=np.float32, radius=r).rename(p)
        for p in pols
    }
    return xr.Dataset(out, attrs=ds.attrs)


# --- composites ---------------------------------------------------------------------


def period_bins(year: int, period: str | int = "month") -> tuple[pd.DatetimeIndex, pd.DatetimeIndex]:
    """(starts, ends) of the fixed composite periods of ``year``.

    ``"month"``: 12 calendar months; an integer N: N-day bins from 1 January
    (the last one shorter), e.g. 12 for the S1 repeat cycle.
    """
    y0, y1 = pd.Timestamp(year, 1, 1), pd.Timestamp(year + 1, 1, 1)
    if period == "month":
        starts = pd.date_range(y0, periods=12, freq="MS")
        ends = starts + pd.offsets.MonthBegin(1)
    elif isinstance(period, (int, np.integer)) and 1 <= period <= 366:
        starts = pd.date_range(y0, y1 - pd.Timedelta(days=1), freq=f"{int(period)}D")
        ends = pd.DatetimeIndex([*starts[1:], y1])
    else:
        raise InputError(f"invalid S1 composite period {period!r}: expected 'month' or a number of days 1..366")
    return starts, ends


def composite(ds: xr.Dataset, year: int | None = None, period: str | int = "month") -> xr.Dataset:
    """Mean of the linear power in fixed periods: (time=n_periods, y, x) float32.

    Averaging is done in linear units (averaging dB would bias low), NaN-aware;
    a period without any valid acquisition is NaN.  ``time`` holds the period
    mid-points.
    """
    pols = _check(ds)
    year = infer_year(ds) if year is None else int(year)
    ds = select_year(ds, year)
    starts, ends = period_bins(year, period)
    t = pd.DatetimeIndex(ds[TIME].values)
    lo = np.searchsorted(t, starts, side="left")
    hi = np.searchsorted(t, ends, side="left")
    groups = [slice(int(a), int(b)) for a, b in zip(lo, hi, strict=True)]
    mids = starts + (ends - starts) / 2
    out = {
        p: apply_along_time(
            group_mean, _power32(ds[p]), out_dim="_period", out_size=len(groups),
            kwargs={"groups": groups, "positive": True},  # <= 0 is missing: no masked copy first
        ).rename({"_period": TIME})
        for p in pols
    }
    return xr.Dataset(out, attrs=ds.attrs).assign_coords({TIME: mids.values.astype("datetime64[ns]")})


def to_db(ds: xr.Dataset) -> xr.Dataset:
    """``vv_db``, ``vh_db`` = 10 log10(linear) and ``ratio_db`` = vh_db - vv_db (= 10 log10(VH/VV)).

    Non-positive or missing power gives NaN, never -inf.
    """
    pols = _check(ds)

    def db(da: xr.DataArray) -> xr.DataArray:
        return xr.apply_ufunc(_db_kernel, da, dask="parallelized", output_dtypes=[np.float32], keep_attrs=True)

    out = {f"{p}_db": db(ds[p]) for p in pols}
    out["ratio_db"] = (out["vh_db"] - out["vv_db"]).astype(np.float32)
    return xr.Dataset(out, attrs=ds.attrs)


def _db_kernel(a: np.ndarray) -> np.ndarray:
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(a > 0, 10.0 * np.log10(a), np.nan).astype(np.float32)


# --- all in one ---------------------------------------------------------------------


def preprocess_s1(
    ds: xr.Dataset,
    year: int | None = None,
    window: int = DEFAULT_WINDOW,
    period: str | int = "month",
) -> S1Result:
    """Count, speckle-filter, composite (linear mean) and convert one block-year of S1.

    Returns ``S1Result(db, count)``: ``db`` holds vv_db, vh_db and ratio_db per
    period (12 months by default); ``count`` the number of acquisitions.
    """
    _check(ds)
    year = infer_year(ds) if year is None else int(year)
    ds = select_year(ds, year)
    count = s1_count(ds)
    filtered = speckle_filter(ds, window=window)
    return S1Result(to_db(composite(filtered, year=year, period=period)), count)
