"""The fast preprocessing kernels equal their plain references, bit for bit, on random data with gaps."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from worldcover.bands import SCL_CLOUDS, SCL_INVALID, SCL_SHADOW, SCL_SNOW
from worldcover.preprocess import s2
from worldcover.preprocess.kernels import _median_small_any, group_median, sorted_quantiles

pytestmark = pytest.mark.filterwarnings("error::RuntimeWarning")


def same_bits(a: np.ndarray, b: np.ndarray) -> bool:
    """Equal values and dtype, NaN where NaN, and the same sign of zero."""
    a, b = np.asarray(a), np.asarray(b)
    return (a.dtype == b.dtype and a.shape == b.shape and np.array_equal(a, b, equal_nan=True)
            and np.array_equal(np.signbit(a), np.signbit(b)))


def series(rng, t: int, n: int, p_nan: float, dtype=np.float32) -> np.ndarray:
    """(t, n) values with NaN; columns 0-5 hold 0, 1, 2, 3, all-but-one and all valid values."""
    a = rng.normal(0.2, 0.1, (t, n)).astype(dtype)
    a[rng.random((t, n)) < p_nan] = np.nan
    for k in range(4):
        a[:, k] = np.nan
        a[rng.choice(t, min(k, t), replace=False), k] = rng.random(min(k, t))
    a[rng.integers(t), 4] = np.nan
    a[:, 5] = rng.random(t)
    a[:, 6] = 0.25  # ties
    return a


# --- quantiles ------------------------------------------------------------------------


def quantiles_reference(a: np.ndarray, qs) -> np.ndarray:
    """One np.sort over axis 0, a gather per quantile, numpy's linear interpolation (the former kernel)."""
    s = np.sort(a, axis=0)
    n = np.count_nonzero(~np.isnan(a), axis=0)
    last = np.maximum(n - 1, 0)
    out = np.full((len(qs), *a.shape[1:]), np.nan, np.float32)
    for i, q in enumerate(qs):
        pos = last * float(q)
        lo = np.floor(pos).astype(np.intp)
        hi = np.minimum(lo + 1, last)
        t = (pos - lo).astype(s.dtype)
        vlo = np.take_along_axis(s, lo[None], axis=0)[0]
        vhi = np.take_along_axis(s, hi[None], axis=0)[0]
        with np.errstate(invalid="ignore"):
            diff = vhi - vlo
            out[i] = np.where(t >= 0.5, vhi - diff * (1 - t), vlo + diff * t)
    return out


@pytest.mark.parametrize("t", [1, 2, 3, 12, 36, 71])
@pytest.mark.parametrize("p_nan", [0.0, 0.3, 1.0])
def test_sorted_quantiles_equal_the_reference_and_numpy(t, p_nan):
    rng = np.random.default_rng(t)
    a = series(rng, t, 3000, p_nan).reshape(t, 60, 50)
    qs = [0.0, 0.1, 0.25, 0.5, 0.75, 0.9, 1.0]
    got = sorted_quantiles(a, qs)
    assert same_bits(got, quantiles_reference(a, qs))
    flat = a.reshape(t, -1)
    ok = ~np.isnan(flat).all(axis=0)
    ref = np.nanquantile(flat[:, ok].astype(np.float64), qs, axis=0)
    np.testing.assert_allclose(got.reshape(len(qs), -1)[:, ok], ref, rtol=1e-6, atol=1e-7)
    assert np.isnan(got.reshape(len(qs), -1)[:, ~ok]).all()


def test_sorted_quantiles_of_float64_inf_and_empty_inputs():
    rng = np.random.default_rng(0)
    a = series(rng, 20, 500, 0.3, np.float64)
    a[3, 100:110] = np.inf
    a[5, 105:120] = -np.inf
    qs = [0.1, 0.5, 0.9]
    with np.errstate(invalid="ignore"):
        assert same_bits(sorted_quantiles(a, qs), quantiles_reference(a, qs))
    assert sorted_quantiles(np.zeros((0, 4), np.float32), qs).shape == (3, 4)
    assert np.isnan(sorted_quantiles(np.zeros((0, 4), np.float32), qs)).all()


