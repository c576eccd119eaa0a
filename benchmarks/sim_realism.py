"""How real is the simulated world? Per region, class and feature, the distance of simulated to real distributions.

The real side is the calibration targets shipped in
``worldcover/sim/data/real_targets.json`` (quantiles per region x class x
feature, from ``shared/realdata``; regenerate with ``python -m
worldcover.sim.calibration``). The simulated side is computed here, in
memory, from blocks of the *current* simulator at the regions' sites and
years: the blocks that best cover the region's real classes are rendered and
reduced with the same feature definitions (SCL-clear NDVI percentiles,
monthly NDVI, band reflectances, S1 dB per season, SCL flag shares; monthly
median composites for the point data sets). Distance = 1-D Wasserstein
distance between the two quantile sets, plus the shift of the medians.

Results: ``benchmarks/results/sim_realism-<UTC stamp>.json`` and
``sim_realism-latest.json`` (``--label NAME`` also writes
``sim_realism-NAME.json``, e.g. ``before``).

    python -m benchmarks.sim_realism [--quick] [--regions flanders,uganda] [--features 'ndvi_p|_jja']
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd

RESULTS = Path(__file__).resolve().parent / "results"
PRESETS = {  # block size, blocks per region, sampled pixels per class and block
    "quick": (96, 2, 400),
    "default": (128, 6, 800),  # many small blocks: more classes covered per CPU second than a few large ones
}
# A median shift beyond this is shown in red: clearly visible to a classifier.
FLAG_SHIFT = {"ndvi": 0.15, "reflectance": 0.03, "s1_db": 3.0, "scl_share": 0.1}


def simulator_provenance() -> dict:
    """Which simulator was measured: the worldcover package path, its git commit and uncommitted sim changes."""
    import worldcover

    pkg = Path(worldcover.__file__).resolve().parent
    out = {"package": str(pkg)}
    try:
        git = lambda *a: subprocess.run(["git", *a], cwd=pkg, capture_output=True, text=True, check=True).stdout  # noqa: E731
        out["commit"] = git("rev-parse", "HEAD").strip()
        out["sim_changes"] = [ln[3:] for ln in git("status", "--porcelain", "--", "sim").splitlines() if ln.strip()]
    except (OSError, subprocess.CalledProcessError):
        out["commit"] = None
    return out


def measure(doc: dict, regions: list[str], block_size: int, n_blocks: int, max_pixels: int, seed: int,
            log=print) -> tuple[dict, dict]:
    """Simulated samples per region and class, and the blocks used (ids)."""
    from worldcover.sim.calibration import region_blocks, simulated_samples

    sim, used = {}, {}
    for region in regions:
        t0 = time.perf_counter()
        blocks = region_blocks(doc, region, n_blocks, block_size, seed)
        sim[region] = simulated_samples(doc, region, blocks, max_pixels, seed)
        used[region] = [b.id for b in blocks]
        found = {c: int(s["B04"].size) if "B04" in s else 0 for c, s in sim[region].items()}
        log(f"{region}: {len(blocks)} blocks {', '.join(used[region])} in {time.perf_counter() - t0:.0f} s; "
            f"clear B04 observations per simulated class {found}")
    return sim, used


def fmt(v: float, group: str) -> str:
    if v is None or not np.isfinite(v):
        return "-"
    return f"{v:.1f}" if group == "s1_db" else f"{v:.2f}" if group in ("ndvi", "scl_share") else f"{v:.3f}"


def print_tables(table: pd.DataFrame, summary: pd.DataFrame, feature_filter: str | None) -> None:
    """A rich table per region, grouped by class, then one summary line per region."""
    from rich.console import Console
    from rich.table import Table

    console = Console(width=140)
    shown = table if not feature_filter else table[table["feature"].str.contains(feature_filter, regex=True)]
    for region, rows in shown.groupby("region", sort=False):
        t = Table(title=f"{region}: real vs simulated", show_lines=False)
        for col, just in (("class", "left"), ("feature", "left"), ("real p10/p50/p90", "right"),
                          ("sim p10/p50/p90", "right"), ("Δ median", "right"), ("W1", "right"),
                          ("n real/sim", "right")):
            t.add_column(col, justify=just)
        for i, (code, crows) in enumerate(rows.groupby("class", sort=True)):
            if i:
                t.add_section()
            for r in crows.itertuples(index=False):
                g = r.group
                # g bound as a default: the lambda is called in this iteration only, but must not see a later g
                trio = lambda a, b, c, g=g: "/".join(fmt(v, g) for v in (a, b, c))  # noqa: E731
                shift = r.median_shift
                style = "red" if np.isfinite(shift) and abs(shift) > FLAG_SHIFT[g] else ""
                t.add_row(f"{code} {r.class_name}", r.feature, trio(r.real_p10, r.real_p50, r.real_p90),
                          trio(r.sim_p10, r.sim_p50, r.sim_p90), fmt(shift, g), fmt(r.wasserstein, g),
                          f"{r.n_real}/{r.n_sim}", style=style)
        console.print(t)
    for region, rows in summary.groupby("region", sort=False):
        parts = [f"{r.group} {fmt(r.mean_wasserstein, r.group)} "
                 f"({r.compared}{f', {r.missing} missing' if r.missing else ''})"
                 for r in rows.itertuples(index=False)]
        console.print(f"[bold]{region}[/bold] mean W1: " + "; ".join(parts))


def jsonable(v):
    if isinstance(v, (np.floating, float)):
        return None if not np.isfinite(v) else round(float(v), 5)
    if isinstance(v, np.integer):
        return int(v)
    return v


def main(argv: list[str] | None = None) -> int:
    from worldcover.errors import InputError
    from worldcover.sim.calibration import REGIONS, distance_table, load_targets, real_targets, region_summary

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="2 blocks of 96 px per region (< 2 min; default: 6 of 128 px)")
    ap.add_argument("--regions", default=",".join(REGIONS), help=f"comma-separated subset of {', '.join(REGIONS)}")
    ap.add_argument("--block-size", type=int, help="override the preset's block size")
    ap.add_argument("--blocks", type=int, help="override the preset's blocks per region")
    ap.add_argument("--pixels", type=int, help="override the preset's sampled pixels per class and block")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--features", help="regular expression: print only matching features (all are saved)")
    ap.add_argument("--label", help="also write benchmarks/results/sim_realism-LABEL.json (e.g. before, after)")
    ap.add_argument("--targets", type=Path, help="targets JSON (default: the shipped real_targets.json)")
    args = ap.parse_args(argv)
    try:
        regions = [r.strip() for r in args.regions.split(",") if r.strip()]
        unknown = [r for r in regions if r not in REGIONS]
        if unknown or not regions:
            raise InputError(f"invalid --regions {args.regions!r}: expected names among {', '.join(REGIONS)}")
        if args.label is not None and not re.fullmatch(r"[A-Za-z0-9_.-]+", args.label):
            raise InputError(f"invalid --label {args.label!r}: expected letters, digits, '.', '_' or '-'")
        if args.features:
            try:
                re.compile(args.features)
            except re.error as exc:
                raise InputError(f"invalid --features {args.features!r}: {exc}") from None
        size, n_blocks, pixels = PRESETS["quick" if args.quick else "default"]
        size, n_blocks, pixels = args.block_size or size, args.blocks or n_blocks, args.pixels or pixels
        if not (32 <= size <= 2048) or not (1 <= n_blocks <= 50) or not (10 <= pixels <= 100_000):
            raise InputError(f"invalid sizes: --block-size {size} (expected 32..2048), --blocks {n_blocks} "
                             f"(1..50), --pixels {pixels} (10..100000)")
        doc = load_targets(args.targets)
        targets = real_targets(args.targets)
    except InputError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    targets = targets[targets["region"].isin(regions)]
    t0 = time.perf_counter()
    prov = simulator_provenance()
    print(f"simulator: {prov.get('package')} @ {str(prov.get('commit'))[:10]}"
          f"{' + uncommitted ' + ', '.join(prov['sim_changes']) if prov.get('sim_changes') else ''}", flush=True)
    sim, used = measure(doc, regions, size, n_blocks, pixels, args.seed, log=lambda m: print(m, flush=True))
    table = distance_table(targets, sim)
    summary = region_summary(table)
    print_tables(table, summary, args.features)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    result = {
        "measured": stamp,
        "wall_s": round(time.perf_counter() - t0, 1),
        "options": {"quick": args.quick, "block_size": size, "blocks_per_region": n_blocks, "pixels": pixels,
                    "seed": args.seed, "regions": regions},
        "simulator": prov,
        "targets": {"path": str(args.targets or "worldcover/sim/data/real_targets.json"),
                    "generated": doc["generated"]},
        "blocks": used,
        "summary": [{k: jsonable(v) for k, v in r.items()} for r in summary.to_dict("records")],
        "rows": [{k: jsonable(v) for k, v in r.items()} for r in table.to_dict("records")],
    }
    from worldcover.storage import atomic_write_text

    text = json.dumps(result, indent=1) + "\n"
    RESULTS.mkdir(parents=True, exist_ok=True)
    names = [f"sim_realism-{stamp}.json", "sim_realism-latest.json"]
    names += [f"sim_realism-{args.label}.json"] if args.label else []
    for name in names:
        atomic_write_text(RESULTS / name, text)
    print(f"wrote {', '.join(f'benchmarks/results/{n}' for n in names)} ({result['wall_s']} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
