"""The tile writer's COG layout on partial tiles of any size (the real-product comparison is in test_real_product)."""

from __future__ import annotations

import numpy as np
import pytest
from rio_cogeo.cogeo import cog_validate

from worldcover.products import tile_paths
from worldcover.tile.products import BlockResult, assemble_tile, cog_layout, write_block_result


@pytest.mark.parametrize("shape", [(1024, 1024), (1024, 2048), (2048, 1024), (600, 4000), (1000, 700),
                                   (512, 512), (36000, 36000)])
def test_layout_never_gives_a_strip_over_512_px(shape):
    size, _ = cog_layout(*shape)
    height, width = shape
    assert size <= min(shape) or size == 16
    if max(shape) > 512:
        assert size < width  # rio-cogeo: a block as wide as the raster is not tiled


def test_one_1024_px_block_assembles_into_valid_cogs(tmp_path):
    """The benchmark's case: a tile of one 1024 px block (its width is the product block size)."""
    paths = tile_paths(tmp_path, "N45E003", 2021)
    block = paths.tile.block(4, 4, 1024)
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
