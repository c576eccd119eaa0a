"""Probability calibration (temperature scaling, reliability curves) and training label noise."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from tests.test_model_data import labelled_blocks
from worldcover.errors import DataError
from worldcover.model import Model, build_training_table, split_blocks, train_from_tables
from worldcover.model.calibration import calibrate, fit_temperature, reliability_curve
from worldcover.model.classifier import softmax
from worldcover.model.default import with_label_noise

FAST = {"num_iterations": 60, "num_leaves": 15, "min_data_in_leaf": 10}


def test_fit_temperature_recovers_the_temperature_that_made_the_labels():
    rng = np.random.default_rng(0)
    logits = rng.normal(0, 3, (20000, 4))
    # labels drawn from softmax(logits / 2.5): the logits are over-confident by a factor 2.5
    p = softmax(logits / 2.5)
    target = (p.cumsum(axis=1) > rng.random((len(p), 1))).argmax(axis=1)
    assert fit_temperature(logits, target) == pytest.approx(2.5, rel=0.08)
    assert fit_temperature(logits / 2.5, target) == pytest.approx(1.0, rel=0.08)


def test_reliability_curve_bins_and_ece():
    proba = np.array([[0.95, 0.05]] * 10 + [[0.55, 0.45]] * 10)
    target = np.array([0] * 5 + [1] * 5 + [0] * 10)  # 50 % right at 0.95, 100 % right at 0.55
    curve = reliability_curve(proba, target, bins=10)
    assert curve["count"][9] == 10 and curve["count"][5] == 10 and curve["n"] == 20
    assert curve["accuracy"][9] == 0.5 and curve["accuracy"][5] == 1.0 and curve["accuracy"][0] is None
    assert curve["ece"] == pytest.approx((0.45 * 10 + 0.45 * 10) / 20)


@pytest.fixture(scope="module")
def trained():
    blocks = {b: (f, t) for b, f, t in labelled_blocks()}
    split = split_blocks(list(blocks), test_fraction=0.4, seed=0)
    side = lambda ids: build_training_table([(b, *blocks[b]) for b in ids], max_per_class=60, seed=0)  # noqa: E731
    train_df, test_df = side(split.train), side(split.test)
    return train_from_tables(train_df, test_df, params=FAST, seed=0, num_threads=1), test_df, split


def test_calibrated_model_keeps_its_classes_and_records_reliability(trained, tmp_path):
    model, test_df, split = trained
    fit_blocks = sorted(split.test)[::2]
    cal = calibrate(model, test_df, fit_blocks)
    rec = cal.card.calibration
    assert rec["method"] == "temperature" and rec["fitted_on_blocks"] == fit_blocks
    assert rec["fitted_temperature"] != 1.0
    # applied only when it lowers the ECE on the blocks it was not fitted on
    assert rec["applied"] == (rec["reliability_after"]["ece"] < rec["reliability_before"]["ece"])
    assert rec["temperature"] == (rec["fitted_temperature"] if rec["applied"] else 1.0)
    judged = test_df[~test_df["block_id"].isin(fit_blocks)]
    assert rec["reliability_after"]["n"] == len(judged)
    # temperature scaling never changes the winning class, only its probability
    from worldcover.model.classifier import table_matrix

    m = table_matrix(test_df, model.feature_names)
    before, after = model.predict_proba(m), cal.predict_proba(m)
    np.testing.assert_array_equal(before.argmax(axis=1), after.argmax(axis=1))
    np.testing.assert_allclose(after.sum(axis=1), 1.0, rtol=1e-9)
    assert rec["applied"] == (not np.allclose(before.max(axis=1), after.max(axis=1)))
    # the temperature travels with the saved model
    cal.save(tmp_path / "m")
    again = Model.load(tmp_path / "m")
    assert again.card.calibration["temperature"] == rec["temperature"]
    np.testing.assert_allclose(again.predict_proba(m), after, rtol=1e-9)


def test_card_refuses_an_absurd_temperature(trained):
    model, _, _ = trained
    with pytest.raises(DataError, match="temperature"):
        model.card.replace(calibration={"method": "temperature", "temperature": 0.0})


def test_label_noise_relabels_the_share_asked_to_other_classes():
    table = pd.DataFrame({"code": np.repeat(np.array([10, 30, 40, 50], np.uint8), 2500), "f": 1.0})
    noisy = with_label_noise(table, 0.05, seed=3)
    changed = noisy["code"].to_numpy() != table["code"].to_numpy()
    assert 0.04 < changed.mean() < 0.06
    assert set(np.unique(noisy["code"])) == {10, 30, 40, 50} and noisy["code"].dtype == np.uint8
    assert with_label_noise(table, 0.0)["code"].equals(table["code"])
    np.testing.assert_array_equal(with_label_noise(table, 0.05, seed=3)["code"], noisy["code"])  # seeded
    with pytest.raises(ValueError, match="label_noise"):
        with_label_noise(table, 0.7)


def test_training_tables_are_reused_only_for_the_same_design(tmp_path):
    """A work directory's tables serve a rerun of the same design and sampling, never another one."""
    from worldcover.model.default import _cached_tables, save_table

    key = {"train_blocks": ["N00E006_r0c0"], "test_blocks": ["N03E006_r0c0"], "year": 2021, "max_per_class": 200}
    table = pd.DataFrame({"block_id": ["N00E006_r0c0"], "code": np.array([10], np.uint8), "f": [0.5]})
    assert _cached_tables(tmp_path, key, ["default"]) is None  # nothing there yet
    save_table(table, tmp_path / "default.parquet")
    (tmp_path / "split.json").write_text(json.dumps(key))
    again = _cached_tables(tmp_path, key, ["default"])
    pd.testing.assert_frame_equal(again["default"], table)
    assert _cached_tables(tmp_path, {**key, "max_per_class": 100}, ["default"]) is None
    assert _cached_tables(tmp_path, key, ["default", "summer"]) is None  # a table missing


def test_a_card_temperature_scales_the_predicted_probabilities(trained):
    model, test_df, _ = trained
    from worldcover.model.classifier import table_matrix

    m = table_matrix(test_df, model.feature_names)
    hot = model.with_card(model.card.replace(calibration={"method": "temperature", "temperature": 2.0}))
    np.testing.assert_allclose(hot.predict_proba(m), softmax(model.raw_scores(m) / 2.0), rtol=1e-9)
    np.testing.assert_allclose(model.predict_proba(m), softmax(model.raw_scores(m)), rtol=1e-6)
