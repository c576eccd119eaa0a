"""Our products against the real ESA WorldCover tiles of N00E006 (v100 2020, v200 2021).

The real tiles are 36000 x 36000 px: the fast tests read headers, tags and
sampled points only; a full pass over a real map (mosaic, validation design
and report) is marked slow. Skipped when ``../shared/realdata`` is absent.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
import rasterio

from tests.helpers import SHARED, run_cli
from worldcover.grid import Tile
from worldcover.layout import TilePaths, find_tile_paths, finished_tiles, parse_file_name, tile_paths
from worldcover.legend import CODES, colormap
from worldcover.tile.products import (
    PRODUCT_BLOCKSIZE,
    BlockResult,
    assemble_tile,
    cog_layout,
    legend_tag,
    write_block_result,
)

REAL = SHARED / "realdata" / "esa-worldcover-N00E006"
MAP = {2020: REAL / "ESA_WorldCover_10m_2020_v100_N00E006_Map.tif",
       2021: REAL / "ESA_WorldCover_10m_2021_v200_N00E006_Map.tif"}
IQ = {2020: REAL / "ESA_WorldCover_10m_2020_v100_N00E006_InputQuality.tif",
      2021: REAL / "ESA_WorldCover_10m_2021_v200_N00E006_InputQuality.tif"}
# Per-class pixel counts of the real v200 map, from a full strip-by-strip bincount of all 1.296e9 pixels.
V200_PIXELS = {10: 10819361, 20: 778, 30: 392489, 40: 4672, 50: 181604, 60: 124660, 80: 153136048, 90: 4390,
               95: 4637}
GDAL_TAGS = {"AREA_OR_POINT", "OVR_RESAMPLING_ALG", "OVERVIEW_RESAMPLING"}  # written by GDAL / rio-cogeo

pytestmark = pytest.mark.skipif(not all(p.exists() for p in [*MAP.values(), *IQ.values()]),
                                reason=f"real WorldCover tiles not present under {REAL}")


def _colormap(src) -> dict | None:
    try:
        return src.colormap(1)
    except ValueError:  # no colour table (Prob, InputQuality)
        return None


def _header(path: Path) -> dict:
    with rasterio.open(path) as src:
        return {"tags": src.tags(), "block": src.block_shapes[0], "overviews": src.overviews(1), "shape": src.shape,
                "dtype": src.dtypes[0], "nodata": src.nodata, "count": src.count,
                "colormap": _colormap(src), "compress": src.profile.get("compress")}


# --- layout, names, legend: fast -----------------------------------------------------------


@pytest.mark.parametrize("path", [*MAP.values(), *IQ.values()], ids=lambda p: p.name)
def test_layout_rule_reproduces_the_real_tiles_blocks_and_overviews(path):
    real = _header(path)
    size, overviews = cog_layout(*real["shape"])
    assert (size, size) == real["block"] == (PRODUCT_BLOCKSIZE, PRODUCT_BLOCKSIZE)
    assert overviews == real["overviews"]  # Map: 2..64; InputQuality: 2, 4, 8


def test_esa_naming_gives_the_real_file_names(tmp_path):
    for year, version in ((2020, "v100"), (2021, "v200")):
        paths = TilePaths(tmp_path, Tile.parse("N00E006"), year, "esa", version)
        assert paths.map.name == MAP[year].name and paths.quality.name == IQ[year].name
        assert parse_file_name(MAP[year].name) == {"year": year, "tile": "N00E006", "naming": "esa",
                                                   "version": version, "product": "Map"}
    ours = tile_paths(tmp_path, "N00E006", 2021)  # the default is unchanged
    assert ours.map.name == "worldcover_2021_N00E006_Map.tif"


def test_legend_tag_and_colour_table_are_the_real_v200s():
    real = _header(MAP[2021])
    assert legend_tag() == real["tags"]["legend"]
    ours = colormap()
    assert {c: ours[c] for c in (0, *CODES)} == {c: real["colormap"][c] for c in (0, *CODES)}


# --- our writer: a partial tile assembled from block results ------------------------------


def _block_result(block, seed: int) -> BlockResult:
    rng = np.random.default_rng(seed)
    shape = block.shape
    codes = rng.choice(np.array(CODES, np.uint8), size=shape)
    codes[: shape[0] // 10] = 0  # some nodata
    return BlockResult(block=block, codes=codes, prob=rng.integers(30, 100, shape, dtype=np.uint8),
                       n_s1=np.full(shape, 58, np.int16), n_s2=np.full(shape, 71, np.int16),
                       pct_discarded=np.full(shape, 40, np.int16))


@pytest.fixture(scope="module")
def our_tile(tmp_path_factory) -> TilePaths:
    """Two 1200 px blocks of N00E006 through the tile writer, under ESA's file names."""
    root = tmp_path_factory.mktemp("our-tile")
    paths = tile_paths(root, "N00E006", 2021, naming="esa")
    blocks = [paths.tile.block(0, 0, 1200), paths.tile.block(0, 1, 1200)]
    for i, b in enumerate(blocks):
        write_block_result(paths, _block_result(b, i))
    card = {"name": "worldcover-default-sim", "version": "1399dde109c746dea30f", "created": "2026-11-22T06:15:35Z"}
    assemble_tile(paths, blocks, model_card=card, params={}, source="http://127.0.0.1:1")
    return paths


