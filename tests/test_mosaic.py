"""The global mosaic: VRT against the tile COGs, categorical overview levels, COG validity, areas.

Tiles are fabricated in the tile runner's layout (``worldcover.mosaic.synthetic``):
small Map windows at tile-grid offsets, three of them meeting at the corner
lon 9 / lat 36 so that windows of the mosaic straddle tile edges, one at an
offset that is not a multiple of 10 (partial 100 m cells), and one filled
with a single class for the area check. Two tiles are in Africa, two in
Europe (``stages.continent``).
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import rasterio
from rasterio.windows import Window
from rio_cogeo.cogeo import cog_validate

from worldcover.campaign.plan import CampaignPlan
from worldcover.errors import DataError
from worldcover.grid import PIXEL_SIZE, PIXELS_PER_DEGREE, Tile
from worldcover.layout import tile_paths
from worldcover.legend import CLASSES, CODES
from worldcover.mosaic import LEVELS, MosaicPaths, build_mosaic, categorical_mode
from worldcover.mosaic.overviews import CLASS_CODES, class_index_lut, count_cells
from worldcover.mosaic.synthetic import synthetic_codes, write_tile
from worldcover.stages import STAGES, stage_tiles, stratum

YEAR = 2021

# tile -> (row, col, height, width) of its Map window in the tile's pixel grid
WINDOWS = {
    "N33E006": (0, 35520, 480, 480),      # top-right corner: meets N33E009 and N36E006 at lon 9 / lat 36
    "N33E009": (0, 0, 480, 480),          # top-left corner
    "N36E006": (35641, 35283, 359, 717),  # bottom-right, offsets not multiples of 10: partial 100 m cells
    "N36E009": (1200, 2400, 600, 600),    # one class only (tree cover): area check
}
ONE_CLASS = "N36E009"
HAND_MADE = "N33E006"


def tile_data(tile: str) -> np.ndarray:
    r, c, h, w = WINDOWS[tile]
    if tile == ONE_CLASS:
        return np.full((h, w), 10, np.uint8)
    data = synthetic_codes((h, w), seed=sum(map(ord, tile)), patch=30)
    if tile == HAND_MADE:
        # hand-made 100 m cells (window rows/cols 100..110 are whole cells: the window starts on the grid)
        data[100:110, 100:105], data[100:110, 105:110] = 10, 30  # tie 50/50: mode 10; averaging would give 20
        data[110:120, 100:110] = 0
        data[110:120, 100][:3] = 80  # 97 nodata pixels and 3 water: water wins
        data[120:130, 100:110] = 50
        data[120:130, 100:104] = 60  # 60 x 40 vs 50 x 60: 50
    return data


def make_campaign(root: Path, tiles: list[str], name: str = "mosaic-test") -> Path:
    root.mkdir(parents=True, exist_ok=True)
    for t in tiles:
        r, c, _, _ = WINDOWS[t]
        write_tile(root, t, YEAR, tile_data(t), r, c)
    CampaignPlan.create(name, YEAR, tiles=list(WINDOWS), out_root="campaigns").save(root / "campaign.json")
    return root


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> tuple[Path, dict]:
    root = make_campaign(tmp_path_factory.mktemp("campaign"), list(WINDOWS))
    return root, build_mosaic(root)


def vrt_grid_offset(src, tile: str) -> tuple[int, int]:
    """(row, col) of a tile's NW corner in an opened 10 m mosaic."""
    t = Tile.parse(tile)
    col = round((t.lon - src.transform.c) / PIXEL_SIZE)
    row = round((src.transform.f - (t.lat + 3)) / PIXEL_SIZE)
    return row, col


def brute_mode(block: np.ndarray) -> int:
    """Most frequent non-zero code of a block, lowest code on ties; 0 when all nodata (independent of the library)."""
    values, counts = np.unique(block[block != 0], return_counts=True)
    return int(values[counts == counts.max()].min()) if values.size else 0


# --- unit: categorical counting ----------------------------------------------------------


