"""Features: names, spyndex indices by hand, percentiles, monthly NDVI, summer baseline, S1, terrain, location."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pandas as pd
import pytest
import spyndex
import xarray as xr
from odc.geo.geobox import GeoBox
from odc.geo.xr import xr_coords

from worldcover import features as F
from worldcover.bands import S2_BANDS
from worldcover.errors import InputError
from worldcover.grid import Tile
from worldcover.preprocess import s1 as s1mod
from worldcover.preprocess import s2 as s2mod

pytestmark = [
    pytest.mark.filterwarnings("error::RuntimeWarning"),
    pytest.mark.filterwarnings("ignore:Use `@` matmul:PendingDeprecationWarning"),
]

N = 24
YEAR = 2021
DIMS = ("time", "latitude", "longitude")


def geobox(tile: str = "N45E006", size: int = N) -> GeoBox:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return Tile.parse(tile).geobox[:size, :size]


def make_composites(values: dict[str, np.ndarray] | None = None, tile="N45E006", seed=0) -> xr.Dataset:
    """36 dekad composites, random reflectance in 0.02..0.5 unless given."""
    rng = np.random.default_rng(seed)
    gb = geobox(tile)
    data = {}
    for b in S2_BANDS:
        v = values[b] if values and b in values else rng.uniform(0.02, 0.5, (36, N, N))
        data[b] = (DIMS, np.broadcast_to(np.asarray(v, np.float32), (36, N, N)).copy())
    coords = {"time": s2mod.dekad_centres(YEAR), **xr_coords(gb)}
    return xr.Dataset(data, coords=coords).assign_coords(dekad=("time", np.arange(1, 37)))


def make_s1db(tile="N45E006", seed=1) -> xr.Dataset:
    rng = np.random.default_rng(seed)
    gb = geobox(tile)
    vv = rng.normal(-10, 2, (12, N, N)).astype(np.float32)
    vh = rng.normal(-17, 2, (12, N, N)).astype(np.float32)
    times = pd.date_range(f"{YEAR}-01-16", periods=12, freq="MS")
    return xr.Dataset(
        {"vv_db": (DIMS, vv), "vh_db": (DIMS, vh), "ratio_db": (DIMS, vh - vv)},
        coords={"time": times, **xr_coords(gb)},
    )


def make_dem(tile="N45E006", seed=2) -> xr.DataArray:
    gb = geobox(tile)
    z = np.random.default_rng(seed).uniform(100, 200, (N, N)).astype(np.float32)
    return xr.DataArray(z, dims=DIMS[1:], coords=xr_coords(gb), name="dem")


# --- names ---------------------------------------------------------------------------


def test_feature_names_are_stable_and_documented():
    names = F.feature_names()
    assert len(names) == len(set(names)) == 129
    for n in ("s2_B04_p50", "s2_B8A_p10", "ndvi_p90", "ndvi_m07", "ndrei_p50", "ireci_p25", "cire_p75",
              "evi_p50", "mndwi_p10", "s1_vh_db_p90", "s1_ratio_db_p50", "s1_vv_db_std", "dem", "slope",
              "lat_sin"):
        assert n in names
    assert "lon_sin" not in names and "lon_cos" not in names  # longitude is opt-in
    assert names[:5] == ["s2_B02_p10", "s2_B02_p25", "s2_B02_p50", "s2_B02_p75", "s2_B02_p90"]
    assert names[-4:] == ["dem", "slope", "lat_sin", "lat_cos"]
    with_lon = F.feature_names(F.FeatureConfig(longitude=True))
    assert with_lon[-2:] == ["lon_sin", "lon_cos"] and len(with_lon) == 131
    # cards written before the switch (no "longitude" key) keep all four encodings
    old = {k: v for k, v in F.FeatureConfig().to_dict().items() if k != "longitude"}
    assert F.feature_names(F.FeatureConfig.from_dict(old))[-2:] == ["lon_sin", "lon_cos"]
    assert F.feature_names() == names  # deterministic
    summer = F.feature_names(F.FeatureConfig.summer_only())
    assert len(summer) == 19 and summer[0] == "s2_B02_summer" and "ndvi_summer" in summer
    assert not any(n.startswith("s1_") or "_p" in n for n in summer)
    custom = F.FeatureConfig(bands=("B04",), indices=("NDVI",), percentiles=(5, 50), monthly_ndvi=False,
                             s1=False, terrain=False, location=False)
    assert F.feature_names(custom) == ["s2_B04_p05", "s2_B04_p50", "ndvi_p05", "ndvi_p50"]


def test_feature_config_round_trips_through_a_dict():
    import json

    for cfg in (F.FeatureConfig(), F.FeatureConfig.summer_only(), F.FeatureConfig(percentiles=(5, 95), s1=False)):
        d = json.loads(json.dumps(cfg.to_dict()))
        assert F.FeatureConfig.from_dict(d) == cfg
        assert F.feature_names(F.FeatureConfig.from_dict(d)) == F.feature_names(cfg)
    with pytest.raises(InputError, match="unknown"):
        F.FeatureConfig.from_dict({"percentile": [50]})


@pytest.mark.parametrize(
    "kwargs",
    [
        {"bands": ("B10",)},
        {"indices": ("NDRE",)},  # not in spyndex: NDREI is
        {"indices": ("NDVI", "NDVI")},
        {"percentiles": (50, 101)},
        {"percentiles": (12.5,)},
        {"summer_month_north": 13},
        {"s1_variables": ("vv",)},
    ],
)
def test_bad_feature_config_is_an_input_error(kwargs):
    with pytest.raises(InputError):
        F.FeatureConfig(**kwargs)


def test_computed_feature_coordinate_matches_the_names():
    comps, s1db, dem = make_composites(), make_s1db(), make_dem()
    for cfg in (F.FeatureConfig(), F.FeatureConfig.summer_only(),
                F.FeatureConfig(indices=("NBR",), percentiles=(50,), s1_std=False, location=False)):
        out = F.compute_features(comps, s1db if cfg.s1 else None, dem if cfg.terrain else None, config=cfg)
        assert out.dims == ("feature", "latitude", "longitude")
        assert out.dtype == np.float32
        assert list(out["feature"].values) == F.feature_names(cfg)
        assert out.odc.geobox == geobox()


# --- spectral indices ----------------------------------------------------------------


def by_hand(name: str, b: dict[str, np.ndarray]) -> np.ndarray:
    """Independent, hand-typed formulas (Awesome Spectral Indices definitions)."""
    B02, B03, B04, B05, B06, B07, B08, B11, B12 = (b[k].astype(np.float64) for k in
                                                   ("B02", "B03", "B04", "B05", "B06", "B07", "B08", "B11", "B12"))
    return {
        "NDVI": (B08 - B04) / (B08 + B04),
        "EVI": 2.5 * (B08 - B04) / (B08 + 6 * B04 - 7.5 * B02 + 1),
        "NDMI": (B08 - B11) / (B08 + B11),
        "NBR": (B08 - B12) / (B08 + B12),
        "MNDWI": (B03 - B11) / (B03 + B11),
        "NDWI": (B03 - B08) / (B03 + B08),
        "NDREI": (B08 - B05) / (B08 + B05),
        "IRECI": (B07 - B04) / (B05 / B06),
        "CIRE": B08 / B05 - 1,
    }[name]


@pytest.mark.parametrize("name", F.DEFAULT_INDICES)
def test_index_percentiles_match_the_formula_by_hand(name):
    comps = make_composites(seed=3)
    out = F.compute_features(comps, config=F.FeatureConfig(indices=(name,), s1=False, terrain=False,
                                                           location=False, monthly_ndvi=False))
    series = by_hand(name, {b: comps[b].values for b in S2_BANDS})  # (36, y, x)
    for p in (10, 50, 90):
        got = out.sel(feature=f"{name.lower()}_p{p}").values
        np.testing.assert_allclose(got, np.percentile(series, p, axis=0), rtol=2e-5, atol=1e-6)
    # cross-check spyndex itself on a few pixels
    bm = F.spyndex_band_map()
    bands, consts = F.index_inputs(name)
    px = {sym: comps[bm[sym]].values[0, :2, :2].astype(np.float64) for sym in bands}
    np.testing.assert_allclose(spyndex.computeIndex(name, params={**px, **consts}),
                               series[0, :2, :2], rtol=1e-6)


def test_band_map_comes_from_spyndex():
    bm = F.spyndex_band_map()
    assert bm["N"] == "B08" and bm["N2"] == "B8A" and bm["R"] == "B04" and bm["RE1"] == "B05"
    assert bm["S1"] == "B11" and bm["S2"] == "B12" and bm["A"] == "B01"


def test_band_percentiles_match_numpy_and_are_nan_safe():
    comps = make_composites(seed=4)
    comps["B04"][:, 0, 0] = np.nan  # a pixel never observed
    comps["B04"][:5, 1, 1] = np.nan  # a pixel with gaps (composites without gap filling)
    cfg = F.FeatureConfig(bands=("B04",), indices=("NDVI",), s1=False, terrain=False, location=False)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no All-NaN slice / empty-slice warnings at all
        out = F.compute_features(comps, config=cfg)
    v = comps["B04"].values
    for p in F.DEFAULT_PERCENTILES:
        got = out.sel(feature=f"s2_B04_p{p}").values
        assert np.isnan(got[0, 0])
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            ref = np.nanpercentile(v, p, axis=0)
        np.testing.assert_allclose(got, ref, rtol=1e-6, equal_nan=True)
    assert np.isnan(out.sel(feature="ndvi_p50").values[0, 0]) and np.isnan(out.sel(feature="ndvi_m03").values[0, 0])
    assert np.isfinite(out.sel(feature="ndvi_m03").values[1, 1])


def test_division_by_zero_gives_nan_not_inf():
    zeros = np.zeros((36, N, N), np.float32)
    comps = make_composites({"B08": zeros, "B04": zeros, "B05": zeros})
    cfg = F.FeatureConfig(bands=(), indices=("NDVI", "CIRE"), s1=False, terrain=False, location=False,
                          monthly_ndvi=False)
    out = F.compute_features(comps, config=cfg).values
    assert np.isnan(out).all()


def test_monthly_ndvi_is_the_mean_of_the_months_dekads():
    comps = make_composites(seed=5)
    out = F.compute_features(comps, config=F.FeatureConfig(bands=(), indices=(), percentiles=(), s1=False,
                                                           terrain=False, location=False))
    assert list(out["feature"].values) == [f"ndvi_m{m:02d}" for m in range(1, 13)]
    ndvi = by_hand("NDVI", {b: comps[b].values for b in S2_BANDS})
    expected = ndvi.reshape(12, 3, N, N).mean(axis=1)
    np.testing.assert_allclose(out.values, expected, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("tile, month", [("N45E006", 7), ("S03W063", 1)])
def test_summer_only_picks_the_hemispheres_summer_month(tile, month):
    months = np.repeat(np.arange(1, 13), 3).astype(np.float32)[:, None, None]
    comps = make_composites({"B04": 0.01 * months, "B08": 0.02 + 0.03 * months}, tile=tile)
    assert F.summer_month(comps) == month
    out = F.compute_features(comps, config=F.FeatureConfig.summer_only())
    assert out.sel(feature="s2_B04_summer").values == pytest.approx(0.01 * month)
    r, n = 0.01 * month, 0.02 + 0.03 * month
    assert out.sel(feature="ndvi_summer").values == pytest.approx((n - r) / (n + r), rel=1e-5)
    assert "s1_vv_db_p50" not in out["feature"].values


# --- S1 --------------------------------------------------------------------------------


def test_s1_statistics_match_numpy():
    comps, s1db = make_composites(), make_s1db()
    s1db["vh_db"][:, 2, 2] = np.nan
    s1db["vh_db"][:4, 3, 3] = np.nan
    cfg = F.FeatureConfig(bands=(), indices=(), percentiles=(), monthly_ndvi=False, terrain=False, location=False)
    out = F.compute_features(comps, s1db, config=cfg)
    assert len(out["feature"]) == 18
    for v in ("vv_db", "vh_db", "ratio_db"):
        a = s1db[v].values
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            for p in (10, 90):
                np.testing.assert_allclose(out.sel(feature=f"s1_{v}_p{p}").values, np.nanpercentile(a, p, axis=0),
                                           rtol=1e-5, equal_nan=True)
            np.testing.assert_allclose(out.sel(feature=f"s1_{v}_std").values, np.nanstd(a, axis=0),
                                       rtol=1e-5, equal_nan=True)
    assert np.isnan(out.sel(feature="s1_vh_db_std").values[2, 2])


def test_s1_and_dem_must_be_on_the_s2_grid():
    comps = make_composites()
    with pytest.raises(InputError, match="S1"):
        F.compute_features(comps, None, make_dem())
    with pytest.raises(InputError, match="DEM"):
        F.compute_features(comps, make_s1db(), None)
    with pytest.raises(InputError, match="pixels"):
        F.compute_features(comps, make_s1db(), make_dem().isel(latitude=slice(1, None)))
    shifted = make_s1db().assign_coords(longitude=lambda d: d.longitude + 0.01)
    with pytest.raises(InputError, match="grid"):
        F.compute_features(comps, shifted, make_dem())
    # y/x naming of the same grid is accepted
    dem_yx = make_dem().rename(latitude="y", longitude="x")
    out = F.compute_features(comps, make_s1db(), dem_yx)
    np.testing.assert_array_equal(out.sel(feature="dem").values, dem_yx.values)


# --- terrain and location ------------------------------------------------------------------


def test_slope_of_a_tilted_plane_in_degrees_on_epsg4326():
    gb = geobox("N45E006", 40)
    coords = xr_coords(gb)
    lat = coords["latitude"].values[:, None]
    lon = coords["longitude"].values[None, :]
    # metres per degree on WGS84 (independent of the code under test: series form)
    phi = np.deg2rad(lat)
    m_per_deg_lat = 111132.954 - 559.822 * np.cos(2 * phi) + 1.175 * np.cos(4 * phi)
    m_per_deg_lon = 111412.84 * np.cos(phi) - 93.5 * np.cos(3 * phi) + 0.118 * np.cos(5 * phi)
    kx, ky = 0.10, 0.05  # rise per metre east / north
    # relative to the corner, so that float32 keeps ~1e-6 m of the ~50 m relief
    z = kx * (lon - lon[0, 0]) * m_per_deg_lon + ky * (lat - lat[-1, 0]) * m_per_deg_lat[-1, 0]
    dem = xr.DataArray(z.astype(np.float32), dims=("latitude", "longitude"), coords=coords)
    slope = F.slope_degrees(dem).values
    expected = math.degrees(math.atan(math.hypot(kx, ky)))  # 6.379 degrees
    np.testing.assert_allclose(slope, expected, atol=2e-3)
    # a naive degrees->metres conversion (111320 m per degree, no cos(lat)) is far off
    naive = math.degrees(math.atan(math.hypot(kx * math.cos(math.radians(45)), ky * 111132.954 / 111320)))
    assert abs(naive - expected) > 1
    lazy = F.slope_degrees(dem.chunk({"latitude": 13, "longitude": 9})).values
    np.testing.assert_array_equal(slope, lazy)


def test_slope_of_a_tilted_plane_in_a_projected_crs():
    gb = GeoBox.from_bbox((500000, 5000000, 500300, 5000200), "EPSG:32632", resolution=10)
    coords = xr_coords(gb)
    x = coords["x"].values[None, :] - 500000
    y = coords["y"].values[:, None] - 5000000
    dem = xr.DataArray((0.2 * x + 0.1 * y + 50).astype(np.float32), dims=("y", "x"), coords=coords)
    np.testing.assert_allclose(F.slope_degrees(dem).values, math.degrees(math.atan(math.sqrt(0.05))), atol=1e-3)
    flat = F.slope_degrees(dem * 0 + 7)
    assert (flat.values == 0).all()


def test_location_features_and_projected_grid():
    comps = make_composites(tile="S03W063")
    out = F.location_features(comps["B04"].isel(time=0, drop=True))
    lat = comps["latitude"].values[:, None]
    lon = comps["longitude"].values[None, :]
    np.testing.assert_allclose(out.sel(feature="lat_sin").values, np.broadcast_to(np.sin(np.deg2rad(lat)), (N, N)),
                               rtol=1e-6)
    np.testing.assert_allclose(out.sel(feature="lon_cos").values, np.broadcast_to(np.cos(np.deg2rad(lon)), (N, N)),
                               rtol=1e-6)
    assert out.dtype == np.float32
    gb = GeoBox.from_bbox((500000, 5000000, 500300, 5000200), "EPSG:32632", resolution=10)
    tmpl = xr.DataArray(np.zeros(gb.shape, np.float32), dims=("y", "x"), coords=xr_coords(gb))
    lon_, lat_ = F.lonlat(tmpl)
    assert lat_.shape == gb.shape and 45.1 < float(lat_.mean()) < 45.2 and 9.0 < float(lon_.mean()) < 9.01
    chunked = tmpl.chunk({"y": 7, "x": 11})
    loc = F.location_features(chunked)
    assert type(loc.data).__module__.startswith("dask") and loc.data.chunks == ((4,), (7, 7, 6), (11, 11, 8))
    assert not set(chunked.data.__dask_keys__()[0]) & set(loc.data.dask)  # the grid only, not the values
    np.testing.assert_allclose(loc.sel(feature="lat_sin").values, np.sin(np.deg2rad(lat_.values)), rtol=1e-6)
    # projected chunk by chunk in the graph, the same values as the whole grid projected at once
    eager = F.location_features(tmpl)
    xr.testing.assert_identical(loc.compute(), eager)
    assert list(F.location_features(tmpl.chunk({"y": 7}), longitude=False)["feature"].values) == ["lat_sin", "lat_cos"]


# --- whole pipeline ------------------------------------------------------------------------


def _contract_inputs(seed=7):
    """Contract-shaped raw S2 (73 dates) and S1 (60 dates) with a never-clear corner."""
    rng = np.random.default_rng(seed)
    gb = geobox()
    t2 = pd.date_range(f"{YEAR}-01-03", periods=73, freq="5D")
    scl = rng.choice(np.array([4, 5, 6, 8, 9, 3], np.uint8), (73, N, N), p=[0.6, 0.2, 0.17, 0.01, 0.01, 0.01])
    scl[:, :4, :4] = 9
    s2 = xr.Dataset(
        {**{b: (DIMS, rng.uniform(0.02, 0.5, (73, N, N)).astype(np.float32)) for b in S2_BANDS},
         "SCL": (DIMS, scl)},
        coords={"time": t2, **xr_coords(gb)},
    )
    t1 = pd.date_range(f"{YEAR}-01-02", periods=60, freq="6D")
    s1 = xr.Dataset(
        {p: (DIMS, rng.gamma(2.0, m / 2, (60, N, N)).astype(np.float32)) for p, m in (("vv", 0.1), ("vh", 0.02))},
        coords={"time": t1, **xr_coords(gb)},
    )
    s1["vv"][:, :4, :4] = np.nan
    s1["vh"][:, :4, :4] = np.nan
    return s2, s1, make_dem()


def test_pipeline_dask_equals_numpy_and_all_nan_pixels_give_nan():
    s2, s1, dem = _contract_inputs()
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        eager = F.compute_features(s2mod.preprocess_s2(s2).composites, s1mod.preprocess_s1(s1).db, dem)
    chunks = {"latitude": 10, "longitude": 14}
    lazy = F.compute_features(
        s2mod.preprocess_s2(s2.chunk(chunks)).composites, s1mod.preprocess_s1(s1.chunk(chunks)).db, dem.chunk(chunks)
    )
    assert type(lazy.data).__module__.startswith("dask")
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        lv = lazy.values
    np.testing.assert_array_equal(eager.values, lv)
    names = list(eager["feature"].values)
    corner = eager.values[:, 1, 1]
    for i, n in enumerate(names):
        if n in ("dem", "slope", *F.LOCATION_NAMES):
            assert np.isfinite(corner[i]), n
        else:
            assert np.isnan(corner[i]), n
    assert np.isfinite(eager.values[:, 12:, 12:]).all()
