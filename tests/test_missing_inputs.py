"""Missing inputs are handled, never zeroed (issue 14, point 2).

Training: the S1 and DEM feature groups set missing at random in a seeded
share of training rows (so LightGBM learns where NaN goes instead of reading
it as 0). Chain: a block whose S1 covers half the pixels, or has no S1 or DEM
at all, gives NaN features there, is mapped on both halves, and the item
records the share of pixels that missed each input.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import xarray as xr

from worldcover import sim
from worldcover.chain import ChainParams, chain_features
from worldcover.errors import DataError, InputError
from worldcover.features import FeatureConfig, feature_names
from worldcover.grid import Tile
from worldcover.model import train, train_from_tables
from worldcover.model.sampling import group_features, mask_missing_groups
from worldcover.sources.local_api import LocalStacApi
from worldcover.sources.stac import BlockInputs, StacSource
from worldcover.tile.products import missing_inputs

S1_NAMES = ["s1_vv_db_p10", "s1_vv_db_p90", "s1_vh_db_p50", "s1_ratio_db_std"]
NAMES = ["s2_B04_p50", "ndvi_p90", *S1_NAMES, "dem", "slope", "lat_sin"]


def _table(n: int = 1000, seed: int = 0) -> pd.DataFrame:
    """A complete (no NaN) training table whose classes differ in every feature group."""
    rng = np.random.default_rng(seed)
    codes = rng.choice(np.array([10, 30, 40, 50], dtype=np.uint8), size=n)
    centre = (np.searchsorted([10, 30, 40, 50], codes)[:, None] * np.ones(len(NAMES))).astype(np.float32)
    values = centre + rng.normal(scale=0.6, size=(n, len(NAMES))).astype(np.float32)
    meta = pd.DataFrame({"block_id": np.where(np.arange(n) % 2, "N45E003_r00c00", "N45E003_r00c01"),
                         "row": np.arange(n, dtype=np.int32) // 50, "col": np.arange(n, dtype=np.int32) % 50,
                         "code": codes})
    return pd.concat([meta, pd.DataFrame(values, columns=NAMES)], axis=1)


def test_group_features_name_s1_and_terrain_only():
    assert group_features("s1", NAMES) == S1_NAMES
    assert group_features("dem", NAMES) == ["dem", "slope"]
    with pytest.raises(InputError, match="unknown input group 'dem2'"):
        group_features("dem2", NAMES)


def test_masking_hits_the_requested_share_of_rows_and_only_the_group_features():
    table = _table(1000)
    masked, record = mask_missing_groups(table, {"s1": 0.15, "dem": 0.1}, seed=3)
    s1_rows = masked[S1_NAMES].isna().all(axis=1)
    dem_rows = masked[["dem", "slope"]].isna().all(axis=1)
    assert s1_rows.sum() == 150 and dem_rows.sum() == 100
    # a group is masked whole or not at all, and nothing else is touched
    assert (masked[S1_NAMES].isna().any(axis=1) == s1_rows).all()
    assert (masked[["dem", "slope"]].isna().any(axis=1) == dem_rows).all()
    others = [c for c in table.columns if c not in S1_NAMES + ["dem", "slope"]]
    pd.testing.assert_frame_equal(masked[others], table[others])
    keep = ~s1_rows
    pd.testing.assert_frame_equal(masked.loc[keep, S1_NAMES], table.loc[keep, S1_NAMES])
    assert not table[NAMES].isna().any().any()  # the input is not modified
    # groups draw independently: some rows miss both (expected 1.5 % of 1000), not all
    both = int((s1_rows & dem_rows).sum())
    assert 3 <= both <= 40
    assert record == {"dem": {"share": 0.1, "rows": 100, "features": ["dem", "slope"]},
                      "s1": {"share": 0.15, "rows": 150, "features": S1_NAMES}}
    # seeded: the same seed masks the same rows, another seed others
    again, _ = mask_missing_groups(table, {"s1": 0.15, "dem": 0.1}, seed=3)
    pd.testing.assert_frame_equal(again, masked)
    other, _ = mask_missing_groups(table, {"s1": 0.15, "dem": 0.1}, seed=4)
    assert not (other[S1_NAMES].isna().all(axis=1) == s1_rows).all()


def test_masking_never_leaves_a_row_without_any_feature():
    table = _table(200)
    others = [n for n in NAMES if n not in S1_NAMES]
    table.loc[:99, others] = np.nan  # half the rows carry S1 only (no clear S2 observation, say)
    masked, record = mask_missing_groups(table, {"s1": 0.3}, seed=0)
    assert not masked[NAMES].isna().all(axis=1).any()
    assert record["s1"]["rows"] == 60 and masked.loc[100:, S1_NAMES].isna().all(axis=1).sum() == 60


@pytest.mark.parametrize("shares, message", [
    ({"s1": 1.0}, r"invalid missing_groups share 1.0 for 's1': expected a number in \[0, 1\)"),
    ({"s1": -0.1}, "invalid missing_groups share -0.1"),
    ({"s1": "lots"}, "invalid missing_groups share 'lots'"),
    ({"s2": 0.1}, "unknown input group 's2'"),
    ([("s1", 0.1)], "missing_groups must be a dict"),
])
def test_bad_missing_groups_are_refused_naming_them(shares, message):
    with pytest.raises(InputError, match=message):
        mask_missing_groups(_table(50), shares)


def test_a_group_the_features_lack_is_refused():
    table = _table(50).drop(columns=["dem", "slope"])
    with pytest.raises(InputError, match=r"missing_groups names 'dem' but the features have none of its"):
        mask_missing_groups(table, {"dem": 0.1})


def test_training_with_missing_groups_is_recorded_and_routes_nan_apart_from_zero():
    """The card records what was masked; NaN S1 is classified as missing, not as 0 dB."""
    table = _table(2000)
    test = _table(600, seed=9).assign(block_id="N48E003_r00c00")
    fast = {"num_iterations": 30, "num_leaves": 7}
    model = train_from_tables(table, test, NAMES, params=fast, num_threads=1, missing_groups={"s1": 0.2, "dem": 0.1})
    card = model.card
    assert card.hyperparameters["use_missing"] is True and card.hyperparameters["zero_as_missing"] is False
    rec = dict(card.provenance)["missing_groups"]
    assert rec["s1"]["rows"] == 400 and rec["dem"]["rows"] == 200 and rec["s1"]["features"] == S1_NAMES
    # the test rows here are informative without S1 (S2, DEM carry the class too): accuracy stays high
    assert rec["s1"]["held_out_overall_accuracy_without"] >= 0.9
    assert card.metrics["overall_accuracy"] >= rec["s1"]["held_out_overall_accuracy_without"] - 0.02
    # rows of class 50 (centre 3) with S1 missing: NaN goes the learnt way, 0 would read as class 10's S1
    rows = test[test["code"] == 50].copy()
    nan_rows, zero_rows = rows.copy(), rows.copy()
    nan_rows[S1_NAMES] = np.nan
    zero_rows[S1_NAMES] = 0.0
    p_nan, _ = model.predict_table(nan_rows)
    p_zero, _ = model.predict_table(zero_rows)
    assert (p_nan == 50).mean() >= 0.9
    assert (p_nan != p_zero).mean() >= 0.05

    # without missing groups the trained model has never seen NaN in S1: LightGBM reads it as 0
    plain = train(table, NAMES, fast, num_threads=1)
    q_nan, _ = plain.predict_table(nan_rows)
    q_zero, _ = plain.predict_table(zero_rows)
    assert (q_nan == q_zero).all()
    assert "missing_groups" not in dict(plain.card.provenance)


# --- the chain: S1 gaps, no S1, no DEM, DEM voids ---------------------------------------------

YEAR, BLOCK, HALF = 2021, 60, 30
SPECKLE_RADIUS = ChainParams().s1_speckle_window // 2  # S1 pixels this close to the gap mix in fewer neighbours
CONFIG = FeatureConfig()
S1_FEATURES = group_features("s1", feature_names(CONFIG))


@pytest.fixture(scope="module")
def one_block(tmp_path_factory) -> tuple[object, BlockInputs]:
    """One simulated 60 px block (two months of 2021) loaded through the loopback STAC API."""
    block = Tile.parse("N45E003").block(300, 300, BLOCK)
    root = tmp_path_factory.mktemp("missing-one") / "archive"
    sim.generate([block], YEAR, root, seed=11, period=("2021-05-01", "2021-06-30"))
    with LocalStacApi(root) as api:
        inputs = StacSource(api.url, chunk=None).load_block(block, YEAR)
        inputs = BlockInputs(s2=inputs.s2.load(), s1=inputs.s1.load(), dem=inputs.dem.load(), items=inputs.items,
                             harmonisation=inputs.harmonisation)
    return block, inputs


def west_half_without_s1(inputs: BlockInputs, half: int = HALF) -> BlockInputs:
    """The same inputs with S1 missing (NaN, as odc-stac loads no coverage) on the west ``half`` columns."""
    west = xr.DataArray(np.arange(inputs.s1.sizes["x"]) < half, dims="x")
    s1 = inputs.s1.where(~west)
    return BlockInputs(s2=inputs.s2, s1=s1, dem=inputs.dem, items=inputs.items, harmonisation=inputs.harmonisation)


def _features(block, inputs, missing_ok=()):
    """Computed (feature, y, x) features and the S1 count of the production chain."""
    chain = chain_features(block, YEAR, inputs, CONFIG, ChainParams(), missing_ok=missing_ok)
    feats, n_s1 = xr.align(*[chain.features.compute(), chain.n_s1.compute()], join="override")
    return feats, np.asarray(n_s1)


@pytest.fixture(scope="module")
def full_features(one_block):
    return _features(*one_block)


def test_half_s1_block_gives_nan_s1_features_on_the_uncovered_half_never_zero(one_block, full_features):
    block, inputs = one_block
    full, n_full = full_features
    half, n_half = _features(block, west_half_without_s1(inputs))
    s1 = half.sel(feature=S1_FEATURES).values
    assert np.isnan(s1[:, :, :HALF]).all()  # uncovered: NaN on every S1 feature
    assert np.isfinite(s1[:, :, HALF:]).all()  # covered: every S1 feature observed
    assert not (s1 == 0).any()  # no S1 feature is 0 dB (or 0 std) anywhere
    assert (n_half[:, :HALF] == 0).all() and (n_half[:, HALF:] > 0).all()  # the InputQuality S1 count
    assert (n_half[:, HALF:] == n_full[:, HALF:]).all()
    # away from the gap (the speckle window) the covered half is exactly the full-coverage features
    east = slice(HALF + SPECKLE_RADIUS, None)
    np.testing.assert_array_equal(s1[:, :, east], full.sel(feature=S1_FEATURES).values[:, :, east])
    # the S2, terrain and location features do not depend on S1
    others = [str(n) for n in half["feature"].values if str(n) not in S1_FEATURES]
    np.testing.assert_array_equal(half.sel(feature=others).values, full.sel(feature=others).values)


def test_a_block_without_s1_or_dem_is_refused_unless_the_model_can_map_without(one_block, full_features):
    block, inputs = one_block
    bare = BlockInputs(s2=inputs.s2, s1=None, dem=None, items=inputs.items, harmonisation=inputs.harmonisation)
    with pytest.raises(DataError, match=r"needs Sentinel-1 but the source has none for 2021 \(a model trained with "
                                        r"missing_groups=\{'s1': \.\.\.\} maps without it\)"):
        chain_features(block, YEAR, bare, CONFIG, ChainParams(), missing_ok={"dem"})
    with pytest.raises(DataError, match=r"needs a DEM but the source has none"):
        chain_features(block, YEAR, bare, CONFIG, ChainParams(), missing_ok={"s1"})
    feats, n_s1 = _features(block, bare, missing_ok={"s1", "dem"})
    full, _ = full_features
    assert np.isnan(feats.sel(feature=S1_FEATURES).values).all() and (n_s1 == 0).all()
    assert np.isnan(feats.sel(feature=["dem", "slope"]).values).all()
    others = [str(n) for n in feats["feature"].values if str(n) not in S1_FEATURES + ["dem", "slope"]]
    np.testing.assert_array_equal(feats.sel(feature=others).values, full.sel(feature=others).values)


def test_dem_voids_give_nan_dem_and_slope_there_only(one_block):
    block, inputs = one_block
    dem = inputs.dem.copy()
    dem[20:30, 10:20] = np.nan  # a void, as odc-stac loads the DEM's nodata
    holed = BlockInputs(s2=inputs.s2, s1=inputs.s1, dem=dem, items=inputs.items, harmonisation=inputs.harmonisation)
    feats, _ = _features(block, holed)
    d, s = feats.sel(feature="dem").values, feats.sel(feature="slope").values
    void = np.zeros(d.shape, bool)
    void[20:30, 10:20] = True
    assert np.array_equal(np.isnan(d), void)
    ring = np.zeros(d.shape, bool)  # central differences reach one pixel into the void
    ring[19:31, 9:21] = True
    assert np.isnan(s[void]).all() and np.isfinite(s[~ring]).all()
    assert not (d[void] == 0).any() and not (s[void] == 0).any()


def test_missing_inputs_record_sums_blocks_over_mapped_pixels():
    records = [
        {"missing_inputs": {"mapped_pixels": 3600, "s1": 1800, "dem": 0},
         "model_trained_missing": {"s1": 0.15, "dem": 0.1}},
        {"missing_inputs": {"mapped_pixels": 400, "s1": 0, "dem": 100},
         "model_trained_missing": {"s1": 0.15, "dem": 0.1}},
        {},  # a block recorded before missing inputs were counted
    ]
    assert missing_inputs(records) == {
        "dem": {"pixels": 100, "fraction": 0.025, "model_trained_missing_share": 0.1},
        "s1": {"pixels": 1800, "fraction": 0.45, "model_trained_missing_share": 0.15},
    }
    assert missing_inputs([{}]) == {}


# --- a model trained with missing groups maps a half-S1 block (slow: simulation + training) ---------------

RICH_TILE, RICH_SIZE, RICH_HALF = "S36W063", 80, 40
# Adjacent 800 m blocks of the simulated Pampas (seed 0): trees, grassland, cropland and water.
RICH_TRAIN = ((259, 196), (263, 198), (261, 200))
RICH_TEST = (259, 200)
MISSING = {"s1": 0.15, "dem": 0.1}


class HalfS1Source:
    """A source whose S1 covers only the east half of every block (a swath edge through the block)."""

    kind = "half-s1"

    def __init__(self, inner) -> None:
        self.inner = inner

    def load_block(self, block, year):
        return west_half_without_s1(self.inner.load_block(block, year), block.shape[1] // 2)


@pytest.fixture(scope="module")
def rich(tmp_path_factory):
    """Three training blocks and a held-out one (S2 April-June), features through the production chain."""
    from worldcover.model import build_training_table
    from worldcover.model.default import read_truth

    tile = Tile.parse(RICH_TILE)
    train_blocks = [tile.block(r, c, RICH_SIZE) for r, c in RICH_TRAIN]
    test_block = tile.block(*RICH_TEST, RICH_SIZE)
    root = tmp_path_factory.mktemp("missing-rich") / "archive"
    sim.generate([*train_blocks, test_block], YEAR, root, seed=0, period=("2021-04-01", "2021-06-30"))
    items = []
    with LocalStacApi(root) as api:
        source = StacSource(api.url, chunk=None)
        for b in train_blocks:
            feats = chain_features(b, YEAR, source.load_block(b, YEAR), CONFIG, ChainParams()).features.compute()
            feats = feats.rename({d: n for d, n in (("latitude", "y"), ("longitude", "x")) if d in feats.dims})
            items.append((b.id, feats, read_truth(root, b).assign_coords(y=feats.y.values, x=feats.x.values)))
        inputs = source.load_block(test_block, YEAR)
        inputs = BlockInputs(s2=inputs.s2.load(), s1=inputs.s1.load(), dem=inputs.dem.load(), items=inputs.items,
                             harmonisation=inputs.harmonisation)
    table = build_training_table(items, max_per_class=200, seed=0)
    names = feature_names(CONFIG)
    prov = {"feature_config": CONFIG.to_dict()}
    models = {"missing": train(table, names, seed=0, num_threads=1, provenance=prov, missing_groups=MISSING),
              "complete": train(table, names, seed=0, num_threads=1, provenance=prov)}
    return {"root": root, "block": test_block, "inputs": inputs, "models": models,
            "truth": read_truth(root, test_block).values}


def _zero_filled(block, inputs, model):
    """What the chain did before: the half-S1 block's features with the missing S1 read as 0 dB."""
    feats = chain_features(block, YEAR, inputs, CONFIG, ChainParams()).features.compute()
    feats = feats.where(~(feats["feature"].isin(S1_FEATURES) & feats.isnull()), 0.0)
    codes, prob = model.predict_block(feats)
    return np.asarray(codes.values), np.asarray(prob.values)