def test_count_cells_and_mode_match_brute_force():
    rng = np.random.default_rng(3)
    codes = rng.choice(CLASS_CODES, size=(40, 60), p=[0.45] + [0.05] * 11).astype(np.uint8)
    codes[:10, :10] = 0  # an all-nodata cell
    cells, rows = count_cells(class_index_lut()[codes], 10)
    modes = categorical_mode(cells)
    for y in range(4):
        for x in range(6):
            assert modes[y, x] == brute_mode(codes[y * 10 : y * 10 + 10, x * 10 : x * 10 + 10])
    assert modes[0, 0] == 0
    for k, code in enumerate(CLASS_CODES):
        np.testing.assert_array_equal(rows[:, k], (codes == code).sum(axis=1))


def test_mode_is_categorical_never_an_average():
    counts = np.zeros((1, 3, len(CLASS_CODES)), np.uint16)
    counts[0, 0, [1, 3]] = 50            # 10 and 30 tie: the lower code, not their mean 20
    counts[0, 1, 0], counts[0, 1, 8] = 97, 3  # nodata does not win over a class
    counts[0, 2, 0] = 100                # all nodata: nodata
    assert categorical_mode(counts).tolist() == [[10, 80, 0]]


# --- the 10 m VRT ------------------------------------------------------------------------


def test_vrt_opens_as_one_10m_layer_with_overview_levels(built):
    root, summary = built
    paths = MosaicPaths(root, YEAR)
    with rasterio.open(paths.vrt) as src:
        assert src.count == 1 and src.dtypes[0] == "uint8" and src.nodata == 0
        assert src.crs.to_epsg() == 4326
        assert src.res == (PIXEL_SIZE, PIXEL_SIZE)
        west, south, east, north = summary["extent"]
        assert (src.width, src.height) == ((east - west) * PIXELS_PER_DEGREE, (north - south) * PIXELS_PER_DEGREE)
        assert src.colormap(1)[10] == (0, 100, 0, 255) and src.colormap(1)[80] == (0, 100, 200, 255)
        assert src.overviews(1) == [lv.factor for lv in LEVELS]
    for i, lv in enumerate(LEVELS):
        with rasterio.open(paths.vrt, overview_level=i) as ovr, rasterio.open(paths.level(lv)) as cog:
            assert ovr.res == pytest.approx((lv.res, lv.res), rel=1e-12)
            assert ovr.shape == cog.shape
            np.testing.assert_array_equal(ovr.read(1), cog.read(1))


def test_vrt_equals_tile_cogs_pixel_for_pixel(built):
    root, _ = built
    with rasterio.open(MosaicPaths(root, YEAR).vrt) as src:
        for tile in WINDOWS:
            r, c, h, w = WINDOWS[tile]
            row0, col0 = vrt_grid_offset(src, tile)
            with rasterio.open(tile_paths(root, tile, YEAR).map) as tsrc:
                expected = tsrc.read(1)
            got = src.read(1, window=Window(col0 + c - 5, row0 + r - 5, w + 10, h + 10), boundless=True)
            np.testing.assert_array_equal(got[5:-5, 5:-5], expected)
            np.testing.assert_array_equal(expected, tile_data(tile))


def test_vrt_windows_straddling_tile_edges(built):
    """A 600 x 600 window centred on the corner lon 9 / lat 36 where three tiles meet."""
    root, _ = built
    with rasterio.open(MosaicPaths(root, YEAR).vrt) as src:
        corner_row, corner_col = src.index(9.0 + PIXEL_SIZE / 2, 36.0 - PIXEL_SIZE / 2)  # first pixel SE of the corner
        half = 300
        got = src.read(1, window=Window(corner_col - half, corner_row - half, 2 * half, 2 * half))
        expected = np.zeros_like(got)
        for tile in ("N33E006", "N33E009", "N36E006"):
            r, c, h, w = WINDOWS[tile]
            row0, col0 = vrt_grid_offset(src, tile)
            y0, x0 = row0 + r - (corner_row - half), col0 + c - (corner_col - half)
            ys, xs = slice(max(y0, 0), min(y0 + h, 2 * half)), slice(max(x0, 0), min(x0 + w, 2 * half))
            expected[ys, xs] = tile_data(tile)[ys.start - y0 : ys.stop - y0, xs.start - x0 : xs.stop - x0]
    assert (got[:half, :half] != 0).any() and (got[half:, :half] != 0).any() and (got[half:, half:] != 0).any()
    np.testing.assert_array_equal(got, expected)


# --- overview levels ---------------------------------------------------------------------


