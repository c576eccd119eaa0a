"""The WorldCover grid: ids, bounds, transforms, blocks and land tiles."""

from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.helpers import run_cli
from worldcover.errors import InputError
from worldcover.grid import (
    PIXEL_SIZE,
    TILE_PIXELS,
    Tile,
    compute_land_fraction_table,
    land_fraction_table,
    land_tiles,
    parse_bbox,
    parse_blocks,
    tile_of,
)

WORLDCOVER_LAND_TILES = 2651


def test_n00e006_bounds_and_transform():
    t = Tile.parse("N00E006")
    assert t.bbox == (6, 0, 9, 3)
    assert tuple(t.transform)[:6] == pytest.approx((1 / 12000, 0, 6, 0, -1 / 12000, 3))
    assert t.shape == (36000, 36000)
    # the last pixel corner of the grid is the tile's south-east corner
    assert t.transform @ (TILE_PIXELS, TILE_PIXELS) == pytest.approx((9, 0))


def test_southern_western_tile():
    assert Tile.parse("S03W063").bbox == (-63, -3, -60, 0)


@pytest.mark.parametrize(
    "bad, why",
    [("N91E000", "S90..N87"), ("X00E006", "expected e.g. N00E006"), ("N00E007", "3-degree lattice"),
     ("n00e006", "expected e.g."), ("S00E006", "canonical id is N00E006"), ("N00E180", "W180..E177"),
     ("N00E06", "expected e.g."), ("", "expected e.g.")],
)
def test_invalid_ids_explain_themselves(bad, why):
    with pytest.raises(InputError, match=why):
        Tile.parse(bad)


@given(st.integers(-30, 29), st.integers(-60, 59))
def test_id_round_trip(i, j):
    t = Tile(3 * i, 3 * j)
    assert Tile.parse(t.id) == t
    w, s, e, n = t.bbox
    assert tile_of((w + e) / 2, (s + n) / 2) == t


def test_blocks_cover_the_tile_exactly():
    t = Tile.parse("N45E003")
    blocks = list(t.blocks(7000))  # 36000 is not a multiple: edge blocks are smaller
    assert len(blocks) == 36
    assert sum(b.shape[0] * b.shape[1] for b in blocks) == TILE_PIXELS**2
    last = blocks[-1]
    assert last.shape == (1000, 1000)
    # the block geobox is the tile geobox's window: same pixels, shifted origin
    b = t.block(1, 2, 3000)
    assert b.geobox.transform.c == pytest.approx(3 + 2 * 3000 * PIXEL_SIZE)
    assert b.geobox.transform.f == pytest.approx(48 - 1 * 3000 * PIXEL_SIZE)
    assert b.geobox.shape == (3000, 3000)
    assert b.id == "N45E003_r01c02"


def test_parse_blocks_specs():
    t = Tile.parse("N00E006")
    assert [b.key for b in parse_blocks(t, "r0c0,r1c2", 3000)] == ["r00c00", "r01c02"]
    assert len(parse_blocks(t, "first:3", 3000)) == 3
    assert len(parse_blocks(t, "all", 12000)) == 9
    for bad in ("r12c0", "x1", "first:0"):
        with pytest.raises(InputError):
            parse_blocks(t, bad, 3000)


@pytest.mark.parametrize("bad", ["1,2,3", "0,0,200,3", "10,0,5,3", "a,b,c,d", "0,95,1,96"])
def test_bad_bbox(bad):
    with pytest.raises(InputError, match="bbox"):
        parse_bbox(bad)


def test_land_table_matches_global_land_mask():
    """The shipped table is what global-land-mask gives (regenerate: python -m worldcover.grid)."""
    np.testing.assert_allclose(land_fraction_table(), compute_land_fraction_table(), atol=1e-6)


def test_land_tile_count_close_to_worldcover():
    n = len(land_tiles())
    # within 10 % of the product's 2,651 tiles (see README for why they differ)
    assert abs(n - WORLDCOVER_LAND_TILES) / WORLDCOVER_LAND_TILES < 0.10
    ids = {t.id for t in land_tiles()}
    assert {"N48E003", "S03W063", "N30E030", "S36E147"} <= ids  # Paris, Amazon, Cairo, Canberra
    assert "N00W030" not in ids  # mid-Atlantic
    assert all(-60 <= t.lat < 84 for t in land_tiles())


def test_land_tiles_in_bbox():
    tiles = land_tiles((5, -1, 10, 4))
    assert [t.id for t in tiles] == sorted(t.id for t in tiles)
    assert all(t.bbox[0] < 10 and t.bbox[2] > 5 for t in tiles)
    assert "N00E009" in {t.id for t in tiles}


def test_cli_grid_info_json():
    rc, out, err = run_cli("grid", "info", "N00E006", "--json")
    assert rc == 0, err
    info = json.loads(out)
    assert info["bbox"] == [6, 0, 9, 3]
    assert info["transform"] == pytest.approx([1 / 12000, 0, 6, 0, -1 / 12000, 3])
    assert info["crs"] == "EPSG:4326" and info["shape"] == [36000, 36000]
    assert 0 < info["land_fraction"] < 0.05  # mostly Gulf of Guinea


@pytest.mark.parametrize(
    "args",
    [("grid", "info", "N91E000"), ("grid", "info", "X00E006"), ("grid", "info", "N00E007"),
     ("grid", "tiles", "--stage", "5pct"), ("grid", "tiles", "--bbox", "0,0,200,3")],
)
def test_cli_bad_input_is_one_line_exit_2(args):
    rc, out, err = run_cli(*args)
    assert rc == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ")
    assert "Traceback" not in err