# --- dekad medians ------------------------------------------------------------------------


@pytest.mark.parametrize("masked", [False, True])
def test_group_median_equals_the_select_form_and_nanmedian(masked):
    rng = np.random.default_rng(1)
    t = 40
    a = series(rng, t, 4000, 0.3)
    a[2, 7:9] = 3e38  # (x + x) / 2 overflows: the select form takes over
    valid = rng.random(a.shape) < 0.7 if masked else None
    bounds = [(0, 0), (0, 1), (1, 3), (3, 6), (6, 10), (10, 16), (16, 40)]  # 0, 1, 2, 3, 4, 6, 24 values
    got = group_median(a, bounds, valid=valid)
    src = a if valid is None else np.where(valid, a, np.nan)
    for i, (start, stop) in enumerate(bounds):
        if stop == start:
            assert np.isnan(got[i]).all()
            continue
        assert same_bits(got[i], _median_small_any(src[start:stop])), (start, stop)
        g = src[start:stop]
        ok = ~np.isnan(g).all(axis=0)
        ok[7:9] = False  # numpy's median overflows there
        np.testing.assert_allclose(got[i][ok], np.nanmedian(g[:, ok], axis=0), rtol=1e-6)  # 1 ulp: lerp vs mean


# --- gap filling ------------------------------------------------------------------------


@pytest.mark.parametrize("p_nan", [0.0, 0.05, 0.3, 0.8, 1.0])
def test_interpolate_gaps_equals_the_select_form(p_nan):
    rng = np.random.default_rng(2)
    a = series(rng, 36, 5000, p_nan)
    a[:5, 10:20] = np.nan  # leading, trailing and long gaps
    a[-7:, 15:30] = np.nan
    a[8:30, 40:45] = np.nan
    t = np.cumsum(rng.choice([9.5, 10.0, 10.5, 11.0], 36)).astype(np.float64)
    got = s2.interpolate_gaps(a.reshape(36, 50, 100), t)
    assert same_bits(got, s2._interpolate_gaps_select(a.reshape(36, 50, 100), t))


def test_interpolate_gaps_with_infinities_float64_and_unsorted_times_equals_the_select_form():
    rng = np.random.default_rng(3)
    a = series(rng, 12, 3000, 0.4)
    a[3, :40] = np.inf
    a[6, 20:60] = -np.inf
    t = np.arange(12, dtype=np.float64) * 10
    with np.errstate(invalid="ignore"):
        assert same_bits(s2.interpolate_gaps(a, t), s2._interpolate_gaps_select(a, t))
    b = series(rng, 12, 3000, 0.4, np.float64)
    assert same_bits(s2.interpolate_gaps(b, t), s2._interpolate_gaps_select(b, t))
    t2 = t.copy()
    t2[4] = t2[5]  # not strictly increasing
    c = series(rng, 12, 3000, 0.4)
    with np.errstate(invalid="ignore", divide="ignore"):
        assert same_bits(s2.interpolate_gaps(c, t2), s2._interpolate_gaps_select(c, t2))


# --- SCL mask ------------------------------------------------------------------------


def valid_reference(scl, prob=None, *, invalid, dilate, radius, snow, snow_min_fraction, threshold):
    """The former kernel: lookup tables and one scipy binary_dilation of the whole stack."""
    lut = np.zeros((2, 256), bool)
    lut[0, list(invalid)] = True
    lut[1, list(dilate)] = True
    bad, seed = lut[0][scl], lut[1][scl]
    if prob is not None:
        with np.errstate(invalid="ignore"):
            seed |= prob > threshold
    if radius > 0 and seed.any():
        seed = ndimage.binary_dilation(seed, structure=s2._disk(radius))
    bad |= seed
    if snow == "mask":
        bad |= scl == SCL_SNOW
    elif snow == "persistent":
        is_snow = scl == SCL_SNOW
        clear = ~bad
        transient = (is_snow & clear).sum(axis=0) < snow_min_fraction * clear.sum(axis=0)
        bad |= is_snow & transient[None]
    return ~bad


