"""Reference labels from the simulator's truth, standing in for human labelling in the demo.

Real campaigns label the design's samples in Collect Earth or Geo-Wiki; the
simulated world knows its truth, so the demo can close the loop without a
person. Truth rasters live at ``ARCHIVE/truth/<TILE>/<TILE>_<block>_truth.tif``.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from worldcover import storage
from worldcover.errors import InputError
from worldcover.legend import BY_CODE
from worldcover.validation._io import write_text
from worldcover.validation.report import sample_raster


def label_from_truth(
    samples_csv: str | storage.Location, archive: str | storage.Location, out_csv: str | storage.Location
) -> storage.Location:
    """Fill ``reference_class`` of a design from truth rasters; drop samples no truth covers."""
    truth_files = sorted(storage.path(archive).glob("truth/*/*_truth.tif"), key=str)
    if not truth_files:
        raise InputError(f"no truth rasters under {archive}/truth: expected a `worldcover sim generate` archive")
    with storage.path(samples_csv).open("rb") as f:
        df = pd.read_csv(f)
    lon, lat = df["lon"].to_numpy(float), df["lat"].to_numpy(float)
    truth = np.zeros(len(df), dtype="uint8")
    for path in truth_files:  # points outside a raster read 0, so the maximum keeps the covering one
        truth = np.maximum(truth, sample_raster(storage.path(path), lon, lat).astype("uint8"))  # a glob's item
    covered = truth > 0
    out = df.loc[covered].copy()
    out["reference_class"] = [BY_CODE[int(c)].code for c in truth[covered]]
    return write_text(out_csv, out.to_csv(index=False, lineterminator="\n"))
