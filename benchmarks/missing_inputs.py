"""Accuracy without S1 or without a DEM: a model trained with those groups missing at random vs one without.

Simulates a small design of full-year blocks (the tiles of
:func:`worldcover.model.default.training_design`: tiles per latitude zone, test
tiles in other 9-degree cells; in each tile its most varied block), computes their
features through the production chain (sim COGs -> loopback STAC API ->
odc-stac -> :func:`worldcover.chain.chain_features`), trains

* ``complete``: on complete rows (what the default model was until issue 14),
* ``missing``: with ``missing_groups`` (S1 15 %, DEM 10 % of rows NaN),
* ``scenario-no-s1``: the WorldCover way, a model for the no-S1 scenario
  (no S1 features), as the reference for what a dedicated model reaches,

and reports the overall accuracy of the maps of the held-out blocks (every
labelled pixel) with all inputs, with S1 missing on every pixel and with the
DEM missing on every pixel. Missing means NaN features, which is what the chain
gives for a block without S1 items (checked in tests/test_missing_inputs.py);
a ``complete`` model reads them as 0 (LightGBM, for features without NaN in training).

    python -m benchmarks.missing_inputs [--block-size 64] [--train-per-zone 2] [--work DIR]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import xarray as xr

YEAR = 2021
SHARES = {"s1": 0.15, "dem": 0.10}


def block_features(archive: Path, blocks, cache: Path) -> dict:
    """Features (through the production chain) and truth of every block, cached as NetCDF."""
    from worldcover.chain import ChainParams, chain_features
    from worldcover.features import FeatureConfig
    from worldcover.model.default import read_truth
    from worldcover.sources.local_api import LocalStacApi
    from worldcover.sources.stac import StacSource

    out = {}
    cache.mkdir(parents=True, exist_ok=True)
    with LocalStacApi(archive) as api:
        source = StacSource(api.url, chunk=None)
        for i, block in enumerate(blocks):
            path = cache / f"{block.id}.nc"
            if not path.exists():
                t0 = time.perf_counter()
                chain = chain_features(block, YEAR, source.load_block(block, YEAR), FeatureConfig(), ChainParams())
                feats = chain.features.compute().drop_vars("spatial_ref", errors="ignore")
                feats = feats.rename({d: n for d, n in (("latitude", "y"), ("longitude", "x")) if d in feats.dims})
                tmp = path.with_suffix(".tmp.nc")
                feats.to_netcdf(tmp)
                tmp.rename(path)
                print(f"  features {i + 1}/{len(blocks)} {block.id} {time.perf_counter() - t0:.0f} s", flush=True)
            feats = xr.load_dataarray(path)
            out[block.id] = (feats, read_truth(archive, block).assign_coords(y=feats.y.values, x=feats.x.values))
    return out


def diverse_block(tile, size: int, grid: int = 6):
    """The block of ``tile`` whose simulated truth has the most class entropy (among a grid x grid spread)."""
    from worldcover.sim.world import truth

    rows, cols = tile.block_grid(size)
    best, best_h = None, -1.0
    for r in np.linspace(0, rows - 1, grid + 2)[1:-1].astype(int):
        for c in np.linspace(0, cols - 1, grid + 2)[1:-1].astype(int):
            block = tile.block(int(r), int(c), size)
            _, n = np.unique(truth(block).values, return_counts=True)
            p = n / n.sum()
            h = float(-(p * np.log(p)).sum())
            if h > best_h:
                best, best_h = block, h
    return best


def simulated(archive: Path) -> set:
    """Blocks the archive's manifest lists as written."""
    from worldcover.grid import Tile

    path = archive / "sim.json"
    if not path.exists():
        return set()
    tiles = json.loads(path.read_text()).get("tiles", {})
    return {Tile.parse(t).block(int(k[1:].split("c")[0]), int(k.split("c")[1]), v["block_size"])
            for t, v in tiles.items() for k in v["blocks"]}


def blank(features: xr.DataArray, groups: tuple[str, ...]) -> xr.DataArray:
    """``features`` with every feature of ``groups`` NaN on every pixel (the input missing on the whole block)."""
    from worldcover.model.sampling import group_features

    names = [str(n) for n in features["feature"].values]
    cols = [n for g in groups for n in group_features(g, names)]
    return features.where(~features["feature"].isin(cols))


