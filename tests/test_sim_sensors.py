"""Physics of the simulated sensors: DN encoding, clouds vs SCL, speckle, schedules (worldcover.sim)."""

from __future__ import annotations

from datetime import date
from itertools import pairwise

import numpy as np
import pytest

from worldcover.bands import SCL_INVALID
from worldcover.grid import Tile
from worldcover.legend import TREE, WATER
from worldcover.sim import simulate_block
from worldcover.sim.mgrs import chip_grid
from worldcover.sim.s2 import block_mean, cloud_flag_rates
from worldcover.sim.schedule import s1_schedule, s2_schedule
from worldcover.sim.simulate import BlockWorld, SimOptions

BLOCK = Tile.parse("S36W063").block(162, 122, 128)  # crops, trees, grass and water, temperate south


def _clear_surface_diff(world: BlockWorld, acq, harmonise: bool, baseline: str | None = None) -> float:
    scene = world.s2(acq, baseline=baseline, keep_surface=True)
    ok = ~scene.cloud.values & ~scene.shadow.values & (scene.bands["B04"].values > 0)
    diffs = []
    for band in ("B02", "B03", "B04", "B08"):
        observed = scene.reflectance(band, harmonise=harmonise).values
        diffs.append(np.nanmean((observed - scene.surface[band].values)[ok]))
    return float(np.mean(diffs))


def _clearest(world: BlockWorld, n: int = 3):
    """The acquisitions with the least cloud (the cover is drawn before rendering)."""
    return sorted(world.s2_acquisitions, key=world.cloud_cover)[:n]


@pytest.fixture(scope="module")
def world_2022():
    return BlockWorld(BLOCK, 2022, 0, SimOptions(s1=False, period=("2022-02-01", "2022-05-31")))


@pytest.fixture(scope="module")
def world_2021():
    return BlockWorld(BLOCK, 2021, 0, SimOptions(s1=False, period=("2021-02-01", "2021-05-31")))


def test_2022_items_read_without_harmonisation_are_0_1_too_bright(world_2022, world_2021):
    acq22 = _clearest(world_2022, 1)[0]
    acq21 = _clearest(world_2021, 1)[0]
    assert acq22.baseline >= "04.00" and acq21.baseline < "04.00"
    raw22 = _clear_surface_diff(world_2022, acq22, harmonise=False)
    raw21 = _clear_surface_diff(world_2021, acq21, harmonise=False)
    assert raw22 == pytest.approx(0.1, abs=0.012)  # DN/10000 of a 04.00 item: 0.1 too bright
    assert abs(raw21) < 0.012  # before 04.00 there is no offset
    assert abs(_clear_surface_diff(world_2022, acq22, harmonise=True)) < 0.012


def test_same_surface_with_and_without_offset_decodes_identically(world_2022):
    acq = world_2022.s2_acquisitions[0]
    new = world_2022.s2(acq, baseline="04.00")
    old = world_2022.s2(acq, baseline="03.01")
    assert new.acquisition.baseline == "04.00" and old.acquisition.baseline == "03.01"
    for band in ("B02", "B05", "B8A", "B09", "B12"):
        dn_new, dn_old = new.bands[band].values, old.bands[band].values
        assert dn_new.dtype == np.uint16
        valid = dn_old > 1  # below zero reflectance old baselines clip at DN 1
        assert valid.mean() > 0.9
        assert int(np.abs(dn_new[valid].astype(int) - dn_old[valid].astype(int) - 1000).max()) == 0
        np.testing.assert_array_equal(new.reflectance(band).values[valid], old.reflectance(band).values[valid])
        assert not np.array_equal(new.reflectance(band, harmonise=False).values[valid],
                                  old.reflectance(band, harmonise=False).values[valid])


