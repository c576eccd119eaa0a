"""One tile, block by block: load -> preprocess -> features -> classify -> products.

Blocks are computed with dask (threads) one after the other, so memory is
bounded by one block; each finished block is recorded, so a rerun resumes at
the first unfinished block and a finished tile is skipped. A tile that fails
leaves a FAILED.json (the error, no secrets) and no product that looks done.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import dask
import numpy as np
import xarray as xr
from odc.geo.xr import xr_coords

from worldcover import storage
from worldcover.chain import ChainFeatures, ChainParams, Source, chain_features, load_block
from worldcover.credentials import redact
from worldcover.errors import DataError, WorldCoverError
from worldcover.features import FeatureConfig, feature_names, required_s2_bands
from worldcover.grid import Block, Tile, check_block_size, parse_blocks
from worldcover.layout import TilePaths, is_finished, tile_paths
from worldcover.legend import NODATA
from worldcover.model import Model
from worldcover.model.compiled import default_jobs
from worldcover.model.sampling import MISSING_GROUPS, group_features
from worldcover.regrid import Regrid
from worldcover.sources.sentinelhub import SentinelHubSource
from worldcover.sources.stac import DEFAULT_CHUNK, BlockInputs, StacSource
from worldcover.storage import atomic_write_text
from worldcover.tile.products import (
    BlockResult,
    assemble_tile,
    block_done,
    cleanup_scratch,
    write_block_result,
)


def open_source(source: str, max_cloud: float | None = None, chunk: int = DEFAULT_CHUNK,
                s2_bands: tuple[str, ...] | None = None, need_s1: bool = True) -> Source:
    """A provider by name: ``sentinelhub``, a STAC preset, or a STAC API URL.

    ``s2_bands``: the S2 bands to load (None: all), ``need_s1``: refuse a
    radar-geometry S1 collection (see :func:`source_needs`).
    """
    if source == "sentinelhub":
        return SentinelHubSource(max_cloud=max_cloud)

    return StacSource(source, max_cloud=max_cloud, chunk=chunk, s2_bands=s2_bands, need_s1=need_s1)


def source_needs(model) -> dict:
    """What a model needs from a source: only its features' S2 bands (B01/B09 only for s2cloudless,
    which the chain's mask leaves off), and whether it uses S1."""
    config = feature_config_of(model)
    return {"s2_bands": required_s2_bands(config, cloud_probability=False), "need_s1": config.s1}


def feature_config_of(model):
    """The FeatureConfig a model was trained with (recorded in its card's provenance)."""
    recorded = dict(model.card.provenance).get("feature_config")
    if recorded is None:
        raise DataError(f"model {model.name!r} does not record its feature_config in the card's provenance")
    config = FeatureConfig.from_dict(recorded)
    if tuple(feature_names(config)) != tuple(model.feature_names):
        raise DataError(f"model {model.name!r}: its feature_config does not produce its feature names")
    return config


def missing_shares(model) -> dict[str, float]:
    """{group: share of training rows it was missing in}, from the model's card (empty: trained on complete rows)."""
    recorded = dict(model.card.provenance).get("missing_groups") or {}
    return {str(g): float(r.get("share", 0.0)) for g, r in recorded.items()}


def _missing_masks(feats: xr.DataArray) -> dict[str, xr.DataArray]:
    """Lazy (y, x) masks of the pixels where any feature of an input group is NaN: what the model saw missing."""
    names = [str(n) for n in feats["feature"].values]
    return {g: feats.sel(feature=cols).isnull().any("feature")
            for g in MISSING_GROUPS if (cols := group_features(g, names))}