@pytest.mark.slow
def test_half_s1_block_is_mapped_on_both_halves_without_zeroed_features(rich):
    """Issue 14 acceptance: a block whose S1 covers half the pixels, mapped by a model trained with S1 missing.

    Measured when written (S36W063 r259c200, S2 April-June): on the S1-less
    half the map agrees with the full-input map on 100.0 % of pixels and its
    accuracy equals the full-input accuracy (99.6 %); zero-filled S1 moved the
    mapped-class probability on 67 % of those pixels. The bars leave room for
    simulator changes but fail if S1-less pixels were left unmapped, zeroed,
    or classified much worse.
    """
    from worldcover.legend import NODATA
    from worldcover.tile.run import classify_block

    block, inputs, truth, model = rich["block"], rich["inputs"], rich["truth"], rich["models"]["missing"]
    half_inputs = west_half_without_s1(inputs, RICH_HALF)
    full = classify_block(block, YEAR, inputs, model, ChainParams())
    half = classify_block(block, YEAR, half_inputs, model, ChainParams())
    west, east = (slice(None), slice(0, RICH_HALF)), (slice(None), slice(RICH_HALF + SPECKLE_RADIUS, None))

    # both halves mapped; InputQuality says which half had no S1
    assert (half.codes != NODATA).all() and (full.codes != NODATA).all()
    assert (half.n_s1[west] == 0).all() and (half.n_s1[:, RICH_HALF:] > 0).all()
    # the covered half is the full-input map (beyond the speckle window, its features are identical)
    np.testing.assert_array_equal(half.codes[east], full.codes[east])
    np.testing.assert_array_equal(half.prob[east], full.prob[east])
    # the S1-less half: close to the full-input map, and about as accurate against the truth
    labelled = truth[west] != NODATA
    acc = lambda codes: float((codes[west][labelled] == truth[west][labelled]).mean())  # noqa: E731
    assert (half.codes[west] == full.codes[west]).mean() >= 0.9
    assert acc(half.codes) >= acc(full.codes) - 0.05 and acc(half.codes) >= 0.8
    # and not what zero-filled S1 features give (those move the probabilities of most pixels)
    zero_codes, zero_prob = _zero_filled(block, half_inputs, model)
    assert (zero_prob[west] != half.prob[west]).mean() >= 0.2
    np.testing.assert_array_equal(zero_prob[east], half.prob[east])  # S1 observed there: no difference
    # the record: every mapped pixel of the west half missed S1, none missed the DEM
    assert half.provenance["missing_inputs"] == {"mapped_pixels": RICH_SIZE * RICH_SIZE,
                                                 "s1": RICH_SIZE * RICH_HALF, "dem": 0}
    assert half.provenance["model_trained_missing"] == {"s1": 0.15, "dem": 0.1}