@pytest.mark.parametrize("radius", [0, 1, 2, 3, 4, 5, 7])
def test_disk_dilation_equals_scipy(radius):
    rng = np.random.default_rng(radius)
    seed = rng.random((37, 41)) < 0.02
    seed[0, 0] = seed[-1, 5] = seed[10, -1] = True  # at the edges
    ref = ndimage.binary_dilation(seed, structure=s2._disk(radius)[0]) if radius else seed
    assert np.array_equal(s2._dilate_disk(seed, radius), ref)
    assert np.array_equal(s2._dilate_disk(np.zeros((5, 3), bool), radius), np.zeros((5, 3), bool))


@pytest.mark.parametrize("snow", ["persistent", "keep", "mask"])
@pytest.mark.parametrize("with_prob", [False, True])
def test_valid_kernel_equals_the_reference(snow, with_prob):
    rng = np.random.default_rng(4)
    codes = np.arange(12, dtype=np.uint8)
    scl = rng.choice(codes, size=(15, 40, 45), p=[0.05, 0.02, 0.03, 0.05, 0.3, 0.15, 0.1, 0.05, 0.05, 0.05, 0.05, 0.1])
    scl[:, :10, :10] = SCL_SNOW  # persistent snow
    scl[3] = 4  # a clear date
    prob = rng.random(scl.shape).astype(np.float32) if with_prob else None
    if prob is not None:
        prob[prob < 0.1] = np.nan
    for invalid, dilate, radius in [
        (SCL_INVALID, SCL_CLOUDS | {SCL_SHADOW}, 3),
        (frozenset({0, 1, 2, 200, 201, 255}), frozenset({255, 7}), 2),
        (frozenset(), frozenset(), 0),
    ]:
        kw = dict(invalid=invalid, dilate=dilate, radius=radius, snow=snow, snow_min_fraction=0.5, threshold=0.4)
        assert np.array_equal(s2._valid_kernel(scl, prob, **kw), valid_reference(scl, prob, **kw))


# --- wiring ---------------------------------------------------------------------------


def test_fused_mask_and_composite_equal_apply_mask_then_composite_eager_and_chunked():
    from tests.test_preprocess_s2 import N, five_day_times, make_s2
    from worldcover.bands import S2_BANDS

    rng = np.random.default_rng(5)
    scl = rng.choice(np.array([4, 5, 6, 11, 3, 8, 9, 10, 0, 1], np.uint8), size=(73, N, N),
                     p=[0.3, 0.15, 0.1, 0.05, 0.05, 0.1, 0.1, 0.05, 0.05, 0.05])
    values = {b: rng.random((73, N, N), dtype=np.float32) for b in S2_BANDS}
    ds = make_s2(scl, five_day_times(), values)
    valid = s2.valid_mask(ds["SCL"])
    ref = s2.composite(s2.apply_mask(ds, valid))
    for data in (ds, ds.chunk({"latitude": 13, "longitude": 17})):
        got = s2.preprocess_s2(data).composites.compute()
        for b in ref.data_vars:
            assert same_bits(got[b].values, ref[b].values), b
        assert got.coords.keys() == ref.coords.keys()


def test_apply_along_time_same_result_whatever_the_dim_order():
    import xarray as xr

    from worldcover.preprocess.kernels import apply_along_time

    rng = np.random.default_rng(6)
    a = series(rng, 10, 12 * 7, 0.3).reshape(10, 12, 7)
    da = xr.DataArray(a, dims=("time", "y", "x"), coords={"time": np.arange(10), "y": np.arange(12), "x": np.arange(7)},
                      name="v", attrs={"units": "1"})
    kw = dict(out_dim="q", out_size=2, kwargs={"qs": [0.2, 0.8]})
    fast = apply_along_time(sorted_quantiles, da, **kw)  # time first: map_blocks on the arrays themselves
    slow = apply_along_time(sorted_quantiles, da.transpose("y", "time", "x"), **kw)  # apply_ufunc
    xr.testing.assert_identical(fast, slow.transpose(*fast.dims))
    lazy = apply_along_time(sorted_quantiles, da.chunk({"y": 5, "x": 3}), **kw)
    xr.testing.assert_identical(fast, lazy.compute())


