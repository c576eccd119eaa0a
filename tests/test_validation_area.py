"""Geodesic pixel and class areas of lat/lon maps."""

from __future__ import annotations

import math

import numpy as np
import pytest
from affine import Affine
from pyproj import Geod

from worldcover.area import (
    AUTHALIC_RADIUS_EXACT_M,
    AUTHALIC_RADIUS_M,
    cell_area_m2,
    class_areas,
    row_areas_m2,
)
from worldcover.errors import DataError
from worldcover.validation.synthetic import banded_map, write_class_map

GEOD = Geod(ellps="WGS84")


def _geod_area_m2(west: float, south: float, east: float, north: float, points: int = 2) -> float:
    """pyproj.Geod area of a lat/lon cell; ``points`` per parallel edge (a polygon's edges are
    geodesics, so the parallels must be densified to converge to the cell's area)."""
    lon = np.linspace(west, east, points)
    xs = np.concatenate([lon, lon[::-1]])
    ys = np.concatenate([np.full(points, south), np.full(points, north)])
    area, _ = GEOD.polygon_area_perimeter(xs, ys)
    return abs(area)


def test_sphere_formula_one_degree_cell_at_equator_is_12363_7_km2():
    """R^2 dlambda (sin phi2 - sin phi1) with the authalic radius: the brief's reference number."""
    assert f"{float(cell_area_m2(0.0, 1.0, 1.0, model='sphere')) / 1e6:,.1f}" == "12,363.7"


@pytest.mark.parametrize("south", [0.0, 30.0, -45.0, 60.0, 80.0, 89.0])
def test_ellipsoid_cells_match_pyproj_geod_polygons(south):
    """The default (authalic latitude) is exact on WGS84: well inside 0.1 % of pyproj.Geod."""
    ours = float(cell_area_m2(south, south + 1.0, 1.0))
    assert ours == pytest.approx(_geod_area_m2(0, south, 1, south + 1), rel=1e-3)  # the brief's 0.1 %
    assert ours == pytest.approx(_geod_area_m2(0, south, 1, south + 1, points=1000), rel=1e-9)


def test_sphere_model_is_off_by_more_than_0_1_percent_at_the_equator():
    """Why the ellipsoid is the default: the spherical-latitude cell misses pyproj.Geod by 0.45 %."""
    sphere = float(cell_area_m2(0.0, 1.0, 1.0, model="sphere"))
    geod = _geod_area_m2(0, 0, 1, 1)
    assert 0.004 < sphere / geod - 1 < 0.005


def test_whole_globe_is_4_pi_r_squared():
    total = float(cell_area_m2(-90.0, 90.0, 360.0))
    assert total == pytest.approx(4 * math.pi * AUTHALIC_RADIUS_EXACT_M**2, rel=1e-12)
    assert pytest.approx(AUTHALIC_RADIUS_M, abs=0.05) == AUTHALIC_RADIUS_EXACT_M


def test_worldcover_pixel_rows_sum_to_the_cell():
    """12000 rows of 1/12000-degree pixels in a 1-degree column add up to the 1x1-degree cell."""
    t = Affine(1 / 12000, 0, 6, 0, -1 / 12000, 1)
    rows = row_areas_m2(t, 0, 12000)
    assert rows.sum() * 12000 == pytest.approx(float(cell_area_m2(0, 1, 1)), rel=1e-9)
    assert 85 < rows[0] < 86  # a "10 m" pixel near the equator is ~85.5 m^2 on the ellipsoid
    assert rows[0] < rows[-1]  # pixels grow towards the equator


def test_rotated_transform_is_rejected():
    with pytest.raises(DataError, match="north-up"):
        row_areas_m2(Affine(1, 0.1, 0, 0, -1, 0), 0, 3)


def test_class_areas_of_a_cog_stream_by_windows(tmp_path):
    data = banded_map((700, 500), [(10, 0.6), (40, 0.3), (95, 0.1)], nodata_rows=50)
    path = write_class_map(tmp_path / "m.tif", data, west=6.0, north=60.0)
    t = Affine(1 / 12000, 0, 6.0, 0, -1 / 12000, 60.0)
    per_row = row_areas_m2(t, 0, data.shape[0])
    expected = {int(c): float((per_row[:, None] * (data == c)).sum() / 1e4) for c in (10, 40, 95)}
    small = class_areas(path, window=128)  # many partial windows
    big = class_areas(path, window=4096)  # one window
    assert set(small) == {10, 40, 95}  # nodata 0 excluded
    for code, (px, ha) in small.items():
        assert px == int((data == code).sum())
        assert ha == pytest.approx(expected[code], rel=1e-12)
        assert big[code][1] == pytest.approx(ha, rel=1e-12)
