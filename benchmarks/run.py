"""``make bench``: the performance suite in one run (not part of ``make test``).

Each block size runs in its own process (clean peak-memory figures). Results
go to ``benchmarks/results/<timestamp>.json`` with the machine description,
and the summary to ``benchmarks/results/latest.json``, which
``worldcover campaign plan`` reads for its throughput.

    python -m benchmarks.run [--sizes 512,1024,2048]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"


def block_run(size: int) -> dict:
    out = RESULTS / f".block_{size}.json"
    subprocess.run([sys.executable, "-m", "benchmarks.block_chain", "--block-size", str(size), "--json", str(out)],
                   check=True, stdout=subprocess.DEVNULL)
    data = json.loads(out.read_text())
    out.unlink()
    return data


def render_100pct_s() -> float:
    from worldcover.campaign import CampaignPlan
    from worldcover.engines.argo.render import render

    plan = CampaignPlan.create("wc-100pct-2021", 2021, stage="100pct")
    t0 = time.perf_counter()
    render(plan)
    return round(time.perf_counter() - t0, 3)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="512,1024,2048", help="block sizes, comma-separated")
    args = ap.parse_args()
    RESULTS.mkdir(parents=True, exist_ok=True)
    sizes = [int(s) for s in args.sizes.split(",")]
    blocks = {}
    for s in sizes:
        print(f"block {s} ...", flush=True)
        blocks[s] = block_run(s)
        print(json.dumps({k: blocks[s][k] for k in ("stages_s", "end_to_end_s", "peak_rss_gb")}), flush=True)
    ref = blocks[max(sizes)]
    from worldcover.campaign import CampaignPlan
    from worldcover.campaign.estimate import estimate

    rate = ref["end_to_end_mpx_per_s_per_core"]
    est = estimate(CampaignPlan.create("wc-100pct-2021", 2021, stage="100pct"), mpx_per_s_per_core=rate)
    summary = {
        "end_to_end_mpx_per_s_per_core": rate,
        "speedup_vs_naive": ref.get("speedup_vs_naive"),
        "end_to_end_over_predict_floor": ref["end_to_end_over_predict_floor"],
        "peak_rss_gb_block_2048": blocks[2048]["peak_rss_gb"] if 2048 in blocks else None,
        "core_hours_100pct": est.core_hours,
        "render_100pct_s": render_100pct_s(),
        "growth": {s: {"end_to_end_s": b["end_to_end_s"], "peak_rss_gb": b["peak_rss_gb"]} for s, b in blocks.items()},
        "measured": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "machine": ref["machine"],
    }
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    (RESULTS / f"{stamp}.json").write_text(json.dumps({"summary": summary, "blocks": blocks}, indent=1))
    (RESULTS / "latest.json").write_text(json.dumps(summary, indent=1))
    print(json.dumps(summary, indent=1))


if __name__ == "__main__":
    main()
