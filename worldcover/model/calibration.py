"""Probability calibration: temperature scaling of the softmax and reliability curves.

A boosted model's top probability is usually over-confident (it says 95 %
where it is right 85 % of the time). One temperature ``T`` divides the raw
scores before the softmax: the winning class never changes, the confidence
does. ``T`` is fitted on held-out blocks by minimum log-loss and judged on
*other* held-out blocks with a reliability curve (accuracy per bin of
confidence) and its expected calibration error (ECE).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
from scipy.optimize import minimize_scalar

from worldcover.model.classifier import Model, softmax, table_codes, table_matrix

__all__ = ["fit_temperature", "reliability_curve", "calibrate"]

RELIABILITY_BINS = 10


def _targets(model: Model, codes: np.ndarray) -> np.ndarray:
    """Column index of each reference code among the model's trained classes (-1 when not trained)."""
    lookup = {c: i for i, c in enumerate(model.trained_classes)}
    return np.array([lookup.get(int(c), -1) for c in codes], dtype=np.int64)


def fit_temperature(logits: np.ndarray, target: np.ndarray) -> float:
    """The temperature minimising the mean negative log-likelihood of ``target`` (searched in 0.1..10)."""
    keep = target >= 0
    logits, target = logits[keep], target[keep]
    if len(target) == 0:
        return 1.0

    def nll(log_t: float) -> float:
        p = softmax(logits / np.exp(log_t))[np.arange(len(target)), target]
        return float(-np.mean(np.log(np.clip(p, 1e-12, None))))

    res = minimize_scalar(nll, bounds=(np.log(0.1), np.log(10.0)), method="bounded")
    return float(np.exp(res.x))


def reliability_curve(proba: np.ndarray, target: np.ndarray, bins: int = RELIABILITY_BINS) -> dict:
    """Accuracy against confidence (top probability) in equal-width bins, and the ECE.

    Returns JSON-ready lists: ``bin_lower``, ``confidence`` (mean top probability),
    ``accuracy`` and ``count`` per bin (None where a bin is empty), ``ece``.
    """
    conf = proba.max(axis=1)
    right = proba.argmax(axis=1) == target
    idx = np.clip((conf * bins).astype(np.int64), 0, bins - 1)
    count = np.bincount(idx, minlength=bins)
    conf_sum = np.bincount(idx, weights=conf, minlength=bins)
    right_sum = np.bincount(idx, weights=right.astype(np.float64), minlength=bins)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_conf = conf_sum / count
        acc = right_sum / count
    n = max(int(count.sum()), 1)
    ece = float(np.nansum(np.abs(acc - mean_conf) * count) / n)
    as_list = lambda a: [None if not np.isfinite(v) else round(float(v), 4) for v in a]  # noqa: E731
    return {"bin_lower": [round(i / bins, 2) for i in range(bins)], "confidence": as_list(mean_conf),
            "accuracy": as_list(acc), "count": [int(c) for c in count], "ece": round(ece, 4), "n": int(count.sum())}


def calibrate(model: Model, table: pd.DataFrame, fit_blocks: Sequence[str]) -> Model:
    """``model`` with a temperature fitted on the rows of ``fit_blocks`` and reliability judged on the others.

    The card's ``calibration`` records the temperature, the blocks it was fitted
    on, and the reliability curve before and after on the remaining blocks; the
    temperature is applied only when it lowers the expected calibration error there.
    """
    fit = table["block_id"].isin(list(fit_blocks)).to_numpy()
    matrix = table_matrix(table, model.feature_names)
    target = _targets(model, table_codes(table))
    logits = model.raw_scores(matrix)
    temperature = fit_temperature(logits[fit], target[fit])
    judge = ~fit & (target >= 0)
    before = reliability_curve(softmax(logits[judge]), target[judge])
    after = reliability_curve(softmax(logits[judge] / temperature), target[judge])
    # A temperature that does not help on blocks it was not fitted on is not applied.
    applied = after["ece"] < before["ece"]
    record = {
        "method": "temperature",
        "temperature": round(temperature, 4) if applied else 1.0,
        "fitted_temperature": round(temperature, 4),
        "applied": bool(applied),
        "fitted_on_blocks": sorted(set(fit_blocks)),
        "reliability_before": before,
        "reliability_after": after,
    }
    return model.with_card(model.card.replace(calibration=record))
