"""Bad inputs to one tile: a missing asset, a missing file, a block with no clear observation.

Each gives a clear error or a documented nodata result; never a map that looks
finished. Runs the real chain (sim COGs -> rustac -> odc-stac -> committed model).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from tests.helpers import DEFAULT_MODEL as MODEL
from worldcover import sim
from worldcover.chain import ChainParams
from worldcover.errors import DataError
from worldcover.grid import Tile
from worldcover.layout import is_finished, tile_paths
from worldcover.legend import NODATA
from worldcover.model import Model
from worldcover.sources.local_api import LocalStacApi
from worldcover.sources.stac import StacSource
from worldcover.tile.run import classify_block, run_tile

YEAR = 2021
BLOCK = 60
TILE = "N45E003"
SPEC = "r300c300"


@pytest.fixture(scope="module")
def pristine(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("bad-inputs") / "archive"
    sim.generate([Tile.parse(TILE).block(300, 300, BLOCK)], YEAR, root, seed=5)
    return root


@pytest.fixture
def archive(pristine, tmp_path) -> Path:
    """A private copy of the archive that a test may damage (hrefs rewritten to the copy)."""
    copy = tmp_path / "archive"
    shutil.copytree(pristine, copy)
    for path in (copy / "stac" / "items").glob("*.json"):
        path.write_text(path.read_text().replace(str(pristine), str(copy)))
    return copy


def _s2_items(archive: Path) -> tuple[Path, dict]:
    path = archive / "stac" / "items" / "sentinel-2-l2a.json"
    return path, json.loads(path.read_text())


def _assert_failed_cleanly(out: Path) -> None:
    paths = tile_paths(out, TILE, YEAR)
    assert not is_finished(paths)
    assert not paths.map.exists() and not paths.item.exists()
    assert json.loads(paths.failure.read_text())["type"] == "DataError"
    leftovers = [p.name for p in paths.dir.rglob("*") if p.is_file() and p != paths.failure]
    assert not [n for n in leftovers if ".tmp" in n], leftovers


@pytest.mark.slow  # a simulated archive and tile runs: ~90 s
def test_items_without_a_needed_band_asset_are_a_data_error_naming_block_and_band(archive, tmp_path):
    # one item lacking a band is skipped and counted (tests/test_real_inputs.py); all of them: nothing to map
    path, fc = _s2_items(archive)
    for victim in fc["features"]:
        del victim["assets"]["B04"]
    path.write_text(json.dumps(fc))
    out = tmp_path / "out"
    n = len(fc["features"])
    expected = rf"block {TILE}_{SPEC}: none of the {n} Sentinel-2 items .* missing: B04 \({n} items\)"
    with LocalStacApi(archive) as api, pytest.raises(DataError, match=expected):
        run_tile(TILE, YEAR, api.url, MODEL, out, block_size=BLOCK, blocks=SPEC)
    _assert_failed_cleanly(out)
    assert "missing: B04" in json.loads(tile_paths(out, TILE, YEAR).failure.read_text())["error"]


@pytest.mark.slow  # a simulated archive and tile runs: ~90 s
def test_asset_whose_file_is_gone_fails_the_tile_naming_the_file(archive, tmp_path):
    path, fc = _s2_items(archive)
    victim = fc["features"][3]["assets"]["B11"]["href"].removeprefix("file://")
    Path(victim).unlink()
    out = tmp_path / "out"
    with LocalStacApi(archive) as api, pytest.raises(Exception) as info:
        run_tile(TILE, YEAR, api.url, MODEL, out, block_size=BLOCK, blocks=SPEC)
    assert Path(victim).name in str(info.value)
    paths = tile_paths(out, TILE, YEAR)
    assert not is_finished(paths) and not paths.map.exists()
    assert Path(victim).name in json.loads(paths.failure.read_text())["error"]


@pytest.mark.slow  # a simulated archive and tile runs: ~90 s
def test_pixels_without_a_clear_observation_all_year_are_nodata(pristine):
    """Cloud over the west half of the block in every scene: that half is nodata 0, the rest is mapped."""
    block = Tile.parse(TILE).block(300, 300, BLOCK)
    model = Model.load(MODEL)
    with LocalStacApi(pristine) as api:
        inputs = StacSource(api.url, chunk=None).load_block(block, YEAR)
    scl = inputs.s2["SCL"].load()
    half = BLOCK // 2
    scl[:, :, :half] = 9  # cloud, high probability
    inputs.s2["SCL"] = scl
    result = classify_block(block, YEAR, inputs, model, ChainParams())
    west, east = result.codes[:, :half - 4], result.codes[:, half + 4:]  # skip the dilated cloud edge
    assert (west == NODATA).all() and (result.prob[:, :half - 4] == 0).all()
    assert (result.n_s2[:, :half] > 0).all()  # observed, yet never clear
    assert (east != NODATA).all() and set(np.unique(east)) <= set(model.trained_classes)
    assert (result.pct_discarded[:, :half] == 100).all()
