"""The simulated world: determinism, seamlessness, class plausibility (worldcover.sim)."""

from __future__ import annotations

import numpy as np
import pytest
from affine import Affine
from odc.geo.geobox import GeoBox

from worldcover.grid import PIXEL_SIZE, Tile, land_tiles
from worldcover.legend import BUILT, CODES, MANGROVE, MOSS, SNOW, TREE
from worldcover.sim import noise
from worldcover.sim.mgrs import chip_grid, mgrs_tile, square_letters
from worldcover.sim.simulate import BlockWorld, SimOptions
from worldcover.sim.world import surface_at, truth, truth_on


def _union_geobox(a, b) -> GeoBox:
    """The EPSG:4326 grid covering two blocks that touch (same pixel lattice)."""
    ba, bb = a.geobox.extent.boundingbox, b.geobox.extent.boundingbox
    w, s = min(ba.left, bb.left), min(ba.bottom, bb.bottom)
    e, n = max(ba.right, bb.right), max(ba.top, bb.top)
    shape = (round((n - s) / PIXEL_SIZE), round((e - w) / PIXEL_SIZE))
    return GeoBox(shape, Affine(PIXEL_SIZE, 0, w, 0, -PIXEL_SIZE, n), "EPSG:4326")


def test_truth_is_deterministic_and_depends_on_seed():
    block = Tile.parse("N09W012").block(10, 72, 256)
    a, b = truth(block, seed=0), truth(block, seed=0)
    assert a.dtype == np.uint8 and a.dims == ("y", "x") and a.shape == block.shape
    assert a.odc.geobox == block.geobox
    np.testing.assert_array_equal(a.values, b.values)
    c = truth(block, seed=1)
    assert (a.values != c.values).mean() > 0.05


@pytest.mark.parametrize("left,right", [
    (("S36W063", 81, 61), ("S36W063", 81, 62)),  # neighbours inside a tile
    (("N00E006", 3, 140), ("N00E009", 3, 0)),  # across a tile border
])
def test_truth_is_seamless_across_blocks(left, right):
    a = Tile.parse(left[0]).block(left[1], left[2], 256)
    b = Tile.parse(right[0]).block(right[1], right[2], 256)
    ta, tb = truth(a).values, truth(b).values
    union = truth_on(_union_geobox(a, b)).values
    np.testing.assert_array_equal(union[:, : ta.shape[1]], ta)
    np.testing.assert_array_equal(union[:, -tb.shape[1]:], tb)
    # The border columns are not a seam: they agree as much as any two neighbouring columns.
    inner = (ta[:, -2] == ta[:, -1]).mean()
    assert (ta[:, -1] == tb[:, 0]).mean() > inner - 0.1


def test_truth_on_a_native_utm_grid_is_the_class_the_simulator_renders_there():
    """Training on the native grid labels each UTM pixel with the surface the simulated sensors saw there."""
    block = Tile.parse("N45E003").block(40, 40, 128)
    world = BlockWorld(block, 2021, options=SimOptions(s1=False))
    chip = world.grid.geobox(10)
    labels = truth_on(chip)
    assert labels.odc.geobox == chip and labels.dims == ("y", "x")
    np.testing.assert_array_equal(labels.values, world.surface.code)
    # and a sub-window of it (the block's native grid is such a window) gives the same pixels
    sub = chip[5:60, 7:90]
    np.testing.assert_array_equal(truth_on(sub).values, world.surface.code[5:60, 7:90])
    with pytest.raises(ValueError, match="EPSG"):
        laea = "+proj=laea +lat_0=45 +lon_0=3.3 +x_0=0 +y_0=0 +ellps=WGS84 +units=m"  # no EPSG code
        truth_on(GeoBox((4, 4), Affine(10, 0, 0, 0, -10, 40), laea))


def test_noise_fields_are_functions_of_position():
    rng = np.random.default_rng(0)
    lon, lat = rng.uniform(-180, 180, 500), rng.uniform(-60, 80, 500)
    k = noise.key(3, "test")
    full = noise.fbm(noise.domain(lon, lat), k, 10.0, 5)
    # Evaluating a subset of the points gives the same values (no dependence on the batch).
    part = noise.fbm(noise.domain(lon[:50], lat[:50]), k, 10.0, 5)
    np.testing.assert_allclose(part, full[:50], rtol=0, atol=1e-6)
    assert 0.8 < full.std() < 1.2
    # ... and is continuous across the antimeridian.
    near = noise.fbm(noise.domain(np.array([180 - 1e-8, -180 + 1e-8]), np.array([10.0, 10.0])), k, 10.0, 5)
    assert abs(near[0] - near[1]) < 1e-3


