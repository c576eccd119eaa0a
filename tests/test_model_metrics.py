"""Held-out metrics: confusion matrix, OA, kappa and per-class P/R/F1, checked against scikit-learn."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.metrics import cohen_kappa_score, precision_recall_fscore_support

from worldcover.errors import InputError
from worldcover.legend import CODES
from worldcover.model import ClassificationMetrics

pairs = st.lists(st.tuples(st.sampled_from(CODES[:5]), st.sampled_from(CODES[:6])), min_size=1, max_size=200)


@settings(max_examples=60, deadline=None)
@given(pairs)
def test_matches_counts_and_scikit_learn(data):
    ref = np.array([r for r, _ in data])
    pred = np.array([p for _, p in data])
    m = ClassificationMetrics.from_codes(ref, pred)
    labels = list(m.labels)
    assert labels == sorted(set(ref) | set(pred))
    # rows are the reference: they sum to each class's support; columns to the predictions
    assert m.support.tolist() == [int((ref == c).sum()) for c in labels]
    assert m.predicted_counts.tolist() == [int((pred == c).sum()) for c in labels]
    assert m.n == len(data)
    assert m.overall_accuracy == pytest.approx((ref == pred).mean())
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        kappa = cohen_kappa_score(ref, pred, labels=labels)
        p, r, f, s = precision_recall_fscore_support(ref, pred, labels=labels, zero_division=np.nan)
    np.testing.assert_allclose(m.kappa, kappa, atol=1e-12, equal_nan=True)
    np.testing.assert_allclose(m.precision, p, equal_nan=True)
    np.testing.assert_allclose(m.recall, r, equal_nan=True)
    np.testing.assert_array_equal(m.support, s)
    # F1 = 2TP/(2TP+FP+FN): 0 for a class present but never predicted (sklearn may say NaN there)
    tp = np.diag(m.confusion)
    np.testing.assert_allclose(m.f1, 2 * tp / (m.support + m.predicted_counts))
    both = ~np.isnan(f)
    np.testing.assert_allclose(m.f1[both], f[both])


def test_perfect_and_undefined_cases():
    m = ClassificationMetrics.from_codes([10, 20, 20], [10, 20, 20])
    assert m.overall_accuracy == 1.0 and m.kappa == 1.0
    # 30 is in the reference but never predicted; 40 predicted but never in the reference
    m = ClassificationMetrics.from_codes([10, 30], [10, 40])
    d = m.to_dict()
    assert d["per_class"]["30"]["precision"] is None and d["per_class"]["30"]["recall"] == 0.0
    assert d["per_class"]["30"]["f1"] == 0.0
    assert d["per_class"]["40"]["recall"] is None and d["per_class"]["40"]["support"] == 0
    json.dumps(d, allow_nan=False)  # NaN never reaches JSON


def test_dict_round_trip_and_labels():
    m = ClassificationMetrics.from_codes([10, 20, 80, 80], [10, 80, 80, 80], labels=CODES)
    assert len(m.labels) == 11 and m.confusion.shape == (11, 11)
    d = m.to_dict()
    assert d["confusion_matrix"]["labels"] == list(CODES)
    assert d["per_class"]["10"]["name"] == "Tree cover"
    back = ClassificationMetrics.from_dict(json.loads(json.dumps(d)))
    assert back.labels == m.labels and np.array_equal(back.confusion, m.confusion)


def test_bad_input():
    with pytest.raises(InputError, match="length"):
        ClassificationMetrics.from_codes([10, 20], [10])
    with pytest.raises(InputError, match=r"\[30\]"):
        ClassificationMetrics.from_codes([10, 30], [10, 10], labels=[10, 20])
