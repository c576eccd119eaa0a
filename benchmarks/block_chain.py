"""One block through the chain: a stage profile, the production path, and the references.

    python -m benchmarks.block_chain --block-size 1024 --mode tile   [--json out.json]
    python -m benchmarks.block_chain --block-size 512  --mode stages [--naive]

The block (centre of N45E003, a full simulated year: ~70 S2 and ~60 S1
acquisitions) is simulated once into ``benchmarks/.cache`` by a child process,
so neither its time nor its memory counts; later runs reuse it.

``--mode tile`` times the production path, ``worldcover.tile.run.run_tile``
(odc-stac load -> preprocessing -> features -> LightGBM -> COGs + STAC item),
lazy and chunked as a campaign runs it, and samples the process's RSS: this is
the end-to-end figure and the peak memory per block.

``--mode stages`` computes each stage before the next (load, S2, S1, features,
predict, write) to separate their times; results stay dask arrays (persisted),
so each stage runs on all cores as in production, measures the predict-only
floor (LightGBM on the feature matrix), and with ``--naive`` the obvious
implementation of the same computation (xarray ``resample().median()`` and
``interpolate_na``, ``np.nanpercentile``, one big predict).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import threading
import time
import warnings
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
CACHE = Path(__file__).resolve().parent / ".cache"
TILE, YEAR, SEED = "N45E003", 2021, 1


def peak_rss_gb() -> float:
    """The process's RSS high-water mark (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2


def machine() -> dict:
    cpu = ""
    with contextlib.suppress(OSError, StopIteration):  # no /proc/cpuinfo, or no model name in it
        cpu = next(line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                   if line.startswith("model name"))
    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 1024**3
    return {"python": platform.python_version(), "machine": platform.machine(), "cpus": os.cpu_count(),
            "cpu_model": cpu or platform.processor(), "memory_gb": round(mem, 1), "system": platform.system()}


def bench_block(block_size: int):
    from worldcover.grid import Tile

    t = Tile.parse(TILE)
    rows, cols = t.block_grid(block_size)
    return t.block(rows // 2, cols // 2, block_size)


def archive_for(block_size: int, cache: Path = CACHE) -> tuple[Path, float]:
    """The simulated archive of the benchmark block, made by a child process when missing."""
    root = cache / f"sim-{TILE}-{block_size}-{YEAR}-s{SEED}"
    if (root / "DONE").exists():
        return root, 0.0
    t0 = time.perf_counter()
    code = ("import sys; from benchmarks.block_chain import bench_block; from worldcover import sim; "
            f"sim.generate([bench_block({block_size})], {YEAR}, sys.argv[1], seed={SEED})")
    subprocess.run([sys.executable, "-c", code, str(root)], check=True, cwd=REPO, stdout=subprocess.DEVNULL)
    (root / "DONE").write_text("")
    return root, round(time.perf_counter() - t0, 1)


class RssSampler:
    """Peak RSS of this process (``tree``: plus all its descendants), sampled every ``every`` seconds."""

    def __init__(self, every: float = 0.05, tree: bool = False) -> None:
        import psutil

        self._proc, self._every, self._tree, self.peak = psutil.Process(), every, tree, 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _rss(self) -> int:
        import psutil

        procs = [self._proc, *self._proc.children(recursive=True)] if self._tree else [self._proc]
        total = 0
        for p in procs:
            with contextlib.suppress(psutil.Error):  # a worker that just exited
                total += p.memory_info().rss
        return total

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, self._rss())
            self._stop.wait(self._every)

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()

    @property
    def peak_gb(self) -> float:
        return self.peak / 1024**3


