"""Reference labels read from another class map: a map-to-map comparison on the design's sample.

With no human labels at hand, a second map (ESA's WorldCover v200 next to our
map, or v100 next to v200) can stand in as the reference: the report's
"accuracy" is then the area-weighted *agreement* between the two maps, with
the design's confidence intervals, not the accuracy of either.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from worldcover import storage
from worldcover.errors import DataError, InputError
from worldcover.legend import BY_CODE, NODATA
from worldcover.validation._io import write_text
from worldcover.validation.report import _check_map, sample_raster


def label_from_map(
    samples_csv: str | storage.Location, reference_map: str | storage.Location, out_csv: str | storage.Location
) -> dict:
    """Fill ``reference_class`` of a design CSV from ``reference_map``; drop samples where it has no data.

    Returns counts: samples read, labelled, dropped (outside the reference map or on its nodata).
    """
    samples_csv, reference_map = storage.path(samples_csv), storage.path(reference_map)
    if not samples_csv.exists():
        raise InputError(f"samples {samples_csv}: file not found")
    if not reference_map.exists():
        raise InputError(f"reference map {reference_map}: file not found")
    _check_map(reference_map)
    try:
        with samples_csv.open("rb") as f:
            df = pd.read_csv(f, keep_default_na=False, encoding="utf-8-sig")
    except (pd.errors.EmptyDataError, pd.errors.ParserError, UnicodeDecodeError) as exc:
        raise InputError(f"samples {samples_csv}: not a readable CSV ({str(exc).splitlines()[0]})") from None
    missing = [c for c in ("lon", "lat", "map_class") if c not in df.columns]
    if missing:
        raise InputError(f"samples {samples_csv}: missing column(s) {', '.join(missing)}; expected the design output")
    ref = sample_raster(reference_map, df["lon"].to_numpy(float), df["lat"].to_numpy(float))
    unknown = sorted({int(v) for v in np.unique(ref) if v != NODATA and int(v) not in BY_CODE})
    if unknown:
        raise DataError(f"reference map {reference_map}: codes {unknown} are not WorldCover classes")
    covered = ref != NODATA
    if not covered.any():
        raise InputError(f"reference map {reference_map}: no sample of {samples_csv} falls on its data")
    out = df.loc[covered].copy()
    out["reference_class"] = ref[covered].astype(int)
    write_text(out_csv, out.to_csv(index=False, lineterminator="\n"))
    return {"samples": int(len(df)), "labelled": int(covered.sum()), "dropped": int((~covered).sum()),
            "reference_map": str(reference_map), "out": str(out_csv)}