def classify_block(block: Block, year: int, inputs: BlockInputs, model, params: ChainParams) -> BlockResult:
    """The science chain on one block's inputs; computes with dask threads.

    Inputs on a native grid (``inputs.geobox``) are processed and scored there; the model's raw scores
    are then resampled once to the block's product grid (bilinear; counts nearest) and decided there."""
    # an input the source lacks entirely is NaN only for a model that learnt to classify without it;
    # any other would read those NaN as 0 (LightGBM, for features with no NaN in training)
    trained_missing = missing_shares(model)
    native = inputs.geobox if inputs.geobox is not None and inputs.geobox != block.geobox else None
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="worldcover-regrid") as pool:
        # the pixel mapping (projections, ~0.6 s at 2048 px) is made while the dask graph is being built
        regrid = pool.submit(Regrid, native, block.geobox) if native is not None else None
        chain = chain_features(block, year, inputs, feature_config_of(model), params,
                               missing_ok={g for g, share in trained_missing.items() if share > 0})
        out = (_classify_native(chain, model, params, regrid.result()) if regrid is not None
               else _classify_on_grid(chain, model, params))
    codes, prob, n_s1, n_s2, n_clear, pct, missing = out
    codes = np.asarray(codes, dtype="uint8")
    no_clear = np.asarray(n_clear) == 0
    codes[no_clear] = NODATA  # no clear observation all year: nodata, never a guessed class
    mapped = codes != NODATA
    missing_inputs = {"mapped_pixels": int(mapped.sum()),
                      **{g: int((np.asarray(m) & mapped).sum()) for g, m in missing.items()}}
    return BlockResult(
        block=block, codes=codes, prob=np.where(codes > 0, np.asarray(prob), 0).astype("uint8"),
        n_s1=np.asarray(n_s1, dtype="int16"), n_s2=np.asarray(n_s2, dtype="int16"),
        pct_discarded=np.nan_to_num(np.rint(np.asarray(pct)), nan=100).astype("int16"),
        provenance={"items": inputs.items,
                    "s2_skipped": inputs.s2_skipped, "s1": inputs.s1_info,
                    "harmonisation": [asdict(h) for h in inputs.harmonisation],
                    "s2_acquisitions": int(inputs.s2.sizes.get("time", 0)) if inputs.s2 is not None else 0,
                    "s1_acquisitions": int(inputs.s1.sizes.get("time", 0)) if inputs.s1 is not None else 0,
                    "missing_inputs": missing_inputs,
                    "model_trained_missing": {g: trained_missing.get(g, 0.0) for g in missing}},
    )


def _classify_on_grid(chain: ChainFeatures, model, params: ChainParams) -> tuple:
    """(codes, prob, n_s1, n_s2, n_clear, pct, missing masks): features on the product grid, one dask graph."""
    feats, q = chain.features, chain.quality
    codes, prob = model.predict_block(feats, lazy=True)
    with dask.config.set(scheduler="threads", num_workers=params.threads):
        return dask.compute(codes, prob, chain.n_s1, q["s2_obs"], q["s2_valid"], q["s2_discarded_pct"],
                            _missing_masks(feats))


def _classify_native(chain: ChainFeatures, model, params: ChainParams, regrid: Regrid) -> tuple:
    """The same outputs as :func:`_classify_on_grid` from features on the native grid: the model scores each
    native pixel (in the dask graph, chunk by chunk, so the block's features are never all in memory), the
    raw scores are resampled to the product grid (bilinear) and classified there; counts and missing-input
    masks go nearest. Scoring the native pixels, not the resampled features, is 2/3 of the predict work at
    45 degrees and 11 bands to resample instead of 129 (issue 15's measurements: the README)."""
    q = chain.quality
    # dask runs the chunks side by side; the native pixels the resampling never reads are not scored
    scores = model.scores_block(chain.features, num_threads=1, where=regrid.reads())
    with dask.config.set(scheduler="threads", num_workers=params.threads):
        scores, n_s1, n_s2, n_clear, masks = dask.compute(scores, chain.n_s1, q["s2_obs"], q["s2_valid"],
                                                          _missing_masks(chain.features))
    n_s1, n_s2, n_clear = _nearest_counts(regrid, n_s1, n_s2, n_clear)
    missing = {g: regrid.nearest(np.asarray(m)[None])[0] for g, m in masks.items()}
    codes, prob = _decided_on(regrid, scores.values, model, params.threads)
    with np.errstate(invalid="ignore", divide="ignore"):  # the InputQuality formula of preprocess.s2.s2_quality
        pct = (100.0 * (n_s2 - n_clear).astype(np.float32) / np.where(n_s2 > 0, n_s2, np.nan)).astype(np.float32)
    return codes, prob, n_s1, n_s2, n_clear, pct, missing


