"""Estimators against the published worked examples, and against each other and brute force.

Olofsson et al. (2014), RSE 148:42-57, section 5 (tables 8-9 and the estimates printed on
p. 54); Stehman (2014), IJRS 35(13):4923-4939, the numerical example of section 4 (its
table 2 data; estimates printed on pp. 4932-4936). Each printed number is compared at the
precision it was printed with.
"""

from __future__ import annotations

import math
import statistics

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.blas_kernels import outputs_per_kernel, x86_only
from worldcover.errors import InputError
from worldcover.validation.estimators import counts_matrix, olofsson, stehman

# ---------------------------------------------------------------------------------------------
# Olofsson et al. 2014, section 5
# ---------------------------------------------------------------------------------------------

CLASSES = ["Deforestation", "Forest gain", "Stable forest", "Stable non-forest"]
COUNTS = [[66, 0, 5, 4], [0, 55, 8, 12], [1, 0, 153, 11], [2, 1, 9, 313]]  # table 8 (map rows)
PIXELS = [200_000, 150_000, 3_200_000, 6_450_000]
PIXEL_HA = 0.09  # 30 m Landsat pixels


@pytest.fixture(scope="module")
def olofsson_example():
    return olofsson(COUNTS, [p * PIXEL_HA for p in PIXELS], CLASSES)


def _f(x: float, decimals: int) -> str:
    return f"{x:,.{decimals}f}"


def test_table9_error_matrix_of_area_proportions(olofsson_example):
    printed = [
        ["0.0176", "0.0000", "0.0013", "0.0011"],
        ["0.0000", "0.0110", "0.0016", "0.0024"],
        ["0.0019", "0.0000", "0.2967", "0.0213"],
        ["0.0040", "0.0020", "0.0179", "0.6212"],
    ]
    ours = [[_f(v, 4) for v in row] for row in olofsson_example.error_matrix]
    assert ours == printed


def test_overall_accuracy_095_pm_002(olofsson_example):
    oa = olofsson_example.overall_accuracy
    assert (_f(oa.estimate, 2), _f(oa.ci95_halfwidth, 2)) == ("0.95", "0.02")


@pytest.mark.parametrize(
    "name, ua, ua_ci",
    [("Deforestation", "0.88", "0.07"), ("Forest gain", "0.73", "0.10"),
     ("Stable forest", "0.93", "0.04"), ("Stable non-forest", "0.96", "0.02")],
)
def test_users_accuracy_as_printed(olofsson_example, name, ua, ua_ci):
    u = olofsson_example[name].users_accuracy
    assert (_f(u.estimate, 2), _f(u.ci95_halfwidth, 2)) == (ua, ua_ci)


@pytest.mark.parametrize(
    "name, pa, pa_ci",
    [("Deforestation", "0.75", "0.21"), ("Forest gain", "0.85", None),
     ("Stable forest", "0.93", "0.03"), ("Stable non-forest", "0.96", None)],
)
def test_producers_accuracy_as_printed(olofsson_example, name, pa, pa_ci):
    p = olofsson_example[name].producers_accuracy
    assert _f(p.estimate, 2) == pa
    if pa_ci is not None:
        assert _f(p.ci95_halfwidth, 2) == pa_ci


def test_producers_ci_misprints_forest_gain_and_stable_non_forest(olofsson_example):
    """The paper prints +-0.23 (forest gain) and +-0.01 (stable non-forest); its eq. 7 gives 0.25 and 0.02.

    The eq. 7 value is confirmed by an independent code path: Stehman's ratio estimator of
    producer's accuracy, algebraically the same variance when strata = map classes.
    """
    fg = olofsson_example["Forest gain"].producers_accuracy
    snf = olofsson_example["Stable non-forest"].producers_accuracy
    assert _f(fg.ci95_halfwidth, 2) == "0.25" != "0.23"
    assert _f(snf.ci95_halfwidth, 2) == "0.02" != "0.01"
    s, m, r = _expand(np.array(COUNTS), CLASSES)
    other = stehman(s, m, r, dict(zip(CLASSES, [p * PIXEL_HA for p in PIXELS], strict=True)), classes=CLASSES)
    assert other["Forest gain"].producers_accuracy.se == pytest.approx(fg.se, rel=1e-12)
    assert other["Stable non-forest"].producers_accuracy.se == pytest.approx(snf.se, rel=1e-12)


@pytest.mark.parametrize(
    "name, area, ci",
    [("Deforestation", "21,158", "6,158"), ("Forest gain", "11,686", "3,756"),
     ("Stable forest", "285,770", "15,510"), ("Stable non-forest", "581,386", "16,282")],
)
def test_area_estimates_in_hectares_as_printed(olofsson_example, name, area, ci):
    a = olofsson_example[name].area_ha
    assert (_f(a.estimate, 0), _f(a.ci95_halfwidth, 0)) == (area, ci)


