"""``worldcover campaign``: plan, run locally, promote; render/submit/status/retry for Argo."""

from __future__ import annotations

from typing import Optional

import typer
from rich.table import Table

from worldcover.cli._common import console, echo_json
from worldcover.grid import parse_bbox

app = typer.Typer(no_args_is_help=True)

StageOpt = typer.Option(None, "--stage", help="1pct, 10pct or 100pct.")
TilesOpt = typer.Option(None, "--tiles", help="Comma-separated tile ids instead of a stage.")
BboxOpt = typer.Option(None, "--bbox", help="W,S,E,N: land tiles in a box (or narrows --stage/--tiles).")
MODEL_HELP = "Model directory (model.txt + card.json), s3:// prefix, or 'default' (the packaged model)."


def build_plan(name: str, year: int, stage: Optional[str], tiles: Optional[str], bbox: Optional[str],
               model: str, source: str, out: str, block_size: int, blocks: str, batch_size: int,
               max_cloud: Optional[float], seed: int, reference: str = ""):
    from worldcover.campaign import CampaignPlan

    return CampaignPlan.create(  # for the local engine: local paths made absolute, the model checked
        name, year, stage=stage, tiles=[t for t in tiles.split(",") if t] if tiles else None,
        bbox=parse_bbox(bbox) if bbox else None, model=model, source=source, out_root=out,
        block_size=block_size, blocks=blocks, batch_size=batch_size, max_cloud=max_cloud, seed=seed,
        reference=reference, engine="local",
    )


ReferenceOpt = typer.Option("", "--reference", help="Labelled samples for the validate step (a CSV, or "
                           "sim:ARCHIVE for a simulated archive's truth); empty: stop at the sampling design.")