# product-grid rows resampled and decided per task: numpy releases the GIL, so strips run on every core
STRIP_ROWS = 256


def _decided_on(regrid: Regrid, scores: np.ndarray, model, threads: int | None) -> tuple[np.ndarray, np.ndarray]:
    """(codes, probability) on the product grid from native scores (class, y, x): resampled bilinear and
    decided strip by strip, on ``threads`` threads (None: every core)."""
    height = regrid.shape[0]
    strips = [slice(r, min(r + STRIP_ROWS, height)) for r in range(0, height, STRIP_ROWS)]
    with ThreadPoolExecutor(max_workers=threads or default_jobs(), thread_name_prefix="worldcover-decide") as pool:
        parts = list(pool.map(lambda rows: model.decide(regrid.bilinear(scores, rows)), strips))
    return np.concatenate([c for c, _ in parts]), np.concatenate([p for _, p in parts])


def _computed_on_native(chain: ChainFeatures, params: ChainParams, regrid: Regrid
                        ) -> tuple[xr.DataArray, np.ndarray, np.ndarray, np.ndarray]:
    """(features on the native grid, computed; S1 count, S2 observations, S2 clear observations on the
    product grid, nearest)."""
    q = chain.quality
    with dask.config.set(scheduler="threads", num_workers=params.threads):
        feats, n_s1, n_s2, n_clear = dask.compute(chain.features, chain.n_s1, q["s2_obs"], q["s2_valid"])
    return (feats, *_nearest_counts(regrid, n_s1, n_s2, n_clear))


def _nearest_counts(regrid: Regrid, *counts) -> tuple[np.ndarray, ...]:
    """Native-grid observation counts on the product grid (nearest: a count is not interpolated)."""
    return tuple(regrid.nearest(np.stack([np.asarray(c) for c in counts])))


def regridded_features(chain: ChainFeatures, params: ChainParams, regrid: Regrid
                       ) -> tuple[xr.DataArray, np.ndarray, np.ndarray, np.ndarray]:
    """Native-grid features computed, then on the product grid: (features (feature, y, x) bilinear,
    S1 count, S2 observations, S2 clear observations (nearest))."""
    feats, n_s1, n_s2, n_clear = _computed_on_native(chain, params, regrid)
    dim = feats.dims[0]
    out = xr.DataArray(regrid.bilinear(feats.values), dims=(dim, *regrid.dst.dimensions),
                       coords={dim: feats[dim].values, **xr_coords(regrid.dst)})
    return out, n_s1, n_s2, n_clear


def product_features(block: Block, inputs: BlockInputs, chain: ChainFeatures, params: ChainParams
                     ) -> tuple[xr.DataArray, np.ndarray]:
    """A block's features and clear-observation counts on its product grid, computed (numpy), whichever grid
    its inputs came on: what training from reference points samples, so it learns what the map applies."""
    if inputs.geobox is not None and inputs.geobox != block.geobox:
        feats, _, _, n_clear = regridded_features(chain, params, Regrid(inputs.geobox, block.geobox))
        return feats, n_clear
    with dask.config.set(scheduler="threads", num_workers=params.threads):
        feats, n_clear = dask.compute(chain.features, chain.quality["s2_valid"])
    return feats, np.asarray(n_clear)


def prefetched(blocks: list[Block], load: Callable[[Block], BlockInputs]) -> Iterator[tuple[Block, BlockInputs]]:
    """(block, its inputs) in order; the next block's ``load`` (the STAC search, the header and offset
    checks, all waiting on the network) runs in a thread while the caller computes the current one.

    Only one block ahead: its pixels are still read by its own dask graph, so memory stays one block's.
    An error of the look-ahead surfaces when its block's turn comes, never earlier.
    """
    if not blocks:
        return
    pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="worldcover-prefetch")
    try:
        ahead = pool.submit(load, blocks[0])
        for k, block in enumerate(blocks):
            inputs = ahead.result()
            if k + 1 < len(blocks):
                ahead = pool.submit(load, blocks[k + 1])
            yield block, inputs
    finally:
        pool.shutdown(wait=False, cancel_futures=True)  # a failed block does not wait for the look-ahead


