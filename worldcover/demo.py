"""The end-to-end demo behind ``make demo``: everything on this machine, nothing from the internet.

1. plan: the nested stages, and a small campaign of the 1pct stage with its estimate;
2. simulate a few blocks of a few 1pct tiles (S2 L2A, S1 RTC, DEM as COGs + STAC items);
3. serve them as a real STAC API on loopback (rustac serve) and search it with pystac-client;
4. run the campaign on the local engine (dask LocalCluster): tiles -> merge -> validate,
   with reference labels taken from the simulator's truth;
5. render the same plan for Argo (validated YAML), and check the promotion gate.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from worldcover import sim, storage
from worldcover.campaign import CampaignPlan
from worldcover.campaign.estimate import estimate
from worldcover.campaign.promote import DEFAULT_THRESHOLD, read_overall_accuracy
from worldcover.campaign.summary import print_summary, summarise
from worldcover.credentials import install as install_log_redaction
from worldcover.engines.local import run_campaign
from worldcover.grid import Block, Tile, parse_blocks
from worldcover.model.location import DEFAULT_MODEL_DIR
from worldcover.sim.publish import publish
from worldcover.sources.catalogues import open_client, search_items
from worldcover.sources.local_api import LocalStacApi
from worldcover.stages import stage_tiles, stratum, summary

console = Console()

DEMO_YEAR = 2021
DEMO_BLOCK_SIZE = 240  # a multiple of 6, so blocks align with the InputQuality grid
DEMO_SEED = 0
DEMO_MODEL = Path(__file__).resolve().parent / "model" / "default_model"  # the packaged default model


def pick_demo_tiles(n: int = 3, seed: int = 2021) -> list[Tile]:
    """The ``n`` 1pct tiles with most land, each from a different latitude zone."""
    tiles = sorted(stage_tiles("1pct", seed), key=lambda t: (-t.land_fraction, t.id))
    picked: list[Tile] = []
    zones: set[str] = set()
    for t in tiles:
        z = stratum(t).zone
        if z not in zones:
            picked.append(t)
            zones.add(z)
        if len(picked) == n:
            break
    return picked


def demo_blocks_spec(block_size: int = DEMO_BLOCK_SIZE, n: int = 2) -> str:
    """``n`` adjacent blocks at the centre of a tile, as a --blocks spec."""
    rows, cols = Tile(0, 0).block_grid(block_size)
    r, c = rows // 2, cols // 2
    return ",".join(f"r{r}c{c + k}" for k in range(n))


def stage_table(seed: int) -> Table:
    table = Table(title="Stages: land tiles per latitude zone (nested 1pct ⊂ 10pct ⊂ 100pct)")
    for col in ("zone", "1pct", "10pct", "100pct"):
        table.add_column(col, justify="left" if col == "zone" else "right")
    for r in summary(seed):
        table.add_row(r["zone"], str(r["1pct"]), str(r["10pct"]), str(r["100pct"]))
    return table


def search_table(url: str, blocks: list[Block], year: int) -> Table:

    client = open_client(url)
    table = Table(title=f"pystac-client search of {url}")
    for col in ("block", "zone", "S2 items", "S2 <= 30 % cloud", "S1 items", "DEM"):
        table.add_column(col)
    dt = f"{year}-01-01/{year}-12-31"
    for b in blocks:
        s2 = search_items(client, ["sentinel-2-l2a"], b.bbox, dt)
        clear = [i for i in s2 if i.properties.get("eo:cloud_cover", 100) <= 30]
        s1 = search_items(client, ["sentinel-1-rtc"], b.bbox, dt)
        dem = search_items(client, ["cop-dem-glo-30"], b.bbox, "1900-01-01/2100-01-01")
        table.add_row(b.id, stratum(b.tile).zone, str(len(s2)), str(len(clear)), str(len(s1)), str(len(dem)))
    return table


#: where the demo's Argo rendering puts the campaign (pods share nothing but object storage)
DEMO_BUCKET = "s3://worldcover-campaigns"


def cluster_plan(plan):
    """The demo plan as Argo runs it: outputs, simulated archive and model in object storage."""


    if storage.is_remote(plan.out_root):  # the demo ran on object storage: Argo uses the same locations
        packaged = not storage.is_remote(plan.model) and Path(plan.model).resolve() == DEFAULT_MODEL_DIR.resolve()
        return replace(plan, model="default" if packaged else plan.model).validate()

    prefix = f"{DEMO_BUCKET}/{plan.name}"
    local_model = Path(plan.model).resolve() if plan.model != "default" else DEFAULT_MODEL_DIR.resolve()
    model = "default" if local_model == DEFAULT_MODEL_DIR.resolve() else f"{prefix}/model"
    reference = plan.reference and (f"sim:{prefix}/archive" if plan.reference.startswith("sim:")
                                    else f"{prefix}/reference.csv")
    return replace(plan, out_root=f"{prefix}/campaign", model=model, reference=reference).validate()


def _simulate(blocks: list, year: int, seed: int, period: tuple[str, str] | None, archive) -> None:
    """Step 2: simulate the blocks' Sentinel archive at ``archive``.

    The simulator writes to local disk; on object storage the archive is simulated in scratch and published.
    """
    scratch = tempfile.TemporaryDirectory(prefix="worldcover-demo-") if storage.is_remote(archive) else None
    sim_dir = Path(scratch.name) / "archive" if scratch else archive
    options: dict[str, Any] = {"period": period} if period else {}  # no period: the simulator's own default
    generated = sim.generate(blocks, year, sim_dir, seed=seed, **options)
    if scratch:
        publish(sim_dir, str(archive))
        scratch.cleanup()
    w = generated["items_written"]
    console.print(f"   {w.get('sentinel-2-l2a', 0)} S2, {w.get('sentinel-1-rtc', 0)} S1 and "
                  f"{w.get('cop-dem-glo-30', 0)} DEM items, {generated['bytes'] / 1e6:.1f} MB -> {archive}",
                  highlight=False)


def _render_for_argo(plan, dest) -> None:
    """Step 5a: the demo's plan rendered for a cluster (Argo objects written to ``dest``)."""
    from worldcover.engines.argo.render import render, write  # lazy: pulls hera

    argo_plan = cluster_plan(plan)
    rendering = render(argo_plan)
    write(rendering.objects, dest)
    console.print(f"   {len(rendering.objects)} Argo objects (strictly valid, v4.1.2) -> {dest}; pods share "
                  f"only object storage: outputs under {argo_plan.out_root}, reference {argo_plan.reference}")


