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

from worldcover.errors import InputError
from worldcover.model import train, train_from_tables
from worldcover.model.sampling import group_features, mask_missing_groups

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