def test_per_pixel_random_lattice_agrees_between_overlapping_windows():
    draw = lambda rng, size: rng.standard_normal(size, dtype=np.float32)  # noqa: E731
    a = noise.pixel_random((300, 400), 1000, -5000, (1, 2), draw)
    b = noise.pixel_random((100, 100), 1250, -4900, (1, 2), draw)
    np.testing.assert_array_equal(a[100:200, 250:350], b)
    c = noise.pixel_random((100, 100), 1250, -4900, (1, 3), draw)
    assert not np.array_equal(b, c)


def _sample(tiles: list[Tile], n: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, len(tiles), n)
    lon = np.array([tiles[i].lon for i in idx]) + rng.uniform(0, 3, n)
    lat = np.array([tiles[i].lat for i in idx]) + rng.uniform(0, 3, n)
    return lon, lat, surface_at(lon, lat, 0)


@pytest.fixture(scope="module")
def global_sample():
    return _sample(land_tiles(min_fraction=0.5), 60000)


def test_all_classes_appear_across_latitudes():
    tiles = [Tile.parse(t) for t in ("N09W012", "N66W051", "S36W063", "N24E009", "N60E024", "N42W090", "N69E027")]
    _, _, s = _sample(tiles, 40000, seed=1)
    present = set(np.unique(s.code).tolist())
    assert set(CODES) <= present, f"missing classes {set(CODES) - present}"


def test_class_frequencies_are_plausible_for_the_latitude(global_sample):
    lon, lat, s = global_sample
    code, alat = s.code, np.abs(lat)
    warm = s.t_mean + s.t_amp
    # No snow and ice in the tropical lowlands; mangroves only on warm coasts; moss only where summers are cool.
    assert not np.any((code == SNOW) & (alat < 20) & (s.elev < 2000))
    assert np.all(alat[code == MANGROVE] < 30) and np.all(s.elev[code == MANGROVE] < 5)
    assert (code == MANGROVE).any()
    assert np.all(warm[code == MOSS] < 16)
    assert 0.001 < (code == BUILT).mean() < 0.03
    tropics, arctic = alat < 10, alat > 66
    assert (code[tropics] == TREE).mean() > 0.3
    assert (code[arctic] == TREE).mean() < 0.1
    assert (code[arctic] == SNOW).mean() > (code[alat < 50] == SNOW).mean()
    assert (code[alat > 60] == MOSS).mean() > 5 * (code[alat < 40] == MOSS).mean()


def test_crops_are_parcels_with_their_own_sowing_dates():
    block = Tile.parse("S36W063").block(81, 61, 256)
    world = BlockWorld(block, 2021, 0, SimOptions(s2=False, s1=False))
    s = world.surface
    crop = s.crop_type >= 0
    assert crop.mean() > 0.2
    # Parcels: many distinct sowing dates, each shared by a compact group of pixels.
    sows = np.unique(np.round(s.sow1[crop], 3))
    assert 10 < sows.size < crop.sum() / 50


def test_mgrs_names_match_real_sentinel2_tiles():
    # Real S2 tiles: Denver 13TDE (the shared PC sample), Paris 31UDQ, Sydney 56HLH, Rio 23KPQ, Oslo 32VNM.
    for lon, lat, name in [(-105.0, 40.2, "13TDE"), (2.35, 48.85, "31UDQ"), (151.2, -33.87, "56HLH"),
                           (-43.2, -22.9, "23KPQ"), (10.7, 59.9, "32VNM")]:
        assert mgrs_tile(lon, lat).id == name
    assert mgrs_tile(-105.0, 40.2).origin == (399960.0, 4500000.0)  # the sample's proj:transform origin
    assert square_letters(13, 450_000, 4_450_000) == "DE"


def test_chip_grid_covers_the_block_on_a_60m_lattice():
    block = Tile.parse("N00E006").block(0, 0, 256)
    g = chip_grid(block)
    assert g.x0 % 60 == 0 and g.y1 % 60 == 0 and g.width_m % 60 == 0 and g.height_m % 60 == 0
    assert g.epsg == 32632
    lon, lat = g.lonlat(60)
    w, s, e, n = block.bbox
    assert lon.min() < w < e < lon.max() and lat.min() < s < n < lat.max()
    assert g.geobox(10).shape == (g.geobox(20).shape[0] * 2, g.geobox(20).shape[1] * 2)
