"""Design-based estimators of map accuracy and class area for stratified random samples.

Two families, both numpy-vectorised:

* :func:`olofsson` -- the strata are the map classes (Olofsson et al. 2014, Remote
  Sensing of Environment 148:42-57, eqs. 4-10). Input: a q x q table of sample counts
  (map classes as rows, reference classes as columns) and the mapped area of each class.
* :func:`stehman` -- the strata may differ from the map classes (Stehman 2014,
  International Journal of Remote Sensing 35(13):4923-4939): every parameter is a
  stratified total or combined ratio of per-unit indicators y_u, x_u (the paper's
  eqs. 12, 14, 16, 18-19, 22-23), with the stratified-estimator variances of the paper.
  A ``domain`` mask gives subpopulation estimates (e.g. one continent) from the same
  sample, and another map can be assessed with a sample stratified by the first one.

When the strata are the map classes and no finite-population correction is applied,
the two families give the same numbers (tested).
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from worldcover.area import weighted_sum
from worldcover.errors import InputError

Z95 = 1.96  # normal quantile of the 95 % two-sided interval used by both papers
Labels = Sequence[Hashable] | np.ndarray  # one class or stratum label per sample unit
Sizes = Mapping[Any, float]  # per stratum label


def _json_number(x: float) -> float | None:
    """A float for JSON: NaN/inf (an undefined estimate) become null."""
    return float(x) if math.isfinite(x) else None


INTERVALS = ("wilson", "normal")


@dataclass(frozen=True)
class Estimate:
    """One estimate with its standard error; the normal 95 % CI is estimate +- 1.96 se.

    ``n_units`` is the number of sample units (or clusters) behind the estimate, which
    :meth:`ci95` needs for a Wilson interval where the standard error is zero.
    """

    estimate: float
    se: float
    n_units: float = math.nan

    @property
    def ci95_halfwidth(self) -> float:
        return Z95 * self.se

    def ci95(self, method: str = "wilson") -> tuple[float, float]:
        """95 % interval of a proportion: ``wilson`` (never zero width) or ``normal`` (clipped to [0, 1])."""
        if method == "normal":
            if not math.isfinite(self.estimate):
                return (math.nan, math.nan)
            half = self.ci95_halfwidth if math.isfinite(self.se) else math.nan
            return (max(0.0, self.estimate - half), min(1.0, self.estimate + half))
        if method != "wilson":
            raise InputError(f"interval {method!r}: expected one of {', '.join(INTERVALS)}")
        return wilson(self.estimate, effective_n(self))

    def to_dict(self) -> dict[str, float | None]:
        return {
            "estimate": _json_number(self.estimate),
            "se": _json_number(self.se),
            "ci95_halfwidth": _json_number(self.ci95_halfwidth),
        }


def effective_n(e: Estimate) -> float:
    """Effective sample size of a design-based proportion: n* = p(1-p)/SE^2 (Kish; Korn & Graubard 1998).

    It carries the design's precision (a stratified OA is often better than simple random
    sampling) into the Wilson interval. Where p is 0 or 1, or the SE is 0, the design gives
    no variance, and the number of units behind the estimate is used instead: n units that
    all agree do not prove 100 %.
    """
    p, se, n = e.estimate, e.se, e.n_units
    if not math.isfinite(p):
        return math.nan
    if 0.0 < p < 1.0 and math.isfinite(se) and se > 0:
        return p * (1 - p) / se**2
    return n


def wilson(p: float, n: float, z: float = Z95) -> tuple[float, float]:
    """Wilson score interval of a proportion p from n (effective) units; NaNs when undefined."""
    if not (math.isfinite(p) and math.isfinite(n)) or n <= 0:
        return (math.nan, math.nan)
    z2n = z * z / n
    centre = (p + z2n / 2) / (1 + z2n)
    half = z / (1 + z2n) * math.sqrt(max(0.0, p * (1 - p) / n) + z * z / (4 * n * n))
    return (max(0.0, centre - half), min(1.0, centre + half))


@dataclass(frozen=True)
class ClassEstimates:
    """Accuracy and area estimates of one class (user's: as map class; the rest: as reference class)."""

    users_accuracy: Estimate
    producers_accuracy: Estimate
    area_proportion: Estimate
    area_ha: Estimate

    def to_dict(self) -> dict[str, dict]:
        return {
            "users_accuracy": self.users_accuracy.to_dict(),
            "producers_accuracy": self.producers_accuracy.to_dict(),
            "area_proportion": self.area_proportion.to_dict(),
            "area_ha": self.area_ha.to_dict(),
        }


@dataclass(frozen=True, eq=False)
class AccuracyResult:
    """Everything an accuracy report needs; :meth:`to_dict` is the ``validate estimate --json`` shape."""

    classes: tuple[str, ...]
    n: int
    overall_accuracy: Estimate
    per_class: tuple[ClassEstimates, ...]
    error_matrix: np.ndarray  # estimated area proportions p_ij: map class i (row), reference class j (column)
    counts: np.ndarray  # sample counts n_ij, same layout
    mapped_area_ha: np.ndarray | None = None  # per map class, when known
    method: str = "olofsson2014"

    def __getitem__(self, name: str) -> ClassEstimates:
        try:
            return self.per_class[self.classes.index(name)]
        except ValueError:
            raise KeyError(name) from None

    def to_dict(self) -> dict[str, Any]:
        return {
            "n": int(self.n),
            "overall_accuracy": self.overall_accuracy.to_dict(),
            "classes": {name: c.to_dict() for name, c in zip(self.classes, self.per_class, strict=True)},
            "error_matrix_proportions": [[_json_number(v) for v in row] for row in self.error_matrix],
        }


# ----------------------------------------------------------------------------------------------
# Olofsson et al. (2014): strata = map classes
# ----------------------------------------------------------------------------------------------


def _check_counts(counts: np.ndarray, names: Sequence[str]) -> np.ndarray:
    """Counts must be a square table of non-negative whole numbers."""
    n = np.asarray(counts, dtype=float)
    if n.ndim != 2 or n.shape[0] != n.shape[1]:
        raise InputError(f"sample counts: expected a square table (map x reference), got shape {n.shape}")
    if n.shape[0] != len(names):
        raise InputError(f"sample counts: {n.shape[0]} classes but {len(names)} class names")
    bad = ~np.isfinite(n) | (n < 0) | (n != np.round(n))
    if bad.any():
        i, j = map(int, np.argwhere(bad)[0])
        raise InputError(
            f"sample counts: cell (map {names[i]!r}, reference {names[j]!r}) = {n[i, j]!r}; "
            "expected a non-negative whole number"
        )
    return n


def olofsson(
    counts: np.ndarray | Sequence[Sequence[float]],
    mapped_area_ha: np.ndarray | Sequence[float],
    classes: Sequence[str] | None = None,
) -> AccuracyResult:
    """Stratified estimators when the strata are the map classes (Olofsson et al. 2014, eqs. 4-10).

    ``counts[i][j]`` is the number of sample units mapped as class i with reference class j;
    ``mapped_area_ha[i]`` the mapped area of class i (any unit works for the proportions; the
    ``area_ha`` estimates are in the unit given). A class may have zero mapped area only if no
    sample unit is mapped as it (then its user's accuracy is undefined: NaN / null).
    """
    q = len(mapped_area_ha)
    names = tuple(str(c) for c in classes) if classes is not None else tuple(str(i) for i in range(q))
    n = _check_counts(np.asarray(counts), names)
    area = np.asarray(mapped_area_ha, dtype=float)
    if area.shape != (n.shape[0],):
        raise InputError(f"mapped areas: expected {n.shape[0]} values, got shape {area.shape}")
    if not np.isfinite(area).all() or (area < 0).any() or area.sum() <= 0:
        raise InputError("mapped areas: expected finite, non-negative values with a positive total")
    n_i = n.sum(axis=1)
    for i in np.flatnonzero((area > 0) & (n_i == 0)):
        raise InputError(f"stratum {names[i]!r} has mapped area but no sample units: expected at least one")
    for i in np.flatnonzero((area == 0) & (n_i > 0)):
        raise InputError(f"class {names[i]!r} has sample units mapped as it but no mapped area")

    total = area.sum()
    w = area / total  # W_i: proportion of the area mapped as class i
    with np.errstate(divide="ignore", invalid="ignore"):
        frac = np.where(n_i[:, None] > 0, n / np.where(n_i > 0, n_i, 1)[:, None], 0.0)  # n_ij / n_i.
        inv = np.where(w > 0, 1.0 / (n_i - 1.0), 0.0)  # 1 / (n_i. - 1); inf when n_i. == 1
        p = w[:, None] * frac  # eq. 4: p_ij = W_i n_ij / n_i.
        cell_var = frac * (1.0 - frac) * inv[:, None]  # per-stratum binomial variance factor

        users = np.where(n_i > 0, np.diag(frac), np.nan)  # eq. 2 on p: U_i = p_ii / p_i.
        var_users = users * (1.0 - users) * inv  # eq. 6

        overall = float(np.trace(p))  # eq. 1
        var_overall = float(np.nansum(np.where(w > 0, w**2 * users * (1 - users) * inv, 0.0)))  # eq. 5
        if np.isnan(var_users[w > 0]).any():
            var_overall = math.nan  # a stratum with one unit: no variance estimate

        p_ref = p.sum(axis=0)  # p_.j: estimated area proportion of reference class j
        producers = np.diag(p) / p_ref  # eq. 3
        n_ref_hat = total * p_ref  # N^_.j = sum_i (N_i./n_i.) n_ij, in area units
        m = area[:, None] ** 2 * cell_var  # N_i.^2 (n_ij/n_i.)(1 - n_ij/n_i.)/(n_i. - 1)
        others = np.where(np.eye(len(area), dtype=bool), 0.0, m).sum(axis=0)  # i != j (no cancellation)
        term1 = area**2 * (1.0 - producers) ** 2 * np.where(w > 0, users * (1 - users) * inv, 0.0)
        var_producers = (term1 + producers**2 * others) / n_ref_hat**2  # eq. 7

        var_p_ref = (w[:, None] ** 2 * cell_var).sum(axis=0)  # eq. 10 squared
    se_p_ref = np.sqrt(var_p_ref)

    n_ref = n.sum(axis=0)
    per_class = tuple(
        ClassEstimates(
            users_accuracy=Estimate(float(users[k]), float(np.sqrt(var_users[k])), float(n_i[k])),
            producers_accuracy=Estimate(float(producers[k]), float(np.sqrt(var_producers[k])), float(n_ref[k])),
            area_proportion=Estimate(float(p_ref[k]), float(se_p_ref[k]), float(n.sum())),
            area_ha=Estimate(float(total * p_ref[k]), float(total * se_p_ref[k])),  # eqs. 8-11: A x p, A x S(p)
        )
        for k in range(len(names))
    )
    return AccuracyResult(
        classes=names,
        n=int(n.sum()),
        overall_accuracy=Estimate(overall, math.sqrt(var_overall), float(n.sum())),
        per_class=per_class,
        error_matrix=p,
        counts=n.astype(np.int64),
        mapped_area_ha=area,
        method="olofsson2014",
    )


# ----------------------------------------------------------------------------------------------
# Stehman (2014): strata different from the map classes, ratio estimators, domains
# ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Design:
    """The stratified design seen by the estimators: stratum index of every unit and N_h, n_h."""

    h: np.ndarray  # stratum index per sample unit
    size: np.ndarray  # N_h (area or units); weights are N_h / sum N_h
    n_h: np.ndarray  # sample units per stratum
    fpc: np.ndarray  # 1 - n_h / N_h (units), or 1 when no unit counts were given

    def means(self, v: np.ndarray) -> np.ndarray:
        """Per-stratum sample means of each column of ``v`` (H x m)."""
        sums = np.zeros((len(self.size), v.shape[1]))
        np.add.at(sums, self.h, v)
        return sums / self.n_h[:, None]

    def total(self, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Stratified estimate of the population total of each column and its variance."""
        ybar = self.means(y)
        t = weighted_sum(self.size, ybar)
        return t, self._var_of_residuals(y - ybar[self.h])

    def ratio(self, y: np.ndarray, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Combined ratio estimator R = Y/X per column and its variance (Stehman 2014).

        s2_y + R^2 s2_x - 2 R s_xy within a stratum is the sample variance of the residual
        e = y - R x, which is how it is computed here.
        """
        ybar, xbar = self.means(y), self.means(x)
        ty, tx = weighted_sum(self.size, ybar), weighted_sum(self.size, xbar)
        with np.errstate(divide="ignore", invalid="ignore"):
            r = ty / tx
            resid = (y - ybar[self.h]) - np.nan_to_num(r) * (x - xbar[self.h])
            var = self._var_of_residuals(resid) / tx**2
        return r, var

    def _var_of_residuals(self, e: np.ndarray) -> np.ndarray:
        """sum_h N_h^2 (1 - n_h/N_h) s2_eh / n_h for centred residuals e (NaN if some n_h < 2)."""
        ss = np.zeros((len(self.size), e.shape[1]))
        np.add.at(ss, self.h, e**2)
        with np.errstate(divide="ignore", invalid="ignore"):
            s2 = ss / (self.n_h - 1.0)[:, None]
        s2 = np.where(ss == 0, np.where(self.n_h[:, None] > 1, 0.0, np.nan), s2)
        return weighted_sum(self.size**2 * self.fpc / self.n_h, s2)


def _design(
    strata: np.ndarray, stratum_size: Mapping[Hashable, float], stratum_units: Mapping[Hashable, float] | None
) -> _Design:
    labels = list(stratum_size)
    index = {s: k for k, s in enumerate(labels)}
    unknown = sorted({str(s) for s in strata if s not in index})
    if unknown:
        raise InputError(f"strata {', '.join(unknown)} have sample units but no stratum size")
    h = np.array([index[s] for s in strata], dtype=np.int64)
    size = np.array([stratum_size[s] for s in labels], dtype=float)
    if not np.isfinite(size).all() or (size <= 0).any():
        raise InputError("stratum sizes: expected finite positive values")
    n_h = np.bincount(h, minlength=len(labels)).astype(float)
    empty = [str(labels[k]) for k in np.flatnonzero(n_h == 0)]
    if empty:
        raise InputError(f"strata {', '.join(empty)} have no sample units: expected at least one each")
    fpc = np.ones(len(labels))
    if stratum_units is not None:
        units = np.array([stratum_units[s] for s in labels], dtype=float)
        fpc = 1.0 - n_h / units
    return _Design(h=h, size=size, n_h=n_h, fpc=fpc)


def _indicators(
    map_class: Labels, ref_class: Labels, classes: Labels | None,
    domain: Sequence[bool] | np.ndarray | None, n: int,
) -> tuple[list, np.ndarray, np.ndarray, np.ndarray]:
    """Classes and per-unit indicators: in domain (n,), mapped as class k and labelled k (n, q)."""
    m = np.asarray(list(map_class), dtype=object)
    r = np.asarray(list(ref_class), dtype=object)
    if not (len(m) == len(r) == n) or n == 0:
        raise InputError("sample: expected the same positive number of strata, map and reference labels")
    d = np.ones(n, dtype=bool) if domain is None else np.asarray(domain, dtype=bool)
    if d.shape != (n,):
        raise InputError("domain: expected one flag per sample unit")
    if classes is None:
        classes = sorted(set(m.tolist()) | set(r.tolist()), key=lambda c: (str(type(c)), c))
    cls = list(classes)
    in_map = (m[:, None] == np.asarray(cls, dtype=object)[None, :]) & d[:, None]  # (n, q)
    in_ref = (r[:, None] == np.asarray(cls, dtype=object)[None, :]) & d[:, None]
    return cls, d, in_map, in_ref


def _clusters(clusters: Labels, strata: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Cluster index of every element and the stratum of every cluster (one stratum per cluster)."""
    keys, index = np.unique(np.asarray([str(c) for c in clusters]), return_inverse=True)
    first = np.zeros(len(keys), dtype=np.int64)
    first[index[::-1]] = np.arange(len(index))[::-1]  # first element of each cluster
    of_cluster = strata[first]
    if (of_cluster[index] != strata).any():
        bad = keys[index[of_cluster[index] != strata][0]]
        raise InputError(f"cluster {bad}: its elements carry different strata; expected one stratum per PSU")
    return index, of_cluster


def stehman(
    strata: Labels,
    map_class: Labels,
    ref_class: Labels,
    stratum_size: Sizes,
    *,
    classes: Labels | None = None,
    stratum_units: Sizes | None = None,
    domain: Sequence[bool] | np.ndarray | None = None,
    names: Sequence[str] | None = None,
    clusters: Labels | None = None,
    elements_per_cluster: int = 100,
) -> AccuracyResult:
    """Stratified estimators for strata that differ from the map classes (Stehman 2014).

    One entry per sample unit in ``strata``, ``map_class`` and ``ref_class``.
    ``stratum_size[h]`` is the size of stratum h (area in ha, or pixel count): the
    ``area_ha`` estimates are totals in that unit. ``stratum_units[h]``, the number of
    population units, turns on the finite-population correction (1 - n_h/N_h).
    ``domain`` restricts every parameter to a subpopulation (ratio estimators with the
    domain indicator in the denominator); ``area_ha`` is then the class area inside it.

    ``clusters`` (one id per entry) makes it one-stage stratified cluster sampling: the
    entries are the labelled elements (10 m sub-pixels) of primary units (100 m PSUs)
    drawn at random within strata, ``stratum_size`` is the strata's PSU area. Every
    parameter is then a combined ratio of PSU totals y_u / x_u (y_u: share of the PSU's
    ``elements_per_cluster`` elements that agree, are mapped k, ...; x_u: its share in the
    population), and the variances are those of the ratio estimator with the PSU as the
    unit: sum_h A_h^2 s^2(y_u - R x_u) / n_h / X^2 (Stehman 2014, section 3.5; Cochran 1977, 6.9).
    """
    s = np.asarray(list(strata), dtype=object)
    cls, d, in_map, in_ref = _indicators(map_class, ref_class, classes, domain, len(s))
    q = len(cls)
    cells = (in_map[:, :, None] & in_ref[:, None, :]).reshape(len(s), q * q).astype(float)
    counts = cells.sum(axis=0).reshape(q, q).astype(np.int64)
    diag = (in_map & in_ref).astype(float)
    one = d[:, None].astype(float)
    in_map_f, in_ref_f = in_map.astype(float), in_ref.astype(float)
    if clusters is not None:
        if len(clusters) != len(s):
            raise InputError("clusters: expected one PSU id per sample unit")
        index, s = _clusters(clusters, s)

        def agg(v: np.ndarray) -> np.ndarray:  # element indicators -> PSU shares
            out = np.zeros((len(s), v.shape[1]))
            np.add.at(out, index, v)
            return out / elements_per_cluster

        diag, one, in_map_f, in_ref_f, cells = map(agg, (diag, one, in_map_f, in_ref_f, cells))
    design = _design(s, stratum_size, stratum_units)

    oa, v_oa = design.ratio(diag.sum(axis=1, keepdims=True), one)  # eq. 12 in ratio form
    ua, v_ua = design.ratio(diag, in_map_f)  # eqs. 18-19
    pa, v_pa = design.ratio(diag, in_ref_f)  # eqs. 22-23
    prop, v_prop = design.ratio(in_ref_f, np.repeat(one, q, axis=1))  # eq. 14, in the domain
    area, v_area = design.total(in_ref_f)  # class area (total) in the domain
    pij, _ = design.ratio(cells, np.repeat(one, q * q, axis=1))  # eq. 16
    units = lambda v: (v > 0).sum(axis=0).astype(float)  # noqa: E731 -- units (PSUs) behind a ratio
    n_map, n_ref, n_all = units(in_map_f), units(in_ref_f), float(units(one)[0])

    per_class = tuple(
        ClassEstimates(
            users_accuracy=Estimate(float(ua[k]), float(np.sqrt(v_ua[k])), n_map[k]),
            producers_accuracy=Estimate(float(pa[k]), float(np.sqrt(v_pa[k])), n_ref[k]),
            area_proportion=Estimate(float(prop[k]), float(np.sqrt(v_prop[k])), n_all),
            area_ha=Estimate(float(area[k]), float(np.sqrt(v_area[k]))),
        )
        for k in range(q)
    )
    return AccuracyResult(
        classes=tuple(str(c) for c in (names if names is not None else cls)),
        n=int(d.sum()),
        overall_accuracy=Estimate(float(oa[0]), float(np.sqrt(v_oa[0])), n_all),
        per_class=per_class,
        error_matrix=pij.reshape(q, q),
        counts=counts,
        mapped_area_ha=None,
        method="stehman2014" if clusters is None else "stehman2014-cluster",
    )


def oa_difference(
    strata: Labels,
    map_a: Labels,
    map_b: Labels,
    ref_class: Labels,
    stratum_size: Sizes,
    *,
    domain: Sequence[bool] | np.ndarray | None = None,
    clusters: Labels | None = None,
    elements_per_cluster: int = 100,
) -> Estimate:
    """OA(a) - OA(b) of two maps from one sample (paired), with its standard error.

    Both accuracies are ratios with the same denominator, so their difference is the ratio
    of the per-unit differences d_u = agree_a(u) - agree_b(u); its variance comes from the
    residuals d_u - D x_u within strata, which keeps the covariance of the two maps (a
    sample where both err at the same units gives a narrow interval). Normal 95 % interval.
    """
    s = np.asarray(list(strata), dtype=object)
    a = np.asarray(list(map_a), dtype=object)
    b = np.asarray(list(map_b), dtype=object)
    r = np.asarray(list(ref_class), dtype=object)
    if not (len(s) == len(a) == len(b) == len(r)) or len(s) == 0:
        raise InputError("sample: expected the same positive number of strata, labels of both maps and references")
    d = np.ones(len(s), dtype=bool) if domain is None else np.asarray(domain, dtype=bool)
    diff = (((a == r).astype(float) - (b == r).astype(float)) * d)[:, None]
    one = d[:, None].astype(float)
    if clusters is not None:
        index, s = _clusters(clusters, s)
        agg = np.zeros((len(s), 2))
        np.add.at(agg, index, np.hstack([diff, one]))
        diff, one = agg[:, :1] / elements_per_cluster, agg[:, 1:] / elements_per_cluster
    design = _design(s, stratum_size, None)
    est, var = design.ratio(diff, one)
    return Estimate(float(est[0]), float(np.sqrt(var[0])), float((one > 0).sum()))


def counts_matrix(
    map_class: Sequence[Hashable], ref_class: Sequence[Hashable], classes: Sequence[Hashable]
) -> np.ndarray:
    """Cross-tabulate sample units: counts[i, j] = units mapped as classes[i] with reference classes[j]."""
    index = {c: k for k, c in enumerate(classes)}
    try:
        i = np.array([index[c] for c in map_class], dtype=np.int64)
        j = np.array([index[c] for c in ref_class], dtype=np.int64)
    except KeyError as exc:
        raise InputError(f"class {exc.args[0]!r} is not one of the expected classes {list(classes)}") from None
    out = np.zeros((len(classes), len(classes)), dtype=np.int64)
    np.add.at(out, (i, j), 1)
    return out
