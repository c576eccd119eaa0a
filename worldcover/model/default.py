"""The committed default model: trained on the simulated world through the production chain.

Training blocks are simulated, written as COGs with STAC items, served by a
loopback STAC API and loaded with odc-stac exactly as a campaign loads them,
so the model sees the same preprocessing it will meet in production. Test
blocks come from other tiles in other regions. A baseline that sees only one
summer composite (no temporal features, no S1) is trained on the same
points, so the card shows what the temporal and radar features buy.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import rasterio
import xarray as xr

from worldcover.grid import Block, Tile
from worldcover.stages import ZONES, stage_tiles, stratum

DEFAULT_MODEL_DIR = Path(__file__).resolve().parents[2] / "models" / "default"
DEFAULT_MODEL_NAME = "worldcover-default-sim"
TRAIN_BLOCK_SIZE = 240


@dataclass(frozen=True)
class TrainingDesign:
    """Which simulated blocks train the model and which test it (different tiles and regions)."""

    train: tuple[Block, ...]
    test: tuple[Block, ...]


def training_design(train_per_zone: int = 3, test_per_zone: int = 1, blocks_per_tile: int = 1,
                    block_size: int = TRAIN_BLOCK_SIZE, seed: int = 2021) -> TrainingDesign:
    """Tiles outside the 10pct stage, per latitude zone; test tiles never share a tile or a 9x9-degree cell with train."""
    ten = {t.id for t in stage_tiles("10pct", seed)}
    pool = [t for t in stage_tiles("100pct", seed) if t.id not in ten and t.land_fraction > 0.5]
    rng = np.random.default_rng(seed)
    train: list[Block] = []
    test: list[Block] = []
    for zone, _, _ in ZONES:
        tiles = [t for t in pool if stratum(t).zone == zone]
        if not tiles:
            continue
        order = rng.permutation(len(tiles))
        chosen = [tiles[i] for i in order]
        train_tiles = chosen[:train_per_zone]
        region = {(t.lat // 9, t.lon // 9) for t in train_tiles}
        test_tiles = [t for t in chosen[train_per_zone:] if (t.lat // 9, t.lon // 9) not in region][:test_per_zone]
        train += [b for t in train_tiles for b in _centre_blocks(t, blocks_per_tile, block_size)]
        test += [b for t in test_tiles for b in _centre_blocks(t, blocks_per_tile, block_size)]
    return TrainingDesign(tuple(train), tuple(test))


def _centre_blocks(tile: Tile, n: int, block_size: int) -> list[Block]:
    rows, cols = tile.block_grid(block_size)
    r, c = rows // 2, cols // 2
    return [tile.block(r, c + 2 * k, block_size) for k in range(n)]


def read_truth(archive: Path, block: Block) -> xr.DataArray:
    """The simulator's truth raster of a block as (y, x) uint8 codes."""
    path = Path(archive) / "truth" / block.tile.id / f"{block.tile.id}_{block.key}_truth.tif"
    with rasterio.open(path) as src:
        data = src.read(1)
    coords = block.geobox.coordinates
    names = list(coords)
    return xr.DataArray(data, dims=("y", "x"), coords={"y": coords[names[0]].values, "x": coords[names[1]].values})


def block_features(source, block: Block, year: int, configs: dict) -> dict[str, xr.DataArray]:
    """Features of one block for each named FeatureConfig, sharing the preprocessing."""
    import dask

    from worldcover.features import compute_features
    from worldcover.preprocess.s1 import preprocess_s1
    from worldcover.preprocess.s2 import preprocess_s2

    inputs = source.load_block(block, year)
    s2 = preprocess_s2(inputs.s2, year)
    s1 = preprocess_s1(inputs.s1, year).db if inputs.s1 is not None else None
    out = {name: compute_features(s2.composites, s1 if cfg.s1 else None, inputs.dem if cfg.terrain else None, cfg)
           for name, cfg in configs.items()}
    with dask.config.set(scheduler="threads"):
        computed = dask.compute(out)[0]
    return {k: v.rename({d: n for d, n in (("latitude", "y"), ("longitude", "x")) if d in v.dims})
            for k, v in computed.items()}


def train_default_model(out_dir: str | os.PathLike = DEFAULT_MODEL_DIR, *, year: int = 2021, sim_seed: int = 0,
                        max_per_class: int = 200, seed: int = 0, num_threads: int | None = None,
                        work_dir: str | os.PathLike | None = None, design: TrainingDesign | None = None,
                        progress=None) -> dict:
    """Simulate, serve, load, featurise, train the default and the summer-only baseline; save the default."""
    import tempfile

    from worldcover import sim
    from worldcover.features import FeatureConfig
    from worldcover.model.training import train_from_tables
    from worldcover.model.sampling import build_training_table
    from worldcover.sources.local_api import LocalStacApi
    from worldcover.sources.stac import StacSource

    design = design or training_design()
    work = Path(work_dir or tempfile.mkdtemp(prefix="worldcover-train-"))
    archive = work / "archive"
    blocks = list(design.train) + list(design.test)
    sim.generate(blocks, year, archive, seed=sim_seed)
    configs = {"default": FeatureConfig(), "summer": FeatureConfig.summer_only()}
    items: dict[str, list] = {"default": [], "summer": []}
    with LocalStacApi(archive) as api:
        source = StacSource(api.url, chunk=None)
        for i, block in enumerate(blocks):
            feats = block_features(source, block, year, configs)
            truth = read_truth(archive, block)
            for name in configs:
                items[name].append((block.id, feats[name], truth))
            if progress:
                progress(i + 1, len(blocks), block)
    test_ids = {b.id for b in design.test}
    results = {}
    for name, cfg in configs.items():
        table = build_training_table(items[name], max_per_class=max_per_class, seed=seed)
        train_df = table[~table["block_id"].isin(test_ids)]
        test_df = table[table["block_id"].isin(test_ids)]
        provenance = {"source": "worldcover.sim", "simulator_seed": sim_seed, "year": year,
                      "feature_config": cfg.to_dict(), "chain": "sim COGs -> rustac STAC API -> odc-stac -> preprocess",
                      "block_size": blocks[0].size}
        results[name] = train_from_tables(
            train_df, test_df, seed=seed, num_threads=num_threads,
            name=DEFAULT_MODEL_NAME if name == "default" else f"{DEFAULT_MODEL_NAME}-summer-baseline",
            provenance=provenance)
    model, baseline = results["default"], results["summer"]
    card = model.card
    model = model.with_card(card.replace(provenance={
        **dict(card.provenance),
        "baseline_summer_only": {"feature_count": len(baseline.feature_names), "metrics": dict(baseline.card.metrics)},
    }))
    model.save(out_dir, overwrite=True)
    return {"model_dir": str(out_dir), "default": dict(model.card.metrics), "baseline": dict(baseline.card.metrics),
            "train_blocks": [b.id for b in design.train], "test_blocks": [b.id for b in design.test]}
