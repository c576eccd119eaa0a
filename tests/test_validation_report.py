"""``validate report``: HTML with embedded plots, metrics.json, error_matrix.csv, continents, comparison."""

from __future__ import annotations

import base64
import json
import re

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from worldcover.area import class_areas
from worldcover.cli.validate import app
from worldcover.validation.design import design_sample
from worldcover.validation.report import build_report
from worldcover.validation.synthetic import banded_map, write_class_map
from worldcover.validation.tables import estimate_from_tables, write_samples

runner = CliRunner()
WEST, NORTH = 10.0, 36.0025  # the top 30 rows (lat > 36) are Europe, the rest Africa (stages.continent)


@pytest.fixture(scope="module")
def case(tmp_path_factory):
    """A map across the Europe/Africa line, a second map that errs more, and a labelled sample."""
    root = tmp_path_factory.mktemp("report")
    data = banded_map((1200, 900), [(10, 0.5), (40, 0.3), (30, 0.15), (95, 0.05)], nodata_rows=20)
    map_path = write_class_map(root / "map.tif", data, WEST, NORTH)
    worse = data.copy()
    worse[:, 300:450][worse[:, 300:450] == 10] = 20  # the second map calls a tree band shrubland
    compare_path = write_class_map(root / "stage2.tif", worse, WEST, NORTH)
    design = design_sample(map_path, n=400, min_per_class=40, seed=11, window=512)
    samples = design.samples.copy()
    rng = np.random.default_rng(5)
    ref = samples["map_class"].to_numpy().copy()
    flip = rng.random(len(ref)) < 0.15
    ref[flip] = rng.choice([10, 20, 30, 40], int(flip.sum()))
    labels = ref.astype(object)
    labels[:3] = ["Tree cover", "cropland", "Grassland"]  # names work too (any case)
    ref[:3] = [10, 40, 30]
    samples["reference_class"] = labels
    write_samples(samples, root / "labelled.csv")
    return root, map_path, compare_path, samples.assign(ref=ref)


@pytest.fixture(scope="module")
def report(case):
    root, map_path, compare_path, _ = case
    result = runner.invoke(app, ["report", "--map", str(map_path), "--reference", str(root / "labelled.csv"),
                                 "--out", str(root / "out"), "--compare", str(compare_path),
                                 "--title", "Stage 1 <test>"])
    assert result.exit_code == 0, result.output
    return root / "out"


def test_report_html_embeds_png_plots_and_reference_levels(report):
    page = (report / "report.html").read_text()
    assert page.startswith("<!DOCTYPE html>") and page.rstrip().endswith("</html>")
    images = re.findall(r'<img alt="[^"]*" src="data:image/png;base64,([A-Za-z0-9+/=]+)">', page)
    assert len(images) == 5  # OA, UA/PA, areas, error matrix, sample locations
    assert all(base64.b64decode(b).startswith(b"\x89PNG\r\n\x1a\n") for b in images)
    for level in ("74.4 %", "76.7 %", "75 %"):
        assert level in page
    assert "Stage 1 &lt;test&gt;" in page and "<test>" not in page  # escaped
    assert "http" not in page.replace("http-equiv", "")  # standalone: nothing fetched


def test_report_per_continent_table(report):
    page = (report / "report.html").read_text()
    table = page[page.index('<table class="continents">'):]
    table = table[: table.index("</table>")]
    assert "<td>Africa</td>" in table and "<td>Europe</td>" in table
    assert "too few samples (n = " in table
    metrics = json.loads((report / "metrics.json").read_text())
    africa, europe = metrics["per_continent"]["Africa"], metrics["per_continent"]["Europe"]
    assert africa["status"] == "estimated" and africa["n"] >= 30
    assert europe["status"] == "too few samples" and 0 < europe["n"] < 30
    assert africa["n"] + europe["n"] == metrics["n"] == 400
    assert africa["overall_accuracy"]["estimate"] == pytest.approx(metrics["overall_accuracy"]["estimate"], abs=0.05)


