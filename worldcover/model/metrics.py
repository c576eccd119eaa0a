"""Held-out classification metrics: confusion matrix, OA, kappa, per-class P/R/F1.

These are sample counts on held-out training points (the model card's
numbers), not the area-weighted map accuracy of the validation team's
reports (Olofsson et al. 2014), which lives in :mod:`worldcover.validation`.

Conventions: confusion-matrix rows are the reference class, columns the
predicted class, both labelled by WorldCover code. A precision for a class
that was never predicted (or a recall for a class absent from the reference)
is undefined and reported as ``None``/NaN, not 0; F1 = 2 TP / (reference +
predicted) is 0 for a class that exists but was never predicted.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from worldcover.errors import DataError, InputError
from worldcover.legend import BY_CODE


def _num(x: float) -> float | None:
    """A JSON-friendly float: NaN becomes None, others are rounded to 6 decimals."""
    return None if not np.isfinite(x) else round(float(x), 6)


@dataclass(frozen=True, eq=False)
class ClassificationMetrics:
    """A confusion matrix over class codes and the statistics derived from it."""

    labels: tuple[int, ...]
    confusion: np.ndarray  # (K, K) int64; rows reference, columns predicted

    def __post_init__(self) -> None:
        k = len(self.labels)
        cm = np.asarray(self.confusion, dtype=np.int64)
        if cm.shape != (k, k):
            raise DataError(
                f"confusion matrix has shape {cm.shape}, expected ({k}, {k}) for labels {list(self.labels)}"
            )
        object.__setattr__(self, "labels", tuple(int(c) for c in self.labels))
        object.__setattr__(self, "confusion", cm)

    @classmethod
    def from_codes(
        cls, reference: np.ndarray, predicted: np.ndarray, labels: Sequence[int] | None = None
    ) -> ClassificationMetrics:
        """Count (reference, predicted) pairs. ``labels`` default: every code seen in either."""
        ref = np.asarray(reference).ravel()
        pred = np.asarray(predicted).ravel()
        if ref.shape != pred.shape:
            raise InputError(f"reference ({ref.size}) and predicted ({pred.size}) codes differ in length")
        seen = np.union1d(np.unique(ref), np.unique(pred)).astype(np.int64)
        lab = np.asarray(sorted(int(c) for c in labels) if labels is not None else seen, dtype=np.int64)
        outside = np.setdiff1d(seen, lab)
        if outside.size:
            raise InputError(f"codes {outside.tolist()} are not among the labels {lab.tolist()}")
        k = lab.size
        ri = np.searchsorted(lab, ref)
        pi = np.searchsorted(lab, pred)
        cm = np.bincount(ri * k + pi, minlength=k * k).reshape(k, k)
        return cls(tuple(lab.tolist()), cm)

    # --- derived statistics ------------------------------------------------------

    @property
    def n(self) -> int:
        return int(self.confusion.sum())

    @property
    def support(self) -> np.ndarray:
        """Reference count per class (row sums)."""
        return self.confusion.sum(axis=1)

    @property
    def predicted_counts(self) -> np.ndarray:
        """Predicted count per class (column sums)."""
        return self.confusion.sum(axis=0)

    @property
    def overall_accuracy(self) -> float:
        return float(np.trace(self.confusion) / self.n) if self.n else float("nan")

    @property
    def kappa(self) -> float:
        """Cohen's kappa: agreement beyond chance, (po - pe) / (1 - pe)."""
        n = self.n
        if not n:
            return float("nan")
        po = np.trace(self.confusion) / n
        pe = float(np.dot(self.support, self.predicted_counts)) / (n * n)
        return float((po - pe) / (1 - pe)) if pe < 1 else float("nan")

    def _ratio(self, denominator: np.ndarray) -> np.ndarray:
        diag = np.diag(self.confusion).astype(np.float64)
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where(denominator > 0, diag / np.maximum(denominator, 1), np.nan)

    @property
    def precision(self) -> np.ndarray:
        """Per class: correct / predicted (user's accuracy); NaN if never predicted."""
        return self._ratio(self.predicted_counts)

    @property
    def recall(self) -> np.ndarray:
        """Per class: correct / reference (producer's accuracy); NaN if absent from the reference."""
        return self._ratio(self.support)

    @property
    def f1(self) -> np.ndarray:
        """Per class: 2 TP / (reference + predicted), the harmonic mean of P and R.

        Written this way it is 0 (not undefined) for a class present in the
        reference but never predicted; NaN only for a label never seen at all.
        """
        return 2 * self._ratio(self.support + self.predicted_counts)

    # --- serialisation -----------------------------------------------------------

    def to_dict(self) -> dict:
        """JSON-ready summary, keyed by class code (as strings, JSON's only key type)."""
        per_class = {}
        for i, code in enumerate(self.labels):
            cls = BY_CODE.get(code)
            per_class[str(code)] = {
                "name": cls.name if cls else ("nodata" if code == 0 else "unknown"),
                "precision": _num(self.precision[i]),
                "recall": _num(self.recall[i]),
                "f1": _num(self.f1[i]),
                "support": int(self.support[i]),
            }
        return {
            "n": self.n,
            "overall_accuracy": _num(self.overall_accuracy),
            "kappa": _num(self.kappa),
            "per_class": per_class,
            "confusion_matrix": {
                "rows": "reference",
                "columns": "predicted",
                "labels": list(self.labels),
                "counts": self.confusion.tolist(),
            },
        }

    @classmethod
    def from_dict(cls, d: dict) -> ClassificationMetrics:
        try:
            cm = d["confusion_matrix"]
            return cls(tuple(cm["labels"]), np.asarray(cm["counts"], dtype=np.int64))
        except (KeyError, TypeError, ValueError) as exc:
            raise DataError(f"metrics have no readable confusion_matrix: {exc}") from None
