"""Report figures (matplotlib, Agg backend), each returned as PNG bytes for embedding."""

from __future__ import annotations

import io
from typing import Sequence

import numpy as np

from worldcover.legend import BY_CODE
from worldcover.validation.estimators import AccuracyResult

# WorldCover reference levels the overall accuracy is read against (fixed facts, DESIGN.md §2).
REFERENCE_LEVELS: tuple[tuple[str, float], ...] = (
    ("WorldCover v100 (2020): 74.4 %", 0.744),
    ("WorldCover v200 (2021): 76.7 %", 0.767),
    ("requirement: 75 %", 0.75),
)


def _pyplot():
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def _png(fig) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100, bbox_inches="tight")
    _pyplot().close(fig)
    return buf.getvalue()


def _colour(code: int) -> str:
    return "#" + BY_CODE[code].colour


def error_matrix(result: AccuracyResult, codes: Sequence[int]) -> bytes:
    """Heat map of the estimated area proportions p_ij (map rows, reference columns), in %."""
    plt = _pyplot()
    q = len(codes)
    fig, ax = plt.subplots(figsize=(1.0 + 0.7 * q, 0.8 + 0.6 * q))
    p = np.nan_to_num(result.error_matrix) * 100
    im = ax.imshow(p, cmap="Blues")
    for i in range(q):
        for j in range(q):
            if p[i, j] > 0 or i == j:
                ax.text(j, i, f"{p[i, j]:.2f}", ha="center", va="center", fontsize=7,
                        color="white" if p[i, j] > p.max() / 2 else "black")
    labels = [BY_CODE[c].name for c in codes]
    ax.set_xticks(range(q), labels, rotation=60, ha="right", fontsize=8)
    ax.set_yticks(range(q), labels, fontsize=8)
    ax.set_xlabel("reference class")
    ax.set_ylabel("map class")
    ax.set_title("Estimated area proportions p_ij (% of mapped area)")
    fig.colorbar(im, ax=ax, shrink=0.7, label="%")
    return _png(fig)


def users_producers(result: AccuracyResult, codes: Sequence[int]) -> bytes:
    """User's and producer's accuracy per class with 95 % CI bars."""
    plt = _pyplot()
    q = len(codes)
    x = np.arange(q)
    fig, ax = plt.subplots(figsize=(max(5.0, 0.8 * q + 1), 3.8))
    for offset, attr, marker, label in ((-0.15, "users_accuracy", "o", "user's"), (0.15, "producers_accuracy", "s", "producer's")):
        est = np.array([getattr(c, attr).estimate for c in result.per_class]) * 100
        ci = np.array([getattr(c, attr).ci95_halfwidth for c in result.per_class]) * 100
        ax.errorbar(x + offset, est, yerr=np.nan_to_num(ci), fmt=marker, capsize=3, label=label)
    ax.set_xticks(x, [BY_CODE[c].name for c in codes], rotation=45, ha="right", fontsize=8)
    ax.set_ylim(0, 105)
    ax.set_ylabel("accuracy (%) with 95 % CI")
    ax.axhline(75, color="grey", lw=0.8, ls=":")
    ax.legend(fontsize=8)
    ax.set_title("User's and producer's accuracy")
    return _png(fig)


def areas(result: AccuracyResult, codes: Sequence[int], mapped_ha: np.ndarray) -> bytes:
    """Mapped area vs the sample-based (error-adjusted) area estimate with its 95 % CI, per class."""
    plt = _pyplot()
    q = len(codes)
    x = np.arange(q)
    est = np.array([c.area_ha.estimate for c in result.per_class])
    ci = np.array([c.area_ha.ci95_halfwidth for c in result.per_class])
    fig, ax = plt.subplots(figsize=(max(5.0, 0.8 * q + 1), 3.8))
    ax.bar(x - 0.2, mapped_ha, 0.4, color=[_colour(c) for c in codes], edgecolor="black", label="mapped")
    ax.bar(x + 0.2, est, 0.4, yerr=np.nan_to_num(ci), capsize=3, color="white", edgecolor="black",
           hatch="//", label="estimated (95 % CI)")
    ax.set_xticks(x, [BY_CODE[c].name for c in codes], rotation=45, ha="right", fontsize=8)
    positive = np.concatenate([mapped_ha[mapped_ha > 0], est[est > 0]])
    if positive.size and positive.max() / positive.min() > 100:
        ax.set_yscale("log")  # rare classes stay visible next to dominant ones
    ax.set_ylabel("area (ha)")
    ax.legend(fontsize=8)
    ax.set_title("Mapped vs estimated area")
    return _png(fig)


def sample_locations(lon: np.ndarray, lat: np.ndarray, map_codes: np.ndarray) -> bytes:
    """Sample points on lon/lat axes, coloured by the legend colour of their map class."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6, 4))
    for code in np.unique(map_codes):
        sel = map_codes == code
        ax.scatter(lon[sel], lat[sel], s=8, c=_colour(int(code)), edgecolors="black", linewidths=0.2,
                   label=BY_CODE[int(code)].name)
    ax.set_xlabel("longitude (°)")
    ax.set_ylabel("latitude (°)")
    ax.set_title(f"Sample locations (n = {len(lon)})")
    ax.legend(fontsize=7, markerscale=1.5, loc="best")
    return _png(fig)


def overall_accuracy(entries: Sequence[tuple[str, float, float]]) -> bytes:
    """Overall accuracy (with 95 % CI) of one or more maps against the WorldCover reference levels."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6, 1.2 + 0.5 * len(entries)))
    for k, (label, est, half) in enumerate(entries):
        ax.errorbar(est * 100, k, xerr=np.nan_to_num(half * 100), fmt="o", capsize=4, color="black")
        ax.annotate(f"{est * 100:.1f} ± {half * 100:.1f} %", (est * 100, k), textcoords="offset points",
                    xytext=(0, 8), ha="center", fontsize=8)
    styles = ("tab:orange", "tab:green", "tab:red")
    for (label, level), colour in zip(REFERENCE_LEVELS, styles):
        ax.axvline(level * 100, color=colour, ls="--" if level != 0.75 else "-", lw=1.2, label=label)
    ax.set_yticks(range(len(entries)), [e[0] for e in entries], fontsize=8)
    lo = min([e[1] - e[2] for e in entries] + [0.70]) * 100
    hi = max([e[1] + e[2] for e in entries] + [0.80]) * 100
    ax.set_xlim(max(0, lo - 2), min(100, hi + 2))
    ax.set_ylim(-0.7, len(entries) - 0.3)
    ax.set_xlabel("overall accuracy (%) with 95 % CI")
    ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.35), ncol=3)
    ax.set_title("Overall accuracy vs WorldCover")
    return _png(fig)
