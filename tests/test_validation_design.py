"""Sampling design: sample size, allocation, drawing from a streamed COG, sample files."""

from __future__ import annotations

import json
import sqlite3
import struct

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from worldcover.errors import DataError, InputError
from worldcover.legend import BY_CODE
from worldcover.validation.design import allocate, design_sample, parse_conjectured_ua, sample_size
from worldcover.validation.report import sample_raster
from worldcover.validation.synthetic import banded_map, write_class_map
from worldcover.validation.tables import SAMPLE_FORMATS, write_samples

COLUMNS = ["id", "lon", "lat", "map_class", "map_name", "stratum_weight", "stratum_n",
           "inclusion_probability", "reference_class"]


def test_sample_size_reproduces_olofsson_2014_section_5_n_641():
    """W = mapped proportions of the example, conjectured U = 0.70, 0.60, 0.90, 0.95, S(O) = 0.01."""
    w = np.array([200_000, 150_000, 3_200_000, 6_450_000]) / 10_000_000
    assert sample_size(w, np.array([0.70, 0.60, 0.90, 0.95]), 0.01) == 641


def test_sample_size_finite_population_correction_only_lowers_n():
    w, u = np.array([0.5, 0.5]), np.array([0.75, 0.75])
    assert sample_size(w, u, 0.01) == 1875  # (sqrt(0.75 * 0.25) / 0.01)^2
    assert sample_size(w, u, 0.01, population=2000) < 1875


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.floats(1e-6, 1.0), min_size=1, max_size=11),
    st.integers(0, 60),
    st.data(),
)
def test_allocation_sums_to_n_and_honours_floors_and_caps(weights, floor, data):
    w = np.array(weights) / sum(weights)
    caps = np.array(data.draw(st.lists(st.integers(1, 5000), min_size=len(w), max_size=len(w))))
    low = int(np.minimum(floor, caps).sum())
    n = data.draw(st.integers(max(low, 1), int(caps.sum()))) if low <= caps.sum() and caps.sum() >= 1 else None
    if n is None:
        return
    alloc = allocate(w, n, floor, caps)
    assert alloc.sum() == n
    assert (alloc >= np.minimum(floor, caps)).all()
    assert (alloc <= caps).all()


def test_allocation_is_proportional_above_the_floor():
    alloc = allocate(np.array([0.90, 0.09, 0.01]), 1000, 50, np.array([10**6] * 3))
    assert alloc.tolist()[2] == 50  # rare class lifted to the floor
    assert alloc.sum() == 1000
    assert alloc[0] / alloc[1] == pytest.approx(0.90 / 0.09, rel=0.01)  # the rest stays proportional


def test_allocation_errors_explain_themselves():
    with pytest.raises(InputError, match="expected n >= 150"):
        allocate(np.array([0.5, 0.3, 0.2]), 100, 50, np.array([1000] * 3))
    with pytest.raises(InputError, match="only 30 classified pixels"):
        allocate(np.array([0.5, 0.5]), 100, 5, np.array([10, 20]))


def test_conjectured_ua_parsing():
    assert parse_conjectured_ua("0.8") == {None: 0.8}
    assert parse_conjectured_ua("10=0.9, 50=0.6") == {None: 0.75, 10: 0.9, 50: 0.6}
    for bad, why in [("10=1.2", "strictly between"), ("x=0.5", "CODE=UA"), ("11=0.5", "not a WorldCover")]:
        with pytest.raises(InputError, match=why):
            parse_conjectured_ua(bad)


@pytest.fixture(scope="module")
def map_path(tmp_path_factory):
    data = banded_map((900, 1200), [(10, 0.55), (40, 0.30), (30, 0.13), (95, 0.02)], nodata_rows=40)
    return write_class_map(tmp_path_factory.mktemp("design") / "map.tif", data, west=20.0, north=5.0)


@pytest.fixture(scope="module")
def design(map_path):
    return design_sample(map_path, n=600, min_per_class=50, seed=7, window=256)


def test_design_totals_weights_and_floors(design):
    s = design.samples
    assert list(s.columns) == COLUMNS
    assert len(s) == design.n == 600
    assert sorted(s["id"]) == list(range(1, 601))
    per_class = s.groupby("map_class").size()
    assert per_class.min() >= 50
    assert per_class[95] == 50  # 2 % of the area: proportional would give 12
    weights = s.groupby("map_class")["stratum_weight"].first()
    assert weights.sum() == pytest.approx(1.0)
    assert (s.groupby("map_class")["stratum_n"].first() == per_class).all()
    assert {st.code: st.n for st in design.strata} == per_class.to_dict()
    assert (s["map_name"] == s["map_class"].map(lambda c: BY_CODE[c].name)).all()
    assert (s["reference_class"] == "").all()