@pytest.mark.slow  # a year of simulated scenes: ~6 s
def test_scl_leaves_a_few_clouds_unflagged():
    world = BlockWorld(Tile.parse("N09W012").block(15, 108, 128), 2021, 0, SimOptions(s1=False))
    n_cloud = missed = 0
    false_alarm = []
    for acq in world.s2_acquisitions[::2]:
        scene = world.s2(acq)
        true20 = block_mean(scene.cloud.values.astype(np.float32), 2) >= 0.5
        n = int((true20 & (scene.scl.values != 0)).sum())
        miss, fa = cloud_flag_rates(scene)
        n_cloud += n
        missed += miss * n
        false_alarm.append(fa)
    assert n_cloud > 10000
    unflagged = missed / n_cloud
    assert 0.005 < unflagged < 0.08, unflagged
    assert np.mean(false_alarm) < 0.05


def test_clouds_have_displaced_shadows_and_truth_masks():
    world = BlockWorld(BLOCK, 2021, 0, SimOptions(s1=False, period=("2021-01-01", "2021-12-31")))
    found = False
    for acq in [a for a in world.s2_acquisitions if 0.1 < world.cloud_cover(a) < 0.6]:
        scene = world.s2(acq)
        c, s = scene.cloud.values, scene.shadow.values
        assert scene.cloud.dtype == bool and c.shape == scene.bands["B04"].shape
        assert not np.any(c & s)  # a shadow is ground seen without cloud in between
        if 0.05 < c.mean() < 0.6 and s.mean() > 0.01:
            found = True
            # Shadows are darker than the rest of the clear scene in the NIR.
            nir = scene.reflectance("B08").values
            assert np.nanmean(nir[s]) < np.nanmean(nir[~c & ~s])
            assert np.isin(scene.scl.values, [3]).any() or s.mean() < 0.05
            break
    assert found


@pytest.mark.parametrize("looks", [4.4, 1.0])
def test_speckle_statistics_match_the_number_of_looks(looks):
    world = BlockWorld(BLOCK, 2021, 0, SimOptions(s2=False, looks=looks, period=("2021-06-01", "2021-06-30")))
    acq = world.s1_acquisitions[0]
    scene = world.s1(acq, keep_clean=True)
    for pol in ("vv", "vh"):
        ratio = (scene[pol] / scene.clean[pol]).values
        ratio = ratio[np.isfinite(ratio)]
        enl = ratio.mean() ** 2 / ratio.var()
        assert enl == pytest.approx(looks, rel=0.1)
        assert scene[pol].dtype == np.float32


def test_s1_backscatter_separates_water_trees_and_grows_with_biomass():
    world = BlockWorld(BLOCK, 2021, 0, SimOptions(s2=False))
    code = world.surface.code
    vv = np.stack([world.s1(a)["vv"].values for a in world.s1_acquisitions[::3]])
    db = 10 * np.log10(np.nanmedian(vv, axis=0))
    assert np.median(db[code == WATER]) < -16
    assert np.median(db[code == TREE]) > np.median(db[code == WATER]) + 6


def test_revisits_follow_the_constellation_of_the_era():
    grid = chip_grid(Tile.parse("N42W090").block(40, 40, 256))
    s1_2021, s1_2022 = s1_schedule(grid, 2021), s1_schedule(grid, 2022)
    gaps = lambda acqs: {(b.day - a.day).days for a, b in pairwise(acqs)}  # noqa: E731
    assert min(gaps(s1_2021)) == 6 and 55 <= len(s1_2021) <= 62  # S1A + S1B
    assert min(gaps(s1_2022)) == 12 and 28 <= len(s1_2022) <= 31  # S1B died in December 2021
    s2 = s2_schedule(grid, 2021, missing_fraction=0.0)
    primary = [a for a in s2 if a.swath is None]
    assert all(g % 5 == 0 for g in gaps(primary)) and 70 <= len(primary) <= 74
    s2_22 = s2_schedule(grid, 2022)
    for a in s2_22:
        assert (a.baseline >= "04.00") == (a.day >= date(2022, 1, 25))
    s2_16 = [a for a in s2_schedule(grid, 2016) if a.swath is None]
    assert min(gaps(s2_16)) == 10  # S2A alone


