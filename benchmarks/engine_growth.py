"""Time and memory of the local engine as a campaign grows: 1, 2, 4 tiles of one block each.

    python -m benchmarks.engine_growth [--tiles 1,2,4] [--block-size 256]

Every campaign runs in a fresh process on a one-worker LocalCluster (as
``worldcover campaign run`` does by default). Memory is the peak RSS of the
whole process tree (engine, dask scheduler and worker), sampled: it must stay
flat as tiles are added, because tiles stream through the worker one by one.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.block_chain import CACHE, REPO, SEED, YEAR, RssSampler

TILES = ("N45E003", "S24E021", "N09E039", "N39E054")


def blocks(block_size: int):
    from worldcover.grid import Tile

    out = []
    for tid in TILES:
        t = Tile.parse(tid)
        rows, cols = t.block_grid(block_size)
        out.append(t.block(rows // 2, cols // 2, block_size))
    return out


def archive_for(block_size: int) -> Path:
    root = CACHE / f"engine-{block_size}-{YEAR}-s{SEED}"
    if not (root / "DONE").exists():
        code = ("import sys; from benchmarks.engine_growth import blocks; from worldcover import sim; "
                f"sim.generate(blocks({block_size}), {YEAR}, sys.argv[1], seed={SEED})")
        subprocess.run([sys.executable, "-c", code, str(root)], check=True, cwd=REPO, stdout=subprocess.DEVNULL)
        (root / "DONE").write_text("")
    return root


def one_campaign(n_tiles: int, block_size: int, model: str) -> dict:
    """Run an ``n_tiles`` campaign (tiles only, no merge) and measure it."""
    from worldcover.campaign import CampaignPlan
    from worldcover.engines.local import run_campaign
    from worldcover.sources.local_api import LocalStacApi

    archive = archive_for(block_size)
    chosen = blocks(block_size)[:n_tiles]
    spec = f"r{chosen[0].row}c{chosen[0].col}"  # the centre block: the same row/col in every tile
    out = Path(tempfile.mkdtemp(prefix="wc-bench-engine-"))
    with LocalStacApi(archive) as api:
        plan = CampaignPlan.create(f"bench-{n_tiles}", YEAR, tiles=[b.tile.id for b in chosen], model=model,
                                   source=api.url, out_root=str(out), block_size=block_size, blocks=spec)
        with RssSampler(every=0.1, tree=True) as rss:
            t0 = time.perf_counter()
            outcome = run_campaign(plan, workers=1, threads=2, progress=False, finish=False)
            wall = time.perf_counter() - t0
    ok = sum(1 for o in outcome.tiles if o.ok)
    return {"tiles": n_tiles, "block_size": block_size, "wall_s": round(wall, 2),
            "s_per_tile": round(wall / n_tiles, 2), "peak_rss_gb_tree": round(rss.peak_gb, 3),
            "tiles_ok": ok}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tiles", default="1,2,4")
    ap.add_argument("--block-size", type=int, default=256)
    ap.add_argument("--model", default=str(REPO / "models" / "default"))
    ap.add_argument("--one", type=int, default=None, help=argparse.SUPPRESS)  # child: one campaign
    args = ap.parse_args()
    if args.one is not None:
        print(json.dumps(one_campaign(args.one, args.block_size, args.model)))
        return
    archive_for(args.block_size)
    rows = []
    for n in (int(x) for x in args.tiles.split(",")):
        res = subprocess.run([sys.executable, "-m", "benchmarks.engine_growth", "--one", str(n),
                              "--block-size", str(args.block_size), "--model", args.model],
                             check=True, cwd=REPO, capture_output=True, text=True)
        rows.append(json.loads(res.stdout.strip().splitlines()[-1]))
        print(json.dumps(rows[-1]), flush=True)
    print(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
