"""The simulator's calibration targets (worldcover.sim.calibration) and the realism benchmark's distance table."""

from __future__ import annotations

import json

import numpy as np
import pytest

from worldcover.errors import InputError
from worldcover.grid import Tile
from worldcover.sim import calibration as cal


@pytest.fixture(scope="module")
def targets():
    return cal.real_targets()


def test_shipped_targets_cover_the_regions_and_read_quickly(targets):
    assert set(targets["region"]) == {"flanders", "uganda", "us-lakes", "us-west"}
    assert set(targets.loc[targets["region"] == "flanders", "class"]) == {30, 40, 50}
    q = targets[list(cal.QCOLS)].to_numpy()
    assert np.all(np.diff(q, axis=1) >= 0), "quantiles must be non-decreasing"
    assert set(targets["feature"]) <= set(cal.FEATURES)
    # the lookup the simulator's tuning uses: region -> class -> feature -> p10/p50/p90
    grass = cal.load_targets()["regions"]["flanders"]["classes"]["30"]["features"]["ndvi_p50"]
    row = targets[(targets.region == "flanders") & (targets["class"] == 30) & (targets.feature == "ndvi_p50")]
    assert grass["p50"] == pytest.approx(float(row["q50"].iloc[0]))
    assert grass["p10"] == pytest.approx(float(row["q10"].iloc[0]))
    # real Flemish grass is green: the yearly NDVI median of its pixels is well above 0.6
    assert 0.6 < grass["p50"] < 0.85


def test_shipped_targets_regenerate_from_the_real_data(tmp_path):
    root = cal.realdata_root()
    if not (root / "worldcereal-flanders-A").is_dir():
        pytest.skip(f"real data not at {root}")
    pytest.importorskip("h5netcdf")
    fresh = cal.load_targets(cal.write_real_targets(tmp_path / "t.json", root))
    shipped = cal.load_targets()
    assert fresh["regions"].keys() == shipped["regions"].keys()
    for name, reg in shipped["regions"].items():
        for code, c in reg["classes"].items():
            for feat, st in c["features"].items():
                new = fresh["regions"][name]["classes"][code]["features"][feat]
                assert new["n"] == st["n"], (name, code, feat)
                np.testing.assert_allclose(new["q"], st["q"], atol=1e-4, err_msg=f"{name} {code} {feat}")


def test_load_targets_errors_name_the_file(tmp_path):
    with pytest.raises(InputError, match="not found"):
        cal.load_targets(tmp_path / "none.json")
    bad = tmp_path / "bad.json"
    bad.write_text("{")
    with pytest.raises(InputError, match="not valid JSON"):
        cal.load_targets(bad)


def _series(t: int = 24, p: int = 10) -> cal.Series:
    months = (np.arange(t) % 12) + 1
    refl = {b: np.full((t, p), 0.1, np.float32) for b in cal.BANDS}
    refl["B08"][:] = 0.3  # NDVI (0.3 - 0.1) / 0.4 = 0.5 when clear
    clear = np.ones((t, p), bool)
    clear[0] = False
    refl["B08"][0] = 0.1  # a cloudy date with NDVI 0: must not count
    scl = np.full((t, p), 4, np.uint8)
    scl[0] = 9
    scl[1:4] = 11  # snow: not clear, but the production chain keeps it
    clear[1:4] = False
    refl["B08"][1:4] = 0.1
    db = {"vv": np.full((t, p), -10.0, np.float32), "vh": np.full((t, p), -17.0, np.float32)}
    return cal.Series(months, refl, clear, months, db, scl, cal.MIN_CLEAR_OBS)


def test_series_features_follow_the_definitions():
    f = cal.series_features(_series())
    np.testing.assert_allclose(f["ndvi_p10"], 0.5, atol=1e-6)
    np.testing.assert_allclose(f["ndvi_chain_p10"], 0.1, atol=1e-6)  # 3 snowy zeros among 23 kept dates
    np.testing.assert_allclose(f["ndvi_chain_p50"], 0.5, atol=1e-6)
    np.testing.assert_allclose(f["ndvi_m02"], 0.5, atol=1e-6)
    assert f["B08"].size == 20 * 10  # every clear observation, the cloudy and snowy dates left out
    np.testing.assert_allclose(f["scl_cloud"], 1 / 24)
    np.testing.assert_allclose(f["scl_snow"], 3 / 24)
    np.testing.assert_allclose(f["scl_shadow"], 0)
    np.testing.assert_allclose(f["vv_db_djf"], -10)
    assert f["vh_db_jja"].size == 6 * 10


def test_wasserstein_is_zero_for_identical_and_the_shift_for_shifted():
    q = np.quantile(np.random.default_rng(1).normal(size=5000), cal.QUANTILES)
    assert cal.wasserstein(q, q) == 0
    assert cal.wasserstein(q, q + 0.3) == pytest.approx(0.3)