def run_production(block_size: int, model_dir: Path, chunk: int | None = None, grid: str = "native",
                   map_out: str | None = None) -> dict:
    """``run_tile`` on the benchmark block, as a campaign runs it: wall time and peak RSS.

    ``map_out``: keep its Map.
    """
    from worldcover.chain import ChainParams
    from worldcover.sources.local_api import LocalStacApi
    from worldcover.tile.run import run_tile

    archive, sim_s = archive_for(block_size)
    block = bench_block(block_size)
    params = ChainParams(grid=grid) if chunk is None else ChainParams(chunk=chunk, grid=grid)
    out = Path(tempfile.mkdtemp(prefix="wc-bench-tile-"))
    base = peak_rss_gb()
    with LocalStacApi(archive) as api, RssSampler() as rss:
        t0 = time.perf_counter()
        run = run_tile(block.tile, YEAR, api.url, model_dir, out, block_size=block_size,
                       blocks=f"r{block.row}c{block.col}", params=params)
        wall = time.perf_counter() - t0
    mpx = block.shape[0] * block.shape[1] / 1e6
    cores = os.cpu_count() or 1
    if map_out:
        import shutil

        shutil.copyfile(run.outputs["map"], map_out)
    return {
        "mode": "tile", "block_size": block_size, "pixels": int(mpx * 1e6), "simulate_s": sim_s,
        "chunk": params.chunk, "status": run.status, "end_to_end_s": round(wall, 2),
        "end_to_end_mpx_per_s": round(mpx / wall, 4), "end_to_end_mpx_per_s_per_core": round(mpx / wall / cores, 5),
        "peak_rss_gb": round(max(rss.peak_gb, peak_rss_gb()), 3), "rss_before_gb": round(base, 3),
        "machine": machine(),
    }


def run_stages(block_size: int, model_dir: Path, naive: bool = False, grid: str = "native") -> dict:
    """Each stage computed before the next; the predict floor; optionally the naive reference.

    ``grid`` "native": the inputs are processed and scored on their UTM grid and a ``regrid`` stage moves
    the scores to the product grid (:mod:`worldcover.regrid`) and decides the classes; "product": the
    reference chain."""
    import dask

    from worldcover.features import compute_features
    from worldcover.layout import tile_paths
    from worldcover.model import Model
    from worldcover.preprocess.s1 import preprocess_s1
    from worldcover.preprocess.s2 import preprocess_s2
    from worldcover.sources.local_api import LocalStacApi
    from worldcover.sources.stac import StacSource
    from worldcover.tile.products import BlockResult, assemble_tile, write_block_result
    from worldcover.tile.run import feature_config_of, source_needs

    archive, sim_s = archive_for(block_size)
    block = bench_block(block_size)
    model = Model.load(model_dir)
    config = feature_config_of(model)
    stages: dict[str, float] = {}
    mem: dict[str, float] = {}

    def timed(name, fn):
        s = time.perf_counter()
        with dask.config.set(scheduler="threads"):
            out = fn()
        stages[name] = stages.get(name, 0.0) + time.perf_counter() - s
        mem[name] = peak_rss_gb()
        return out

    with LocalStacApi(archive) as api:
        src = StacSource(api.url, chunk=block_size, **source_needs(model))
        inputs = timed("load", lambda: _load(src, block, native=grid == "native"))
    s2 = timed("s2_preprocess", lambda: _persist_s2(preprocess_s2(inputs.s2, YEAR, coarse=inputs.s2_20m)))
    s1 = timed("s1_preprocess", lambda: preprocess_s1(inputs.s1, YEAR).db.persist())
    feats = timed("features", lambda: compute_features(s2.composites, s1, inputs.dem, config).persist())
    quality = s2.quality
    if grid == "native":  # as the tile chain: scored on the native grid, the scores resampled and decided
        from worldcover.regrid import Regrid

        rg = timed("regrid", lambda: Regrid(inputs.geobox, block.geobox))
        scores = timed("predict", lambda: model.scores_block(feats, num_threads=1, where=rg.reads()).values)
        (codes, prob), quality = timed("regrid", lambda: _regrid(model, scores, s2.quality, rg))
    else:
        codes, prob = timed("predict", lambda: model.predict_block(feats))
    paths = tile_paths(Path(tempfile.mkdtemp(prefix="wc-bench-stages-")), block.tile, YEAR)

    def write():
        q = quality
        res = BlockResult(block, np.asarray(codes), np.asarray(prob), np.zeros(block.shape, "int16"),
                          np.asarray(q["s2_obs"]), np.nan_to_num(np.asarray(q["s2_discarded_pct"])).astype("int16"))
        write_block_result(paths, res)
        assemble_tile(paths, [block], model_card=model.card.to_dict(), params={}, source="bench")

    timed("write", write)
    matrix = feats.values.reshape(feats.shape[0], -1).T
    s = time.perf_counter()
    model.predict_proba(matrix)
    floor = time.perf_counter() - s
    with LocalStacApi(archive) as api:
        io = io_floor(StacSource(api.url, **source_needs(model)), block)
    mpx = block.shape[0] * block.shape[1] / 1e6
    total = sum(stages.values())
    result = {
        "mode": "stages", "block_size": block_size, "pixels": int(mpx * 1e6), "simulate_s": sim_s,
        "s2_acquisitions": int(inputs.s2.sizes["time"]), "s1_acquisitions": int(inputs.s1.sizes["time"]),
        "stages_s": {k: round(v, 3) for k, v in stages.items()},
        "peak_rss_gb_after": {k: round(v, 3) for k, v in mem.items()},
        "staged_total_s": round(total, 2), "predict_floor_s": round(floor, 3),
        "predict_floor_mpx_per_s": round(mpx / floor, 4),
        "staged_over_predict_floor": round(total / floor, 2), "peak_rss_gb": round(peak_rss_gb(), 3),
        "predictor": model.predictor, "io_floor": io, "floor_s": round(io["seconds"] + floor, 3),
        "machine": machine(),
    }
    if naive:
        print(json.dumps(result), flush=True)  # the chain's figures, before the (slow) naive reference
        result["naive"] = naive_reference(inputs, config, model)
        chain = sum(stages[k] for k in ("s2_preprocess", "s1_preprocess", "features", "predict"))
        result["chain_compute_s"] = round(chain, 3)
        result["speedup_vs_naive"] = round(result["naive"]["total_s"] / chain, 2)
    return result


