"""The science chain of one block: its inputs loaded on the grid the chain runs on, preprocessed, featurised.

Shared by classifying a tile (:mod:`worldcover.tile.run`) and by training, from
reference points (:mod:`worldcover.tile.points`) or on the simulated world
(:mod:`worldcover.model.default`), so a model learns from exactly the features
it is applied to.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import asdict, dataclass
from typing import Protocol, cast

import numpy as np
import xarray as xr

from worldcover.errors import DataError, InputError
from worldcover.features import compute_features
from worldcover.grid import Block
from worldcover.preprocess.s1 import preprocess_s1
from worldcover.preprocess.s2 import S2MaskConfig, preprocess_s2
from worldcover.sources.stac import DEFAULT_CHUNK, BlockInputs


class Source(Protocol):
    """What gives a block's inputs of a year (a STAC API, Sentinel Hub): ``kind`` names it in provenance."""

    kind: str

    def load_block(self, block: Block, year: int) -> BlockInputs: ...


class NativeGridSource(Source, Protocol):
    """A source that can also give a block's inputs on their own UTM grid (``native_grid = True``)."""

    native_grid: bool

    def load_block(self, block: Block, year: int, native: bool = False) -> BlockInputs: ...


GRIDS = ("native", "product")


@dataclass(frozen=True)
class ChainParams:
    """Parameters of the science chain that are recorded in every product's provenance."""

    cloud_dilation_px: int = 3
    s1_speckle_window: int = 7
    chunk: int = DEFAULT_CHUNK  # dask chunk of the load and the chain: bounds memory per block
    threads: int | None = None  # dask threads per block; None = all cores
    # "native": inputs processed and scored on their own UTM grid, the model's scores resampled once to
    # the product grid (sources without a native grid, Sentinel Hub, give the product grid); "product":
    # every input warped to the product grid first, the chain before issue 15 (about 3x slower, the same
    # class on 99.1 % of the benchmark block's pixels, nearly all on class edges: the README's Performance)
    grid: str = "native"

    def __post_init__(self) -> None:
        if self.grid not in GRIDS:
            raise InputError(f"invalid grid {self.grid!r}: expected one of {', '.join(GRIDS)}")

    def to_dict(self) -> dict:
        return asdict(self)


def load_block(src: Source, block: Block, year: int, params: ChainParams) -> BlockInputs:
    """A block's inputs from ``src``, on the grid ``params.grid`` asks for when the source can give it."""
    if params.grid == "native" and getattr(src, "native_grid", False):
        return cast(NativeGridSource, src).load_block(block, year, native=True)
    return src.load_block(block, year)


@dataclass(frozen=True)
class ChainFeatures:
    """One block's lazy features and the observation counts the products need."""

    features: xr.DataArray  # (feature, y, x) float32, dask
    quality: xr.Dataset  # s2_obs, s2_valid, s2_discarded_pct (y, x)
    n_s1: xr.DataArray  # S1 observations per pixel (zeros when the config uses no S1)


def chain_features(block: Block, year: int, inputs: BlockInputs, config, params: ChainParams,
                   missing_ok: Collection[str] = ()) -> ChainFeatures:
    """Preprocess one block's inputs and compute ``config``'s features, lazily.

    An input group of ``missing_ok`` (``"s1"``, ``"dem"``) that the source
    lacks gives NaN features (S1 count 0) instead of a :class:`DataError`;
    gaps within a block are NaN either way.
    """
    if inputs.s2 is None:
        raise DataError(f"block {block.id}: no Sentinel-2 data")
    s2 = preprocess_s2(inputs.s2, year, S2MaskConfig(dilation_radius=params.cloud_dilation_px), coarse=inputs.s2_20m)
    s1 = None
    n_s1 = xr.zeros_like(s2.quality["s2_obs"])
    template = s2.quality["s2_obs"].astype(np.float32)
    if config.s1:
        raw_s1 = inputs.s1
        if raw_s1 is None:
            if "s1" not in missing_ok:
                raise DataError(f"block {block.id}: the model needs Sentinel-1 but the source has none for {year} "
                                "(a model trained with missing_groups={'s1': ...} maps without it)")
            raw_s1 = _absent_s1(template, year)
        s1r = preprocess_s1(raw_s1, year, window=params.s1_speckle_window)
        s1, n_s1 = s1r.db, s1r.count
    dem = inputs.dem
    if config.terrain and dem is None:
        if "dem" not in missing_ok:
            raise DataError(f"block {block.id}: the model needs a DEM but the source has none "
                            "(a model trained with missing_groups={'dem': ...} maps without it)")
        dem = xr.full_like(template, np.nan).rename("dem")
    return ChainFeatures(compute_features(s2.composites, s1, dem, config), s2.quality, n_s1)


def _absent_s1(template: xr.DataArray, year: int) -> xr.Dataset:
    """One all-NaN S1 acquisition on the block grid: the chain then gives NaN S1 features and a count of 0."""
    nan = xr.full_like(template, np.nan).expand_dims(time=[np.datetime64(f"{year}-07-01", "ns")])
    return xr.Dataset({"vv": nan, "vh": nan})