# --- means, standard deviations, speckle filter ------------------------------------------------


@pytest.mark.parametrize("positive", [False, True])
def test_group_mean_equals_the_select_form(positive):
    from worldcover.preprocess.kernels import _group_mean_select, group_mean

    rng = np.random.default_rng(7)
    a = series(rng, 30, 3000, 0.3)
    a[:, 100:200] = -a[:, 100:200]  # negative values: missing with positive=True
    a[4, 300:310] = 0.0
    groups = [slice(0, 0), slice(0, 1), slice(1, 4), slice(4, 30), [2, 5, 7], np.array([0, 29])]
    ref_in = np.where(a > 0, a, np.nan) if positive else a
    assert same_bits(group_mean(a.reshape(30, 60, 50), groups, positive=positive),
                     _group_mean_select(ref_in.reshape(30, 60, 50), groups))
    b = a.astype(np.float64)
    ref_b = np.where(b > 0, b, np.nan) if positive else b
    assert same_bits(group_mean(b, groups, positive=positive), _group_mean_select(ref_b, groups))
    assert same_bits(group_mean(a[:0], groups[:1]), _group_mean_select(a[:0], groups[:1]))


@pytest.mark.parametrize("t", [1, 2, 12, 56])
def test_nan_std_equals_the_select_form(t):
    from worldcover.preprocess.kernels import _nan_std_select, nan_std

    rng = np.random.default_rng(t)
    a = series(rng, t, 3000, 0.3) * 40 - 15  # dB-like
    assert same_bits(nan_std(a.reshape(t, 50, 60)), _nan_std_select(a.reshape(t, 50, 60)))
    assert same_bits(nan_std(a.astype(np.float64)), _nan_std_select(a.astype(np.float64)))


@pytest.mark.parametrize("radius", [0, 1, 3])
def test_quegan_kernel_equals_the_select_form(radius):
    from worldcover.preprocess import s1

    rng = np.random.default_rng(8)
    a = rng.gamma(1.0, 0.05, (20, 37, 43)).astype(np.float32)
    a[rng.random(a.shape) < 0.1] = np.nan
    a[3, :10, :] = 0.0  # nodata fill
    a[5, 20:, 30:] = -1.0
    a[7] = np.nan  # a date missing everywhere
    a[:, 0:3, 0:3] = np.nan  # pixels never observed
    a[9, 12, 12] = np.inf
    got = s1._quegan_kernel(a, radius=radius)
    assert same_bits(got, s1._quegan_kernel_select(a, radius=radius))
    assert same_bits(got, s1._quegan_kernel_select(np.where(a > 0, a, np.nan), radius=radius))


@pytest.mark.parametrize("name", ["NDVI", "EVI", "NDMI", "NBR", "MNDWI", "NDWI", "NDREI", "IRECI", "CIRE"])
def test_index_kernel_equals_spyndex(name):
    import spyndex

    from worldcover.features import _index_kernel, index_inputs

    rng = np.random.default_rng(9)
    bands, consts = index_inputs(name)
    arrays = [series(rng, 12, 2000, 0.1).reshape(12, 40, 50) for _ in bands]
    arrays[0][2, :5] = 0.0  # 0 / 0 and x / 0
    if len(arrays) > 1:
        arrays[1][2, :10] = 0.0
    got = _index_kernel(*arrays, name=name, symbols=tuple(bands), constants=consts)
    with np.errstate(all="ignore"):
        params = {**dict(zip(bands, arrays, strict=True)), **consts}
        ref = np.asarray(spyndex.computeIndex(name, params=params), np.float32)
        ref = np.where(np.isfinite(ref), ref, np.float32(np.nan))
    assert same_bits(got, ref)
    flat = _index_kernel(*(a[:, 0, 0] for a in arrays), name=name, symbols=tuple(bands), constants=consts)
    assert same_bits(flat, ref[:, 0, 0])