def io_floor(src, block) -> dict:
    """Every input COG window of the block read once, in its own grid, no warping, on all cores.

    The windows are those of the block's native grid (the DEM: the block's bounds); the time is what
    decoding the block's pixels costs at the least: the I/O half of the floor of ``end_to_end_over_io_floor``.
    """
    from concurrent.futures import ThreadPoolExecutor

    import rasterio
    from rasterio.windows import from_bounds

    from worldcover.bands import s2_asset_keys
    from worldcover.grid import native_geobox
    from worldcover.sources.stac import items_crs

    p = src.preset
    s2 = src.search(p.s2_collection, block, f"{YEAR}-01-01/{YEAR}-12-31")
    s1 = src.search(src.s1_collection()[0], block, f"{YEAR}-01-01/{YEAR}-12-31")
    dem = src.search(p.dem_collection, block, "1900-01-01/2100-01-01")
    native = native_geobox(block, items_crs(s2))
    keys = list(s2_asset_keys(p.layout, src.s2_bands).values())
    jobs = [(i.assets[k].href, native.boundingbox) for i in s2 for k in keys if k in i.assets]
    jobs += [(i.assets[k].href, native.boundingbox) for i in s1 for k in p.s1_assets if k in i.assets]
    jobs += [(i.assets[p.dem_asset].href, None) for i in dem]

    def read(job) -> int:
        href, bounds = job
        with rasterio.open(href) as f:
            box = bounds if bounds is not None and f.crs == native.crs else f.bounds
            if bounds is None:
                box = block.bbox
            return f.read(1, window=from_bounds(*box, f.transform).round_offsets().round_lengths(),
                          boundless=False).nbytes

    start = time.perf_counter()
    with ThreadPoolExecutor(os.cpu_count() or 1) as pool:
        nbytes = sum(pool.map(read, jobs))
    return {"seconds": round(time.perf_counter() - start, 3), "files": len(jobs), "gb": round(nbytes / 1e9, 3)}


def _regrid(model, scores, quality, rg):
    """(codes, probability) from the native scores resampled bilinear to the product grid by ``rg`` (a
    :class:`worldcover.regrid.Regrid`), and the quality counts (nearest) there, as the tile chain does."""
    import xarray as xr

    q = xr.Dataset({k: (rg.dst.dimensions, rg.nearest(np.asarray(v)[None])[0]) for k, v in quality.items()})
    return model.decide(rg.bilinear(scores)), q


