"""Sentinel-1 preprocessing: Quegan-Yu speckle filter, linear-mean composites, dB, ratio, counts."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
import xarray as xr
from odc.geo.xr import xr_coords

from worldcover.errors import InputError
from worldcover.grid import Tile
from worldcover.preprocess import s1

pytestmark = [
    pytest.mark.filterwarnings("error::RuntimeWarning"),
    pytest.mark.filterwarnings("ignore:Use `@` matmul:PendingDeprecationWarning"),
]

N = 40
YEAR = 2021


def make_s1(vv: np.ndarray, vh: np.ndarray | None = None, times=None) -> xr.Dataset:
    t, ny, nx = vv.shape
    times = pd.date_range(f"{YEAR}-01-02", periods=t, freq="6D") if times is None else times
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        gb = Tile.parse("N45E006").geobox[:ny, :nx]
    dims = ("time", "latitude", "longitude")
    vh = vv * np.float32(0.2) if vh is None else vh
    return xr.Dataset(
        {"vv": (dims, vv.astype(np.float32)), "vh": (dims, vh.astype(np.float32))},
        coords={"time": times, **xr_coords(gb)},
    )


def speckled(mean: float, looks: float, shape, seed=0) -> np.ndarray:
    """Fully developed speckle: gamma with shape L and mean ``mean`` (CV = 1/sqrt(L))."""
    return np.random.default_rng(seed).gamma(looks, mean / looks, size=shape).astype(np.float32)


def cv(a: np.ndarray) -> float:
    return float(np.nanstd(a) / np.nanmean(a))


def test_speckle_filter_reduces_cv_and_preserves_the_mean():
    raw = speckled(0.05, looks=1.0, shape=(30, N, N))  # single-look: CV = 1
    ds = make_s1(raw, speckled(0.01, 1.0, (30, N, N), seed=1))
    out = s1.speckle_filter(ds, window=7)
    for pol in ("vv", "vh"):
        r, f = ds[pol].values, out[pol].values
        assert cv(r) == pytest.approx(1.0, abs=0.05)
        # theory sqrt(1/49 + 1/30) = 0.23 (49-pixel boxcar level x 30-date texture average); measured 0.23
        assert cv(f) < cv(r) / 3
        assert np.nanmean(f) == pytest.approx(np.nanmean(r), rel=0.03)
        assert f.dtype == np.float32 and f.shape == r.shape


def test_speckle_filter_keeps_a_noise_free_series_and_point_detail():
    base = np.full((10, N, N), 0.1, np.float32)
    base[:, 20, 20] = 1.0  # a persistent bright point target
    base *= np.linspace(0.5, 1.5, 10, dtype=np.float32)[:, None, None]  # level changes over time
    out = s1.speckle_filter(make_s1(base), window=5)["vv"].values
    np.testing.assert_allclose(out, base, rtol=1e-5)


def test_speckle_filter_missing_values_stay_missing():
    raw = speckled(0.05, 4.0, (8, N, N))
    raw[3, :10, :10] = np.nan
    raw[4, 5, 5] = 0.0  # non-positive power is missing too
    out = s1.speckle_filter(make_s1(raw), window=3)["vv"].values
    assert np.isnan(out[3, :10, :10]).all() and np.isnan(out[4, 5, 5])
    assert np.isfinite(out[3, 10:, 10:]).all() and np.isfinite(out[5]).all()


def test_speckle_window_must_be_odd():
    ds = make_s1(np.ones((2, 8, 8), np.float32))
    for w in (0, 4, -3, 2.5):
        with pytest.raises(InputError):
            s1.speckle_filter(ds, window=w)


def test_to_db_and_ratio():
    vv = np.array([0.1, 0.01, 1.0, 0.0, np.nan], np.float32).reshape(5, 1, 1)
    vh = np.array([0.01, 0.01, 0.001, 0.1, 0.1], np.float32).reshape(5, 1, 1)
    db = s1.to_db(make_s1(vv, vh))
    np.testing.assert_allclose(db["vv_db"].values[:3, 0, 0], [-10, -20, 0], atol=1e-5)
    np.testing.assert_allclose(db["vh_db"].values[:3, 0, 0], [-20, -20, -30], atol=1e-5)
    np.testing.assert_allclose(db["ratio_db"].values[:3, 0, 0], [-10, 0, -30], atol=1e-5)
    assert np.isnan(db["vv_db"].values[3:]).all() and np.isnan(db["ratio_db"].values[3:]).all()
    assert all(db[v].dtype == np.float32 for v in db.data_vars)


def test_monthly_composite_averages_linear_power():
    times = pd.DatetimeIndex(["2021-01-05", "2021-01-17", "2021-03-01", "2021-03-31", "2020-12-30"])
    vv = np.array([0.1, 0.3, 0.2, np.nan, 5.0], np.float32).reshape(5, 1, 1)
    comp = s1.composite(make_s1(vv, times=times), year=2021)
    v = comp["vv"].values[:, 0, 0]
    assert comp.sizes["time"] == 12
    assert v[0] == pytest.approx(0.2)  # linear mean; the dB mean would give 0.173
    assert np.isnan(v[1])  # no acquisition in February
    assert v[2] == pytest.approx(0.2)  # NaN skipped
    assert np.isnan(v[3:]).all()
    assert pd.Timestamp(comp["time"].values[0]) == pd.Timestamp("2021-01-16T12:00")


def test_n_day_composites():
    starts, ends = s1.period_bins(2021, 12)
    assert len(starts) == 31 and starts[1] == pd.Timestamp("2021-01-13") and ends[-1] == pd.Timestamp("2022-01-01")
    vv = np.arange(1, 61, dtype=np.float32).reshape(60, 1, 1)
    comp = s1.composite(make_s1(vv), year=2021, period=12)  # one acquisition every 6 days
    v = comp["vv"].values[:, 0, 0]
    assert v[0] == pytest.approx(1.5) and v[1] == pytest.approx(3.5)
    with pytest.raises(InputError):
        s1.period_bins(2021, "fortnight")


def test_count_of_observations():
    vv = np.full((12, N, N), 0.1, np.float32)
    vh = vv.copy()
    vv[:4, 0, 0] = np.nan
    vh[:2, 0, 0] = np.nan  # VH still there for t=2,3: counts
    vv[:, 1, 1] = np.nan
    vh[:, 1, 1] = np.nan
    count = s1.s1_count(make_s1(vv, vh))
    assert count.dtype == np.int16 and count.dims == ("latitude", "longitude")
    assert count.values[0, 0] == 10 and count.values[1, 1] == 0 and count.values[5, 5] == 12


def test_preprocess_s1_dask_equals_numpy():
    ds = make_s1(speckled(0.05, 2.0, (60, N, N)), speckled(0.01, 2.0, (60, N, N), seed=5))
    ds["vv"][10:20, 3:9, 30:] = np.nan
    eager = s1.preprocess_s1(ds)
    lazy = s1.preprocess_s1(ds.chunk({"latitude": 11, "longitude": 19}))
    assert type(lazy.db["vv_db"].data).__module__.startswith("dask")
    assert list(eager.db.data_vars) == ["vv_db", "vh_db", "ratio_db"]
    assert eager.db.sizes["time"] == 12
    ldb = lazy.db.compute()
    for v in eager.db.data_vars:
        np.testing.assert_array_equal(eager.db[v].values, ldb[v].values)
    np.testing.assert_array_equal(eager.count.values, lazy.count.values)
    assert ldb.odc.geobox == ds.odc.geobox


def test_a_year_without_acquisitions_gives_nan_and_zero_counts():
    ds = make_s1(np.ones((3, 8, 8), np.float32))
    for obj in (ds, ds.chunk({"latitude": 4})):
        out = s1.preprocess_s1(obj, year=2019)
        assert out.db.sizes["time"] == 12 and np.isnan(out.db["vv_db"].values).all()
        assert (out.count.values == 0).all()


def test_missing_polarisation_is_an_input_error():
    with pytest.raises(InputError, match="vh"):
        s1.preprocess_s1(make_s1(np.ones((3, 4, 4), np.float32)).drop_vars("vh"))
