"""LightGBM training, the model card, save/load and block prediction."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from datetime import datetime
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import xarray as xr

import worldcover
from tests.test_model_data import BLOCK_IDS, CLASSES, NAMES, labelled_blocks
from worldcover.errors import DataError, InputError
from worldcover.grid import Tile
from worldcover.legend import CODES
from worldcover.model import (
    CARD_FILE,
    DEFAULT_PARAMS,
    MODEL_FILE,
    Model,
    ModelCard,
    build_training_table,
    split_blocks,
    train,
    train_from_blocks,
    train_from_tables,
)

FAST = {"num_iterations": 40, "num_leaves": 15, "min_data_in_leaf": 10}
PROVENANCE = {"source": "tests", "simulator": {"seed": 42, "year": 2021}}


@pytest.fixture(scope="module")
def blocks():
    return {b: (f, t) for b, f, t in labelled_blocks()}


@pytest.fixture(scope="module")
def split(blocks):
    return split_blocks(list(blocks), test_fraction=0.25, seed=0)


@pytest.fixture(scope="module")
def tables(blocks, split):
    side = lambda ids: build_training_table([(b, *blocks[b]) for b in ids], max_per_class=60, seed=0)  # noqa: E731
    return side(split.train), side(split.test)


@pytest.fixture(scope="module")
def model(tables):
    train_df, test_df = tables
    return train_from_tables(train_df, test_df, params=FAST, seed=0, num_threads=1, provenance=PROVENANCE)


@pytest.fixture(scope="module")
def test_block(blocks, split):
    return blocks[split.test[0]]


# --- training ------------------------------------------------------------------------


def test_held_out_blocks_are_classified_well(model, test_block):
    metrics = model.card.metrics
    assert metrics["overall_accuracy"] >= 0.9 and metrics["kappa"] >= 0.85
    features, truth = test_block
    codes, _ = model.predict_block(features)
    labelled = (truth.values != 0) & (codes.values != 0)
    assert (codes.values[labelled] == truth.values[labelled]).mean() >= 0.9


def test_training_is_deterministic(tables, model):
    train_df, test_df = tables
    again = train_from_tables(train_df, test_df, params=FAST, seed=0, num_threads=1, provenance=PROVENANCE)
    assert again.model_text == model.model_text
    assert again.version == model.version  # created differs, but is not hashed
    # thread count and row order do not enter the model
    shuffled = train_df.sample(frac=1.0, random_state=1)
    other = train_from_tables(shuffled, test_df, params=FAST, seed=0, num_threads=2, provenance=PROVENANCE)
    assert other.model_text == model.model_text
    reseeded = train(train_df, list(NAMES), FAST, seed=1, num_threads=1)
    assert reseeded.model_text != model.model_text  # bagging and feature sampling follow the seed


def test_card_describes_the_model(model, tables, split):
    train_df, test_df = tables
    card = model.card
    assert card.name == "worldcover-lgbm"
    assert card.classes == CODES
    assert card.trained_classes == tuple(sorted(set(train_df["code"])))
    assert set(card.trained_classes) == set(CLASSES)
    assert card.samples_per_class == {c: int((train_df["code"] == c).sum()) for c in CODES}
    assert card.feature_names == NAMES
    assert card.training_blocks == split.train and card.test_blocks == split.test
    assert card.seed == 0
    assert card.hyperparameters["num_iterations"] == 40 and card.hyperparameters["learning_rate"] == 0.1
    assert card.hyperparameters["deterministic"] is True
    assert card.hyperparameters["num_class"] == len(CLASSES)
    assert card.provenance == PROVENANCE
    import lightgbm

    assert card.lightgbm_version == lightgbm.__version__ and card.worldcover_version == worldcover.__version__
    assert datetime.fromisoformat(card.created.replace("Z", "+00:00")).tzinfo is not None
    assert card.model_sha256 == hashlib.sha256(model.model_text.encode()).hexdigest()
    d = json.loads(card.to_json())
    assert d["classes"] == list(CODES) and d["samples_per_class"]["95"] == 0
    assert d["metrics"]["n"] == len(test_df)


def test_confusion_matrix_rows_sum_to_class_support(model, tables):
    _, test_df = tables
    cm = model.card.metrics["confusion_matrix"]
    support = test_df["code"].value_counts()
    for label, row in zip(cm["labels"], cm["counts"], strict=True):
        assert sum(row) == support.get(label, 0) == model.card.metrics["per_class"][str(label)]["support"]
    assert sum(map(sum, cm["counts"])) == len(test_df)


def test_a_class_never_trained_is_reported_not_hidden(tables):
    train_df, test_df = tables
    test_df = test_df.copy()
    test_df.loc[test_df.index[:5], "code"] = 95  # mangroves: in the test blocks, not in training
    model = train_from_tables(train_df, test_df, params=FAST, num_threads=1)
    m = model.card.metrics["per_class"]["95"]
    assert m["support"] == 5 and m["recall"] == 0.0 and m["precision"] is None
    assert 95 not in model.card.trained_classes and model.card.samples_per_class[95] == 0


def test_default_params_train(tables):
    train_df, _ = tables
    small = train_df.groupby("code").head(30)
    model = train(small, list(NAMES), num_threads=1)
    assert model.card.hyperparameters == {**DEFAULT_PARAMS, "objective": "multiclass", "num_class": len(CLASSES),
                                          "deterministic": True, "force_row_wise": True, "use_missing": True,
                                          "zero_as_missing": False}


def test_train_from_blocks_runs_the_whole_recipe():
    items = labelled_blocks(BLOCK_IDS[:6], size=32)
    model = train_from_blocks(items, max_per_class=30, params=FAST, num_threads=1, provenance={"k": 1})
    assert model.card.metrics["overall_accuracy"] >= 0.9
    assert model.card.provenance["k"] == 1
    assert model.card.provenance["training_table"]["max_per_class"] == 30
    assert not set(model.card.training_blocks) & set(model.card.test_blocks)


def test_training_input_errors(tables):
    train_df, test_df = tables
    names = list(NAMES)
    with pytest.raises(DataError, match="'ndvi_m08'"):
        train(train_df, [*names, "ndvi_m08"], FAST)
    with pytest.raises(DataError, match="at least two"):
        train(train_df[train_df["code"] == 10], names, FAST)
    bad = train_df.copy()
    bad.loc[bad.index[0], "code"] = 0
    with pytest.raises(DataError, match="nodata"):
        train(bad, names, FAST)
    empty = train_df.copy()
    empty.loc[empty.index[:3], names] = np.nan
    with pytest.raises(DataError, match="3 training rows"):
        train(empty, names, FAST)
    with pytest.raises(InputError, match="seed"):
        train(train_df, names, {"seed": 3})
    with pytest.raises(InputError, match="num_threads"):
        train(train_df, names, {"n_jobs": 3})
    with pytest.raises(InputError, match="both set 'num_iterations'"):
        train(train_df, names, {"num_iterations": 5, "n_estimators": 6})
    with pytest.raises(InputError, match="num_threads"):
        train(train_df, names, FAST, num_threads=0)
    with pytest.raises(InputError, match="invalid feature names"):
        train(train_df.rename(columns={"noise_u": "noise u"}), [*names[:-1], "noise u"], FAST)
    with pytest.raises(InputError, match="duplicated"):
        train(train_df, [*names, names[0]], FAST)
    with pytest.raises(DataError, match="share blocks"):
        train_from_tables(train_df, pd.concat([test_df, train_df.head(3)]), params=FAST)
    with pytest.raises(InputError, match="provenance"):
        train(train_df, names, FAST, provenance={"when": datetime.now()})


def test_params_aliases_are_recorded_canonically(tables):
    train_df, _ = tables
    m = train(train_df, list(NAMES), {"n_estimators": 7, "subsample": 0.5, "num_leaves": 7}, num_threads=1)
    hp = m.card.hyperparameters
    assert hp["num_iterations"] == 7 and hp["bagging_fraction"] == 0.5 and "n_estimators" not in hp


@pytest.mark.slow  # re-extracts the training design: ~10 s
def test_committed_default_model_matches_its_training_design(default_model):
    """models/default loads (checksums verified), records how it was made, and beats its baseline."""
    from worldcover.model import Model
    from worldcover.model.default import training_design

    model = Model.load(default_model)
    card = model.card
    zones = training_design(complete=False)  # the rare-class search (slow) adds blocks on top of these
    assert {b.id for b in zones.test} < set(card.test_blocks)
    assert {b.id for b in zones.train} < set(card.training_blocks)
    # every legend class was trained and tested: a class the model never saw could never be mapped
    assert set(model.trained_classes) == set(CODES)
    assert all(card.metrics["per_class"][str(c)]["support"] > 0 for c in CODES)
    assert not set(card.training_blocks) & set(card.test_blocks)
    # the map's accuracy on the held-out blocks (every pixel), and the summer-only baseline clearly lower
    held = card.provenance["held_out_map"]
    assert held["overall_accuracy"] >= 0.80 and held["n"] == len(card.test_blocks) * 240 * 240
    baseline = card.provenance["baseline_summer_only"]
    assert baseline["held_out_map"]["overall_accuracy"] < held["overall_accuracy"] - 0.08
    # the class-balanced sample (rare classes weigh as much as common ones) tells the same story
    assert baseline["metrics"]["overall_accuracy"] < card.metrics["overall_accuracy"] - 0.08
    assert card.provenance["feature_config"]["s1"] is True


def test_rare_class_search_finds_a_block_rich_in_the_class():
    """Snow and ice on the Greenland ice sheet: the chosen block holds it; a tile without it gives None."""
    from worldcover.model.default import MIN_RARE_SHARE, _richest_block
    from worldcover.sim.world import truth

    block = _richest_block(Tile.parse("N75W033"), 70, 240)
    assert block is not None and block.tile.id == "N75W033"
    assert (truth(block).values == 70).mean() >= MIN_RARE_SHARE
    assert _richest_block(Tile.parse("S03W063"), 70, 240) is None  # Amazon lowland


# --- prediction ----------------------------------------------------------------------


def test_prediction_outputs(model, test_block):
    features, _ = test_block
    codes, prob = model.predict_block(features)
    assert codes.dims == prob.dims == ("y", "x") and codes.shape == features.shape[1:]
    assert codes.dtype == np.uint8 and prob.dtype == np.uint8
    np.testing.assert_array_equal(codes["x"], features["x"])
    np.testing.assert_array_equal(codes["y"], features["y"])
    assert codes.attrs["nodata"] == 0 and codes.attrs["model_version"] == model.version
    assert set(np.unique(codes.values)) <= {0, *model.trained_classes}


def test_all_nan_pixels_are_nodata_with_zero_probability(model, test_block):
    features, _ = test_block
    empty = np.isnan(features.values).all(axis=0)
    assert empty.any()
    codes, prob = model.predict_block(features)
    np.testing.assert_array_equal(codes.values == 0, empty)
    np.testing.assert_array_equal(prob.values == 0, empty)
    blank = xr.full_like(features, np.nan)
    codes, prob = model.predict_block(blank)
    assert (codes.values == 0).all() and (prob.values == 0).all()


def test_probability_is_the_rounded_winning_percentage(model, test_block):
    features, _ = test_block
    codes, prob = model.predict_block(features)
    matrix = features.values.reshape(len(NAMES), -1).T
    valid = ~np.isnan(matrix).all(axis=1)
    proba = model.predict_proba(matrix[valid])
    assert proba.shape == (valid.sum(), len(model.trained_classes))
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, rtol=1e-9)
    expected = np.round(100 * proba.max(axis=1))
    np.testing.assert_array_equal(prob.values.ravel()[valid], expected)
    np.testing.assert_array_equal(codes.values.ravel()[valid], np.asarray(model.trained_classes)[proba.argmax(1)])
    assert prob.values.max() <= 100 and prob.values[~np.isnan(features.values).all(0)].min() >= 1


def test_mismatching_features_are_refused_by_name(model, test_block):
    features, _ = test_block
    renamed = features.assign_coords(feature=[*NAMES[:-1], "s1_vv_db_p10"])
    with pytest.raises(DataError, match=r"missing 1: 'noise_u'.*unexpected 1: 's1_vv_db_p10'"):
        model.predict_block(renamed)
    with pytest.raises(DataError, match="missing 1: 'ndvi_m07'"):
        model.predict_block(features.drop_sel(feature="ndvi_m07"))
    with pytest.raises(DataError, match="duplicated: 's2_B04_p50'"):
        model.predict_block(features.assign_coords(feature=[NAMES[0], *NAMES[:-1]]))
    with pytest.raises(DataError, match="dims"):
        model.predict_block(features.isel(y=0))
    with pytest.raises(DataError, match="'feature' coordinate"):
        model.predict_block(features.drop_vars("feature"))
    with pytest.raises(DataError, match=r"\(pixels, 6\) matrix"):
        model.predict_matrix(np.zeros((3, 2), dtype=np.float32))


def test_reordered_features_give_identical_predictions(model, test_block):
    features, _ = test_block
    codes, prob = model.predict_block(features)
    shuffled = features.isel(feature=[3, 5, 0, 2, 4, 1]).transpose("y", "feature", "x")
    codes2, prob2 = model.predict_block(shuffled)
    np.testing.assert_array_equal(codes.values, codes2.values)
    np.testing.assert_array_equal(prob.values, prob2.values)


def test_latitude_longitude_dims_are_kept(model, test_block):
    features, _ = test_block
    codes, prob = model.predict_block(features)
    geo = features.rename(y="latitude", x="longitude").transpose("latitude", "longitude", "feature")
    c, p = model.predict_block(geo)
    assert c.dims == p.dims == ("latitude", "longitude")
    np.testing.assert_array_equal(c["longitude"], features["x"])
    np.testing.assert_array_equal(c.values, codes.values)
    np.testing.assert_array_equal(p.values, prob.values)


def test_row_chunking_and_dask_give_the_same_result(model, test_block):
    features, _ = test_block
    codes, prob = model.predict_block(features)
    for kwargs, arr in [
        ({"chunk_pixels": 7}, features),
        ({}, features.chunk({"feature": 2, "y": 16, "x": 24})),
        ({"chunk_pixels": 50}, features.chunk({"y": 9})),
    ]:
        c, p = model.predict_block(arr, **kwargs)
        assert isinstance(c.data, np.ndarray)
        np.testing.assert_array_equal(c.values, codes.values)
        np.testing.assert_array_equal(p.values, prob.values)


def test_lazy_dask_prediction(model, test_block):
    import dask

    features, _ = test_block
    codes, prob = model.predict_block(features)
    c, p = model.predict_block(features.chunk({"y": 16}), lazy=True)
    assert c.chunks is not None and p.chunks is not None
    c, p = dask.compute(c, p)
    np.testing.assert_array_equal(c.values, codes.values)
    np.testing.assert_array_equal(p.values, prob.values)


def test_predict_table_matches_predict_block(model, test_block):
    features, truth = test_block
    codes, prob = model.predict_block(features)
    from worldcover.model import sample_training_points

    table = sample_training_points(features, truth, "x", max_per_class=None)
    c, p = model.predict_table(table.iloc[:, ::-1])  # column order does not matter in tables
    np.testing.assert_array_equal(c, codes.values[table["row"], table["col"]])
    np.testing.assert_array_equal(p, prob.values[table["row"], table["col"]])


# --- save / load ---------------------------------------------------------------------


def test_save_load_round_trip(model, test_block, tmp_path):
    features, _ = test_block
    target = model.save(tmp_path / "models" / "lgbm")
    assert sorted(os.listdir(target)) == [CARD_FILE, MODEL_FILE]
    assert os.listdir(tmp_path / "models") == ["lgbm"]  # no staging leftovers
    loaded = Model.load(target)
    assert loaded.model_text == model.model_text
    assert loaded.card.to_dict() == model.card.to_dict()
    a, b = model.predict_block(features), loaded.predict_block(features)
    np.testing.assert_array_equal(a[0].values, b[0].values)
    np.testing.assert_array_equal(a[1].values, b[1].values)
    assert (target / MODEL_FILE).read_text().startswith("tree\nversion=v4")  # LightGBM's own text format


def test_tampered_model_file_is_refused(model, tmp_path):
    target = model.save(tmp_path / "m")
    text = (target / MODEL_FILE).read_text()
    i = text.index("leaf_value=") + len("leaf_value=")
    digit = next(j for j in range(i, len(text)) if text[j].isdigit())
    (target / MODEL_FILE).write_text(text[:digit] + str((int(text[digit]) + 1) % 10) + text[digit + 1:])
    with pytest.raises(DataError, match=r"model.txt .*does not match the sha256 .*recorded in its card"):
        Model.load(target)


def test_edited_card_is_refused(model, tmp_path):
    target = model.save(tmp_path / "m")
    card = json.loads((target / CARD_FILE).read_text())
    card["metrics"]["overall_accuracy"] = 0.99999
    (target / CARD_FILE).write_text(json.dumps(card))
    with pytest.raises(DataError, match="card was edited"):
        Model.load(target)
    card = json.loads(model.card.to_json())
    card["feature_names"] = card["feature_names"][::-1]
    (target / CARD_FILE).write_text(json.dumps(card))
    with pytest.raises(DataError, match="card was edited"):
        Model.load(target)
    (target / CARD_FILE).write_text("{not json")
    with pytest.raises(DataError, match="not valid JSON"):
        Model.load(target)
    (target / CARD_FILE).unlink()
    with pytest.raises(DataError, match="no card.json"):
        Model.load(target)
    with pytest.raises(InputError, match="does not exist"):
        Model.load(tmp_path / "nowhere")


def test_save_refuses_to_clobber(model, tables, tmp_path):
    target = model.save(tmp_path / "m")
    with pytest.raises(InputError, match="overwrite=True"):
        model.save(target)
    other = train(tables[0], list(NAMES), FAST, seed=5, num_threads=1)
    other.save(target, overwrite=True)
    assert Model.load(target).version == other.version
    assert sorted(os.listdir(tmp_path)) == ["m"]
    (target / "notes.md").write_text("mine")
    with pytest.raises(InputError, match="notes.md"):
        model.save(target, overwrite=True)
    (tmp_path / "empty").mkdir()
    model.save(tmp_path / "empty")  # an empty directory is fine
    assert Model.load(tmp_path / "empty").version == model.version


def test_failed_save_keeps_the_old_pair(model, tables, tmp_path, monkeypatch):
    target = model.save(tmp_path / "m")
    other = train(tables[0], list(NAMES), FAST, seed=5, num_threads=1)
    real_rename = os.rename

    def failing_rename(src, dst):
        if ".tmp-" in str(src):
            raise OSError("disk gone")
        return real_rename(src, dst)

    monkeypatch.setattr(os, "rename", failing_rename)
    with pytest.raises(OSError, match="disk gone"):
        other.save(target, overwrite=True)
    monkeypatch.undo()
    assert Model.load(target).version == model.version
    assert sorted(os.listdir(tmp_path)) == ["m"]

    def failing_card(self):
        raise OSError("crash while writing the card")

    monkeypatch.setattr(ModelCard, "to_json", failing_card)
    with pytest.raises(OSError, match="crash"):
        other.save(tmp_path / "new")
    assert sorted(os.listdir(tmp_path)) == ["m"]  # no model without its card


def test_scores_then_decide_classify_as_predict_block(model, test_block):
    """The native-grid chain scores, resamples, then decides: without resampling that is predict_block."""
    features, _ = test_block
    codes, prob = model.predict_block(features)
    scores = model.scores_block(features, chunk_pixels=700)
    assert scores.dims == ("class", "y", "x") and scores.dtype == np.float32
    assert list(scores["class"].values) == list(model.trained_classes)
    empty = np.isnan(features.values).all(axis=0)
    np.testing.assert_array_equal(np.isnan(scores.values).all(axis=0), empty)
    assert not np.isnan(scores.values[:, ~empty]).any()
    c, p = model.decide(scores.values)
    np.testing.assert_array_equal(c, codes.values)
    np.testing.assert_array_equal(p, prob.values)
    lazy = model.scores_block(features.chunk({"y": 7, "feature": 5}), num_threads=1)
    assert hasattr(lazy.data, "dask")
    np.testing.assert_array_equal(lazy.values, scores.values)
    # only the pixels asked for are scored, the same values; the rest NaN (numpy and dask alike)
    where = np.zeros(empty.shape, bool)
    where[::3, 1::2] = True
    for feats in (features, features.chunk({"y": 7, "feature": 5})):
        part = model.scores_block(feats, chunk_pixels=700, num_threads=1, where=where).values
        np.testing.assert_array_equal(part[:, where], scores.values[:, where])
        assert np.isnan(part[:, ~where]).all()
    with pytest.raises(ValueError, match="does not match the features' grid"):
        model.scores_block(features, where=where[1:])
    # the scores are the model's logits: raw_scores of the same matrix
    matrix = features.values.reshape(len(NAMES), -1).T[~empty.ravel()]
    np.testing.assert_allclose(scores.values.reshape(scores.shape[0], -1).T[~empty.ravel()],
                               model.raw_scores(matrix), rtol=1e-6, atol=1e-6)


def test_decide_gives_nodata_where_scores_are_nan(model):
    scores = np.zeros((len(model.trained_classes), 2, 3), np.float32)
    scores[2, 0, 1] = 5.0  # the third trained class wins here
    scores[:, 1, 2] = np.nan
    codes, prob = model.decide(scores)
    assert codes[0, 1] == model.trained_classes[2] and prob[0, 1] > prob[0, 0]
    assert codes[1, 2] == 0 and prob[1, 2] == 0
    assert codes[0, 0] == model.trained_classes[0]  # a tie goes to the first class, as argmax does


def test_a_model_text_that_is_not_lightgbms_or_disagrees_with_the_card_is_refused_at_load(model, tmp_path):
    """Checked from model.txt's header when the model is made, not when LightGBM first predicts."""
    text = model.model_text
    bad_texts = {
        "not a LightGBM text model": "hello\n" + text,
        "differ from its card": text.replace(f"feature_names={NAMES[0]} ", f"feature_names={NAMES[0]}x ", 1),
        "classes, its card lists": text.replace("num_tree_per_iteration=", "num_tree_per_iteration=9", 1),
    }
    for message, bad in bad_texts.items():
        assert bad != text
        with pytest.raises(DataError, match=message):
            Model(bad, model.card.sealed(bad))


def test_loading_a_model_does_not_import_lightgbm(model, tmp_path):
    """A tile pod predicting with the compiled trees never pays LightGBM's import and parse (~1.8 s)."""
    model.save(tmp_path / "m")
    code = ("import sys; from worldcover.model import Model; m = Model.load(sys.argv[1]); "
            "print(m.name, 'lightgbm' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code, str(tmp_path / "m")], capture_output=True, text=True,
                         check=True, cwd=Path(__file__).resolve().parents[1])
    assert out.stdout.split() == [model.name, "False"]