def test_level_cogs_are_valid_cogs(built):
    root, _ = built
    for lv in LEVELS:
        path = MosaicPaths(root, YEAR).level(lv)
        ok, errors, _warnings = cog_validate(str(path), quiet=True)
        assert ok and not errors, (path.name, errors)
        with rasterio.open(path) as src:
            assert src.crs.to_epsg() == 4326 and src.nodata == 0 and src.colormap(1)[50] == (250, 0, 0, 255)
            assert src.res == pytest.approx((lv.res, lv.res), rel=1e-12)
            assert src.profile["compress"] == "deflate" and src.block_shapes[0] == (512, 512)


def _cells_to_check(lv, src) -> list[tuple[int, int]]:
    """Level cells over every tile window: corners, edges (partial cells) and a sample inside."""
    cells = set()
    rng = np.random.default_rng(lv.factor)
    for tile, (r, c, h, w) in WINDOWS.items():
        t = Tile.parse(tile)
        y0, x0 = src.index(t.lon + (c + 0.5) * PIXEL_SIZE, t.lat + 3 - (r + 0.5) * PIXEL_SIZE)
        y1, x1 = src.index(t.lon + (c + w - 0.5) * PIXEL_SIZE, t.lat + 3 - (r + h - 0.5) * PIXEL_SIZE)
        cells.update({(y0, x0), (y0, x1), (y1, x0), (y1, x1)})
        cells.update(zip(rng.integers(y0, y1 + 1, 12).tolist(), rng.integers(x0, x1 + 1, 12).tolist(), strict=True))
    return sorted(cells)


@pytest.mark.parametrize("level", LEVELS, ids=lambda lv: lv.name)
def test_level_values_are_modes_of_the_10m_pixels(built, level):
    root, _ = built
    paths = MosaicPaths(root, YEAR)
    with rasterio.open(paths.level(level)) as lsrc, rasterio.open(paths.vrt) as vsrc:
        cells = _cells_to_check(level, lsrc)
        level_data = lsrc.read(1)
        f = level.factor
        checked_classes = set()
        for y, x in cells:
            block = vsrc.read(1, window=Window(x * f, y * f, f, f))
            expected = brute_mode(block)
            assert level_data[y, x] == expected, (level.name, y, x)
            checked_classes.add(expected)
        assert len(checked_classes - {0}) >= 3  # the checks saw real classes, not only nodata
        # the NW corner of the extent (lon 6, lat 39) has no tile pixel: nodata
        assert brute_mode(vsrc.read(1, window=Window(0, 0, f, f))) == 0 and level_data[0, 0] == 0