def test_metrics_json_is_the_estimate_shape_plus_extras(report, case):
    _, map_path, _, samples = case
    m = json.loads((report / "metrics.json").read_text())
    assert list(m)[:4] == ["n", "overall_accuracy", "classes", "error_matrix_proportions"]
    assert {"per_continent", "metadata", "comparison"} <= set(m)
    assert m["metadata"]["reference_levels"] == {
        "WorldCover v100 (2020): 74.4 %": 0.744, "WorldCover v200 (2021): 76.7 %": 0.767, "requirement: 75 %": 0.75,
    }
    assert "Shrubland" in m["classes"]  # a reference-only class is estimated (area), not mapped
    # mapped areas come from the map: the estimated proportions are weighted by them
    mapped = class_areas(map_path)
    total = sum(a for _, a in mapped.values())
    p = np.array(m["error_matrix_proportions"])
    assert p.sum() == pytest.approx(1.0)
    assert p[0].sum() == pytest.approx(mapped[10][1] / total)
    # the unweighted sample OA differs from the area-weighted estimate: weights are applied
    assert m["overall_accuracy"]["estimate"] != pytest.approx((samples["ref"] == samples["map_class"]).mean(), abs=1e-6)


def test_error_matrix_csv_round_trips_through_estimate(report):
    again = estimate_from_tables(report / "error_matrix.csv", report / "mapped_area.csv").to_dict()
    m = json.loads((report / "metrics.json").read_text())
    assert again["n"] == m["n"]
    assert again["overall_accuracy"]["estimate"] == pytest.approx(m["overall_accuracy"]["estimate"], rel=1e-9)
    assert again["overall_accuracy"]["se"] == pytest.approx(m["overall_accuracy"]["se"], rel=1e-9)
    counts = pd.read_csv(report / "error_matrix.csv", index_col=0)
    assert int(counts.to_numpy().sum()) == 400


def test_comparison_of_two_maps(report):
    page = (report / "report.html").read_text()
    assert '<table class="comparison">' in page and "stage2.tif" in page
    m = json.loads((report / "metrics.json").read_text())["comparison"]
    assert m["n_common"] == 400
    # on the common domain the first map's Stehman estimate is its Olofsson estimate
    main = json.loads((report / "metrics.json").read_text())["overall_accuracy"]["estimate"]
    assert m["map"]["overall_accuracy"]["estimate"] == pytest.approx(main, rel=1e-12)
    assert m["compare"]["overall_accuracy"]["estimate"] < m["map"]["overall_accuracy"]["estimate"]


def test_report_rejects_samples_from_another_map_and_bad_labels(case, tmp_path):
    root, map_path, compare_path, samples = case
    wrong = pd.read_csv(root / "labelled.csv")
    wrong.loc[0, "map_class"] = 95 if wrong.loc[0, "map_class"] != 95 else 10
    wrong.to_csv(tmp_path / "wrong.csv", index=False)
    result = runner.invoke(app, ["report", "--map", str(map_path), "--reference", str(tmp_path / "wrong.csv"),
                                 "--out", str(tmp_path / "out")])
    assert result.exit_code == 2 and "map_class differs" in result.stderr
    bad = pd.read_csv(root / "labelled.csv")
    bad["reference_class"] = bad["reference_class"].astype(object)
    bad.loc[3, "reference_class"] = "Forest-ish"
    bad.loc[4, "reference_class"] = ""
    bad.to_csv(tmp_path / "bad.csv", index=False)
    result = runner.invoke(app, ["report", "--map", str(map_path), "--reference", str(tmp_path / "bad.csv"),
                                 "--out", str(tmp_path / "out")])
    assert result.exit_code == 2 and "1 sample(s) have no reference_class" in result.stderr
    bad.loc[4, "reference_class"] = "10"
    bad.to_csv(tmp_path / "bad.csv", index=False)
    result = runner.invoke(app, ["report", "--map", str(map_path), "--reference", str(tmp_path / "bad.csv"),
                                 "--out", str(tmp_path / "out")])
    assert result.exit_code == 2 and "'Forest-ish'" in result.stderr
    assert result.stderr.strip().count("\n") == 0
    assert not (tmp_path / "out").exists()  # nothing half-written


