"""Where models are found: the default model shipped in the package, and the ``"default"`` keyword for it.

Below :mod:`.classifier` (``Model.load("default")``) and the campaign plan; the recipe that trains the
default model (:mod:`.default`) writes to :data:`DEFAULT_MODEL_DIR`.
"""

from __future__ import annotations

from pathlib import Path

#: the committed default model, shipped inside the package (``models/default`` in the repository links here)
DEFAULT_MODEL_DIR = Path(__file__).resolve().parent / "default_model"
#: what a plan or the CLI says for the packaged model: every dask worker and pod has it at its own install path
DEFAULT_MODEL_KEYWORD = "default"


def resolve_model(location: str) -> str:
    """``"default"`` -> the packaged model directory (``str(DEFAULT_MODEL_DIR)``); anything else unchanged."""
    return str(DEFAULT_MODEL_DIR) if location == DEFAULT_MODEL_KEYWORD else location
