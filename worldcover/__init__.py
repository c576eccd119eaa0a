"""worldcover: global 10 m land-cover production in the way of ESA WorldCover.

The public API for notebooks and scripts, one name per step of the data flow
(grid -> sources -> preprocess -> features -> model -> tile -> mosaic -> validation)::

    import worldcover as wc

    block = wc.Tile.parse("N45E003").block(300, 300, 60)      # the grid
    wc.simulate_archive([block], 2021, "archive/")            # the simulated world (offline)
    with wc.LocalStacApi("archive/") as api:                  # a real STAC API on loopback
        inputs = wc.StacSource(api.url).load_block(block, 2021)
        s2 = wc.preprocess_s2(inputs.s2, 2021)                # cloud masks, dekad composites
        model = wc.load_default_model()
        feats = wc.compute_features(s2.composites, wc.preprocess_s1(inputs.s1, 2021).db, inputs.dem,
                                    wc.feature_config_of(model))
        codes, prob = model.predict_block(feats)

Every name is imported on first use (PEP 562 ``__getattr__``), so ``import
worldcover`` loads neither lightgbm, dask, rasterio nor matplotlib; the table
:data:`_API` says where each lives. ``import worldcover`` changes no process-wide
state either: the command line installs the log-record redaction of secrets
(:func:`worldcover.credentials.install`); a script that logs third-party calls
carrying credentials calls :func:`install_log_redaction` itself.
"""

from __future__ import annotations

import importlib
from importlib.metadata import PackageNotFoundError, version
from typing import TYPE_CHECKING, Any

try:
    __version__ = version("worldcover")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0.0.0+unknown"

#: public name -> "module:attribute" it is read from on first use, in data-flow order
_API: dict[str, str] = {
    # the grid and the nested stages
    "Tile": "worldcover.grid:Tile",
    "Block": "worldcover.grid:Block",
    "tile_of": "worldcover.grid:tile_of",
    "land_tiles": "worldcover.grid:land_tiles",
    "parse_blocks": "worldcover.grid:parse_blocks",
    "native_geobox": "worldcover.grid:native_geobox",
    "stage_tiles": "worldcover.stages:stage_tiles",
    "stages_summary": "worldcover.stages:summary",
    "latitude_zone": "worldcover.stages:latitude_zone",
    "stratum": "worldcover.stages:stratum",
    "continent": "worldcover.stages:continent",
    # the legend and plotting helpers
    "LEGEND": "worldcover.legend:CLASSES",
    "class_rgba": "worldcover.plotting:class_rgba",
    "legend_patches": "worldcover.plotting:legend_patches",
    "show_classes": "worldcover.plotting:show_classes",
    # the simulated world
    "simulate_block": "worldcover.sim.simulate:simulate_block",
    "simulate_archive": "worldcover.sim.writer:generate",
    "simulated_truth": "worldcover.sim.world:truth",
    # sources
    "LocalStacApi": "worldcover.sources.local_api:LocalStacApi",
    "StacSource": "worldcover.sources.stac:StacSource",
    "BlockInputs": "worldcover.sources.stac:BlockInputs",
    "open_source": "worldcover.tile.run:open_source",
    "load_block": "worldcover.chain:load_block",
    # preprocessing and features
    "S2MaskConfig": "worldcover.preprocess.s2:S2MaskConfig",
    "valid_mask": "worldcover.preprocess.s2:valid_mask",
    "preprocess_s2": "worldcover.preprocess.s2:preprocess_s2",
    "preprocess_s1": "worldcover.preprocess.s1:preprocess_s1",
    "FeatureConfig": "worldcover.features:FeatureConfig",
    "feature_names": "worldcover.features:feature_names",
    "spectral_index": "worldcover.features:spectral_index",
    "compute_features": "worldcover.features:compute_features",
    # the model
    "Model": "worldcover.model.classifier:Model",
    "ModelCard": "worldcover.model.card:ModelCard",
    "feature_config_of": "worldcover.tile.run:feature_config_of",
    "train_from_points": "worldcover.tile.points:train_from_points",
    "read_points": "worldcover.tile.points:read_points",
    # one tile
    "ChainParams": "worldcover.chain:ChainParams",
    "chain_features": "worldcover.chain:chain_features",
    "classify_block": "worldcover.tile.run:classify_block",
    "run_tile": "worldcover.tile.run:run_tile",
    "tile_paths": "worldcover.layout:find_tile_paths",
    # the mosaic
    "build_mosaic": "worldcover.mosaic.build:build_mosaic",
    # validation
    "design_sample": "worldcover.validation.design:design_sample",
    "write_samples": "worldcover.validation.tables:write_samples",
    "label_from_truth": "worldcover.validation.simulated:label_from_truth",
    "label_from_map": "worldcover.validation.labels:label_from_map",
    "read_labelled": "worldcover.validation.tables:read_labelled",
    "class_areas": "worldcover.area:class_areas",
    "counts_matrix": "worldcover.validation.estimators:counts_matrix",
    "olofsson": "worldcover.validation.estimators:olofsson",
    "stehman": "worldcover.validation.estimators:stehman",
    "assess": "worldcover.validation.report:assess",
    "write_report": "worldcover.validation.report:write_report",
    "build_report": "worldcover.validation.report:build_report",
    # campaigns
    "CampaignPlan": "worldcover.campaign.plan:CampaignPlan",
    "run_campaign": "worldcover.engines.local:run_campaign",
    # process-wide settings a script opts in to
    "install_log_redaction": "worldcover.credentials:install",
}

