"""`worldcover model train --points` on the real Flanders parcel labels.

Samples one point per ``--every`` labelled 10 m pixels of the WorldCereal
Flanders patch (``../shared/realdata/worldcereal-flanders-A``), groups the
points by field parcel (4-connected regions of one class in the label
raster) so that no field is on both sides of the split, writes them as a CSV
(lon, lat, class, year, group) and runs the CLI against the patch served as a
STAC API on loopback. The patch is a single 640 m square: held-out figures
come from a handful of parcels and say little beyond "the chain trains".

    python -m benchmarks.realdata_points [--every 4] [--chip-size 128] [--json OUT]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import rasterio
from scipy import ndimage

from benchmarks.realdata_flanders import CACHE, SOURCE
from worldcover.sources.local_api import LocalStacApi
from worldcover.sources.worldcereal import import_extraction
from worldcover.validation.points import label_points, label_raster


def parcel_groups(points: pd.DataFrame, labels: Path) -> pd.Series:
    """The parcel id of every point: a 4-connected region of one class in the label raster."""
    with rasterio.open(labels) as src:
        codes, transform = src.read(1), src.transform
    parcel = np.zeros(codes.shape, np.int64)
    for code in np.unique(codes[codes > 0]):
        regions, _ = ndimage.label(codes == code)
        parcel = np.where(regions > 0, regions + 1000 * int(code), parcel)
    rows, cols = rasterio.transform.rowcol(transform, points["x"].to_numpy(), points["y"].to_numpy())
    return pd.Series([f"parcel-{p}" for p in parcel[np.asarray(rows), np.asarray(cols)]], index=points.index)


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--every", type=int, default=4, help="one point per this many labelled pixels")
    ap.add_argument("--chip-size", type=int, default=128)
    ap.add_argument("--source", type=Path, default=SOURCE, help="the WorldCereal extraction folder")
    ap.add_argument("--json", type=Path, help="write the trained model's card summary here")
    args = ap.parse_args(argv)
    archive = CACHE
    import_extraction(args.source, archive)  # cached: returns at once when already imported
    points = label_points(archive, year=2018)
    points["group"] = parcel_groups(points, label_raster(archive))
    rng = np.random.default_rng(0)
    sample = points.iloc[np.sort(rng.choice(len(points), len(points) // args.every, replace=False))]
    with tempfile.TemporaryDirectory(prefix="worldcover-points-") as tmp:
        csv = Path(tmp) / "flanders_points.csv"
        sample[["lon", "lat", "class", "year", "group"]].to_csv(csv, index=False)
        print(f"{len(sample)} points of {len(points)} labelled pixels; per class "
              f"{sample['class'].value_counts().sort_index().to_dict()}; "
              f"{sample['group'].nunique()} parcels", flush=True)
        with LocalStacApi(archive) as api:
            cmd = [sys.executable, "-m", "worldcover", "model", "train", "--points", str(csv), "--source", api.url,
                   "--year", "2018", "--group-by", "column", "--features", "no-dem",
                   "--chip-size", str(args.chip_size), "--out", str(Path(tmp) / "model"), "--json"]
            print("$ worldcover " + " ".join(cmd[3:]), flush=True)
            t0 = time.perf_counter()
            done = subprocess.run(cmd, capture_output=True, text=True)
        if done.returncode != 0:
            raise SystemExit(f"model train --points failed (rc {done.returncode}): {done.stderr.strip()[-500:]}")
        card = json.loads((Path(tmp) / "model" / "card.json").read_text())
    m = card["metrics"]
    summary = {"points": len(sample), "seconds": round(time.perf_counter() - t0, 1),
               "overall_accuracy": m["overall_accuracy"], "kappa": m["kappa"], "n_test": m["n"],
               "per_class": {c: {k: v for k, v in r.items() if k in ("recall", "precision", "support")}
                             for c, r in m["per_class"].items() if r.get("support")},
               "split": card["provenance"].get("split"), "reference": card["provenance"].get("reference")}
    print(json.dumps(summary, indent=1))
    if args.json:
        args.json.write_text(json.dumps(summary, indent=1) + "\n")
    return summary


if __name__ == "__main__":
    main()