def _load(src, block, native: bool = False):
    import dask

    inputs = src.load_block(block, YEAR, native=native)
    if inputs.s2_20m is not None:  # as the chain: the 20 m bands are used at 20 m, never doubled before compositing
        inputs.s2 = inputs.s2.drop_vars([b for b in inputs.s2_20m.data_vars if b != "SCL"])
    inputs.s2, inputs.s2_20m, inputs.s1, inputs.dem = dask.persist(inputs.s2, inputs.s2_20m, inputs.s1, inputs.dem)
    return inputs


def _persist_s2(r):
    import dask

    return type(r)(*dask.persist(r.composites, r.quality))


def naive_reference(inputs, config, model) -> dict:
    """The same computation written the obvious way, on the same loaded inputs.

    10-day medians with ``resample().median()``, gaps filled with
    ``interpolate_na``, monthly S1 means, percentiles with ``np.nanpercentile``
    over every band and index of the feature set, one big LightGBM predict.
    No cloud dilation or speckle filter (it only gets cheaper for it).
    """
    from worldcover.bands import S2_BANDS

    ds, s1_in = inputs.s2.compute(), inputs.s1.compute()  # numpy, as the obvious code would hold them
    if inputs.s2_20m is not None:  # every band on the 10 m grid, as the obvious code would have them
        from worldcover.regrid import upsample2

        ds = ds.assign({b: (ds["SCL"].dims, upsample2(inputs.s2_20m[b].values))
                        for b in inputs.s2_20m.data_vars if b not in ds.data_vars})
    t = {}
    s = time.perf_counter()
    valid = ~ds["SCL"].isin([0, 1, 3, 8, 9, 10])
    masked = ds[[b for b in S2_BANDS if b in ds.data_vars]].where(valid)  # the bands the model needs
    comp = masked.resample(time="10D").median().interpolate_na("time").compute()
    t["s2_composites_s"] = time.perf_counter() - s
    s = time.perf_counter()
    s1 = s1_in.resample(time="1MS").mean()
    s1db = (10 * np.log10(s1)).compute()
    t["s1_s"] = time.perf_counter() - s
    s = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN pixels
        feats = [np.nanpercentile(comp[b].values, list(config.percentiles), axis=0) for b in config.bands]
        for a, b in (("B08", "B04"), ("B03", "B11"), ("B08", "B12"), ("B8A", "B11"), ("B8A", "B05")):
            idx = (comp[a] - comp[b]) / (comp[a] + comp[b])
            feats.append(np.nanpercentile(idx.values, list(config.percentiles), axis=0))
        for v in ("vv", "vh"):
            feats.append(np.nanpercentile(s1db[v].values, list(config.s1_percentiles), axis=0))
    stack = np.concatenate(feats, axis=0)
    t["features_s"] = time.perf_counter() - s
    # the model's own feature count (the naive stack padded to it): the cost of a predict is the same
    n = len(model.feature_names)
    pixels = stack.shape[1] * stack.shape[2]
    matrix = np.resize(stack.reshape(stack.shape[0], -1).T, (pixels, n)).astype("float64")
    s = time.perf_counter()
    model._booster.predict(matrix)
    t["predict_s"] = time.perf_counter() - s
    t["total_s"] = sum(t.values())
    return {k: round(v, 3) for k, v in t.items()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--block-size", type=int, default=1024)
    ap.add_argument("--mode", choices=("tile", "stages"), default="tile")
    ap.add_argument("--model", default=str(REPO / "models" / "default"))
    ap.add_argument("--chunk", type=int, default=None, help="dask chunk (pixels) of the production path")
    ap.add_argument("--naive", action="store_true", help="stages mode: also time the naive reference")
    ap.add_argument("--grid", choices=("native", "product"), default="native",
                    help="where the inputs are processed (tile and stages modes)")
    ap.add_argument("--map-out", default=None, help="tile mode: copy the block's Map COG here")
    ap.add_argument("--json", default=None)
    args = ap.parse_args()
    warnings.filterwarnings("ignore")
    if args.mode == "tile":
        result = run_production(args.block_size, Path(args.model), args.chunk, grid=args.grid, map_out=args.map_out)
    else:
        result = run_stages(args.block_size, Path(args.model), naive=args.naive, grid=args.grid)
    result["grid"] = args.grid
    text = json.dumps(result, indent=1)
    print(text)
    if args.json:
        Path(args.json).write_text(text)


if __name__ == "__main__":
    main()