@app.command("plan")
def plan_cmd(
    stage: Optional[str] = StageOpt, tiles: Optional[str] = TilesOpt, bbox: Optional[str] = BboxOpt,
    year: int = typer.Option(2021, "--year"), name: str = typer.Option("", "--name", help="Default: wc-<stage>-<year>."),
    model: str = typer.Option("default", "--model", help=MODEL_HELP), source: str = typer.Option("planetary-computer", "--source"),
    out: str = typer.Option("campaigns", "--out", "--out-root", help="Campaign output root."), block_size: int = typer.Option(3000, "--block-size"),
    blocks: str = typer.Option("all", "--blocks"), batch_size: int = typer.Option(50, "--batch-size"),
    max_cloud: Optional[float] = typer.Option(None, "--max-cloud"), seed: int = typer.Option(2021, "--seed"),
    reference: str = ReferenceOpt,
    price: float = typer.Option(0.04, "--price-per-core-hour", help="USD per core-hour for the cost line."),
    save: Optional[str] = typer.Option(None, "--save", help="Write the plan as JSON here (a path or s3:// URL)."),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Resolve a campaign and estimate its size and cost before anything runs."""
    from worldcover.campaign.estimate import estimate

    plan = build_plan(name or f"wc-{stage or 'custom'}-{year}", year, stage, tiles, bbox, model, source, out,
                      block_size, blocks, batch_size, max_cloud, seed, reference)
    est = estimate(plan, price_per_core_hour=price)
    if save:
        plan.save(save)
    if as_json:
        echo_json({"plan": {k: v for k, v in plan.to_dict().items() if k != "tiles"} | {"n_tiles": len(plan.tiles)},
                   "batches": len(plan.batches()), "estimate": est.to_dict()})
        return
    table = Table(title=f"Campaign {plan.name}: {len(plan.tiles)} tiles, {len(plan.batches())} batches")
    table.add_column("quantity")
    table.add_column("estimate", justify="right")
    rows = [
        ("land area", f"{est.land_km2:,.0f} km²"), ("pixels to classify", f"{est.pixels / 1e9:,.1f} Gpx"),
        ("S2 scene reads", f"{est.s2_scenes:,}"), ("S1 scene reads", f"{est.s1_scenes:,}"),
        ("input volume", f"{est.input_gb:,.0f} GB"),
        ("throughput", f"{est.mpx_per_s_per_core:.4g} Mpx/s/core ({est.throughput_source})"),
        ("CPU", f"{est.core_hours:,.0f} core-hours"), ("outputs", f"{est.output_gb:,.1f} GB"),
        ("cost", f"${est.cost:,.2f} at ${est.price_per_core_hour}/core-hour"),
    ]
    for k, v in rows:
        table.add_row(k, v)
    console.print(table)


@app.command("run")
def run_cmd(
    stage: Optional[str] = StageOpt, tiles: Optional[str] = TilesOpt, bbox: Optional[str] = BboxOpt,
    year: int = typer.Option(2021, "--year"), name: str = typer.Option("", "--name"),
    model: str = typer.Option("default", "--model", help=MODEL_HELP), source: str = typer.Option("planetary-computer", "--source"),
    out: str = typer.Option("campaigns", "--out", "--out-root", help="Campaign output root."), block_size: int = typer.Option(3000, "--block-size"),
    blocks: str = typer.Option("all", "--blocks"), max_cloud: Optional[float] = typer.Option(None, "--max-cloud"),
    seed: int = typer.Option(2021, "--seed"), reference: str = ReferenceOpt,
    engine: str = typer.Option("local", "--engine", help="local (dask). For Argo use `campaign submit`."),
    scheduler: Optional[str] = typer.Option(None, "--scheduler", help="tcp://host:port of an existing dask cluster."),
    workers: int = typer.Option(1, "--workers"), threads: int = typer.Option(2, "--threads"),
    retries: int = typer.Option(2, "--retries"), no_finish: bool = typer.Option(False, "--tiles-only"),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Run a campaign on the local engine: tiles, then failures, merge and validation."""
    from worldcover.engines.local import run_campaign
    from worldcover.errors import InputError

    if engine != "local":
        raise InputError(f"unknown engine {engine!r} for `run`: expected local (use `campaign submit` for Argo)")
    plan = build_plan(name or f"wc-{stage or 'custom'}-{year}", year, stage, tiles, bbox, model, source, out,
                      block_size, blocks, 50, max_cloud, seed, reference)
    outcome = run_campaign(plan, scheduler=scheduler, workers=workers, threads=threads, retries=retries,
                           progress=not as_json, finish=not no_finish)
    summary = summarise(outcome)
    if as_json:
        echo_json(summary)
    else:
        print_summary(summary)
    if outcome.failed_tiles:
        raise typer.Exit(1)


def summarise(outcome) -> dict:
    tiles = {s.tile: {"ok": s.ok, "status": s.result.get("status", "failed" if not s.ok else ""),
                      "seconds": round(s.seconds, 1), "attempts": s.attempts, "error": s.error}
             for s in outcome.tiles}
    rest = {s.call.name: ({"ok": s.ok, **s.result} if s.ok else {"ok": False, "error": s.error})
            for s in outcome.steps if s.call.name != "process_tile"}
    return {"campaign": outcome.plan.name, "out_root": outcome.plan.out_root, "tiles": tiles,
            "failed_tiles": outcome.failed_tiles, **rest}


def print_summary(summary: dict) -> None:
    table = Table(title=f"Campaign {summary['campaign']}")
    for col in ("tile", "status", "seconds", "attempts", "error"):
        table.add_column(col)
    for tile, t in sorted(summary["tiles"].items()):
        status = t["status"] if t["ok"] else "[red]failed[/red]"
        table.add_row(tile, status, f"{t['seconds']:.1f}", str(t["attempts"]), t["error"][:80])
    console.print(table)
    if summary["failed_tiles"]:
        console.print(f"[red]failed tiles[/red]: {', '.join(summary['failed_tiles'])} "
                      f"(re-run the same command to retry only those)")
    for step in ("merge", "validate"):
        if step in summary:
            console.print(f"{step}: {summary[step]}")


@app.command("promote")
def promote_cmd(
    from_stage: str = typer.Option(..., "--from", help="Stage that was validated (e.g. 1pct)."),
    to_stage: str = typer.Option(..., "--to", help="Stage to promote to (e.g. 10pct)."),
    out: str = typer.Option("campaigns", "--out", "--out-root", help="Output root of the validated stage."),
    threshold: float = typer.Option(0.75, "--threshold", help="Minimum overall accuracy (fraction)."),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Promote a validated stage: refused unless its overall accuracy meets the bar."""
    from worldcover.campaign.promote import promote

    p = promote(out, from_stage, to_stage, threshold)
    result = {"campaign": p.plan.name, "stage": p.plan.stage, "overall_accuracy": p.overall_accuracy,
              "tiles": len(p.plan.tiles), "reused_tiles": list(p.reused_tiles), "new_tiles": len(p.new_tiles)}
    if as_json:
        echo_json(result)
        return
    console.print(f"[green]promoted[/green] {from_stage} -> {to_stage}: OA {100 * p.overall_accuracy:.1f} % >= "
                  f"{100 * threshold:.0f} %; {len(p.plan.tiles)} tiles, {len(p.reused_tiles)} already finished "
                  f"and reused, {len(p.new_tiles)} to run (`worldcover campaign run --stage {to_stage} --out {out}`)")


def _add_argo_commands() -> None:
    """render / submit / status / retry live in their own module; expose them here."""
    from worldcover.cli import campaign_argo

    app.registered_commands.extend(campaign_argo.app.registered_commands)


_add_argo_commands()