@dataclass
class TileRun:
    """What happened to one tile."""

    tile: str
    status: str  # done | skipped | failed
    blocks_total: int = 0
    blocks_computed: int = 0
    blocks_reused: int = 0
    pixels: int = 0
    seconds: float = 0.0
    error: str = ""
    outputs: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return asdict(self)


def run_tile(tile: str | Tile, year: int, source: str | Source, model: str | Path, out_root: str | Path,
             *, block_size: int = 3000, blocks: str = "all", max_cloud: float | None = None,
             params: ChainParams = ChainParams(), on_block: Callable[[Block, str], None] | None = None,
             naming: str = "worldcover") -> TileRun:
    """Process one tile (idempotent): skip if finished, resume at unfinished blocks.

    ``naming`` "esa" writes the products under ESA's file names (see :mod:`worldcover.layout`)."""
    t0 = time.perf_counter()
    tile = tile if isinstance(tile, Tile) else Tile.parse(tile)
    check_block_size(block_size)
    todo = parse_blocks(tile, blocks, block_size)
    paths = tile_paths(out_root, tile, year, naming)
    if is_finished(paths):
        return TileRun(tile.id, "skipped", blocks_total=len(todo), blocks_reused=len(todo),
                       seconds=time.perf_counter() - t0, outputs=_outputs(paths))
    storage.makedirs(paths.dir)
    cleanup_scratch(paths)
    run = TileRun(tile.id, "failed", blocks_total=len(todo))
    try:
        # the chain's graphs run on dask's threads, where "tasks" is the rechunk method dask picks anyway;
        # named, dask does not import distributed to look for a client first (0.65 s once per process)
        with dask.config.set({"array.rechunk.method": "tasks"}):
            clf = Model.load(model)
            src = (open_source(source, max_cloud, params.chunk, **source_needs(clf)) if isinstance(source, str)
                   else source)
            pending = [b for b in todo if not block_done(paths, b)]
            loaded = prefetched(pending, lambda b: load_block(src, b, year, params))
            for block in todo:
                if block not in pending:
                    run.blocks_reused += 1
                    if on_block:
                        on_block(block, "reused")
                    continue
                _, inputs = next(loaded)
                write_block_result(paths, classify_block(block, year, inputs, clf, params))
                run.blocks_computed += 1
                if on_block:
                    on_block(block, "computed")
            assemble_tile(paths, todo, model_card=clf.card.to_dict(), source=_source_name(source),
                          params={**params.to_dict(), "block_size": block_size, "max_cloud": max_cloud})
        storage.remove(paths.failure)
        run.status = "done"
        run.pixels = sum(b.shape[0] * b.shape[1] for b in todo)
        run.outputs = _outputs(paths)
    except Exception as exc:
        run.error = _describe(exc)
        atomic_write_text(paths.failure, json.dumps({
            "tile": tile.id, "year": year, "error": run.error, "type": type(exc).__name__,
            "time": datetime.now(UTC).isoformat(timespec="seconds")}, indent=1))
        raise
    finally:
        run.seconds = time.perf_counter() - t0
        cleanup_scratch(paths)
    return run


def _source_name(source) -> str:
    return source if isinstance(source, str) else getattr(source, "kind", type(source).__name__)


def _outputs(paths: TilePaths) -> dict:
    return {"map": str(paths.map), "prob": str(paths.prob), "quality": str(paths.quality), "item": str(paths.item)}


def _describe(exc: BaseException) -> str:
    if isinstance(exc, WorldCoverError):
        return redact(str(exc))
    return redact(f"{type(exc).__name__}: {exc}")[:500]


__all__ = ["ChainFeatures", "ChainParams", "TileRun", "chain_features", "classify_block", "feature_config_of",
           "open_source", "run_tile", "source_needs"]
