"""Report figures (matplotlib, Agg backend), each returned as PNG bytes for embedding."""

from __future__ import annotations

import io
from collections.abc import Sequence

import numpy as np

from worldcover.legend import BY_CODE
from worldcover.validation.estimators import AccuracyResult

# WorldCover reference levels the overall accuracy is read against: the accuracy ESA published for its 2020 (v100)
# and 2021 (v200) maps in their product validation reports, and the 75 % the WorldCover project required.
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


def users_producers(result: AccuracyResult, codes: Sequence[int], interval: str = "wilson") -> bytes:
    """User's and producer's accuracy per class with 95 % interval bars (``interval`` method)."""
    plt = _pyplot()
    q = len(codes)
    x = np.arange(q)
    fig, ax = plt.subplots(figsize=(max(5.0, 0.8 * q + 1), 3.8))
    series = ((-0.15, "users_accuracy", "o", "user's"), (0.15, "producers_accuracy", "s", "producer's"))
    for offset, attr, marker, label in series:
        ests = [getattr(c, attr) for c in result.per_class]
        est = np.array([e.estimate for e in ests]) * 100
        ci = np.array([e.ci95(interval) for e in ests]).reshape(-1, 2) * 100
        err = np.nan_to_num(np.abs(np.stack([est - ci[:, 0], ci[:, 1] - est])))
        ax.errorbar(x + offset, est, yerr=err, fmt=marker, capsize=3, label=label)
    ax.set_xticks(x, [BY_CODE[c].name for c in codes], rotation=45, ha="right", fontsize=8)
    ax.set_ylim(0, 105)
    ax.set_ylabel(f"accuracy (%) with 95 % CI ({interval})")
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


def _sample_groups(lon: np.ndarray, lat: np.ndarray, max_groups: int = 6, gap_deg: float = 1.0) -> list[np.ndarray]:
    """Indices of samples grouped into places: points closer than ``gap_deg`` (single linkage on a grid)."""
    cells = np.stack([np.floor(lon / gap_deg), np.floor(lat / gap_deg)], axis=1).astype(np.int64)
    keys, inv = np.unique(cells, axis=0, return_inverse=True)
    inv = inv.ravel()
    parent = list(range(len(keys)))

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    index = {tuple(k): i for i, k in enumerate(keys.tolist())}
    for i, (cx, cy) in enumerate(keys.tolist()):  # neighbouring grid cells are one place
        for dx in (-1, 0, 1):
            for dy in (-1, 0, 1):
                j = index.get((cx + dx, cy + dy))
                if j is not None:
                    parent[find(i)] = find(j)
    roots = np.array([find(i) for i in range(len(keys))])[inv]
    groups = [np.flatnonzero(roots == r) for r in np.unique(roots)]
    return sorted(groups, key=len, reverse=True)[:max_groups]


def _zoom(ax, lon: np.ndarray, lat: np.ndarray, pad_frac: float = 0.08) -> None:
    """Axis limits on the points' extent (with a margin), equal-area-ish aspect at their latitude."""
    x0, x1, y0, y1 = lon.min(), lon.max(), lat.min(), lat.max()
    span = max(x1 - x0, y1 - y0, 1e-3)
    pad = span * pad_frac
    ax.set_xlim(x0 - pad, x1 + pad)
    ax.set_ylim(y0 - pad, y1 + pad)
    ax.set_aspect(1.0 / max(0.1, np.cos(np.radians((y0 + y1) / 2))), adjustable="box")


def sample_locations(lon: np.ndarray, lat: np.ndarray, map_codes: np.ndarray) -> bytes:
    """Sample points coloured by map class, zoomed to where they are: one panel per place (up to 6).

    The first panel shows all places on the extent of the samples (not the globe); each further
    panel zooms on one group of nearby samples, so a sample of three distant tiles is three maps.
    """
    plt = _pyplot()
    lon, lat = np.asarray(lon, float), np.asarray(lat, float)
    groups = _sample_groups(lon, lat) if len(lon) else []
    panels = 1 + (len(groups) if len(groups) > 1 else 0)
    cols = min(panels, 3)
    rows = -(-panels // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols, 3.6 * rows), squeeze=False)
    flat = axes.ravel()

    def scatter(ax, sel: np.ndarray, size: float) -> None:
        for code in np.unique(map_codes[sel]):
            s = sel[map_codes[sel] == code]
            ax.scatter(lon[s], lat[s], s=size, c=_colour(int(code)), edgecolors="black", linewidths=0.2,
                       label=BY_CODE[int(code)].name)

    everything = np.arange(len(lon))
    if len(lon):
        scatter(flat[0], everything, 10)
        _zoom(flat[0], lon, lat)
    flat[0].set_title(f"Sample locations (n = {len(lon)})", fontsize=9)
    flat[0].legend(fontsize=6, markerscale=1.3, loc="best")
    for k, (ax, sel) in enumerate(zip(flat[1:], groups if panels > 1 else [], strict=False), start=1):
        scatter(ax, sel, 14)
        _zoom(ax, lon[sel], lat[sel])
        ax.set_title(f"place {k}: {len(sel)} samples near {lat[sel].mean():.2f}°, {lon[sel].mean():.2f}°", fontsize=8)
        if len(groups) > 1:
            flat[0].annotate(str(k), (lon[sel].mean(), lat[sel].mean()), fontsize=8, weight="bold")
    for ax in flat[panels:]:
        ax.set_visible(False)
    for ax in flat[:panels]:
        ax.set_xlabel("longitude (°)", fontsize=8)
        ax.set_ylabel("latitude (°)", fontsize=8)
        ax.tick_params(labelsize=7)
        ax.ticklabel_format(useOffset=False, style="plain")  # plain degrees, no "+6.1e1" offsets
    fig.tight_layout()
    return _png(fig)


def overall_accuracy(entries: Sequence[tuple[str, float, float, float]]) -> bytes:
    """Overall accuracy (with its 95 % interval low..high) of one or more maps against the WorldCover levels."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6, 1.2 + 0.5 * len(entries)))
    for k, (_label, est, lo, hi) in enumerate(entries):
        err = np.nan_to_num(np.abs(np.array([[est - lo], [hi - est]]) * 100))
        ax.errorbar(est * 100, k, xerr=err, fmt="o", capsize=4, color="black")
        ax.annotate(f"{est * 100:.1f} % ({lo * 100:.1f}–{hi * 100:.1f})", (est * 100, k), textcoords="offset points",
                    xytext=(0, 8), ha="center", fontsize=8)
    styles = ("tab:orange", "tab:green", "tab:red")
    for (label, level), colour in zip(REFERENCE_LEVELS, styles, strict=True):
        ax.axvline(level * 100, color=colour, ls="--" if level != 0.75 else "-", lw=1.2, label=label)
    ax.set_yticks(range(len(entries)), [e[0] for e in entries], fontsize=8)
    lows = [e[2] for e in entries if np.isfinite(e[2])]
    highs = [e[3] for e in entries if np.isfinite(e[3])]
    lo = min(lows + [0.70]) * 100
    hi = max(highs + [0.80]) * 100
    ax.set_xlim(max(0, lo - 2), min(100, hi + 2))
    ax.set_ylim(-0.7, len(entries) - 0.3)
    ax.set_xlabel("overall accuracy (%) with 95 % CI")
    ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.35), ncol=3)
    ax.set_title("Overall accuracy vs WorldCover")
    return _png(fig)