def test_deforestation_area_in_pixels_235086_pm_68418():
    res = olofsson(COUNTS, PIXELS, CLASSES)  # mapped "area" in pixels: estimates in pixels
    a = res["Deforestation"].area_ha
    assert (_f(a.estimate, 0), _f(a.ci95_halfwidth, 0)) == ("235,086", "68,418")


def test_json_shape_of_result(olofsson_example):
    d = olofsson_example.to_dict()
    assert list(d) == ["n", "overall_accuracy", "classes", "error_matrix_proportions"]
    assert d["n"] == 640
    assert list(d["classes"]) == CLASSES
    for c in d["classes"].values():
        assert list(c) == ["users_accuracy", "producers_accuracy", "area_proportion", "area_ha"]
        for v in c.values():
            assert list(v) == ["estimate", "se", "ci95_halfwidth"]
            assert v["ci95_halfwidth"] == pytest.approx(1.96 * v["se"])
    assert np.array(d["error_matrix_proportions"]).sum() == pytest.approx(1.0)


# ---------------------------------------------------------------------------------------------
# Stehman 2014, numerical example (strata 1-4 differ from map classes A-D)
# ---------------------------------------------------------------------------------------------

ST_STRATA = ["1"] * 10 + ["2"] * 10 + ["3"] * 10 + ["4"] * 10
ST_MAP = list("AAAAAAABBB" "ABBBBBBBBB" "BBCCCCCCBB" "DDDDDDDDDD")
ST_REF = list("AAAAACBABC" "ABBBBBAABB" "CCCCCDDBBA" "DDDDDDDCCB")
ST_SIZE = {"1": 40_000, "2": 30_000, "3": 20_000, "4": 10_000}


@pytest.fixture(scope="module")
def stehman_example():
    return stehman(ST_STRATA, ST_MAP, ST_REF, ST_SIZE, stratum_units=ST_SIZE, classes=list("ABCD"))


def test_stehman_printed_estimates(stehman_example):
    e = stehman_example
    assert _f(e["A"].area_proportion.estimate, 2) == "0.35"  # p. 4932
    assert _f(e["C"].area_proportion.estimate, 2) == "0.20"
    assert _f(e.overall_accuracy.estimate, 2) == "0.63"
    assert _f(e["B"].users_accuracy.estimate, 3) == "0.574"  # p. 4934
    assert _f(e["B"].producers_accuracy.estimate, 3) == "0.794"
    assert _f(e.error_matrix[1, 2], 2) == "0.08"  # p_23: map B, reference C (p. 4935)


def test_stehman_printed_standard_errors(stehman_example):
    e = stehman_example
    assert _f(e["A"].area_proportion.se, 3) == "0.082"  # p. 4935
    assert _f(e["C"].area_proportion.se, 3) == "0.064"
    assert _f(e.overall_accuracy.se, 3) == "0.085"  # p. 4936
    assert _f(e["B"].users_accuracy.se, 3) == "0.125"


def test_stehman_producers_se_misprint_is_a_dropped_stratum_term(stehman_example):
    """The paper prints SE(P_B) = 0.114; eq. 28 gives 0.117. Dropping stratum 4's s2_x (0.1 in
    the paper's own table 3) from the sum reproduces 0.114 exactly."""
    se = stehman_example["B"].producers_accuracy.se
    assert _f(se, 3) == "0.117"
    assert _f(_brute_ratio_se_pa_b(drop_sx_in="4"), 3) == "0.114"
    assert _brute_ratio_se_pa_b(drop_sx_in=None) == pytest.approx(se, rel=1e-6)


def _brute_ratio_se_pa_b(drop_sx_in: str | None) -> float:
    """Textbook eq. 28 for P_B with loops: (1/X^2) sum N_h^2 (1-n_h/N_h)(s2_y + R^2 s2_x - 2R s_xy)/n_h."""
    rows = list(zip(ST_STRATA, ST_MAP, ST_REF, strict=True))
    y_all = {h: [float(m == "B" and r == "B") for s, m, r in rows if s == h] for h in ST_SIZE}
    x_all = {h: [float(r == "B") for s, m, r in rows if s == h] for h in ST_SIZE}
    Y = sum(ST_SIZE[h] * statistics.fmean(y_all[h]) for h in ST_SIZE)
    X = sum(ST_SIZE[h] * statistics.fmean(x_all[h]) for h in ST_SIZE)
    R = Y / X
    v = 0.0
    for h, N in ST_SIZE.items():
        y, x = y_all[h], x_all[h]
        n = len(y)
        s2x = 0.0 if h == drop_sx_in else statistics.variance(x)
        v += N**2 * (1 - n / N) * (statistics.variance(y) + R**2 * s2x - 2 * R * statistics.covariance(x, y)) / n
    return math.sqrt(v) / X