def test_our_map_and_input_quality_carry_the_real_products_tags(our_tile):
    pairs = ((our_tile.map, MAP[2021], "legend"), (our_tile.quality, IQ[2021], "description"))
    for ours_path, real_path, extra in pairs:
        ours, real = _header(ours_path)["tags"], _header(real_path)["tags"]
        assert set(ours) - GDAL_TAGS == set(real) - GDAL_TAGS, ours_path.name  # the same keys, no more, no less
        assert extra in ours
        for key in ("license", "product_crs", "product_grid", "product_tile", "product_type"):
            assert ours[key] == real[key], key
        assert ours["time_start"] == "2021-01-01T00:00:00Z" and ours["time_end"] == "2021-12-31T23:59:59Z"
        assert re.fullmatch(r"V\d+\.\d+\.\d+", ours["product_version"]) and ours["product_version"] != "V2.0.0"
        for key in ("creation_time",):  # the same format as ESA's ('2022-10-21 07:35:40.236136')
            pattern = r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{6}"
            assert re.fullmatch(pattern, real[key]) and re.fullmatch(pattern, ours[key])
        assert "Contains modified Copernicus Sentinel data (2021)" in ours["copyright"]
        assert "ESA WorldCover" not in ours["title"] and "worldcover-default-sim" in ours["algorithm_version"]
    assert _header(our_tile.map)["tags"]["legend"] == _header(MAP[2021])["tags"]["legend"]
    iq = _header(our_tile.quality)["tags"]["description"]
    assert iq.startswith("Band 1: Number of Sentinel-1") and "Band 3: Percentage (0-100)" in iq


def test_our_partial_tile_follows_the_real_layout_rule(our_tile):
    for path in (our_tile.map, our_tile.prob, our_tile.quality):
        h = _header(path)
        size, overviews = cog_layout(*h["shape"])
        assert h["block"] == (size, size) and h["overviews"] == overviews, path.name
    m, q = _header(our_tile.map), _header(our_tile.quality)
    assert m["shape"] == (1200, 2400) and m["block"] == (1024, 1024) and m["overviews"] == [2]
    assert q["shape"] == (200, 400) and q["block"] == (128, 128) and q["overviews"] == [2]
    real = _header(MAP[2021])
    assert (m["dtype"], m["nodata"], m["compress"]) == (real["dtype"], real["nodata"], real["compress"])
    rq = _header(IQ[2021])
    assert (q["dtype"], q["nodata"], q["count"]) == (rq["dtype"], rq["nodata"], rq["count"])


def test_esa_named_tile_is_found_by_the_campaign_tools(our_tile):
    assert our_tile.map.name == "ESA_WorldCover_10m_2021_v010_N00E006_Map.tif"
    found = find_tile_paths(our_tile.root, "N00E006", 2021)
    assert found == our_tile and found.item.exists()
    assert finished_tiles(our_tile.root, 2021) == ["N00E006"]
    item = json.loads(our_tile.item.read_text())
    assert item["id"] == "ESA_WorldCover_10m_2021_v010_N00E006"
    assert {a["href"] for a in item["assets"].values()} == {
        f"./{our_tile.map.name}", f"./{our_tile.prob.name}", f"./{our_tile.quality.name}"}