def test_design_points_are_distinct_pixel_centres_of_their_class(design, map_path):
    s = design.samples
    on_map = sample_raster(map_path, s["lon"].to_numpy(), s["lat"].to_numpy())
    assert (on_map == s["map_class"].to_numpy()).all()
    cols = np.round((s["lon"] - 20.0) * 12000 - 0.5, 6)
    rows = np.round((5.0 - s["lat"]) * 12000 - 0.5, 6)
    assert np.abs(cols - np.round(cols)).max() < 1e-3 and np.abs(rows - np.round(rows)).max() < 1e-3  # centres
    rows, cols = np.round(rows), np.round(cols)
    assert not pd.DataFrame({"r": rows, "c": cols}).duplicated().any()  # without replacement


def test_inclusion_probability_is_n_h_over_N_h_on_a_small_map(design):
    for st_ in design.strata:
        pi = design.samples.loc[design.samples["map_class"] == st_.code, "inclusion_probability"]
        assert pi.to_numpy() == pytest.approx(st_.n / st_.pixels, rel=2e-3)  # pixel areas differ <0.1 %


def test_design_is_reproducible_and_seeded(map_path, design):
    again = design_sample(map_path, n=600, min_per_class=50, seed=7, window=256)
    pd.testing.assert_frame_equal(again.samples, design.samples)
    other = design_sample(map_path, n=600, min_per_class=50, seed=8, window=256)
    assert not other.samples[["lon", "lat"]].equals(design.samples[["lon", "lat"]])


def test_design_n_from_target_se(map_path):
    d = design_sample(map_path, target_se=0.02, min_per_class=20, seed=1)
    assert d.n_from_target_se == d.n
    assert 460 <= d.n <= 469  # (sqrt(0.75 * 0.25) / 0.02)^2 = 468.75, a little less with the fpc


def test_design_rejects_n_below_the_floors_and_foreign_codes(map_path, tmp_path):
    with pytest.raises(InputError, match="expected n >= 200"):
        design_sample(map_path, n=150, min_per_class=50)
    bad = write_class_map(tmp_path / "bad.tif", np.full((10, 10), 7, np.uint8), 0.0, 1.0)
    with pytest.raises(DataError, match=r"codes \[7\] are not WorldCover classes"):
        design_sample(bad, n=5, min_per_class=1)
    empty = write_class_map(tmp_path / "empty.tif", np.zeros((10, 10), np.uint8), 0.0, 1.0)
    with pytest.raises(InputError, match="no classified pixels"):
        design_sample(empty, n=5)


def test_pixels_are_drawn_in_proportion_to_their_ground_area(tmp_path):
    """Two rows of 40-degree pixels (lat 90-50 and 50-10): the southern row holds 72 % of the area."""
    data = np.full((2, 20_000), 10, np.uint8)
    path = write_class_map(tmp_path / "coarse.tif", data, west=0.0, north=90.0, pixel_deg=0.018)
    path_rows = (90.0 - design_sample(path, n=2000, min_per_class=0, seed=3).samples["lat"]) // 0.018
    share_south = float((path_rows == 1).mean())
    expected = (np.sin(np.radians(50)) - np.sin(np.radians(10))) / (1 - np.sin(np.radians(10)))
    assert share_south == pytest.approx(expected, abs=0.04)  # equal-probability pixels would give 0.5


@pytest.mark.parametrize("suffix", SAMPLE_FORMATS)
def test_sample_files_round_trip(design, tmp_path, suffix):
    out = write_samples(design.samples, tmp_path / f"samples{suffix}")
    s = design.samples
    if suffix == ".csv":
        back = pd.read_csv(out, keep_default_na=False)
        assert list(back.columns) == COLUMNS
        np.testing.assert_allclose(back["lon"], s["lon"], atol=1e-9)
        assert (back["reference_class"] == "").all()
    elif suffix == ".geojson":
        fc = json.loads(out.read_text())
        assert fc["type"] == "FeatureCollection" and len(fc["features"]) == len(s)
        f0 = fc["features"][0]
        assert f0["geometry"] == {"type": "Point", "coordinates": [s["lon"][0], s["lat"][0]]}
        assert set(f0["properties"]) == set(COLUMNS) and f0["properties"]["reference_class"] is None
    else:
        con = sqlite3.connect(out)
        assert con.execute("PRAGMA application_id").fetchone()[0] == 0x47504B47
        assert con.execute("SELECT data_type, srs_id FROM gpkg_contents").fetchall() == [("features", 4326)]
        assert con.execute("SELECT geometry_type_name FROM gpkg_geometry_columns").fetchone()[0] == "POINT"
        rows = con.execute("SELECT geom, id, map_class, reference_class FROM samples ORDER BY fid").fetchall()
        assert len(rows) == len(s)
        geom, ident, code, ref = rows[0]
        assert geom[:2] == b"GP" and struct.unpack("<i", geom[4:8])[0] == 4326
        assert struct.unpack("<dd", geom[-16:]) == (s["lon"][0], s["lat"][0])
        assert (ident, code, ref) == (s["id"][0], s["map_class"][0], None)
        con.close()
    assert [p.name for p in tmp_path.iterdir()] == [out.name]  # no temporary left behind


def test_unknown_sample_format_is_rejected(design, tmp_path):
    with pytest.raises(InputError, match=r"expected a \.csv, \.geojson or \.gpkg"):
        write_samples(design.samples, tmp_path / "samples.xlsx")
