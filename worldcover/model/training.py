"""LightGBM multiclass training from training tables, with held-out evaluation.

Training is deterministic: LightGBM runs with ``deterministic=True``,
``force_row_wise=True`` and the given ``seed``; rows are put in a canonical
order (block, row, col) first, so the same samples give the same model text
whatever order the blocks were sampled in; the thread count is limited from
outside LightGBM so it does not enter the model file (see
:func:`~worldcover.model.classifier.thread_limit`). Class codes are mapped to
0..K-1 over the K classes present; the card keeps the mapping
(``trained_classes``) and lists all 11 WorldCover codes.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any, TypedDict, Unpack

import numpy as np
import pandas as pd
import xarray as xr

from worldcover.errors import DataError, InputError
from worldcover.legend import CODES, NODATA
from worldcover.model.card import ModelCard, check_json
from worldcover.model.classifier import Model, check_num_threads, table_codes, table_matrix, thread_limit
from worldcover.model.sampling import (
    BLOCK_COLUMN,
    COL_COLUMN,
    DEFAULT_MAX_PER_CLASS,
    ROW_COLUMN,
    build_training_table,
    feature_columns,
    group_features,
    mask_missing_groups,
    split_blocks,
)
from worldcover.model.schema import check_feature_names

DEFAULT_MODEL_NAME = "worldcover-lgbm"

# Hyper-parameters a caller may change (LightGBM's canonical names). Tree
# count and size are LightGBM's own defaults (100 rounds x 31 leaves, rate
# 0.1) with mild regularisation (row/feature subsampling, L2, 20 samples per
# leaf). Size matters beyond accuracy: prediction visits every tree for every
# pixel, num_iterations x classes trees, so its cost grows with both. Measured
# on the shared 2-core dev machine (loaded): a 100-feature, 11-class model of
# this size predicts ~7,000 pixels/s per thread, i.e. ~20 thread-minutes for
# a 3000 x 3000 block; 300 rounds of 63 leaves were 3-9x slower.
DEFAULT_PARAMS: dict[str, Any] = {
    "num_iterations": 100,
    "learning_rate": 0.1,
    "num_leaves": 31,
    "min_data_in_leaf": 20,
    "feature_fraction": 0.8,
    "bagging_fraction": 0.8,
    "bagging_freq": 1,
    "lambda_l2": 1.0,
    "max_bin": 255,
}

# Common aliases (LightGBM and scikit-learn spellings) of the tunable keys,
# translated so a card never records one setting under two names.
_ALIASES: dict[str, str] = {
    "n_estimators": "num_iterations", "num_boost_round": "num_iterations", "num_iteration": "num_iterations",
    "n_iter": "num_iterations", "num_tree": "num_iterations", "num_trees": "num_iterations",
    "num_round": "num_iterations", "num_rounds": "num_iterations", "nrounds": "num_iterations",
    "max_iter": "num_iterations",
    "shrinkage_rate": "learning_rate", "eta": "learning_rate",
    "num_leaf": "num_leaves", "max_leaves": "num_leaves", "max_leaf": "num_leaves", "max_leaf_nodes": "num_leaves",
    "min_data_per_leaf": "min_data_in_leaf", "min_data": "min_data_in_leaf",
    "min_child_samples": "min_data_in_leaf", "min_samples_leaf": "min_data_in_leaf",
    "sub_feature": "feature_fraction", "colsample_bytree": "feature_fraction",
    "sub_row": "bagging_fraction", "subsample": "bagging_fraction", "bagging": "bagging_fraction",
    "subsample_freq": "bagging_freq",
    "reg_lambda": "lambda_l2", "lambda": "lambda_l2", "l2_regularization": "lambda_l2",
    "reg_alpha": "lambda_l1", "l1_regularization": "lambda_l1",
    "max_bins": "max_bin",
}

# Settings worldcover owns: the task, determinism, seeding, threads, logging.
_FIXED = {
    "objective", "objective_type", "app", "application", "loss", "num_class", "num_classes",
    "seed", "random_seed", "random_state", "deterministic", "force_row_wise", "force_col_wise",
    "num_threads", "num_thread", "nthread", "nthreads", "n_jobs", "verbosity", "verbose",
    "boosting", "boosting_type", "boost", "device_type", "device",
    "use_missing", "zero_as_missing",
}

# NaN is "missing" and goes down each split's learnt side; never 0. LightGBM's
# defaults, pinned because the chain relies on them: S1 gaps and DEM voids
# reach the model as NaN (see ``missing_groups`` in :func:`train`).
MISSING_VALUE_PARAMS: dict[str, Any] = {"use_missing": True, "zero_as_missing": False}

# The default model's training rows without S1 / without a DEM. 15 % and 10 %:
# enough NaN rows (thousands in the default design) for every class to learn
# its no-S1 / no-DEM splits, few enough that complete rows dominate.
DEFAULT_MISSING_GROUPS: dict[str, float] = {"s1": 0.15, "dem": 0.10}


def resolve_params(params: Mapping[str, Any] | None) -> dict[str, Any]:
    """:data:`DEFAULT_PARAMS` updated with ``params`` (aliases translated).

    :class:`InputError` for settings worldcover fixes (objective, classes,
    seed, determinism, threads, verbosity, boosting type, device).
    """
    out = dict(DEFAULT_PARAMS)
    if params is None:
        return out
    if not isinstance(params, Mapping):
        raise InputError(f"params must be a dict of LightGBM parameters, got {type(params).__name__}")
    fixed = sorted(k for k in params if k in _FIXED)
    if fixed:
        raise InputError(
            f"params {fixed} are set by worldcover (multiclass objective, deterministic gbdt on CPU; "
            "pass seed= and num_threads= as arguments)"
        )
    seen: dict[str, str] = {}
    for key, value in params.items():
        canon = _ALIASES.get(key, key)
        if canon in seen:
            raise InputError(f"params {seen[canon]!r} and {key!r} both set {canon!r}")
        seen[canon] = key
        out[canon] = value
    return check_json(out, "params")


def _canonical_order(table: pd.DataFrame) -> pd.DataFrame:
    keys = [BLOCK_COLUMN, ROW_COLUMN, COL_COLUMN]
    if all(k in table.columns for k in keys):
        return table.sort_values(keys, kind="mergesort").reset_index(drop=True)
    return table


def _check_labels(codes: np.ndarray, what: str) -> None:
    bad = sorted(set(np.unique(codes).tolist()) - set(CODES))
    if bad:
        extra = " (0 is nodata and cannot be a training label)" if NODATA in bad else ""
        raise DataError(f"{what} has codes {bad} that are not WorldCover classes {list(CODES)}{extra}")


def _blocks_of(table: pd.DataFrame) -> tuple[str, ...]:
    if BLOCK_COLUMN not in table.columns:
        return ()
    return tuple(sorted(str(b) for b in pd.unique(table[BLOCK_COLUMN])))


class TrainOptions(TypedDict, total=False):
    """The keyword options of :func:`train` that :func:`train_from_tables` and :func:`train_from_blocks`
    pass on unchanged (their defaults are :func:`train`'s)."""

    params: Mapping[str, Any] | None
    num_threads: int | None
    name: str
    missing_groups: Mapping[str, float] | None


def train(
    table: pd.DataFrame,
    feature_names: Sequence[str],
    params: Mapping[str, Any] | None = None,
    seed: int = 0,
    *,
    num_threads: int | None = None,
    name: str = DEFAULT_MODEL_NAME,
    provenance: Mapping[str, Any] | None = None,
    missing_groups: Mapping[str, float] | None = None,
    weight_column: str | None = None,
) -> Model:
    """Train a LightGBM multiclass model on a training table.

    ``table`` has a ``code`` column of WorldCover codes and one column per
    name in ``feature_names`` (which fixes the model's feature order);
    ``params`` override :data:`DEFAULT_PARAMS`. The returned model's card
    has no held-out metrics; use :func:`train_from_tables` for those.

    ``missing_groups`` (e.g. ``{"s1": 0.15, "dem": 0.1}``) sets each input
    group's features to NaN in that share of the training rows
    (:func:`~worldcover.model.sampling.mask_missing_groups`, seeded by
    ``seed``), so the model learns to classify pixels without S1 or a DEM;
    what was masked is recorded in the card's provenance under ``"missing_groups"``.
    ``weight_column`` names a column of positive sample weights (e.g. a
    reference point's weight), passed to LightGBM as the rows' weights.
    """
    names = check_feature_names(feature_names)
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
        raise InputError(f"invalid seed {seed!r}: expected an integer")
    num_threads = check_num_threads(num_threads)
    hyper = resolve_params(params)
    provenance = dict(check_json(dict(provenance or {}), "provenance"))
    table = _canonical_order(table)
    if missing_groups:
        table, masked = mask_missing_groups(table, missing_groups, seed, names=names)
        provenance["missing_groups"] = masked
    matrix = table_matrix(table, names)
    codes = table_codes(table)
    if codes.size == 0:
        raise DataError("training table is empty")
    _check_labels(codes, "training table")
    empty = int(np.isnan(matrix).all(axis=1).sum())
    if empty:
        raise DataError(
            f"{empty} training rows have every feature NaN: they carry no information and the model "
            "classifies such pixels as nodata; drop them (sample_training_points never yields them)"
        )
    classes, counts = np.unique(codes, return_counts=True)
    if classes.size < 2:
        raise DataError(f"training table holds only class {classes.tolist()}: a classifier needs at least two")
    labels = np.searchsorted(classes, codes)
    weights = _sample_weights(table, weight_column)

    import lightgbm

    fixed = {"objective": "multiclass", "num_class": int(classes.size), "deterministic": True,
             "force_row_wise": True, **MISSING_VALUE_PARAMS}
    lgb_params = {**hyper, **fixed, "seed": int(seed), "verbosity": -1}
    rounds = int(lgb_params.pop("num_iterations"))
    dataset = lightgbm.Dataset(matrix, label=labels, weight=weights, feature_name=list(names), free_raw_data=True)
    try:
        with thread_limit(num_threads):
            booster = lightgbm.train(lgb_params, dataset, num_boost_round=rounds)
    except lightgbm.basic.LightGBMError as exc:
        raise InputError(f"LightGBM refused the training parameters: {exc}") from None
    text = booster.model_to_string()

    card = ModelCard(
        name=name,
        feature_names=names,
        trained_classes=tuple(int(c) for c in classes),
        samples_per_class={int(c): int(n) for c, n in zip(classes, counts, strict=True)},
        hyperparameters={**hyper, **fixed},
        seed=int(seed),
        training_blocks=_blocks_of(table),
        provenance=provenance,
    )
    return Model(text, card.sealed(text), num_threads=num_threads)


def _sample_weights(table: pd.DataFrame, column: str | None) -> np.ndarray | None:
    """The rows' weights from ``column`` (None: unweighted); DataError unless finite and > 0."""
    if column is None:
        return None
    if column not in table.columns:
        raise DataError(f"training table has no weight column {column!r}")
    w = pd.to_numeric(table[column], errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)
    if not (np.isfinite(w) & (w > 0)).all():
        raise DataError(f"weight column {column!r} must hold finite weights > 0")
    return w


def train_from_tables(
    train_df: pd.DataFrame,
    test_df: pd.DataFrame,
    feature_names: Sequence[str] | None = None,
    *,
    seed: int = 0,
    provenance: Mapping[str, Any] | None = None,
    weight_column: str | None = None,
    **options: Unpack[TrainOptions],
) -> Model:
    """Train on ``train_df``, evaluate on ``test_df``, return the model with metrics in its card.

    ``feature_names`` default: every non-metadata column of ``train_df``, in
    order. The tables must not share a block (that would be spatial leakage
    into the held-out metrics); see :func:`~worldcover.model.sampling.split_blocks`.
    ``options`` (params, num_threads, name, missing_groups) as in :func:`train`; with
    ``missing_groups`` the card's metrics are on complete test rows, and each masked group's
    record adds the held-out overall accuracy with that group missing on every test row.
    """
    names = feature_columns(train_df) if feature_names is None else list(feature_names)
    shared = sorted(set(_blocks_of(train_df)) & set(_blocks_of(test_df)))
    if shared:
        raise DataError(f"train and test tables share blocks {shared[:10]}: held-out metrics need disjoint blocks")
    if len(test_df) == 0:
        raise DataError("test table is empty: held-out metrics need test samples")
    _check_labels(table_codes(test_df), "test table")
    model = train(train_df, names, seed=seed, provenance=provenance, weight_column=weight_column, **options)
    metrics = model.evaluate(test_df)
    prov = dict(model.card.provenance)
    if "missing_groups" in prov:
        prov["missing_groups"] = {g: {**rec, "held_out_overall_accuracy_without": _accuracy_without(model, test_df, g)}
                                  for g, rec in prov["missing_groups"].items()}
    card = model.card.replace(test_blocks=_blocks_of(test_df), metrics=metrics.to_dict(), provenance=prov)
    return model.with_card(card)


def _accuracy_without(model: Model, test_df: pd.DataFrame, group: str) -> float:
    """Held-out overall accuracy when input ``group`` is missing (NaN) on every test row."""
    cols = group_features(group, model.feature_names)
    blank = test_df.copy()
    blank[cols] = np.nan
    return float(model.evaluate(blank).overall_accuracy)


def train_from_blocks(
    blocks: Iterable[tuple[str, xr.DataArray, xr.DataArray]],
    *,
    test_fraction: float = 0.25,
    split_by: str = "tile",
    max_per_class: int | None = DEFAULT_MAX_PER_CLASS,
    seed: int = 0,
    provenance: Mapping[str, Any] | None = None,
    **options: Unpack[TrainOptions],
) -> Model:
    """The whole recipe from labelled blocks ``(block_id, features, truth)``.

    Split the blocks spatially (:func:`split_blocks`), sample both sides
    (:func:`build_training_table`), train and evaluate
    (:func:`train_from_tables`). The sampling and split settings are added
    to the card's provenance under ``"training_table"``; ``options`` as in :func:`train`.
    """
    items = list(blocks)
    split = split_blocks([b for b, _, _ in items], test_fraction=test_fraction, seed=seed, by=split_by)
    test_ids = set(split.test)
    train_df = build_training_table([i for i in items if i[0] not in test_ids], max_per_class, seed)
    test_df = build_training_table([i for i in items if i[0] in test_ids], max_per_class, seed)
    prov = dict(provenance or {})
    prov["training_table"] = {
        "max_per_class": max_per_class, "sampling_seed": seed,
        "split": {"rule": split.rule, "test_fraction": test_fraction, "seed": seed},
    }
    return train_from_tables(train_df, test_df, seed=seed, provenance=prov, **options)

