"""Peak memory and time of `build_mosaic` for 4, 16 and 64 synthetic tiles.

Each build runs in a fresh subprocess that reports its own peak RSS
(``resource.getrusage(RUSAGE_SELF).ru_maxrss``) so runs cannot inflate each
other. Tiles are laid out as a square block (2x2, 4x4, 8x8 tiles), so the
extent of the level COGs grows with the number of tiles too; each tile holds
a ``--window`` x ``--window`` Map window at a tile-grid-aligned offset.
After the full build, one more tile is added and the incremental rebuild is
timed (it must compute that tile's pieces only).

    .venv/bin/python benchmarks/mosaic_memory.py [--counts 4 16 64] [--window 720]
"""

from __future__ import annotations

import argparse
import json
import math
import subprocess
import sys
import tempfile
from pathlib import Path

CHILD = r"""
import json, resource, sys, time
from worldcover.mosaic import build_mosaic
imports = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
t = time.perf_counter()
s = build_mosaic(sys.argv[1], int(sys.argv[2]))
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(json.dumps({"seconds": time.perf_counter() - t, "peak_rss_mb": peak, "import_rss_mb": imports,
                  "computed": len(s["computed"]), "reused": len(s["reused"]), "status": s["status"]}))
"""

FABRICATE = r"""
import sys
from worldcover.grid import Tile
from worldcover.mosaic.synthetic import synthetic_codes, write_tile
root, year, window = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
for i, spec in enumerate(sys.argv[4:]):
    lat, lon = map(int, spec.split(","))
    offset = (i * 1234) % (36000 - window)  # varied, not 10 km aligned
    write_tile(root, Tile(lat, lon), year, synthetic_codes((window, window), seed=i + lat * 1000 + lon), offset, offset)
"""

YEAR = 2021


def tile_specs(n: int, first: int = 0) -> list[str]:
    """``lat,lon`` of ``n`` tiles in a square block starting at (0, 0) (extra tiles go east of it)."""
    side = math.isqrt(n)
    return [f"{3 * (k // side)},{3 * (k % side)}" for k in range(first, n)]


def run(code: str, *args: str) -> str:
    out = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, check=True)
    return out.stdout


def bench(n: int, window: int, workdir: Path) -> dict:
    root = workdir / f"tiles{n}"
    root.mkdir()
    run(FABRICATE, str(root), str(YEAR), str(window), *tile_specs(n))
    full = json.loads(run(CHILD, str(root), str(YEAR)).strip().splitlines()[-1])
    side = math.isqrt(n)
    run(FABRICATE, str(root), str(YEAR), str(window), f"0,{3 * side}")  # one more tile, east of the block
    incr = json.loads(run(CHILD, str(root), str(YEAR)).strip().splitlines()[-1])
    again = json.loads(run(CHILD, str(root), str(YEAR)).strip().splitlines()[-1])
    return {"tiles": n, "full": full, "add_one": incr, "unchanged": again}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--counts", type=int, nargs="+", default=[4, 16, 64])
    ap.add_argument("--window", type=int, default=720, help="Map window side in 10 m pixels")
    ap.add_argument("--json", action="store_true", help="print JSON rows instead of a table")
    args = ap.parse_args()
    rows = []
    with tempfile.TemporaryDirectory(prefix="mosaic-bench-") as tmp:
        for n in args.counts:
            rows.append(bench(n, args.window, Path(tmp)))
            if not args.json:
                r = rows[-1]
                print(f"{n:>4} tiles  full: {r['full']['seconds']:7.2f} s  peak RSS {r['full']['peak_rss_mb']:7.1f} MB"
                      f" (after imports {r['full']['import_rss_mb']:.1f} MB)"
                      f"  | +1 tile: {r['add_one']['seconds']:6.2f} s, computed {r['add_one']['computed']}"
                      f", peak {r['add_one']['peak_rss_mb']:6.1f} MB"
                      f"  | unchanged: {r['unchanged']['seconds']:5.2f} s ({r['unchanged']['status']})", flush=True)
    if args.json:
        print(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
