"""A small campaign end to end: simulated archive -> loopback STAC API -> local dask engine.

Two tiles of one 120 px block each, the committed default model, the real
loader, preprocessing, features, LightGBM, products, mosaic and validation.
One tile gets a corrupt COG: it fails, the other finishes, and a rerun after
the input is repaired does only the failed tile.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import rasterio

from tests.helpers import DEFAULT_MODEL as MODEL
from worldcover import sim
from worldcover.campaign import CampaignPlan
from worldcover.engines.local import run_campaign
from worldcover.grid import Tile
from worldcover.layout import is_finished, tile_paths
from worldcover.sources.local_api import LocalStacApi

YEAR = 2021
BLOCK = 120
TILES = ("N45E003", "S24E021")  # temperate Europe, subtropical southern Africa
SPEC = "r150c150"


@pytest.fixture(scope="module")
def archive(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("e2e") / "archive"
    blocks = [Tile.parse(t).block(150, 150, BLOCK) for t in TILES]
    sim.generate(blocks, YEAR, root, seed=3)
    return root


@pytest.fixture(scope="module")
def api(archive):
    with LocalStacApi(archive) as server:
        yield server


def _plan(api, out: Path, archive: Path) -> CampaignPlan:
    return CampaignPlan.create("e2e-1pct", YEAR, tiles=list(TILES), model=str(MODEL), source=api.url,
                               out_root=str(out), block_size=BLOCK, blocks=SPEC, reference=f"sim:{archive}")


def _an_s2_asset(archive: Path, tile: str) -> Path:
    items = json.loads((archive / "stac" / "items" / "sentinel-2-l2a.json").read_text())["features"]
    item = next(i for i in items if tile in i["id"])
    return Path(item["assets"]["B04"]["href"].removeprefix("file://"))


@pytest.mark.slow
def test_campaign_isolates_a_corrupt_tile_and_retries_only_it(api, archive, tmp_path):
    out = tmp_path / "campaign"
    bad = _an_s2_asset(archive, TILES[1])
    backup = tmp_path / "backup.tif"
    shutil.copy(bad, backup)
    bad.write_bytes(b"II*\x00 this is not a GeoTIFF any more")
    try:
        first = run_campaign(_plan(api, out, archive), workers=1, threads=2, retries=1, backoff_s=0.05,
                             progress=False)
    finally:
        shutil.copy(backup, bad)
    assert first.failed_tiles == [TILES[1]]
    ok = tile_paths(out, TILES[0], YEAR)
    assert is_finished(ok) and not is_finished(tile_paths(out, TILES[1], YEAR))
    assert tile_paths(out, TILES[1], YEAR).failure.exists()
    failures = json.loads((out / "failed_tiles.json").read_text())
    assert failures["failed"] == [TILES[1]]
    assert first.step("merge").ok  # the finished tile was still merged
    # no partial product of the failed tile looks complete
    assert not list(tile_paths(out, TILES[1], YEAR).dir.glob("*_Map.tif"))

    mtime = ok.map.stat().st_mtime_ns
    second = run_campaign(_plan(api, out, archive), workers=1, threads=2, retries=1, backoff_s=0.05,
                          progress=False)
    assert second.failed_tiles == []
    status = {s.tile: s.result["status"] for s in second.tiles}
    assert status == {TILES[0]: "skipped", TILES[1]: "done"}
    assert ok.map.stat().st_mtime_ns == mtime  # the finished tile was not redone
    assert not tile_paths(out, TILES[1], YEAR).failure.exists()

    report = second.step("validate")
    assert report.ok and report.result["status"] == "reported"
    assert 0.0 <= report.result["overall_accuracy"] <= 1.0
    html = Path(report.result["report"]).read_text()
    assert "data:image/png;base64," in html


@pytest.mark.slow  # a simulated archive and a tile run: ~100 s
def test_tile_products_are_valid_and_consistent(api, archive, tmp_path):
    from rio_cogeo.cogeo import cog_validate

    from worldcover.tile.run import run_tile

    run = run_tile(TILES[0], YEAR, api.url, MODEL, tmp_path, block_size=BLOCK, blocks=SPEC)
    assert run.status == "done" and run.pixels == BLOCK * BLOCK
    paths = tile_paths(tmp_path, TILES[0], YEAR)
    for p in (paths.map, paths.prob, paths.quality):
        assert cog_validate(str(p), quiet=True)[0], p
    block = Tile.parse(TILES[0]).block(150, 150, BLOCK)
    with rasterio.open(paths.map) as m, rasterio.open(paths.prob) as p, rasterio.open(paths.quality) as q:
        codes, prob = m.read(1), p.read(1)
        assert m.transform == block.geobox.transform and m.nodata == 0
        assert m.colormap(1)[10][:3] == (0, 100, 0)  # tree cover, official colour
        assert set(np.unique(codes)) <= {0, 10, 20, 30, 40, 50, 60, 70, 80, 90, 95, 100}
        assert ((prob > 0) == (codes > 0)).all() and prob.max() <= 100
        assert q.count == 3 and q.dtypes[0] == "int16" and q.nodata == -1
        assert q.res == pytest.approx((0.0005, 0.0005)) and q.shape == (BLOCK // 6, BLOCK // 6)
        n_s1, n_s2, pct = q.read()
        assert n_s2.max() <= 80 and n_s2.min() > 30  # ~73 acquisitions at 5-day revisit, some missing
        assert n_s1.min() > 20 and pct.min() >= 0 and pct.max() <= 100
    item = json.loads(paths.item.read_text())
    assert item["properties"]["worldcover:input_items"]["s2"]
    assert item["properties"]["worldcover:model"]["version"]
    assert is_finished(paths)
    # a second run is a no-op
    again = run_tile(TILES[0], YEAR, api.url, MODEL, tmp_path, block_size=BLOCK, blocks=SPEC)
    assert again.status == "skipped"


@pytest.mark.slow  # a simulated archive and a tile run: ~100 s
def test_offset_harmonisation_end_to_end(tmp_path):
    """The same surface written with and without the 04.00 offset loads to the same reflectance."""
    from worldcover.sources.stac import StacSource

    block = Tile.parse(TILES[0]).block(151, 151, 60)
    loaded = {}
    for baseline in ("03.01", "04.00"):
        root = tmp_path / baseline
        sim.generate([block], 2022, root, seed=5, baseline=baseline, period=("2022-06-01", "2022-06-30"))
        with LocalStacApi(root) as server:
            loaded[baseline] = StacSource(server.url, chunk=None).load_block(block, 2022)
    a, b = loaded["03.01"].s2, loaded["04.00"].s2
    assert {h.offset_dn for h in loaded["04.00"].harmonisation} == {-1000}
    assert {h.offset_dn for h in loaded["03.01"].harmonisation} == {0}
    np.testing.assert_allclose(a["B04"].values, b["B04"].values, atol=1.5e-4, equal_nan=True)