def _samples_from(targets) -> dict:
    """A simulated side made of the targets' own quantile values (close to, not exactly, the real distribution)."""
    sim: dict = {}
    for r in targets.to_dict("records"):
        q = np.array([r[c] for c in cal.QCOLS])
        sim.setdefault(r["region"], {}).setdefault(r["class"], {})[r["feature"]] = np.repeat(q, 3)
    return sim


def test_distance_table_has_every_class_and_feature_of_the_targets(targets):
    table = cal.distance_table(targets, _samples_from(targets))
    assert len(table) == len(targets)
    keys = set(zip(table.region, table["class"], table.feature, strict=True))
    assert keys == set(zip(targets.region, targets["class"], targets.feature, strict=True))
    assert table["wasserstein"].notna().all()
    partial = _samples_from(targets)
    del partial["flanders"][50]
    gap = cal.distance_table(targets, partial)
    miss = gap[(gap.region == "flanders") & (gap["class"] == 50)]
    assert len(miss) and miss["wasserstein"].isna().all() and (miss["n_sim"] == 0).all()
    summary = cal.region_summary(gap)
    assert summary.loc[summary.region == "flanders", "missing"].sum() == len(miss)


def test_distance_is_zero_for_the_same_sample_and_measures_a_shift():
    rng = np.random.default_rng(3)
    samples = {"ndvi_p50": rng.normal(0.7, 0.1, 4000), "vv_db_jja": rng.normal(-11, 2, 4000)}
    doc = {"regions": {"r": {"classes": {"30": {"name": "Grassland",
                                                 "features": {f: cal.summarise(a) for f, a in samples.items()}}}}}}
    targets = cal.targets_frame(doc)
    same = cal.distance_table(targets, {"r": {30: samples}})
    assert same["wasserstein"].max() < 1e-4 and same["median_shift"].abs().max() < 1e-4  # 5-decimal storage
    moved = cal.distance_table(targets, {"r": {30: {f: a + 0.25 for f, a in samples.items()}}})
    np.testing.assert_allclose(moved["wasserstein"], 0.25, atol=1e-4)
    np.testing.assert_allclose(moved["median_shift"], 0.25, atol=1e-4)
    wider = cal.distance_table(targets, {"r": {30: {f: 1.5 * (a - a.mean()) + a.mean() for f, a in samples.items()}}})
    assert (wider["wasserstein"] > 0.01).all() and wider["median_shift"].abs().max() < 0.01


def test_pick_blocks_covers_the_classes_first():
    shares = {"a": {30: 0.9}, "b": {30: 0.5, 40: 0.5}, "c": {40: 0.2, 50: 0.1}, "d": {80: 1.0}}
    assert cal.pick_blocks(shares, [30, 40, 50], 2) == ["b", "c"]  # two blocks, all three classes
    assert cal.pick_blocks(shares, [30, 40, 50], 10) == ["b", "c", "a"]  # d has none of them


def test_simulated_series_of_a_small_block():
    block = Tile.parse("N48E003").block(28 * 4, 56 * 4, 32)
    codes = [int(c) for c in cal.class_shares(block, n=12)]
    series = cal.simulated_series(block, 2018, codes, max_pixels=50, period=("2018-06-01", "2018-07-31"))
    assert series and set(series) <= set(codes)
    s = next(iter(series.values()))
    assert s.refl["B04"].shape == s.clear.shape == s.scl.shape and s.clear.shape[1] <= 50
    assert np.isfinite(s.s1["vv"]).any() and np.nanmedian(s.s1["vv"]) < 5  # dB, not linear power
    f = cal.series_features(cal.monthly_composite(s))
    assert {"ndvi_m06", "ndvi_m07", "B04", "vv_db_jja"} <= set(f)


def test_benchmark_refuses_bad_options_with_one_line(capsys):
    from benchmarks.sim_realism import main

    assert main(["--regions", "mars"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "invalid --regions 'mars'" in err
    assert main(["--label", "../x"]) == 2


def test_targets_json_is_compact_per_feature():
    text = cal.TARGETS_PATH.read_text()
    line = next(ln for ln in text.splitlines() if '"ndvi_p50": {' in ln)
    assert json.loads("{" + line.strip().rstrip(",") + "}")["ndvi_p50"]["n"] > 0


def test_thin_months_keeps_the_real_calendar():
    s = _series(t=24, p=200)
    share = [0.0] * 12
    share[6], share[7] = 0.5, 0.25  # July all, August half, nothing else
    thin = cal.thin_months(s, share, seed=1)
    kept = thin.clear.sum(axis=1)
    assert kept[s.months == 7].min() == 200 and kept[~np.isin(s.months, (7, 8))].max() == 0
    assert 60 < kept[s.months == 8].mean() < 140
    assert np.isnan(thin.s1["vv"][s.s1_months == 1]).all()
