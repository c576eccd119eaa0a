"""The tile writer's COG layout on partial tiles of any size (the real-product comparison is in test_real_product)."""

from __future__ import annotations

import numpy as np
import pytest
from rio_cogeo.cogeo import cog_validate

from worldcover.layout import tile_paths
from worldcover.tile.products import BlockResult, assemble_tile, cog_layout, write_block_result


@pytest.mark.parametrize("shape", [(1024, 1024), (1024, 2048), (2048, 1024), (2048, 2048), (4096, 4096),
                                   (600, 4000), (1000, 700), (512, 512), (36000, 36000), (3000, 6000)])
def test_layout_never_gives_a_strip_over_512_px(shape):
    size, overviews = cog_layout(*shape)
    height, width = shape
    assert size <= min(shape) or size == 16
    for f in (1, *overviews):  # rio-cogeo: a level as wide as its block is not tiled
        w, h = -(-width // f), -(-height // f)
        assert w != size or max(w, h) <= 512, (f, w, size)
    assert cog_layout(36000, 36000) == (1024, [2, 4, 8, 16, 32, 64])  # the real product's layout is kept


@pytest.mark.parametrize("size", [1024, pytest.param(2048, marks=pytest.mark.slow)])  # 2048: ~6 s
def test_one_block_assembles_into_valid_cogs(tmp_path, size):
    """The benchmark's cases: a tile of one 1024 or 2048 px block (the product block size, or twice it)."""
    paths = tile_paths(tmp_path, "N45E003", 2021)
    block = paths.tile.block(4096 // size, 4096 // size, size)
    shape = block.shape
    rng = np.random.default_rng(0)
    write_block_result(paths, BlockResult(
        block=block, codes=rng.choice(np.array([10, 30, 40], np.uint8), size=shape),
        prob=rng.integers(30, 100, shape, dtype=np.uint8), n_s1=np.full(shape, 58, np.int16),
        n_s2=np.full(shape, 71, np.int16), pct_discarded=np.full(shape, 40, np.int16)))
    assemble_tile(paths, [block], model_card={"name": "m", "version": "0" * 20, "created": "2026-01-01T00:00:00Z"},
                  params={}, source="test")
    for path in (paths.map, paths.prob, paths.quality):
        ok, errors, _ = cog_validate(str(path), quiet=True)
        assert ok, (path.name, errors)