# ---------------------------------------------------------------------------------------------
# properties: Stehman == Olofsson when strata are map classes; Stehman == brute force
# ---------------------------------------------------------------------------------------------


def _expand(counts: np.ndarray, names: list) -> tuple[list, list, list]:
    """One record per sample unit of a count matrix: (stratum = map class, map class, reference class)."""
    i, j = np.nonzero(counts)
    reps = counts[i, j]
    m = np.repeat(np.array(names, dtype=object)[i], reps).tolist()
    r = np.repeat(np.array(names, dtype=object)[j], reps).tolist()
    return list(m), m, r


@st.composite
def count_tables(draw):
    q = draw(st.integers(2, 5))
    counts = np.array(draw(st.lists(st.lists(st.integers(0, 12), min_size=q, max_size=q), min_size=q, max_size=q)))
    counts[np.arange(q), np.arange(q)] += 2  # every stratum has >= 2 units: variances exist
    areas = draw(st.lists(st.floats(1.0, 1e6), min_size=q, max_size=q))
    return counts, np.array(areas)


def _close(a: float, b: float) -> bool:
    return (math.isnan(a) and math.isnan(b)) or a == pytest.approx(b, rel=1e-9, abs=1e-12)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(count_tables())
def test_stehman_equals_olofsson_when_strata_are_map_classes(table):
    counts, areas = table
    names = [f"c{k}" for k in range(len(areas))]
    a = olofsson(counts, areas, names)
    s, m, r = _expand(counts, names)
    b = stehman(s, m, r, dict(zip(names, areas, strict=True)), classes=names)
    assert _close(a.overall_accuracy.estimate, b.overall_accuracy.estimate)
    assert _close(a.overall_accuracy.se, b.overall_accuracy.se)
    for x, y in zip(a.per_class, b.per_class, strict=True):
        for attr in ("users_accuracy", "producers_accuracy", "area_proportion", "area_ha"):
            ex, ey = getattr(x, attr), getattr(y, attr)
            assert _close(ex.estimate, ey.estimate), attr
            assert _close(ex.se, ey.se), attr
    np.testing.assert_allclose(a.error_matrix, b.error_matrix, rtol=1e-9, atol=1e-15)
    assert (a.counts == b.counts).all()


@st.composite
def unit_samples(draw):
    """A stratified sample whose strata (S0..) differ from the map classes (a, b, c), with a domain."""
    n_strata = draw(st.integers(1, 4))
    per = draw(st.lists(st.integers(2, 9), min_size=n_strata, max_size=n_strata))
    strata = [f"S{h}" for h, k in enumerate(per) for _ in range(k)]
    n = len(strata)
    cls = st.sampled_from("abc")
    m = draw(st.lists(cls, min_size=n, max_size=n))
    r = draw(st.lists(cls, min_size=n, max_size=n))
    domain = draw(st.lists(st.booleans(), min_size=n, max_size=n))
    sizes = {f"S{h}": draw(st.integers(k + 1, 10_000)) for h, k in enumerate(per)}
    return strata, m, r, domain, sizes


def _brute(strata, y, x, sizes, fpc=True):
    """Combined ratio estimator and its variance by explicit per-stratum loops (textbook form)."""
    Y = sum(N * statistics.fmean([yy for s, yy in zip(strata, y, strict=True) if s == h]) for h, N in sizes.items())
    X = sum(N * statistics.fmean([xx for s, xx in zip(strata, x, strict=True) if s == h]) for h, N in sizes.items())
    if X == 0:
        return math.nan, math.nan
    R = Y / X
    v = 0.0
    for h, N in sizes.items():
        yh = [yy for s, yy in zip(strata, y, strict=True) if s == h]
        xh = [xx for s, xx in zip(strata, x, strict=True) if s == h]
        n = len(yh)
        f = n / N if fpc else 0.0
        v += N**2 * (1 - f) * (statistics.variance(yh) + R * R * statistics.variance(xh)
                               - 2 * R * statistics.covariance(xh, yh)) / n
    return R, v / X**2


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(unit_samples())
def test_stehman_matches_brute_force_with_domains(sample):
    strata, m, r, domain, sizes = sample
    res = stehman(strata, m, r, sizes, classes=list("abc"), stratum_units=sizes, domain=domain)
    d = [float(v) for v in domain]
    oa, v_oa = _brute(strata, [dd * (mm == rr) for dd, mm, rr in zip(d, m, r, strict=True)], d, sizes)
    assert _close(res.overall_accuracy.estimate, oa)
    assert math.isnan(v_oa) or res.overall_accuracy.se == pytest.approx(math.sqrt(max(v_oa, 0)), rel=1e-7, abs=1e-12)
    for k, c in enumerate("abc"):
        y = [dd * (mm == c) * (rr == c) for dd, mm, rr in zip(d, m, r, strict=True)]
        ua, v_ua = _brute(strata, y, [dd * (mm == c) for dd, mm in zip(d, m, strict=True)], sizes)
        pa, v_pa = _brute(strata, y, [dd * (rr == c) for dd, rr in zip(d, r, strict=True)], sizes)
        got = res.per_class[k]
        assert _close(got.users_accuracy.estimate, ua)
        assert _close(got.producers_accuracy.estimate, pa)
        if not math.isnan(ua):
            assert got.users_accuracy.se == pytest.approx(math.sqrt(max(v_ua, 0)), rel=1e-7, abs=1e-12)
        if not math.isnan(pa):
            assert got.producers_accuracy.se == pytest.approx(math.sqrt(max(v_pa, 0)), rel=1e-7, abs=1e-12)