def _promotion_gate(root) -> dict:
    """Step 5b: the campaign's overall accuracy against the promotion bar ({} when it cannot be read)."""

    gate: dict = {}
    try:
        oa, ci = read_overall_accuracy(root)
        gate = {"overall_accuracy": oa, "ci95_halfwidth": ci, "threshold": DEFAULT_THRESHOLD,
                "promotable": oa >= DEFAULT_THRESHOLD}
        verdict = "[green]may be promoted[/green]" if gate["promotable"] else "[red]may not be promoted[/red]"
        console.print(f"   1pct OA {100 * oa:.1f} % ± {100 * ci:.1f} vs the {100 * DEFAULT_THRESHOLD:.0f} % bar: "
                      f"{verdict} (`worldcover campaign promote --from 1pct --to 10pct --source planetary-computer "
                      f"--out {root}`: the demo's STAC server stops with it)")
    except Exception as exc:  # the demo reports, it does not stop here
        console.print(f"   promotion gate: {exc}")
    return gate


def run(out, n_tiles: int = 3, n_blocks: int = 2, year: int = DEMO_YEAR, seed: int = DEMO_SEED,
        model: Path = DEMO_MODEL, fresh: bool = True, block_size: int = DEMO_BLOCK_SIZE,
        period: tuple[str, str] | None = None) -> dict:
    """The demo; ``block_size`` and ``period`` (simulate only acquisitions between two ISO dates) make it
    smaller, e.g. for a quick check (``--tiles 1 --blocks 1 --block-size 60 --period 2021-05-01,2021-06-30``)."""

    t0 = time.perf_counter()
    out = storage.path(out)
    if fresh and out.exists():
        storage.remove_tree(out)
    archive, root = out / "archive", out / "campaign"

    console.rule("1. Plan")
    console.print(stage_table(2021))
    tiles = pick_demo_tiles(n_tiles)
    spec = demo_blocks_spec(block_size, n_blocks)
    blocks = [b for t in tiles for b in parse_blocks(t, spec, block_size)]
    est = estimate(CampaignPlan.create("wc-1pct-2021", year, stage="1pct"))
    console.print(f"full 1pct stage: {est.tiles} tiles, {est.land_km2:,.0f} km² of land, "
                  f"~{est.core_hours:,.0f} core-hours. The demo runs {len(blocks)} blocks of "
                  f"{block_size} px from {len(tiles)} of its tiles: {', '.join(t.id for t in tiles)}")

    console.rule(f"2. Simulating {len(blocks)} blocks for {year}")
    _simulate(blocks, year, seed, period, archive)

    console.rule("3-4. STAC API on loopback, campaign on the local dask engine")
    with LocalStacApi(str(archive)) as api:
        console.print(search_table(api.url, blocks, year))
        plan = CampaignPlan.create(
            "wc-1pct-2021", year, stage="1pct", tiles=[t.id for t in tiles], model=str(model), source=api.url,
            out_root=str(root), block_size=block_size, blocks=spec, reference=f"sim:{archive}")
        outcome = run_campaign(plan, workers=1, threads=2, blocks_per_tile=n_blocks)
    summary_ = summarise(outcome)
    print_summary(summary_, console)

    console.rule("5. The same plan for Argo, and the promotion gate")
    _render_for_argo(plan, out / "argo")
    gate = _promotion_gate(root)

    elapsed = time.perf_counter() - t0
    merge = summary_.get("merge", {})
    validate = summary_.get("validate", {})
    mosaic_out = {k: str(root / v) for k, v in merge.get("outputs", {}).items()}
    result = {
        "tiles": [t.id for t in tiles], "blocks": [b.id for b in blocks], "elapsed_s": round(elapsed, 1),
        "failed_tiles": summary_["failed_tiles"], "map": mosaic_out.get("vrt"),
        "quicklook": mosaic_out.get("quicklook"), "report": validate.get("report"),
        "overall_accuracy": validate.get("overall_accuracy"), "gate": gate,
    }
    storage.atomic_write_text(out / "demo-summary.json", json.dumps(result, indent=1, default=str))
    console.rule("Done")
    console.print(f"   map (10 m VRT): {result['map']}")
    console.print(f"   quicklook:      {result['quicklook']}")
    console.print(f"   report:         {result['report']}")
    console.print(f"   in {elapsed:.0f} s")
    return result


def main(argv: list[str] | None = None) -> None:

    install_log_redaction()  # the demo's process logs like the CLI's: secrets redacted
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="demo-output", help="output folder or s3:// prefix (replaced)")
    parser.add_argument("--tiles", type=int, default=3, help="number of 1pct tiles")
    parser.add_argument("--blocks", type=int, default=2, help="blocks per tile")
    parser.add_argument("--model", default=str(DEMO_MODEL), help="model directory")
    parser.add_argument("--block-size", type=int, default=DEMO_BLOCK_SIZE, help="block size in pixels")
    parser.add_argument("--period", default=None,
                        help="simulate only acquisitions between two ISO dates, START,END (default: the whole year)")
    args = parser.parse_args(argv)
    period = tuple(args.period.split(",", 1)) if args.period else None
    if period is not None and len(period) != 2:
        parser.error("--period: expected START,END (ISO dates)")
    result = run(args.out, n_tiles=args.tiles, n_blocks=args.blocks, model=Path(args.model),
                 block_size=args.block_size, period=period)
    if result["failed_tiles"] or not result["report"]:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