def test_simulate_block_is_deterministic():
    kw = dict(period=("2021-07-01", "2021-07-20"))
    block = Tile.parse("N09W012").block(30, 200, 64)
    a = simulate_block(block, 2021, seed=5, **kw)
    b = simulate_block(block, 2021, seed=5, **kw)
    c = simulate_block(block, 2021, seed=6, **kw)
    assert a.s2 and a.s1 and a.dem is not None
    np.testing.assert_array_equal(a.truth.values, b.truth.values)
    for sa, sb in zip(a.s2, b.s2, strict=True):
        for band in sa.bands:
            np.testing.assert_array_equal(sa.bands[band].values, sb.bands[band].values)
        np.testing.assert_array_equal(sa.scl.values, sb.scl.values)
    np.testing.assert_array_equal(a.s1[0].vv.values, b.s1[0].vv.values)
    np.testing.assert_array_equal(a.dem.values, b.dem.values)
    assert not np.array_equal(a.s2[0].bands["B04"].values, c.s2[0].bands["B04"].values)
    assert not np.array_equal(a.s1[0].vv.values, c.s1[0].vv.values)
    # The native resolutions: 10 m bands twice the 20 m size, six times the 60 m size.
    s = a.s2[0]
    b05, b01 = s.bands["B05"].shape, s.bands["B01"].shape
    assert s.bands["B04"].shape == tuple(2 * n for n in b05) == tuple(6 * n for n in b01)
    assert s.scl.shape == s.bands["B05"].shape
    assert s.bands["B04"].odc.geobox.crs.epsg == a.grid.epsg


def test_adjacent_chips_of_one_overpass_agree_where_they_overlap():
    tile = Tile.parse("S36W063")
    kw = SimOptions(s1=False, period=("2021-03-01", "2021-03-20"))
    wa, wb = BlockWorld(tile.block(162, 122, 128), 2021, 0, kw), BlockWorld(tile.block(162, 123, 128), 2021, 0, kw)
    assert wa.grid.mgrs == wb.grid.mgrs
    acq = wa.s2_acquisitions[0]
    assert acq in wb.s2_acquisitions
    a, b = wa.s2(acq), wb.s2(acq)
    for band in ("B04", "B11", "B01", "SCL"):
        da = a.scl if band == "SCL" else a.bands[band]
        db = b.scl if band == "SCL" else b.bands[band]
        common = da.odc.geobox.extent.intersection(db.odc.geobox.extent)
        ra = da.odc.crop(common, apply_mask=False)
        rb = db.odc.crop(common, apply_mask=False)
        n = min(ra.shape[1], rb.shape[1])
        assert n >= 2
        np.testing.assert_array_equal(ra.values[:, -n:], rb.values[:, :n])


def test_physics_of_the_surface_reflectance():
    world = BlockWorld(BLOCK, 2021, 0, SimOptions(s1=False, period=("2021-01-01", "2021-02-28")))
    code = world.surface.code
    acq = _clearest(world, 1)[0]  # southern summer
    sc = world.s2(acq, keep_surface=True)
    red, nir = sc.surface["B04"].values, sc.surface["B08"].values
    swir = np.repeat(np.repeat(sc.surface["B12"].values, 2, 0), 2, 1)  # 20 m band on the 10 m grid
    ndvi = (nir - red) / (nir + red)
    assert np.median(ndvi[code == TREE]) > 0.6
    assert np.median(nir[code == WATER]) < 0.06
    assert np.median(swir[code == WATER]) < np.median(swir[code == TREE])
    # SCL calls clear vegetation vegetation.
    scl = np.repeat(np.repeat(sc.scl.values, 2, 0), 2, 1)
    clear_trees = (code == TREE) & ~sc.cloud.values & ~np.isin(scl, list(SCL_INVALID))
    assert np.mean(scl[clear_trees] == 4) > 0.9