# ---------------------------------------------------------------------------------------------
# edge cases
# ---------------------------------------------------------------------------------------------


def test_single_unit_stratum_gives_undefined_se_as_null():
    res = olofsson([[1, 0], [1, 5]], [10.0, 90.0], ["a", "b"])
    d = res.to_dict()
    assert d["classes"]["a"]["users_accuracy"] == {"estimate": 1.0, "se": None, "ci95_halfwidth": None}
    assert d["overall_accuracy"]["se"] is None
    assert d["overall_accuracy"]["estimate"] == pytest.approx(0.1 + 0.9 * 5 / 6)


def test_reference_only_class_has_zero_mapped_area_and_undefined_users_accuracy():
    res = olofsson([[8, 2], [0, 0]], [100.0, 0.0], ["mapped", "reference only"])
    assert math.isnan(res["reference only"].users_accuracy.estimate)
    assert res["reference only"].area_proportion.estimate == pytest.approx(0.2)
    assert res["reference only"].producers_accuracy.estimate == 0.0


@pytest.mark.parametrize(
    "counts, areas, message",
    [
        ([[1, 0], [0, 0]], [1.0, 1.0], "stratum 'b' has mapped area but no sample units"),
        ([[1, 0], [0, 3]], [1.0, 0.0], "class 'b' has sample units mapped as it but no mapped area"),
        ([[1, -1], [0, 3]], [1.0, 1.0], "non-negative whole number"),
        ([[1, 0.5], [0, 3]], [1.0, 1.0], "non-negative whole number"),
        ([[1, 0, 0], [0, 3, 0]], [1.0, 1.0], "square"),
        ([[1, 0], [0, 3]], [1.0, -1.0], "non-negative"),
    ],
)
def test_olofsson_rejects_bad_input(counts, areas, message):
    with pytest.raises(InputError, match=message):
        olofsson(counts, areas, ["a", "b"])


def test_counts_matrix_cross_tabulates():
    m = counts_matrix([10, 10, 40, 40, 40], [10, 40, 40, 40, 10], [10, 40])
    assert m.tolist() == [[1, 1], [1, 2]]
    with pytest.raises(InputError, match="not one of the expected classes"):
        counts_matrix([10], [30], [10, 40])


_SAME_BITS_SCRIPT = """
import json
import numpy as np
from worldcover.grid import Tile
from worldcover.mosaic.areas import strip_class_area_m2
from worldcover.validation.estimators import stehman
rng = np.random.default_rng(7)
n = 400
strata = rng.integers(0, 11, n)
mapped = np.where(rng.random(n) < 0.8, strata, rng.integers(0, 11, n))
ref = np.where(rng.random(n) < 0.7, mapped, rng.integers(0, 11, n))
sizes = {int(h): float(a) for h, a in enumerate(rng.random(11) * 1e5 + 1)}
d = stehman(strata.tolist(), mapped.tolist(), ref.tolist(), sizes, domain=rng.random(n) < 0.6).to_dict()
areas = strip_class_area_m2(rng.integers(0, 500, (300, 12)), Tile(45, 3), 1000)
print(json.dumps({"stehman": d, "areas": areas.tolist()}))
"""


@x86_only
def test_estimates_and_areas_have_the_same_bits_whatever_blas_kernel():
    """A pod and the host on one machine chose different OpenBLAS kernels (SkylakeX vs Haswell); the
    report's area estimates then differed in the last digit. Sums no longer go through BLAS."""
    import json

    runs = [json.loads(out) for out in outputs_per_kernel(_SAME_BITS_SCRIPT)]
    assert runs[0] == runs[1]  # every float compared exactly (json keeps all 17 digits)
    assert runs[0]["stehman"]["overall_accuracy"]["estimate"] > 0.5
