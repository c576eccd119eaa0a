"""What each input group buys, and how the model fares in a latitude zone it never saw.

Reads the training tables that ``worldcover model train`` keeps in its work
directory (``tables/default.parquet`` and ``tables/split.json``: features
extracted through the production chain from the simulated world) and
retrains LightGBM on them, so no simulation is repeated:

* **ablation** on the default model's own train/test blocks: S2 temporal
  features only, + S1, + DEM and latitude (the full default set);
* **leave-one-latitude-zone-out**: for each zone of :data:`worldcover.stages.ZONES`,
  train on the blocks of every other zone and test on that zone's blocks.

    python -m benchmarks.model_ablation --work WORK_DIR [--json OUT]

Figures are class-balanced held-out overall accuracy (the card's sample), so
rare classes count as much as common ones.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import pandas as pd

from worldcover.grid import Tile
from worldcover.model.sampling import feature_columns
from worldcover.model.training import train_from_tables
from worldcover.stages import stratum

RESULTS = Path(__file__).resolve().parent / "results"


def feature_groups(names: list[str]) -> dict[str, list[str]]:
    """The ablation's nested feature sets, by name prefix."""
    s1 = [n for n in names if n.startswith("s1_")]
    terrain_location = [n for n in names if n in ("dem", "slope") or n.startswith(("lat_", "lon_"))]
    s2 = [n for n in names if n not in s1 and n not in terrain_location]
    return {"s2_temporal": s2, "s2+s1": s2 + s1, "s2+s1+dem+location": s2 + s1 + terrain_location}


def zone_of(block_id: str) -> str:
    return stratum(Tile.parse(block_id.split("_")[0])).zone


def _fit(train_df: pd.DataFrame, test_df: pd.DataFrame, names: list[str], threads: int) -> dict:
    model = train_from_tables(train_df, test_df, names, seed=0, num_threads=threads)
    m = model.card.metrics
    return {"overall_accuracy": round(m["overall_accuracy"], 4), "kappa": round(m["kappa"], 4),
            "n_test": int(m["n"]), "features": len(names)}


def ablation(table: pd.DataFrame, test_ids: set[str], threads: int) -> dict:
    test = table["block_id"].isin(test_ids)
    names = feature_columns(table)
    return {label: _fit(table[~test], table[test], cols, threads) for label, cols in feature_groups(names).items()}


def leave_one_zone_out(table: pd.DataFrame, threads: int) -> dict:
    zones = table["block_id"].map(zone_of)
    names = feature_columns(table)
    out = {}
    for zone in sorted(zones.unique()):
        held = zones == zone
        if table[~held]["code"].nunique() < 2 or not held.any():
            continue
        out[zone] = {**_fit(table[~held], table[held], names, threads),
                     "test_blocks": int(table[held]["block_id"].nunique())}
    return out


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--work", required=True, type=Path, help="work directory of a default-model training run")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--json", type=Path, default=RESULTS / "model_ablation-latest.json")
    args = ap.parse_args(argv)
    tables = args.work / "tables"
    if not (tables / "default.parquet").exists():
        raise SystemExit(f"{tables}/default.parquet not found: expected the --work directory of "
                         f"`worldcover model train --work-dir` (or train_default_model(work_dir=...))")
    table = pd.read_parquet(tables / "default.parquet")
    test_ids = set(json.loads((tables / "split.json").read_text())["test_blocks"])
    t0 = time.perf_counter()
    result = {"work": str(args.work), "rows": len(table), "ablation": ablation(table, test_ids, args.threads),
              "leave_one_latitude_zone_out": leave_one_zone_out(table, args.threads)}
    result["seconds"] = round(time.perf_counter() - t0, 1)
    print("ablation (class-balanced held-out OA):")
    for label, r in result["ablation"].items():
        print(f"  {label:22s} {r['overall_accuracy']:.3f}  ({r['features']} features, n={r['n_test']})")
    print("leave one latitude zone out:")
    for zone, r in result["leave_one_latitude_zone_out"].items():
        print(f"  {zone:14s} {r['overall_accuracy']:.3f}  (n={r['n_test']}, {r['test_blocks']} blocks)")
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(result, indent=1) + "\n")
    return result


if __name__ == "__main__":
    main()
