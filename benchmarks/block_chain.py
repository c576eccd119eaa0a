"""One block through the whole chain, stage by stage: time, peak memory, Mpx/s.

    python -m benchmarks.block_chain --block-size 1024 [--model models/default] [--json out.json]

Simulates a full year for one block (not timed), serves it on loopback, then
times: load (odc-stac, computed), S2 preprocessing, S1 preprocessing,
features, predict, write (block result + tile products). Each stage is
computed before the next starts so the figures separate; peak RSS is the
process high-water mark sampled after each stage. Also measures the
predict-only floor (LightGBM on the feature matrix) and naive references
(xarray resample().median() composites, np.nanpercentile features).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]


def peak_rss_gb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2


def machine() -> dict:
    return {"python": platform.python_version(), "machine": platform.machine(), "cpus": os.cpu_count(),
            "system": platform.system(), "processor": platform.processor()}


def run(block_size: int, model_dir: Path, tile: str = "N45E003", year: int = 2021, naive: bool = True) -> dict:
    import dask
    import xarray as xr

    from worldcover import sim
    from worldcover.features import compute_features
    from worldcover.grid import Tile
    from worldcover.model import Model
    from worldcover.preprocess.s1 import preprocess_s1
    from worldcover.preprocess.s2 import preprocess_s2
    from worldcover.products import tile_paths
    from worldcover.sources.local_api import LocalStacApi
    from worldcover.sources.stac import StacSource
    from worldcover.tile.products import BlockResult, assemble_tile, write_block_result
    from worldcover.tile.run import feature_config_of

    warnings.filterwarnings("ignore")
    work = Path(tempfile.mkdtemp(prefix="wc-bench-"))
    t = Tile.parse(tile)
    rows, cols = t.block_grid(block_size)
    block = t.block(rows // 2, cols // 2, block_size)
    t0 = time.perf_counter()
    sim.generate([block], year, work / "archive", seed=1)
    sim_s = time.perf_counter() - t0
    model = Model.load(model_dir)
    config = feature_config_of(model)
    stages: dict[str, float] = {}
    mem: dict[str, float] = {}

    def timed(name, fn):
        s = time.perf_counter()
        with dask.config.set(scheduler="threads"):
            out = fn()
        stages[name] = time.perf_counter() - s
        mem[name] = peak_rss_gb()
        return out

    with LocalStacApi(work / "archive") as api:
        src = StacSource(api.url, chunk=None)
        inputs = timed("load", lambda: _load(src, block, year))
    s2 = timed("s2_preprocess", lambda: _compute_s2(preprocess_s2(inputs.s2, year)))
    s1 = timed("s1_preprocess", lambda: preprocess_s1(inputs.s1, year).db.compute())
    feats = timed("features", lambda: compute_features(s2.composites, s1, inputs.dem, config).compute())
    codes, prob = timed("predict", lambda: model.predict_block(feats))
    paths = tile_paths(work / "out", t, year)

    def write():
        q = s2.quality
        res = BlockResult(block, np.asarray(codes), np.asarray(prob), np.zeros(block.shape, "int16"),
                          np.asarray(q["s2_obs"]), np.nan_to_num(np.asarray(q["s2_discarded_pct"])).astype("int16"))
        write_block_result(paths, res)
        assemble_tile(paths, [block], model_card=model.card.to_dict(), params={}, source="bench")

    timed("write", write)
    matrix = feats.values.reshape(feats.shape[0], -1).T
    s = time.perf_counter()
    model.predict_proba(matrix)
    floor = time.perf_counter() - s
    mpx = block.shape[0] * block.shape[1] / 1e6
    total = sum(stages.values())
    cores = os.cpu_count() or 1
    result = {
        "block_size": block_size, "pixels": int(mpx * 1e6), "simulate_s": round(sim_s, 2),
        "s2_acquisitions": int(inputs.s2.sizes["time"]), "s1_acquisitions": int(inputs.s1.sizes["time"]),
        "stages_s": {k: round(v, 3) for k, v in stages.items()}, "peak_rss_gb_after": {k: round(v, 3) for k, v in mem.items()},
        "end_to_end_s": round(total, 2), "predict_floor_s": round(floor, 3),
        "end_to_end_mpx_per_s": round(mpx / total, 4), "end_to_end_mpx_per_s_per_core": round(mpx / total / cores, 4),
        "end_to_end_over_predict_floor": round(total / floor, 2), "peak_rss_gb": round(peak_rss_gb(), 3),
        "machine": machine(),
    }
    print(json.dumps(result), flush=True)  # the chain's figures, before the (slow) naive reference
    if naive:
        result["naive"] = naive_reference(inputs, year, config, model)
        chain = stages["s2_preprocess"] + stages["s1_preprocess"] + stages["features"] + stages["predict"]
        result["speedup_vs_naive"] = round(result["naive"]["total_s"] / chain, 2)
    return result


def _load(src, block, year):
    inputs = src.load_block(block, year)
    inputs.s2 = inputs.s2.compute()
    inputs.s1 = inputs.s1.compute()
    inputs.dem = inputs.dem.compute()
    return inputs


def _compute_s2(r):
    return type(r)(r.composites.compute(), r.quality.compute())


def naive_reference(inputs, year: int, config, model) -> dict:
    """The same computation written the obvious way: resample().median(), nanpercentile, one big predict."""
    import xarray as xr

    from worldcover.bands import S2_BANDS

    t = {}
    s = time.perf_counter()
    ds = inputs.s2
    valid = ~ds["SCL"].isin([0, 1, 3, 8, 9, 10])
    masked = ds[list(S2_BANDS)].where(valid)
    comp = masked.resample(time="10D").median().interpolate_na("time").compute()
    t["s2_composites_s"] = time.perf_counter() - s
    s = time.perf_counter()
    s1 = inputs.s1.resample(time="1MS").mean()
    s1db = (10 * np.log10(s1)).compute()
    t["s1_s"] = time.perf_counter() - s
    s = time.perf_counter()
    feats = []
    for b in config.bands:
        feats.append(np.nanpercentile(comp[b].values, list(config.percentiles), axis=0))
    ndvi = (comp["B08"] - comp["B04"]) / (comp["B08"] + comp["B04"])
    feats.append(np.nanpercentile(ndvi.values, list(config.percentiles), axis=0))
    for v in ("vv", "vh"):
        feats.append(np.nanpercentile(s1db[v].values, list(config.s1_percentiles), axis=0))
    stack = np.concatenate(feats, axis=0)
    t["features_s"] = time.perf_counter() - s
    # predict with the model's own feature count (pad the naive stack to it): the cost is the same
    n = len(model.feature_names)
    matrix = np.resize(stack.reshape(stack.shape[0], -1).T, (stack.shape[1] * stack.shape[2], n)).astype("float64")
    s = time.perf_counter()
    model._booster.predict(matrix) if hasattr(model, "_booster") else model.predict_proba(matrix)
    t["predict_s"] = time.perf_counter() - s
    t["total_s"] = round(sum(t.values()), 3)
    return {k: round(v, 3) for k, v in t.items()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--block-size", type=int, default=1024)
    ap.add_argument("--model", default=str(REPO / "models" / "default"))
    ap.add_argument("--no-naive", action="store_true")
    ap.add_argument("--json", default=None)
    args = ap.parse_args()
    result = run(args.block_size, Path(args.model), naive=not args.no_naive)
    text = json.dumps(result, indent=1)
    print(text)
    if args.json:
        Path(args.json).write_text(text)


if __name__ == "__main__":
    main()