def map_accuracy(model, items: list, groups: tuple[str, ...]) -> float:
    """Overall accuracy of the model's maps of ``items`` (every labelled pixel) with ``groups`` missing."""
    from worldcover.legend import NODATA

    hits = total = 0
    for feats, truth in items:
        feats = blank(feats, groups).sel(feature=list(model.feature_names))
        codes, _ = model.predict_block(feats)
        ref = np.asarray(truth.values)
        keep = ref != NODATA
        hits += int((np.asarray(codes.values)[keep] == ref[keep]).sum())
        total += int(keep.sum())
    return hits / total


def main(argv: list[str] | None = None) -> dict:
    from worldcover import sim
    from worldcover.model.default import TrainingDesign, training_design
    from worldcover.model.sampling import build_training_table, feature_columns, group_features
    from worldcover.model.training import train
    from worldcover.stages import stratum

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--block-size", type=int, default=64)
    ap.add_argument("--train-per-zone", type=int, default=2)
    ap.add_argument("--max-per-class", type=int, default=200)
    ap.add_argument("--work", type=Path, default=Path("/tmp/worldcover-missing-inputs"))
    ap.add_argument("--threads", type=int, default=1)  # 2 OpenMP threads on a loaded 2-core box spin for minutes
    ap.add_argument("--zones", default="", help="only these latitude zones (comma-separated), to keep it short")
    args = ap.parse_args(argv)

    t0 = time.perf_counter()
    design = training_design(train_per_zone=args.train_per_zone, test_per_zone=1, block_size=args.block_size,
                             complete=False, maritime_farmland=0)
    if args.zones:
        zones = set(args.zones.split(","))
        keep = lambda bs: tuple(b for b in bs if stratum(b.tile).zone in zones)  # noqa: E731
        design = TrainingDesign(keep(design.train), keep(design.test))
    # the design's tiles, each at its most varied block: a tile-centre block is often one class
    design = TrainingDesign(tuple(diverse_block(b.tile, b.size) for b in design.train),
                            tuple(diverse_block(b.tile, b.size) for b in design.test))
    blocks = [*design.train, *design.test]
    archive = args.work / "archive"
    print(f"design: {len(design.train)} train, {len(design.test)} test blocks of {args.block_size} px", flush=True)
    todo = [b for b in blocks if b not in simulated(archive)]  # a rerun resumes the simulation
    if todo:
        sim.generate(todo, YEAR, archive, seed=0, on_block=lambda b, i, n: print(f"  simulate {i + 1}/{n} {b.id}",
                                                                                 flush=True))
    data = block_features(archive, blocks, args.work / "features")
    train_items = [(b.id, *data[b.id]) for b in design.train]
    test_items = [data[b.id] for b in design.test]
    table = build_training_table(train_items, max_per_class=args.max_per_class, seed=0)
    names = feature_columns(table)
    no_s1 = [n for n in names if n not in group_features("s1", names)]
    kw = {"seed": 0, "num_threads": args.threads}
    models = {
        "complete": train(table, names, **kw),
        "missing": train(table, names, missing_groups=SHARES, **kw),
        "scenario-no-s1": train(table, no_s1, **kw),
    }
    scenarios = {"all inputs": (), "no S1": ("s1",), "no DEM": ("dem",), "no S1, no DEM": ("s1", "dem")}
    rows = {}
    for name, model in models.items():
        rows[name] = {s: round(map_accuracy(model, test_items, g), 4) for s, g in scenarios.items()
                      if not (name.startswith("scenario") and s == "no S1, no DEM")}
    result = {"design": {"train": [b.id for b in design.train], "test": [b.id for b in design.test],
                         "block_size": args.block_size, "year": YEAR, "training_rows": len(table)},
              "missing_groups": SHARES, "overall_accuracy_held_out_maps": rows,
              "seconds": round(time.perf_counter() - t0, 1)}
    print(f"\nheld-out map OA ({len(design.test)} blocks, every labelled pixel); training rows {len(table)}")
    print(f"{'model':<18}" + "".join(f"{s:>15}" for s in scenarios))
    for name, accs in rows.items():
        print(f"{name:<18}" + "".join(f"{accs[s]:>15.3f}" if s in accs else f"{'-':>15}" for s in scenarios))
    out = Path("benchmarks/results/missing_inputs.json")
    out.write_text(json.dumps(result, indent=1))
    print(f"written {out}")
    return result


if __name__ == "__main__":
    main()
