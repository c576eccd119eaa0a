"""How hard is the simulated world? Temporal + radar features vs a single summer composite.

Simulates a handful of blocks across latitudes in memory, trains LightGBM on
some and tests on others far away, with two feature sets:

(a) temporal: per-band percentiles (10/25/50/75/90) of the SCL-clear
    observations of the year, monthly NDVI medians, and Sentinel-1 VV/VH dB
    percentiles;
(b) summer only: one monthly median of the clear observations (July in the
    north, January in the south), 12 bands, no Sentinel-1.

A realistic world needs (a) to do well (roughly 82-92 % OA, WorldCover
itself reached 75-77 % on real data) and (b) to do clearly worse (>= 8 points
below); (a) above ~97 % would mean the classes are toy-separable.

    python -m benchmarks.sim_difficulty [--block-size 384] [--samples 12000] [--quick]
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import dataclass

import numpy as np

from worldcover.bands import S2_BANDS, SCL_INVALID
from worldcover.grid import Tile
from worldcover.legend import BY_CODE, CODES
from worldcover.sim.s2 import upsample
from worldcover.sim.simulate import BlockWorld, SimOptions

# (tile, row, col) at block size 384: chosen for their mix of classes.
TRAIN = [
    ("S36W063", 54, 41),  # temperate south: crops, trees, grass, town, water
    ("S36W063", 7, 93),  # a town among crops
    ("N60E024", 20, 15),  # boreal: forest, crops, lakes, wetland
    ("N66W051", 90, 26),  # arctic: tundra, moss, bare, snow, wetland
    ("N09W012", 7, 48),  # tropical coast: mangroves, crops, water
    ("N12E003", 50, 42),  # Sahel: shrub, grass, crops, bare
    ("N42W090", 45, 29),  # temperate north: shrub, grass, crops
    ("S03W063", 71, 68),  # Amazon: forest, crops, town, river
    ("N48E009", 37, 85),  # alpine: snow, moss, wetland, shrub
]
TEST = [
    ("N30E030", 6, 13),  # crops, town, water, wetland
    ("N54W102", 6, 23),  # boreal/prairie: forest, crops, wetland
    ("N36W120", 6, 85),  # alpine: moss, snow, shrub, wetland
    ("N21E087", 70, 60),  # delta: mangroves, crops, water
    ("S24E021", 49, 55),  # semi-arid: shrub, bare, crops
    ("N00E024", 12, 13),  # Congo: forest, crops, shrub
    ("S24E021", 45, 3),  # town and crops
    ("N69E027", 76, 1),  # tundra: shrub, grass, wetland
]
PERCENTILES = (10, 25, 50, 75, 90)


@dataclass
class BlockFeatures:
    block: str
    labels: np.ndarray
    temporal: np.ndarray
    summer: np.ndarray


def temporal_names() -> list[str]:
    names = [f"s2_{b}_p{q}" for b in S2_BANDS for q in PERCENTILES]
    names += [f"ndvi_m{m:02d}" for m in range(1, 13)]
    names += [f"s1_{p}_db_p{q}" for p in ("vv", "vh") for q in PERCENTILES]
    return names


def block_features(tile: str, row: int, col: int, block_size: int, year: int, samples: int, seed: int = 0,
                   rng: np.random.Generator | None = None) -> BlockFeatures:
    """Features of ``samples`` random pixels of one block (10 m UTM grid; truth = the class at the pixel)."""
    rng = rng or np.random.default_rng(0)
    block = Tile.parse(tile).block(row * 384 // block_size, col * 384 // block_size, block_size)
    world = BlockWorld(block, year, seed, SimOptions())
    h, w = world.grid.shape(10)
    n = min(samples, h * w)
    flat = rng.choice(h * w, n, replace=False)
    iy, ix = np.unravel_index(flat, (h, w))
    labels = world.surface.code[iy, ix]

    # Sentinel-2: harmonised reflectance of the sampled pixels, NaN where SCL says unusable.
    bands = list(S2_BANDS)
    stack = np.full((len(world.s2_acquisitions), len(bands), n), np.nan, np.float32)
    months = np.zeros(len(world.s2_acquisitions), int)
    for t, acq in enumerate(world.s2_acquisitions):
        scene = world.s2(acq)
        ok = ~np.isin(upsample(scene.scl.values, 2), list(SCL_INVALID))[iy, ix]
        for j, b in enumerate(bands):
            r = scene.reflectance(b).values
            f = S2_BANDS[b] // 10
            v = (upsample(r, f) if f > 1 else r)[iy, ix]
            stack[t, j] = np.where(ok, v, np.nan)
        months[t] = acq.day.month
    # Sentinel-1: dB of the sampled pixels.
    s1 = np.full((max(len(world.s1_acquisitions), 1), 2, n), np.nan, np.float32)
    for t, acq in enumerate(world.s1_acquisitions):
        sc = world.s1(acq)
        for j, pol in enumerate(("vv", "vh")):
            v = sc[pol].values[iy, ix]
            s1[t, j] = 10 * np.log10(np.where(v > 0, v, np.nan))

    with np.errstate(all="ignore"):
        import warnings

        warnings.simplefilter("ignore", RuntimeWarning)
        feats = [np.nanpercentile(stack[:, j], PERCENTILES, axis=0) for j in range(len(bands))]
        red, nir = stack[:, bands.index("B04")], stack[:, bands.index("B08")]
        ndvi = (nir - red) / (nir + red)
        monthly = [np.nanmedian(ndvi[months == m], axis=0) if (months == m).any() else np.full(n, np.nan)
                   for m in range(1, 13)]
        radar = [np.nanpercentile(s1[:, j], PERCENTILES, axis=0) for j in range(2)]
        temporal = np.concatenate([np.concatenate(feats, 0), np.stack(monthly), np.concatenate(radar, 0)], 0).T
        summer_month = 7 if block.tile.center[1] >= 0 else 1
        sel = months == summer_month
        summer = np.nanmedian(stack[sel], axis=0).T if sel.any() else np.full((n, len(bands)), np.nan)
    return BlockFeatures(block.id, labels, temporal.astype(np.float32), summer.astype(np.float32))


def train_and_score(train: list[BlockFeatures], test: list[BlockFeatures], which: str, seed: int = 0) -> dict:
    import lightgbm as lgb

    xtr = np.concatenate([getattr(b, which) for b in train])
    ytr = np.concatenate([b.labels for b in train])
    xte = np.concatenate([getattr(b, which) for b in test])
    yte = np.concatenate([b.labels for b in test])
    model = lgb.LGBMClassifier(n_estimators=300, learning_rate=0.05, num_leaves=63, subsample=0.8, subsample_freq=1,
                               colsample_bytree=0.8, min_child_samples=30, random_state=seed, verbose=-1, n_jobs=2)
    model.fit(xtr, ytr)
    pred = model.predict(xte)
    oa = float((pred == yte).mean())
    per_class = {}
    for c in CODES:
        t, p = yte == c, pred == c
        if t.sum() == 0 and p.sum() == 0:
            continue
        prec = float((t & p).sum() / max(p.sum(), 1))
        rec = float((t & p).sum() / max(t.sum(), 1))
        per_class[BY_CODE[c].name] = {"n_test": int(t.sum()), "precision": round(prec, 3), "recall": round(rec, 3)}
    return {"oa": oa, "per_class": per_class}


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--block-size", type=int, default=384)
    ap.add_argument("--samples", type=int, default=12000, help="random pixels per block")
    ap.add_argument("--year", type=int, default=2021)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--quick", action="store_true", help="half the blocks (for iterating)")
    ap.add_argument("--json", default=None, help="write the results here")
    args = ap.parse_args(argv)
    t0 = time.perf_counter()
    rng = np.random.default_rng(args.seed)
    train_blocks = TRAIN[::2] if args.quick else TRAIN
    test_blocks = TEST[::2] if args.quick else TEST
    feats = {}
    for name, blocks in (("train", train_blocks), ("test", test_blocks)):
        feats[name] = []
        for tile, r, c in blocks:
            t = time.perf_counter()
            bf = block_features(tile, r, c, args.block_size, args.year, args.samples, args.seed, rng)
            codes, n = np.unique(bf.labels, return_counts=True)
            counts = {BY_CODE[k].name.split()[0]: int(v) for k, v in zip(codes, n, strict=True)}
            print(f"{name:5s} {bf.block:22s} {time.perf_counter() - t:6.1f} s  {counts}", flush=True)
            feats[name].append(bf)
    res_t = train_and_score(feats["train"], feats["test"], "temporal", args.seed)
    res_s = train_and_score(feats["train"], feats["test"], "summer", args.seed)
    print(f"\n(a) temporal + S1 features ({len(temporal_names())}): OA = {100 * res_t['oa']:.1f} %")
    print(f"(b) summer composite only (12 bands):   OA = {100 * res_s['oa']:.1f} %")
    print(f"    gap: {100 * (res_t['oa'] - res_s['oa']):.1f} points   ({time.perf_counter() - t0:.0f} s)")
    print("\nper class, temporal (precision / recall):")
    for k, v in res_t["per_class"].items():
        s = res_s["per_class"].get(k, {})
        print(f"  {k:26s} n={v['n_test']:6d}  a: {v['precision']:.2f}/{v['recall']:.2f}   "
              f"b: {s.get('precision', 0):.2f}/{s.get('recall', 0):.2f}")
    out = {"temporal": res_t, "summer": res_s, "block_size": args.block_size, "samples": args.samples,
           "train": [b.block for b in feats["train"]], "test": [b.block for b in feats["test"]],
           "elapsed_s": time.perf_counter() - t0}
    if args.json:
        with open(args.json, "w") as f:
            json.dump(out, f, indent=1)
    return out


if __name__ == "__main__":
    main()
