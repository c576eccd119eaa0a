"""Land-only validation: ocean (mapped water where the land mask is sea) and nodata leave the strata."""

from __future__ import annotations

import json

import numpy as np
import pytest
from typer.testing import CliRunner

from worldcover.area import row_areas_m2
from worldcover.cli.validate import app
from worldcover.errors import InputError
from worldcover.grid import land_fraction_table
from worldcover.landmask import (
    CELLS_PER_DEGREE,
    GlobeLandMask,
    RasterLandMask,
    SimLandMask,
    parse_land_mask,
)
from worldcover.validation.design import design_sample
from worldcover.validation.report import assess
from worldcover.validation.synthetic import PIXEL_DEG, write_class_map
from worldcover.validation.tables import write_samples

runner = CliRunner()
WEST, NORTH = 10.0, 48.0
PX = 100  # map pixels per 1/120-degree mask cell


def test_globe_mask_knows_land_sea_and_matches_the_tile_land_fractions():
    mask = GlobeLandMask()
    lon = np.array([2.35, -30.0, 20.0, -150.0, 6.5])
    lat = np.array([48.85, 0.0, 22.0, 0.0, 2.5])  # Paris, mid-Atlantic, Sahara, mid-Pacific, Gulf of Guinea
    assert mask.is_land(lon, lat).tolist() == [True, False, True, False, False]
    # the shipped coast table is the GLOBE mask: its tile means are the grid's land-fraction table
    table = land_fraction_table()
    for r, c in [(29, 62), (30, 62), (13, 60)]:  # N00E006 (coast), S03E006, a northern tile
        west, north = -180 + 3 * c, 90 - 3 * r
        cells = (np.arange(3 * CELLS_PER_DEGREE) + 0.5) / CELLS_PER_DEGREE
        glon, glat = np.meshgrid(west + cells, north - cells)
        assert mask.is_land(glon.ravel(), glat.ravel()).mean() == pytest.approx(float(table[r, c]), abs=1e-6)


def test_parse_land_mask_sources_and_errors(tmp_path):
    assert isinstance(parse_land_mask(None), GlobeLandMask) and parse_land_mask("none") is None
    (tmp_path / "sim.json").write_text(json.dumps({"seed": 7}))
    sim_mask = parse_land_mask(f"sim:{tmp_path}")
    assert isinstance(sim_mask, SimLandMask) and sim_mask.seed == 7 and sim_mask.name == "sim-seed:7"
    # the simulator's ocean: terrain at sea level in the open Pacific, land in the Sahara
    assert sim_mask.is_land(np.array([-150.0, 20.0]), np.array([0.0, 22.0])).tolist() == [False, True]
    for bad, message in [("sim:" + str(tmp_path / "nowhere"), "has no seed"), ("sim-seed:x", "integer seed"),
                         (str(tmp_path / "missing.tif"), "expected global-land-mask, none")]:
        with pytest.raises(InputError, match=message):
            parse_land_mask(bad)


@pytest.fixture(scope="module")
def coast(tmp_path_factory):
    """200 x 600 px: water in columns 0-299, of which the mask says sea for 0-199; land classes east of it."""
    root = tmp_path_factory.mktemp("coast")
    data = np.full((200, 600), 10, np.uint8)
    data[:, :300] = 80
    data[:, 450:] = 40
    data[150:, 500:] = 0  # a nodata corner
    map_path = write_class_map(root / "map.tif", data, WEST, NORTH)
    cells = np.ones((2, 6), np.uint8)
    cells[:, :2] = 0  # sea under the first 200 columns
    mask_path = write_class_map(root / "mask.tif", cells, WEST, NORTH, pixel_deg=1.0 / CELLS_PER_DEGREE)
    return root, map_path, RasterLandMask(str(mask_path), name="test-mask"), data


def _area(px_rows: slice, cols: int) -> float:
    """Geodesic area (ha) of ``cols`` columns of the given rows of the test map."""
    from affine import Affine

    areas = row_areas_m2(Affine(PIXEL_DEG, 0, WEST, 0, -PIXEL_DEG, NORTH), 0, 200)
    return float(areas[px_rows].sum()) * cols / 1e4


def test_ocean_leaves_the_strata_and_weights(coast):
    _, map_path, mask, _ = coast
    design = design_sample(map_path, n=60, min_per_class=10, seed=1, window=128, land_mask=mask)
    strata = {s.code: s for s in design.strata}
    assert strata[80].pixels == 200 * 100  # only the inland water (columns 200-299)
    assert design.ocean_area_ha == pytest.approx(_area(slice(0, 200), 200), rel=1e-9)
    assert design.nodata_area_ha == pytest.approx(_area(slice(150, 200), 100), rel=1e-9)
    land = _area(slice(0, 200), 600) - design.ocean_area_ha - design.nodata_area_ha
    assert design.land_area_ha == pytest.approx(land, rel=1e-9)
    assert strata[80].weight == pytest.approx(_area(slice(0, 200), 100) / land, rel=1e-9)
    assert sum(s.weight for s in design.strata) == pytest.approx(1.0)
    # no sample unit on the ocean columns
    col = np.floor((design.samples["lon"].to_numpy() - WEST) / PIXEL_DEG)
    assert col.min() >= 200
    # without a mask the ocean is one more share of the water stratum
    everything = design_sample(map_path, n=60, min_per_class=10, seed=1, window=128, land_mask=None)
    assert {s.code: s.pixels for s in everything.strata}[80] == 200 * 300 and everything.ocean_area_ha == 0


def test_ocean_inflates_overall_accuracy_and_the_report_drops_it(coast, tmp_path):
    root, map_path, mask, _ = coast
    design = design_sample(map_path, n=90, min_per_class=20, seed=2, window=128, land_mask=None)  # old design
    s = design.samples.copy()
    col = np.floor((s["lon"].to_numpy() - WEST) / PIXEL_DEG)
    ref = s["map_class"].to_numpy().copy()
    land = col >= 200
    ref[land & (np.arange(len(s)) % 3 == 0)] = 30  # a third of the land samples are wrong; the sea is easy
    s["reference_class"] = ref
    write_samples(s, tmp_path / "labelled.csv")
    before = assess(map_path, tmp_path / "labelled.csv", land_mask=None)
    after = assess(map_path, tmp_path / "labelled.csv", land_mask=mask)
    assert after.excluded["ocean_samples_dropped"] == int((col < 200).sum()) > 0
    assert before.excluded["ocean_samples_dropped"] == 0
    assert after.result.n == int(land.sum())
    assert before.result.overall_accuracy.estimate > after.result.overall_accuracy.estimate + 0.05
    assert after.excluded["land_area_ha"] + after.excluded["ocean_area_ha"] == pytest.approx(
        before.excluded["land_area_ha"], rel=1e-9)
    assert list(tmp_path.iterdir()) == [tmp_path / "labelled.csv"]  # assess writes nothing


def test_cli_land_mask_option(coast, tmp_path):
    root, map_path, mask, _ = coast
    out = tmp_path / "s.csv"
    result = runner.invoke(app, ["design", "--map", str(map_path), "--n", "40", "--min-per-class", "10",
                                 "--land-mask", mask.path, "--out", str(out), "--json"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["land_mask"] == mask.path and summary["excluded"]["ocean_area_ha"] > 0
    result = runner.invoke(app, ["design", "--map", str(map_path), "--land-mask", "atlantis", "--out", str(out)])
    assert result.exit_code == 2 and result.stderr.strip().count("\n") == 0
    assert "land mask 'atlantis'" in result.stderr