def test_perfect_labels_give_overall_accuracy_one(case, tmp_path):
    root, map_path, _, _ = case
    df = pd.read_csv(root / "labelled.csv")
    df["reference_class"] = df["map_class"]
    df.to_csv(tmp_path / "perfect.csv", index=False)
    rep = build_report(map_path, tmp_path / "perfect.csv", tmp_path / "out")
    oa = rep.metrics["overall_accuracy"]
    assert oa["estimate"] == pytest.approx(1.0) and oa["se"] == 0.0
    for c in rep.metrics["classes"].values():
        assert c["area_ha"]["se"] == pytest.approx(0.0, abs=1e-9)
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [
        "error_matrix.csv", "mapped_area.csv", "metrics.json", "report.html"]
    # no errors in the sample, yet the report's intervals keep a width (Wilson, the stratum's n units)
    n = int((df["map_class"] == 95).sum())
    page = (tmp_path / "out" / "report.html").read_text()
    assert f"100.0 % ({100 * n / (n + 1.96**2):.1f}–100.0)" in page and "Wilson score interval" in page


# --- issue 16: design table, totals, intervals that do not collapse, the paired OA difference -----------------


def test_design_table_and_excluded_areas_in_the_report(report, case):
    _, map_path, _, samples = case
    page = (report / "report.html").read_text()
    table = page[page.index('<table class="design">'):]
    table = table[: table.index("</table>")]
    for text in ("<td>Tree cover</td>", "<td>land (population)</td>", "<td>ocean (excluded)</td>",
                 "<td>nodata (excluded; the rest of the raster extent)</td>", "weight W_h", "n_h (design)"):
        assert text in table
    m = json.loads((report / "metrics.json").read_text())
    design = {d["code"]: d for d in m["design"]}
    assert sum(d["weight"] for d in design.values()) == pytest.approx(1.0)
    assert {c: d["n_labelled"] for c, d in design.items()} == samples.groupby("map_class").size().to_dict()
    assert {c: d["n_design"] for c, d in design.items()} == samples.groupby("map_class")["stratum_n"].first().to_dict()
    # the 20 nodata rows of the map are reported apart, not in the strata
    mapped = class_areas(map_path)
    assert m["excluded"]["land_area_ha"] == pytest.approx(sum(a for _, a in mapped.values()), rel=1e-9)
    assert m["excluded"]["nodata_area_ha"] > 0 and m["excluded"]["ocean_area_ha"] == 0


def test_count_matrix_has_totals(report):
    page = (report / "report.html").read_text()
    table = page[page.index('<table class="counts">'):]
    table = table[: table.index("</table>")]
    assert "<th>total</th>" in table
    last = re.findall(r"<tr>(.*?)</tr>", table)[-1]
    cells = re.findall(r"<td>(.*?)</td>", last)
    assert cells[0] == "total" and cells[-1] == "400"
    assert sum(int(c) for c in cells[1:-1]) == 400


def test_wilson_interval_known_values():
    from worldcover.validation.estimators import Estimate, wilson

    z2 = 1.96**2
    assert wilson(1.0, 50) == pytest.approx((50 / (50 + z2), 1.0))  # lower bound n / (n + z^2)
    assert wilson(0.0, 50) == pytest.approx((0.0, z2 / (50 + z2)))
    assert wilson(0.5, 100) == pytest.approx((0.40383, 0.59617), abs=1e-5)
    # a design-based estimate: effective n = p(1-p)/SE^2; the units behind it where the SE is 0
    assert Estimate(0.8, 0.04, 400).ci95("wilson") == pytest.approx(wilson(0.8, 100))
    assert Estimate(0.8, 0.004, 400).ci95("wilson") == pytest.approx(wilson(0.8, 10000))
    assert Estimate(0.8, 0.0, 400).ci95("wilson") == pytest.approx(wilson(0.8, 400))
    assert Estimate(1.0, 0.0, 40).ci95("normal") == (1.0, 1.0)