@pytest.mark.slow
def test_a_model_trained_complete_reads_missing_s1_as_zero_so_a_block_without_s1_is_refused(rich):
    from worldcover.tile.run import classify_block

    block, inputs = rich["block"], rich["inputs"]
    complete, missing = rich["models"]["complete"], rich["models"]["missing"]
    half_inputs = west_half_without_s1(inputs, RICH_HALF)
    # LightGBM reads NaN as 0 in features that had no NaN in training: the two routes are the same map
    half = classify_block(block, YEAR, half_inputs, complete, ChainParams())
    zero_codes, zero_prob = _zero_filled(block, half_inputs, complete)
    np.testing.assert_array_equal(half.prob, zero_prob)
    assert half.provenance["model_trained_missing"] == {"s1": 0.0, "dem": 0.0}
    # so a block with no S1 at all is refused for that model, and mapped by the one trained with S1 missing
    bare = BlockInputs(s2=inputs.s2, s1=None, dem=None, items=inputs.items, harmonisation=inputs.harmonisation)
    with pytest.raises(DataError, match="needs Sentinel-1 but the source has none"):
        classify_block(block, YEAR, bare, complete, ChainParams())
    result = classify_block(block, YEAR, bare, missing, ChainParams())
    assert (result.codes != 0).all() and (result.n_s1 == 0).all()
    assert result.provenance["missing_inputs"] == {"mapped_pixels": RICH_SIZE ** 2, "s1": RICH_SIZE ** 2,
                                                   "dem": RICH_SIZE ** 2}