__all__ = [  # __version__, load_default_model and every name of _API (tests/test_public_api.py checks)
    "__version__", "load_default_model",
    "Tile", "Block", "tile_of", "land_tiles", "parse_blocks", "native_geobox", "stage_tiles", "stages_summary",
    "latitude_zone", "stratum", "continent",
    "LEGEND", "class_rgba", "legend_patches", "show_classes",
    "simulate_block", "simulate_archive", "simulated_truth",
    "LocalStacApi", "StacSource", "BlockInputs", "open_source", "load_block",
    "S2MaskConfig", "valid_mask", "preprocess_s2", "preprocess_s1", "FeatureConfig", "feature_names",
    "spectral_index", "compute_features",
    "Model", "ModelCard", "feature_config_of", "train_from_points", "read_points",
    "ChainParams", "chain_features", "classify_block", "run_tile", "tile_paths",
    "build_mosaic",
    "design_sample", "write_samples", "label_from_truth", "label_from_map", "read_labelled", "class_areas",
    "counts_matrix", "olofsson", "stehman", "assess", "write_report", "build_report",
    "CampaignPlan", "run_campaign",
    "install_log_redaction",
]


def load_default_model(num_threads: int | None = None) -> Any:
    """The packaged default LightGBM model (``models/default``), verified against its card."""
    from worldcover.model.classifier import Model

    return Model.load("default", num_threads=num_threads)


def __getattr__(name: str) -> Any:
    """Import a public name on first use and keep it (PEP 562), so ``import worldcover`` stays cheap."""
    target = _API.get(name)
    if target is None:
        raise AttributeError(f"module 'worldcover' has no attribute {name!r}")
    module, _, attr = target.partition(":")
    value = getattr(importlib.import_module(module), attr)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_API))


if TYPE_CHECKING:  # what type checkers and IDEs see; at run time __getattr__ imports lazily
    from worldcover.area import class_areas
    from worldcover.campaign.plan import CampaignPlan
    from worldcover.chain import ChainParams, chain_features, load_block
    from worldcover.credentials import install as install_log_redaction
    from worldcover.engines.local import run_campaign
    from worldcover.features import FeatureConfig, compute_features, feature_names, spectral_index
    from worldcover.grid import Block, Tile, land_tiles, native_geobox, parse_blocks, tile_of
    from worldcover.layout import find_tile_paths as tile_paths
    from worldcover.legend import CLASSES as LEGEND
    from worldcover.model.card import ModelCard
    from worldcover.model.classifier import Model
    from worldcover.mosaic.build import build_mosaic
    from worldcover.plotting import class_rgba, legend_patches, show_classes
    from worldcover.preprocess.s1 import preprocess_s1
    from worldcover.preprocess.s2 import S2MaskConfig, preprocess_s2, valid_mask
    from worldcover.sim.simulate import simulate_block
    from worldcover.sim.world import truth as simulated_truth
    from worldcover.sim.writer import generate as simulate_archive
    from worldcover.sources.local_api import LocalStacApi
    from worldcover.sources.stac import BlockInputs, StacSource
    from worldcover.stages import continent, latitude_zone, stage_tiles, stratum
    from worldcover.stages import summary as stages_summary
    from worldcover.tile.points import read_points, train_from_points
    from worldcover.tile.run import classify_block, feature_config_of, open_source, run_tile
    from worldcover.validation.design import design_sample
    from worldcover.validation.estimators import counts_matrix, olofsson, stehman
    from worldcover.validation.labels import label_from_map
    from worldcover.validation.report import assess, build_report, write_report
    from worldcover.validation.simulated import label_from_truth
    from worldcover.validation.tables import read_labelled, write_samples