def test_a_class_without_errors_has_an_interval_below_100(case, tmp_path):
    """Wilson keeps a width at 100 % (the stratum's n units); the papers' +-1.96 SE collapses to [1, 1]."""
    from worldcover.validation.report import assess

    root, map_path, _, _ = case
    df = pd.read_csv(root / "labelled.csv")
    df["reference_class"] = df["map_class"]
    df.to_csv(tmp_path / "perfect.csv", index=False)
    n = int((df["map_class"] == 95).sum())
    wilson = assess(map_path, tmp_path / "perfect.csv").metrics["classes"]["Mangroves"]["users_accuracy"]
    assert wilson["estimate"] == 1.0 and wilson["se"] == 0.0
    assert wilson["ci95"] == pytest.approx([n / (n + 1.96**2), 1.0])
    normal = assess(map_path, tmp_path / "perfect.csv", interval="normal")
    assert normal.metrics["classes"]["Mangroves"]["users_accuracy"]["ci95"] == [1.0, 1.0]


def test_compare_reports_the_paired_oa_difference(report, case):
    m = json.loads((report / "metrics.json").read_text())["comparison"]
    diff = m["oa_difference"]
    a, b = m["map"]["overall_accuracy"]["estimate"], m["compare"]["overall_accuracy"]["estimate"]
    assert diff["estimate"] == pytest.approx(a - b, rel=1e-9, abs=1e-12)
    assert diff["ci95"][0] < diff["estimate"] < diff["ci95"][1]
    # paired: both maps err at the same units outside one band, so the covariance is positive and the
    # difference is more precise than two independent samples would make it
    se_a, se_b = m["map"]["overall_accuracy"]["se"], m["compare"]["overall_accuracy"]["se"]
    assert 0 < diff["se"] < 0.75 * (se_a**2 + se_b**2) ** 0.5
    page = (report / "report.html").read_text()
    line = re.search(r'<p class="compare-line">(.*?)</p>', page).group(1)
    assert "map.tif" in line and "stage2.tif" in line and "percentage points" in line and "95 % CI" in line


def test_compare_a_map_with_itself_gives_zero_difference(case, tmp_path):
    root, map_path, _, _ = case
    from worldcover.validation.report import assess

    a = assess(map_path, root / "labelled.csv", compare_path=map_path)
    diff = a.comparison["difference"]
    assert diff.estimate == 0.0 and diff.se == 0.0
    assert "no significant difference" in a.comparison["line"] and "(the same file)" in a.comparison["line"]
    from worldcover.validation.report import _distinct_labels

    assert _distinct_labels(root / "a" / "2021" / "m.vrt", root / "b" / "2021" / "m.vrt") == ("a/2021/m.vrt",
                                                                                             "b/2021/m.vrt")


def test_sample_map_groups_distant_places():
    from worldcover.validation.plots import _sample_groups

    rng = np.random.default_rng(0)
    lon = np.concatenate([6.1 + rng.random(20) * 0.01, 100.5 + rng.random(15) * 0.01, -60.2 + rng.random(5) * 0.01])
    lat = np.concatenate([1.1 + rng.random(20) * 0.01, 30.5 + rng.random(15) * 0.01, -5.3 + rng.random(5) * 0.01])
    groups = _sample_groups(lon, lat)
    assert [len(g) for g in groups] == [20, 15, 5]
    assert set(groups[1].tolist()) == set(range(20, 35))