# --- the tools on the real maps -------------------------------------------------------------


def _maps_folder(tmp_path: Path, *years: int) -> Path:
    folder = tmp_path / "maps"
    folder.mkdir()
    for y in years:
        for p in (MAP[y], IQ[y]):
            (folder / p.name).symlink_to(p)
    return folder


@pytest.mark.slow  # CLI subprocesses: ~5 s
def test_mosaic_of_a_maps_folder_refuses_ambiguity_in_one_line(tmp_path):
    folder = _maps_folder(tmp_path, 2020, 2021)
    code, out, err = run_cli("mosaic", "build", "--maps", str(folder), "--out", str(tmp_path / "m"))
    assert code == 2 and err.strip() == (f"error: maps folder {str(folder)!r} holds maps of 2020, 2021: pass --year")
    code, out, err = run_cli("mosaic", "build", "--maps", str(folder))
    assert code == 2 and "expected --out ROOT" in err and "Traceback" not in err
    code, out, err = run_cli("mosaic", "build", "--maps", str(folder), "--campaign", str(tmp_path))
    assert code == 2 and "either --campaign ROOT or --maps FOLDER" in err


@pytest.mark.slow
def test_mosaic_builds_from_the_real_v200_tile(tmp_path):
    from worldcover.area import class_areas
    from worldcover.mosaic import MosaicPaths, build_mosaic

    folder = _maps_folder(tmp_path, 2021)
    out = tmp_path / "out"
    summary = build_mosaic(out, maps=folder)
    assert summary["status"] == "built" and summary["year"] == 2021 and summary["tiles"] == 1
    assert summary["extent"] == [6, 0, 9, 3]
    areas = class_areas(MAP[2021])  # {code: (pixels, ha)} from the validation's own pass
    assert {int(c): round(a, 3) for c, a in summary["area_km2"].items() if a} == {
        c: round(ha / 100, 3) for c, (_, ha) in areas.items()}
    paths = MosaicPaths(out, 2021)
    with rasterio.open(paths.vrt) as vrt, rasterio.open(MAP[2021]) as real:
        window = ((17000, 17600), (20000, 20700))  # São Tomé's coast: land, water and nodata
        assert np.array_equal(vrt.read(1, window=window), real.read(1, window=window))
    item = json.loads((paths.items / "N00E006.json").read_text())
    assert item["id"] == "ESA_WorldCover_10m_2021_v200_N00E006"
    assert item["properties"]["worldcover:product_version"] == "V2.0.0"
    assert build_mosaic(out, maps=folder)["status"] == "up-to-date"


@pytest.mark.slow
def test_design_and_map_comparison_on_the_real_v200_and_v100(tmp_path):
    from worldcover.validation.design import design_sample
    from worldcover.validation.labels import label_from_map
    from worldcover.validation.report import build_report, sample_raster
    from worldcover.validation.tables import write_samples

    # land_mask=None: every classified pixel, ocean water included (N00E006 is mostly Gulf of Guinea)
    design = design_sample(MAP[2021], n=400, min_per_class=20, seed=1, land_mask=None)
    assert {s.code: s.pixels for s in design.strata} == V200_PIXELS  # the overview-guided scan misses no pixel
    samples = design.samples
    on_map = sample_raster(MAP[2021], samples["lon"].to_numpy(), samples["lat"].to_numpy())
    assert np.array_equal(on_map, samples["map_class"].to_numpy())
    write_samples(samples, tmp_path / "samples.csv")
    labelled = label_from_map(tmp_path / "samples.csv", MAP[2020], tmp_path / "labelled.csv")
    assert labelled["labelled"] == 400 and labelled["dropped"] == 0
    report = build_report(MAP[2021], tmp_path / "labelled.csv", tmp_path / "report", compare_path=MAP[2020],
                          land_mask=None)
    oa = report.metrics["overall_accuracy"]["estimate"]
    assert 0.95 < oa < 1.0  # v200 agrees with v100 on most of the area, not all of it
    # the compared map is v100 itself, read at the same points: agreement must be exact
    assert report.metrics["comparison"]["compare"]["overall_accuracy"]["estimate"] == 1.0
    assert report.html.exists()
