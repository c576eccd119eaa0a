"""The land-cover classifier: training tables, LightGBM training, model cards, prediction.

Flow::

    labelled blocks --sample_training_points--> training table (one row per pixel)
    block ids --split_blocks--> spatially separated train / test blocks
    tables --train_from_tables--> Model (LightGBM text model + sealed ModelCard with held-out metrics)
    Model.save(dir) -> dir/model.txt + dir/card.json ; Model.load(dir) verifies them
    Model.predict_block(features) -> (codes uint8, probability uint8 0..100)
    Model.compile() -> the trees compiled by lleaves and cached (:mod:`.compiled`): same output, faster

Modules: :mod:`.schema` (feature names and matching), :mod:`.sampling`
(training points, spatial split), :mod:`.training`, :mod:`.classifier`
(:class:`Model`), :mod:`.card` (:class:`ModelCard`), :mod:`.metrics`.
"""

from worldcover.model.card import CARD_FILE, MODEL_FILE, ModelCard
from worldcover.model.classifier import DEFAULT_CHUNK_PIXELS, Model
from worldcover.model.metrics import ClassificationMetrics
from worldcover.model.sampling import (
    DEFAULT_MAX_PER_CLASS,
    META_COLUMNS,
    BlockSplit,
    build_training_table,
    feature_columns,
    sample_training_points,
    split_blocks,
)
from worldcover.model.schema import FeatureSchema, check_feature_names
from worldcover.model.training import (
    DEFAULT_MODEL_NAME,
    DEFAULT_PARAMS,
    resolve_params,
    train,
    train_from_blocks,
    train_from_tables,
)

__all__ = [
    "CARD_FILE", "MODEL_FILE", "DEFAULT_CHUNK_PIXELS", "DEFAULT_MAX_PER_CLASS", "DEFAULT_MODEL_NAME",
    "DEFAULT_PARAMS", "META_COLUMNS", "BlockSplit", "ClassificationMetrics", "FeatureSchema", "Model",
    "ModelCard", "build_training_table", "check_feature_names", "feature_columns", "resolve_params",
    "sample_training_points", "split_blocks", "train", "train_from_blocks",
    "train_from_tables",
]
