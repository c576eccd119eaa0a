"""100 m primary sampling units with 10 m sub-pixels: the design and the stratified cluster estimator."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from worldcover.cli.validate import app
from worldcover.validation.design import PSU_SAMPLE_COLUMNS, design_sample
from worldcover.validation.estimators import olofsson, stehman
from worldcover.validation.report import assess, sample_raster
from worldcover.validation.synthetic import PIXEL_DEG, banded_map, write_class_map
from worldcover.validation.tables import write_samples

runner = CliRunner()
WEST, NORTH = 20.0, 5.0  # Central Africa: land, no ocean


def test_cluster_estimator_by_hand():
    """Two strata of PSUs (areas 100 and 300 ha), 4 elements per PSU; one PSU is half outside the population."""
    # (psu, stratum, agreeing elements, elements in the population): y_u = agree/4, x_u = present/4
    psus = [("a", 1, 3, 4), ("b", 1, 2, 4), ("c", 2, 2, 2), ("d", 2, 1, 4)]
    psu, strata, ref = [], [], []
    for name, h, agree, present in psus:
        psu += [name] * present
        strata += [h] * present
        ref += [10] * agree + [20] * (present - agree)
    res = stehman(strata, [10] * len(ref), ref, {1: 100.0, 2: 300.0}, classes=[10, 20], clusters=psu,
                  elements_per_cluster=4)
    y = {"a": 0.75, "b": 0.5, "c": 0.5, "d": 0.25}
    x = {"a": 1.0, "b": 1.0, "c": 0.5, "d": 1.0}
    Y = 100 * (y["a"] + y["b"]) / 2 + 300 * (y["c"] + y["d"]) / 2  # 175
    X = 100 * (x["a"] + x["b"]) / 2 + 300 * (x["c"] + x["d"]) / 2  # 325
    R = Y / X
    e = {k: y[k] - R * x[k] for k in y}
    s2_1 = (e["a"] - e["b"]) ** 2 / 2  # sample variance of two residuals
    s2_2 = (e["c"] - e["d"]) ** 2 / 2
    var = (100**2 * s2_1 / 2 + 300**2 * s2_2 / 2) / X**2
    assert Y == 175 and X == 325
    assert res.overall_accuracy.estimate == pytest.approx(R, rel=1e-12)
    assert res.overall_accuracy.se == pytest.approx(math.sqrt(var), rel=1e-12)
    assert res.overall_accuracy.n_units == 4  # PSUs, not elements
    tree = res.per_class[0]
    assert tree.area_ha.estimate == pytest.approx(175.0, rel=1e-12)  # sum_h A_h * mean share labelled tree
    assert tree.users_accuracy.estimate == pytest.approx(R, rel=1e-12)  # everything is mapped tree
    assert tree.producers_accuracy.estimate == pytest.approx(1.0)
    assert res.n == 14 and res.counts.tolist() == [[8, 6], [0, 0]]


def test_one_element_clusters_are_the_unit_estimators():
    rng = np.random.default_rng(3)
    strata = np.repeat([10, 40, 80], [30, 20, 10])
    ref = np.where(rng.random(60) < 0.8, strata, 30)
    sizes = {10: 500.0, 40: 300.0, 80: 50.0}
    plain = stehman(strata, strata, ref, sizes, classes=[10, 30, 40, 80])
    clustered = stehman(strata, strata, ref, sizes, classes=[10, 30, 40, 80], clusters=np.arange(60),
                        elements_per_cluster=1)
    counts = np.zeros((4, 4))
    for m, r in zip(strata, ref, strict=True):
        counts[[10, 30, 40, 80].index(m), [10, 30, 40, 80].index(r)] += 1
    paper = olofsson(counts, [500.0, 0.0, 300.0, 50.0])
    for a, b in [(plain, clustered), (plain, paper)]:
        assert a.overall_accuracy.estimate == pytest.approx(b.overall_accuracy.estimate, rel=1e-12)
        assert a.overall_accuracy.se == pytest.approx(b.overall_accuracy.se, rel=1e-9)
        for ca, cb in zip(a.per_class, b.per_class, strict=True):
            assert ca.area_ha.estimate == pytest.approx(cb.area_ha.estimate, rel=1e-9)


@pytest.fixture(scope="module")
def psu_case(tmp_path_factory):
    root = tmp_path_factory.mktemp("psu")
    # band edges at 63 % etc. of 247 columns: PSUs straddle classes, and the raster edge is ragged
    data = banded_map((123, 247), [(10, 0.63), (40, 0.25), (30, 0.12)], nodata_rows=7)
    map_path = write_class_map(root / "map.tif", data, WEST, NORTH)
    design = design_sample(map_path, n=30, min_per_class=8, seed=4, window=64, land_mask=None, unit="100m")
    return root, map_path, data, design


def test_psu_design_lists_the_land_sub_pixels_of_each_drawn_psu(psu_case):
    _, map_path, data, design = psu_case
    s = design.samples
    assert list(s.columns) == list(PSU_SAMPLE_COLUMNS)
    assert s["psu"].nunique() == design.n == 30 and sorted(s["id"]) == list(range(1, len(s) + 1))
    assert s.groupby("stratum")["psu"].nunique().to_dict() == {st.code: st.n for st in design.strata}
    rows = np.floor((NORTH - s["lat"].to_numpy()) / PIXEL_DEG).astype(int)
    cols = np.floor((s["lon"].to_numpy() - WEST) / PIXEL_DEG).astype(int)
    assert np.array_equal(data[rows, cols], s["map_class"].to_numpy())  # sub-pixel labels are the map's
    assert np.array_equal(sample_raster(map_path, s["lon"], s["lat"]), s["map_class"].to_numpy())
    for _, g in s.groupby("psu"):
        r, c = rows[g.index], cols[g.index]
        assert len(set(r // 10)) == 1 and len(set(c // 10)) == 1  # one 10 x 10 block on the PSU grid
        block = data[r[0] // 10 * 10:r[0] // 10 * 10 + 10, c[0] // 10 * 10:c[0] // 10 * 10 + 10]
        assert len(g) == int((block != 0).sum())  # every land sub-pixel, nodata left out
        values, counts = np.unique(block[block != 0], return_counts=True)
        assert g["stratum"].iloc[0] == values[np.argmax(counts)]  # stratum = majority class
    strata = {st.code: st for st in design.strata}
    psu_total = sum(st.units for st in design.strata)
    assert psu_total == (-(-116 // 10)) * (-(-247 // 10))  # every PSU with land (rows 0-115 have data)
    assert sum(st.weight for st in strata.values()) == pytest.approx(1.0)


def test_psu_report_uses_the_cluster_estimator(psu_case, tmp_path):
    _, map_path, data, design = psu_case
    s = design.samples.copy()
    ref = s["map_class"].to_numpy().copy()
    ref[s["psu"].to_numpy() % 4 == 0] = 20  # whole PSUs wrong: errors are clustered
    s["reference_class"] = ref
    write_samples(s, tmp_path / "labelled.csv")
    a = assess(map_path, tmp_path / "labelled.csv", land_mask=None)
    assert a.unit == "100m" and a.result.method == "stehman2014-cluster"
    assert a.metrics["metadata"]["n_psu"] == 30 and a.result.n == len(s)
    direct = stehman(s["stratum"], s["map_class"], ref, {d["code"]: d["area_ha"] for d in a.design},
                     classes=a.codes, clusters=s["psu"], elements_per_cluster=100)
    assert a.result.overall_accuracy.estimate == pytest.approx(direct.overall_accuracy.estimate, rel=1e-12)
    # clustered errors: the PSU-level SE is larger than treating the sub-pixels as independent units
    naive = stehman(s["stratum"], s["map_class"], ref, {d["code"]: d["area_ha"] for d in a.design}, classes=a.codes)
    assert a.result.overall_accuracy.se > 2 * naive.overall_accuracy.se
    assert {d["code"]: d["n_labelled"] for d in a.design} == {st.code: st.n for st in design.strata}


def test_psu_cli_design_then_report(psu_case, tmp_path):
    _, map_path, _, _ = psu_case
    out = tmp_path / "samples.csv"
    result = runner.invoke(app, ["design", "--map", str(map_path), "--unit", "100m", "--n", "20",
                                 "--min-per-class", "5", "--land-mask", "none", "--out", str(out), "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["unit"] == "100m"
    df = pd.read_csv(out)
    df["reference_class"] = df["map_class"]
    df.to_csv(tmp_path / "labelled.csv", index=False)
    result = runner.invoke(app, ["report", "--map", str(map_path), "--reference", str(tmp_path / "labelled.csv"),
                                 "--land-mask", "none", "--out", str(tmp_path / "out")])
    assert result.exit_code == 0, result.output
    page = (tmp_path / "out" / "report.html").read_text()
    assert "100 m primary sampling units" in page and "sub-pixels labelled" in page
    result = runner.invoke(app, ["design", "--map", str(map_path), "--unit", "1km", "--out", str(out)])
    assert result.exit_code == 2 and "sampling unit '1km'" in result.stderr

