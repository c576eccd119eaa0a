"""Sentinel-2 preprocessing: SCL masking + dilation, snow, quality counts, dekad composites."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
import xarray as xr
from hypothesis import given, settings
from hypothesis import strategies as st
from odc.geo.xr import xr_coords

from worldcover.bands import S2_BANDS
from worldcover.errors import InputError
from worldcover.grid import Tile
from worldcover.preprocess import s2
from worldcover.preprocess.kernels import sorted_quantiles

pytestmark = [
    pytest.mark.filterwarnings("error::RuntimeWarning"),
    pytest.mark.filterwarnings("ignore:Use `@` matmul:PendingDeprecationWarning"),
]

N = 40
YEAR = 2021


def geobox(tile: str = "N45E006", size: int = N):
    with warnings.catch_warnings():  # affine's own PendingDeprecationWarning inside odc-geo
        warnings.simplefilter("ignore")
        return Tile.parse(tile).geobox[:size, :size]  # the top-left corner of the tile


def make_s2(
    scl: np.ndarray,
    times: pd.DatetimeIndex,
    values: dict[str, np.ndarray] | None = None,
    tile: str = "N45E006",
    spatial=("latitude", "longitude"),
) -> xr.Dataset:
    """A contract-shaped S2 Dataset: reflectance per band (default 0.1 * band rank) + SCL."""
    t, ny, nx = scl.shape
    coords = {"time": times, **xr_coords(geobox(tile, ny))}
    if spatial != ("latitude", "longitude"):
        coords = {k: v for k, v in coords.items()}
        coords[spatial[0]] = coords.pop("latitude").values
        coords[spatial[1]] = coords.pop("longitude").values
    dims = ("time", *spatial)
    data = {}
    for i, b in enumerate(S2_BANDS):
        v = values[b] if values and b in values else np.full(scl.shape, 0.01 * (i + 1), np.float32)
        data[b] = (dims, np.asarray(v, dtype=np.float32))
    data["SCL"] = (dims, scl.astype(np.uint8))
    return xr.Dataset(data, coords=coords)


def five_day_times(n: int = 73, start: str = f"{YEAR}-01-03") -> pd.DatetimeIndex:
    return pd.date_range(start, periods=n, freq="5D")


def disk_around(cy: int, cx: int, r: int, shape=(N, N)) -> np.ndarray:
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    return (yy - cy) ** 2 + (xx - cx) ** 2 <= r * r


# --- masking ------------------------------------------------------------------------


def test_mask_removes_exactly_invalid_classes_plus_dilated_clouds():
    times = five_day_times(10)
    scl = np.full((10, N, N), 4, np.uint8)
    scl[2, 20, 20] = 9  # cloud high: dilated
    scl[5, 5, 5] = 3  # shadow: dilated (clipped at the edge)
    scl[7, 30, 30] = 1  # saturated: invalid, not dilated
    scl[8, 10, 30] = 0  # nodata: invalid, not dilated
    scl[9, 15, 15] = 6  # water: valid
    valid = s2.valid_mask(make_s2(scl, times)["SCL"], s2.S2MaskConfig(dilation_radius=3)).values

    expected = np.ones((10, N, N), bool)
    expected[2] &= ~disk_around(20, 20, 3)
    expected[5] &= ~disk_around(5, 5, 3)
    expected[7, 30, 30] = False
    expected[8, 10, 30] = False
    np.testing.assert_array_equal(valid, expected)
    assert (~valid[2]).sum() == 29  # a radius-3 disk
    masked = s2.apply_mask(make_s2(scl, times), xr.DataArray(valid, dims=("time", "latitude", "longitude")))
    assert "SCL" not in masked
    np.testing.assert_array_equal(np.isnan(masked["B04"].values), ~expected)


def test_mask_config_changes_the_invalid_set_and_radius():
    times = five_day_times(3)
    scl = np.full((3, N, N), 4, np.uint8)
    scl[0, 10, 10] = 3  # shadow
    scl[1, 10, 10] = 8  # cloud medium
    scl[2, 10, 10] = 2  # dark area: valid by default
    cfg = s2.S2MaskConfig(invalid=frozenset({0, 2, 8}), dilate=frozenset(), dilation_radius=0)
    valid = s2.valid_mask(make_s2(scl, times)["SCL"], cfg).values
    assert valid[0].all()  # shadow is no longer invalid
    assert not valid[1, 10, 10] and valid[1].sum() == N * N - 1
    assert not valid[2, 10, 10] and valid[2].sum() == N * N - 1


def test_snow_policies():
    times = five_day_times(10)
    scl = np.full((10, N, N), 4, np.uint8)
    scl[:8, 0, 0] = 11  # 80 % snow: persistent (a glacier)
    scl[:2, 1, 1] = 11  # 20 % snow: transient (a winter snowfall)
    scl[:, 2, 2] = 9  # always cloudy: no clear observation
    scl[0, 2, 2] = 11
    ds = make_s2(scl, times)
    keep = s2.valid_mask(ds["SCL"], s2.S2MaskConfig(snow="keep", dilation_radius=0)).values
    pers = s2.valid_mask(ds["SCL"], s2.S2MaskConfig(snow="persistent", dilation_radius=0)).values
    mask = s2.valid_mask(ds["SCL"], s2.S2MaskConfig(snow="mask", dilation_radius=0)).values
    assert keep[:, 0, 0].all() and keep[:, 1, 1].all()
    assert pers[:, 0, 0].all()  # persistent snow kept
    assert not pers[:2, 1, 1].any() and pers[2:, 1, 1].all()  # transient snow masked
    assert pers[0, 2, 2]  # the only clear observation is snow: 100 % snow, kept
    assert not mask[:8, 0, 0].any() and mask[8:, 0, 0].all()
    assert s2.S2MaskConfig().snow == "persistent"


@pytest.mark.parametrize(
    "kwargs",
    [
        {"dilation_radius": -1},
        {"snow": "sometimes"},
        {"invalid": frozenset({0, 300})},
        {"invalid": frozenset({0, 11})},
        {"cloud_threshold": 1.5},
    ],
)
def test_bad_mask_config_is_an_input_error(kwargs):
    with pytest.raises(InputError):
        s2.S2MaskConfig(**kwargs)


def test_missing_scl_or_bands_is_an_input_error_and_extras_are_ignored():
    ds = make_s2(np.full((3, 8, 8), 4, np.uint8), five_day_times(3))
    with pytest.raises(InputError, match="SCL"):
        s2.preprocess_s2(ds.drop_vars("SCL"))
    renamed = ds.rename({b: f"asset_{b}" for b in S2_BANDS})  # unmapped asset keys
    with pytest.raises(InputError, match="no reflectance band"):
        s2.preprocess_s2(renamed)
    extra = ds.assign(AOT=ds["B04"] * 0)
    assert list(s2.preprocess_s2(extra).composites.data_vars) == list(S2_BANDS)


# --- quality ------------------------------------------------------------------------


def test_quality_counts_observations_valid_and_discarded_percent():
    times = five_day_times(20)
    scl = np.full((20, N, N), 4, np.uint8)
    scl[:5, 0, 39] = 0  # 15 observations, all clear
    scl[:, 39, 0] = 8  # all cloud
    scl[:, 39, 39] = 0  # never observed
    scl[:4, 20, 20] = 9  # 4 of 20 cloudy (radius 0 here)
    scl[4, 20, 20] = 0  # 1 not observed
    ds = make_s2(scl, times)
    valid = s2.valid_mask(ds["SCL"], s2.S2MaskConfig(dilation_radius=0))
    q = s2.s2_quality(ds["SCL"], valid)
    assert q["s2_obs"].dtype == np.int16 and q["s2_valid"].dtype == np.int16
    assert q["s2_discarded_pct"].dtype == np.float32
    obs, kept, pct = (q[v].values for v in ("s2_obs", "s2_valid", "s2_discarded_pct"))
    assert (obs[0, 39], kept[0, 39], pct[0, 39]) == (15, 15, 0.0)
    assert (obs[39, 0], kept[39, 0], pct[39, 0]) == (20, 0, 100.0)
    assert (obs[39, 39], kept[39, 39]) == (0, 0) and np.isnan(pct[39, 39])
    assert (obs[20, 20], kept[20, 20]) == (19, 15)
    assert pct[20, 20] == pytest.approx(100 * 4 / 19, rel=1e-6)
    assert (obs[10, 10], kept[10, 10], pct[10, 10]) == (20, 20, 0.0)


# --- composites ---------------------------------------------------------------------


def test_dekads_are_fixed_calendar_windows():
    t = pd.DatetimeIndex(
        ["2021-01-01", "2021-01-10", "2021-01-11", "2021-01-21", "2021-01-31", "2021-02-28", "2021-12-31"]
    )
    np.testing.assert_array_equal(s2.dekad_index(t), [0, 0, 1, 2, 2, 5, 35])
    c = s2.dekad_centres(2021)
    assert len(c) == 36
    assert c[0] == pd.Timestamp("2021-01-06") and c[2] == pd.Timestamp("2021-01-26T12:00")
    assert c[5] == pd.Timestamp("2021-02-25")  # 21..28 Feb: 8 days


def test_composite_of_a_constant_series_is_the_constant():
    rng = np.random.default_rng(1)
    times = five_day_times()
    scl = np.where(rng.random((73, N, N)) < 0.5, 9, 4).astype(np.uint8)
    scl[:, 0, :] = 4  # at least some pixels always clear
    out = s2.preprocess_s2(make_s2(scl, times), config=s2.S2MaskConfig(dilation_radius=1))
    comp = out.composites
    assert comp.sizes["time"] == 36 and list(comp["dekad"].values) == list(range(1, 37))
    for i, b in enumerate(S2_BANDS):
        v = comp[b].values
        assert v.dtype == np.float32
        finite = np.isfinite(v)
        assert finite.any(axis=0).sum() > N  # not everything NaN
        np.testing.assert_array_equal(v[finite], np.float32(0.01 * (i + 1)))
        # a pixel is either NaN all year (no valid observation) or filled everywhere
        np.testing.assert_array_equal(finite.all(axis=0), finite.any(axis=0))


def test_gap_is_filled_linearly_in_time_and_nearest_at_the_ends():
    centres = s2.dekad_centres(YEAR)
    days = np.asarray((centres - centres[0]) / pd.Timedelta(days=1))
    f = (0.1 + 0.002 * days).astype(np.float32)  # a linear ramp over the year
    scl = np.full((36, 4, 4), 4, np.uint8)
    gap = [0, 1, 10, 11, 12, 13, 34, 35]  # two at the start, four inside, two at the end
    scl[gap] = 9
    ds = make_s2(scl, centres, {"B04": np.broadcast_to(f[:, None, None], scl.shape)}, spatial=("y", "x"))
    comp = s2.preprocess_s2(ds, config=s2.S2MaskConfig(dilation_radius=0)).composites["B04"].values[:, 2, 2]
    kept = [k for k in range(36) if k not in gap]
    np.testing.assert_array_equal(comp[kept], f[kept])
    np.testing.assert_allclose(comp[10:14], f[10:14], rtol=1e-6)  # linear inside
    assert not np.allclose(comp[10:14], f[9])  # ... not a hold of the previous value
    np.testing.assert_array_equal(comp[:2], f[2])  # nearest at the start
    np.testing.assert_array_equal(comp[34:], f[33])  # and at the end


def test_composite_without_interpolation_keeps_gaps():
    centres = s2.dekad_centres(YEAR)
    scl = np.full((36, 4, 4), 4, np.uint8)
    scl[5] = 9
    ds = make_s2(scl, centres)
    comp = s2.preprocess_s2(ds, config=s2.S2MaskConfig(dilation_radius=0), interpolate=False).composites
    assert np.isnan(comp["B04"].values[5]).all() and np.isfinite(comp["B04"].values[6]).all()


def test_composite_median_matches_numpy_nanmedian_per_dekad():
    rng = np.random.default_rng(2)
    times = pd.DatetimeIndex(sorted(pd.Timestamp(f"{YEAR}-01-01") + pd.to_timedelta(rng.integers(0, 365, 90), "D")))
    a = rng.random((90, 6, 6), dtype=np.float32)
    a[rng.random(a.shape) < 0.3] = np.nan
    ds = xr.Dataset({"B04": (("time", "y", "x"), a)}, coords={"time": times})
    comp = s2.composite(ds, interpolate=False)["B04"].values
    didx = s2.dekad_index(times)
    for d in range(36):
        sub = a[didx == d]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            ref = np.nanmedian(sub, axis=0) if len(sub) else np.full((6, 6), np.nan)
        np.testing.assert_allclose(comp[d], ref, rtol=1e-6, equal_nan=True)


def test_all_cloud_pixels_stay_nan_with_count_zero():
    times = five_day_times()
    scl = np.full((73, N, N), 4, np.uint8)
    scl[:, :10, :10] = 9
    out = s2.preprocess_s2(make_s2(scl, times), config=s2.S2MaskConfig(dilation_radius=2))
    assert np.isnan(out.composites["B08"].values[:, :8, :8]).all()
    assert np.isfinite(out.composites["B08"].values[:, 20:, 20:]).all()
    assert (out.quality["s2_valid"].values[:10, :10] == 0).all()
    assert (out.quality["s2_discarded_pct"].values[:10, :10] == 100).all()
    # the dilation ring around the cloud is discarded too
    assert out.quality["s2_valid"].values[10, 5] == 0 and out.quality["s2_valid"].values[13, 5] == 73


def test_observations_outside_the_year_are_ignored():
    times = pd.DatetimeIndex(["2020-12-25", "2021-01-05", "2021-06-15", "2022-01-02"])
    vals = np.array([9.0, 0.2, 0.4, 9.0], np.float32)[:, None, None] * np.ones((4, 3, 3), np.float32)
    ds = make_s2(np.full((4, 3, 3), 4, np.uint8), times, {"B04": vals})
    out = s2.preprocess_s2(ds, year=2021, config=s2.S2MaskConfig(dilation_radius=0))
    assert float(out.composites["B04"].max()) == pytest.approx(0.4)
    assert (out.quality["s2_obs"].values == 2).all()
    assert s2.infer_year(ds) == 2021
    empty = s2.preprocess_s2(ds, year=2019, config=s2.S2MaskConfig(dilation_radius=0))
    assert empty.composites.sizes["time"] == 36 and np.isnan(empty.composites["B04"].values).all()
    assert (empty.quality["s2_obs"].values == 0).all()
    lazy = s2.preprocess_s2(ds.chunk({"latitude": 2}), year=2019)  # dask cannot chunk an empty axis
    np.testing.assert_array_equal(lazy.composites["B04"].values, empty.composites["B04"].values)
    assert (lazy.quality["s2_obs"].values == 0).all()


def test_dask_and_numpy_give_identical_results():
    rng = np.random.default_rng(3)
    times = five_day_times()
    scl = rng.choice(np.array([4, 5, 6, 11, 3, 8, 9, 10, 0, 1], np.uint8), size=(73, N, N),
                     p=[0.3, 0.15, 0.1, 0.05, 0.05, 0.1, 0.1, 0.05, 0.05, 0.05])
    values = {b: rng.random((73, N, N), dtype=np.float32) for b in S2_BANDS}
    ds = make_s2(scl, times, values)
    eager = s2.preprocess_s2(ds)
    lazy = s2.preprocess_s2(ds.chunk({"latitude": 13, "longitude": 17}))
    assert type(lazy.composites["B04"].data).__module__.startswith("dask")
    assert type(lazy.quality["s2_obs"].data).__module__.startswith("dask")
    lc, lq = lazy.composites.compute(), lazy.quality.compute()
    for b in eager.composites.data_vars:
        np.testing.assert_array_equal(eager.composites[b].values, lc[b].values)
    for v in eager.quality.data_vars:
        np.testing.assert_array_equal(eager.quality[v].values, lq[v].values)
    # the geobox survives
    gb = geobox()
    assert lc.odc.geobox == gb and lq.odc.geobox == gb and eager.composites.odc.geobox == gb


# --- properties ---------------------------------------------------------------------


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.integers(0, 364),
            st.one_of(st.none(), st.floats(-1e4, 1e4, allow_nan=False, width=32)),
        ),
        min_size=1,
        max_size=20,
    )
)
def test_composites_lie_within_the_valid_inputs(obs):
    days = sorted({d for d, _ in obs})
    by_day = {d: v for d, v in obs}
    times = pd.Timestamp(f"{YEAR}-01-01") + pd.to_timedelta(days, "D")
    vals = np.array([np.nan if by_day[d] is None else by_day[d] for d in days], np.float32)
    ds = xr.Dataset({"B04": (("time", "y", "x"), vals[:, None, None])}, coords={"time": times})
    comp = s2.composite(ds)["B04"].values[:, 0, 0]
    good = vals[~np.isnan(vals)]
    if good.size == 0:
        assert np.isnan(comp).all()
    else:
        assert np.isfinite(comp).all()
        assert comp.min() >= good.min() and comp.max() <= good.max()


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.one_of(st.just(float("nan")), st.floats(-100, 100, width=32)), min_size=1, max_size=15),
    st.lists(st.integers(0, 100), min_size=1, max_size=5),
)
def test_sorted_quantiles_equal_numpy_nanpercentile(values, percentiles):
    a = np.array(values, np.float32)[:, None]
    got = sorted_quantiles(a, [p / 100 for p in percentiles])[:, 0]
    if np.isnan(a).all():
        assert np.isnan(got).all()
    else:
        ref = np.nanpercentile(a[:, 0].astype(np.float64), percentiles)
        np.testing.assert_allclose(got, ref, rtol=1e-5, atol=1e-5)


# --- s2cloudless (opt-in) -----------------------------------------------------------

# Typical L2A reflectances (no B10): a bright cloud and a vegetated pixel.
CLOUD = {"B01": 0.45, "B02": 0.45, "B03": 0.45, "B04": 0.45, "B05": 0.46, "B06": 0.47, "B07": 0.48,
         "B08": 0.48, "B8A": 0.48, "B09": 0.45, "B11": 0.35, "B12": 0.25}
VEG = {"B01": 0.03, "B02": 0.03, "B03": 0.06, "B04": 0.03, "B05": 0.07, "B06": 0.25, "B07": 0.33,
       "B08": 0.35, "B8A": 0.38, "B09": 0.38, "B11": 0.18, "B12": 0.08}
SNOW = {"B01": 0.8, "B02": 0.8, "B03": 0.8, "B04": 0.78, "B05": 0.75, "B06": 0.72, "B07": 0.7,
        "B08": 0.7, "B8A": 0.68, "B09": 0.6, "B11": 0.05, "B12": 0.04}


def test_cloud_probability_runs_on_contract_input_and_separates_clouds():
    times = five_day_times(3)
    scl = np.full((3, 16, 16), 4, np.uint8)  # SCL misses the cloud on purpose
    values = {b: np.full((3, 16, 16), VEG[b], np.float32) for b in S2_BANDS}
    for b in S2_BANDS:
        values[b][1, 4:8, 4:8] = CLOUD[b]
        values[b][2, 10:12, 10:12] = SNOW[b]
    values["B02"][0, 0, 0] = np.nan  # a missing band -> no probability
    ds = make_s2(scl, times, values)
    assert "B10" not in ds
    prob = s2.cloud_probability(ds)
    assert prob.dims == ds["B04"].dims and prob.dtype == np.float32
    p = prob.values
    assert np.isnan(p[0, 0, 0])
    assert (p[1, 4:8, 4:8] > 0.6).all()
    assert np.nanmax(p[0]) < 0.1 and (p[2, 10:12, 10:12] < 0.2).all()
    lazy = s2.cloud_probability(ds.chunk({"latitude": 5, "longitude": 7})).values
    np.testing.assert_array_equal(p, lazy)

    cfg = s2.S2MaskConfig(cloud_probability=True, dilation_radius=1)
    out = s2.preprocess_s2(ds, config=cfg)
    valid = out.quality["s2_valid"].values
    assert (valid[4:8, 4:8] == 2).all() and valid[3, 5] == 2  # cloud + its 1 px ring dropped
    assert valid[10, 10] == 3  # the snow spectrum is not called cloud
    plain = s2.preprocess_s2(ds, config=s2.S2MaskConfig(dilation_radius=1))
    assert (plain.quality["s2_valid"].values[4:8, 4:8] == 3).all()  # SCL alone keeps the cloud