@pytest.mark.parametrize("level", LEVELS, ids=lambda lv: lv.name)
def test_every_level_cell_over_the_windows_is_the_mode(built, level):
    """All cells over each tile window at once, against a reference written differently (per-code sums)."""
    root, _ = built
    paths = MosaicPaths(root, YEAR)
    f = level.factor
    codes = np.array(CODES)
    with rasterio.open(paths.level(level)) as lsrc, rasterio.open(paths.vrt) as vsrc:
        for tile, (r, c, h, w) in WINDOWS.items():
            row0, col0 = vrt_grid_offset(vsrc, tile)
            y0, x0 = (row0 + r) // f, (col0 + c) // f
            y1, x1 = -(-(row0 + r + h) // f), -(-(col0 + c + w) // f)
            pixels = vsrc.read(1, window=Window(x0 * f, y0 * f, (x1 - x0) * f, (y1 - y0) * f))
            blocks = pixels.reshape(y1 - y0, f, x1 - x0, f)
            per_code = np.stack([(blocks == code).sum(axis=(1, 3)) for code in codes])  # (code, y, x)
            expected = np.where(per_code.max(axis=0) > 0, codes[per_code.argmax(axis=0)], 0)
            got = lsrc.read(1, window=Window(x0, y0, x1 - x0, y1 - y0))
            np.testing.assert_array_equal(got, expected, err_msg=f"{level.name} over {tile}")


def test_hand_made_cells_at_100m(built):
    """Tie -> lower code; 3 water pixels among 97 nodata -> water; 60 x 40 vs 50 x 60 -> 50."""
    root, _ = built
    t = Tile.parse(HAND_MADE)
    r, c, _, _ = WINDOWS[HAND_MADE]
    with rasterio.open(MosaicPaths(root, YEAR).level("100m")) as src:
        y, x = src.index(t.lon + (c + 100 + 5) * PIXEL_SIZE, t.lat + 3 - (r + 100 + 5) * PIXEL_SIZE)
        assert src.read(1, window=Window(x, y, 1, 3)).ravel().tolist() == [10, 80, 50]


def test_level_internal_overviews_are_the_coarser_levels(built):
    """The 100 m COG's internal overviews are the 1 km and 10 km levels (exact modes, not modes of modes)."""
    root, _ = built
    paths = MosaicPaths(root, YEAR)
    with rasterio.open(paths.level("100m")) as src:
        assert src.overviews(1) == [10, 100]
        for i, name in enumerate(("1km", "10km")):
            with rasterio.open(paths.level("100m"), overview_level=i) as ovr, rasterio.open(paths.level(name)) as lv:
                np.testing.assert_array_equal(ovr.read(1), lv.read(1))


# --- areas -------------------------------------------------------------------------------


def test_one_class_tile_area_matches_geodesic_polygon(built):
    from pyproj import Geod

    root, _ = built
    doc = json.loads(MosaicPaths(root, YEAR).areas_json.read_text())
    r, c, h, w = WINDOWS[ONE_CLASS]
    t = Tile.parse(ONE_CLASS)
    west, north = t.lon + c * PIXEL_SIZE, t.lat + 3 - r * PIXEL_SIZE
    east, south = west + w * PIXEL_SIZE, north - h * PIXEL_SIZE
    # densify the parallels so the geodesic polygon follows the pixel rows' edges
    lons = np.r_[np.linspace(west, east, 50), np.linspace(east, west, 50)]
    lats = np.r_[np.full(50, south), np.full(50, north)]
    geod_km2 = abs(Geod(ellps="WGS84").polygon_area_perimeter(lons, lats)[0]) / 1e6
    areas = doc["tiles"][ONE_CLASS]["area_km2"]
    assert areas["10"] == pytest.approx(geod_km2, rel=1e-3)  # the acceptance bound
    # closed form on the ellipsoid: agrees to ~1e-11; a sphere of radius R_q would be 0.08 % off here
    assert areas["10"] == pytest.approx(geod_km2, rel=1e-6)
    assert all(v == 0 for k, v in areas.items() if k != "10")


def test_area_tables_by_stage_and_continent(built):
    root, summary = built
    paths = MosaicPaths(root, YEAR)
    doc = json.loads(paths.areas_json.read_text())
    groups = {(g["stage"], g["continent"]): g for g in doc["groups"]}
    tiles = doc["tiles"]
    assert set(tiles) == set(WINDOWS)
    # every group is the sum of its tiles
    for (stage, cont), g in groups.items():
        members = [t for t in tiles if (stage == "all" or stage in tiles[t]["stages"])
                   and (cont == "all" or tiles[t]["continent"] == cont)]
        assert g["tiles"] == len(members)
        for code in CODES:
            assert g["area_km2"][str(code)] == pytest.approx(sum(tiles[t]["area_km2"][str(code)] for t in members))
    # stage membership and continents come from the stage selection and stratum
    for t, info in tiles.items():
        assert info["stages"] == [s for s in STAGES if Tile.parse(t) in stage_tiles(s)]
        assert info["continent"] == stratum(Tile.parse(t)).continent
    assert groups[("all", "Africa")]["tiles"] == 2 and groups[("all", "Europe")]["tiles"] == 2
    assert groups[("all", "Europe")]["area_km2"]["10"] > tiles[ONE_CLASS]["area_km2"]["10"] > 0
    assert summary["area_km2"] == groups[("all", "all")]["area_km2"]
    # the CSV holds the same numbers: one row per class for each group, groups holding the same tiles
    # (here every tile is outside the land stages or in all of them) merged into one row naming their stages
    rows = list(csv.DictReader(paths.areas_csv.open()))
    covered = [(stage, row["continent"], row["code"]) for row in rows for stage in row["stages"].split()]
    assert sorted(covered) == sorted((s, c, str(code)) for s, c in groups for code in CODES)  # each once
    assert len(rows) < len(groups) * len(CLASSES)  # identical rows are not repeated per stage
    assert len({tuple(r.values()) for r in rows}) == len(rows)
    for row in rows:
        for stage in row["stages"].split():
            group = groups[(stage, row["continent"])]
            assert float(row["area_km2"]) == pytest.approx(group["area_km2"][row["code"]], abs=1e-6)
            assert int(row["tiles"]) == group["tiles"]


def test_pixel_areas_shrink_with_latitude(tmp_path):
    """Same window, same class: the tile at 60 N maps about half the area of the one at the equator
    (cos(latitude), times ~1 % from the ellipsoid's flattening), not the same pixel count x a constant."""
    for tile in ("N00E006", "N60E006"):
        write_tile(tmp_path, tile, YEAR, np.full((300, 300), 40, np.uint8), 18000, 18000)
    build_mosaic(tmp_path, YEAR)
    tiles = json.loads(MosaicPaths(tmp_path, YEAR).areas_json.read_text())["tiles"]
    ratio = tiles["N60E006"]["area_km2"]["40"] / tiles["N00E006"]["area_km2"]["40"]
    assert ratio == pytest.approx(np.cos(np.radians(61.5)) / np.cos(np.radians(1.5)), rel=2e-2)


# --- quicklook ---------------------------------------------------------------------------


def test_quicklook_has_the_legend_colours(built):
    import matplotlib.image as mpimg

    root, _ = built
    png = MosaicPaths(root, YEAR).quicklook
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    rgb = (mpimg.imread(png)[..., :3] * 255).round().astype(np.int64)
    present = set(np.unique(rgb[..., 0] << 16 | rgb[..., 1] << 8 | rgb[..., 2]).tolist())
    for c in CLASSES:
        assert int(c.colour, 16) in present, c.name  # legend patches in the official colours


def test_quicklook_panel_window_finds_the_mapped_patch(tmp_path):
    """A 100 x 150 px patch in a 3000 px Map COG: the panel shows it whole and little else."""
    from worldcover.mosaic.quicklook import data_window

    data = np.zeros((3000, 3000), np.uint8)
    data[1000:1100, 2000:2150] = 40
    data[1040:1060, 2050:2080] = 50
    paths = write_tile(tmp_path, "N00E006", YEAR, data, 0, 0, quality=False)
    found = data_window(paths.map, max_pixels=256)
    assert found is not None
    codes, (west, east, south, north) = found
    t = Tile.parse("N00E006")
    patch = (t.lon + 2000 * PIXEL_SIZE, t.lon + 2150 * PIXEL_SIZE,
             t.lat + 3 - 1100 * PIXEL_SIZE, t.lat + 3 - 1000 * PIXEL_SIZE)
    assert west <= patch[0] and east >= patch[1] and south <= patch[2] and north >= patch[3]
    margin = 3 * 3000 / 512 * PIXEL_SIZE  # the box is found on a 512 px read, grown by a coarse pixel
    assert west > patch[0] - margin and east < patch[1] + margin and north < patch[3] + margin
    assert max(codes.shape) <= 256 and {40, 50} <= set(np.unique(codes).tolist())
    empty = write_tile(tmp_path / "e", "N00E006", YEAR, np.zeros((600, 600), np.uint8), 0, 0, quality=False)
    assert data_window(empty.map) is None


# --- input checks ------------------------------------------------------------------------


def test_misaligned_or_foreign_maps_are_refused(tmp_path):
    from affine import Affine
    from odc.geo.geobox import GeoBox

    from worldcover.cog import write_cog
    from worldcover.mosaic.pieces import compute_tile_pieces

    paths = write_tile(tmp_path, "N00E006", YEAR, np.full((64, 64), 10, np.uint8), 0, 0)
    half = Affine(PIXEL_SIZE, 0, 6 + PIXEL_SIZE / 2, 0, -PIXEL_SIZE, 3)
    write_cog(paths.map, np.full((64, 64), 10, np.uint8), GeoBox((64, 64), half, "EPSG:4326"), nodata=0)
    with pytest.raises(DataError, match="not on tile N00E006's pixel grid"):
        compute_tile_pieces(paths, tmp_path / "c", "x")
    bad = np.full((64, 64), 10, np.uint8)
    bad[3, 3] = 7
    write_tile(tmp_path, "N00E006", YEAR, bad, 0, 0)
    with pytest.raises(DataError, match=r"codes \[7\] are not WorldCover legend codes"):
        compute_tile_pieces(paths, tmp_path / "c", "x")