@pytest.mark.slow
def test_tile_item_and_input_quality_record_the_half_without_s1(rich, tmp_path):
    import json

    import rasterio

    from worldcover.layout import tile_paths
    from worldcover.tile.run import run_tile

    model_dir = rich["models"]["missing"].save(tmp_path / "model")
    block = rich["block"]
    out = tmp_path / "out"
    with LocalStacApi(rich["root"]) as api:
        run_tile(RICH_TILE, YEAR, HalfS1Source(StacSource(api.url, chunk=None)), model_dir, out,
                 block_size=RICH_SIZE, blocks=block.key)
    paths = tile_paths(out, RICH_TILE, YEAR)
    item = json.loads(paths.item.read_text())
    assert item["properties"]["worldcover:missing_inputs"] == {
        "dem": {"pixels": 0, "fraction": 0.0, "model_trained_missing_share": 0.1},
        "s1": {"pixels": RICH_SIZE * RICH_HALF, "fraction": 0.5, "model_trained_missing_share": 0.15}}
    # InputQuality band 1 (S1 observations, 60 m): 0 on quality pixels wholly in the west half, > 0 in the east
    with rasterio.open(paths.quality) as src:
        n_s1 = src.read(1)
        lon = src.xy(0, np.arange(src.width))[0]
    w = block.geobox.extent.boundingbox.left
    step = 1.0 / 12000
    west_q = np.asarray(lon) < w + (RICH_HALF - 3) * step
    east_q = np.asarray(lon) > w + (RICH_HALF + 3) * step
    inside = n_s1[0] != -1
    assert (n_s1[:, west_q & inside] == 0).all() and (west_q & inside).sum() >= 5
    assert (n_s1[:, east_q & inside] > 0).all() and (east_q & inside).sum() >= 5
