"""``worldcover campaign``: plan, run locally, promote; render/submit/status/retry for Argo."""

from __future__ import annotations

import os

import typer
from rich.table import Table
from typer.core import TyperGroup

from worldcover.cli._common import console, echo_json
from worldcover.grid import parse_bbox

#: the hidden name of `campaign status ROOT` (a campaign root): `_CampaignGroup` routes to it
ROOT_STATUS = "root-status"
# options of `campaign status` that take a value, so that the value is not taken for the positional argument
_VALUE_OPTIONS = {"--argo-server", "--namespace", "-n", "--token-file", "--interval"}


def _names_a_root(args: list[str]) -> bool:
    """Whether the positional argument of `campaign status` is a campaign root (a path or a URL: an Argo
    workflow name never holds '/') rather than a workflow name."""
    skip = False
    for arg in args:
        if skip:
            skip = False
        elif arg in _VALUE_OPTIONS:
            skip = True
        elif not arg.startswith("-"):
            return "/" in arg or os.path.isdir(arg)
    return False


class _CampaignGroup(TyperGroup):
    """`campaign status ROOT` reads a campaign root (local engine); `campaign status WORKFLOW` asks Argo."""

    def resolve_command(self, ctx, args):
        if args and args[0] == "status" and _names_a_root(args[1:]):
            _, command, rest = super().resolve_command(ctx, [ROOT_STATUS, *args[1:]])
            return "status", command, rest  # named as typed: usage and errors say `campaign status`
        return super().resolve_command(ctx, args)


app = typer.Typer(cls=_CampaignGroup, no_args_is_help=True)

StageOpt = typer.Option(None, "--stage", help="1pct, 10pct or 100pct.")
TilesOpt = typer.Option(None, "--tiles", help="Comma-separated tile ids instead of a stage.")
BboxOpt = typer.Option(None, "--bbox", help="W,S,E,N: land tiles in a box (or narrows --stage/--tiles).")
MODEL_HELP = "Model directory (model.txt + card.json), s3:// prefix, or 'default' (the packaged model)."


def build_plan(name: str, year: int, stage: str | None, tiles: str | None, bbox: str | None,
               model: str, source: str, out: str, block_size: int, blocks: str, batch_size: int,
               max_cloud: float | None, seed: int, reference: str = ""):
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
    stage: str | None = StageOpt, tiles: str | None = TilesOpt, bbox: str | None = BboxOpt,
    year: int = typer.Option(2021, "--year"),
    name: str = typer.Option("", "--name", help="Default: wc-<stage>-<year>."),
    model: str = typer.Option("default", "--model", help=MODEL_HELP),
    source: str = typer.Option("planetary-computer", "--source"),
    out: str = typer.Option("campaigns", "--out", "--out-root", help="Campaign output root."),
    block_size: int = typer.Option(3000, "--block-size"),
    blocks: str = typer.Option("all", "--blocks"), batch_size: int = typer.Option(50, "--batch-size"),
    max_cloud: float | None = typer.Option(None, "--max-cloud"), seed: int = typer.Option(2021, "--seed"),
    reference: str = ReferenceOpt,
    price: float = typer.Option(0.04, "--price-per-core-hour", help="USD per core-hour for the cost line."),
    save: str | None = typer.Option(None, "--save", help="Write the plan as JSON here (a path or s3:// URL)."),
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
    stage: str | None = StageOpt, tiles: str | None = TilesOpt, bbox: str | None = BboxOpt,
    year: int = typer.Option(2021, "--year"), name: str = typer.Option("", "--name"),
    model: str = typer.Option("default", "--model", help=MODEL_HELP),
    source: str = typer.Option("planetary-computer", "--source"),
    out: str = typer.Option("campaigns", "--out", "--out-root", help="Campaign output root."),
    block_size: int = typer.Option(3000, "--block-size"),
    blocks: str = typer.Option("all", "--blocks"), max_cloud: float | None = typer.Option(None, "--max-cloud"),
    seed: int = typer.Option(2021, "--seed"), reference: str = ReferenceOpt,
    engine: str = typer.Option("local", "--engine", help="local (dask). For Argo use `campaign submit`."),
    scheduler: str | None = typer.Option(None, "--scheduler", help="tcp://host:port of an existing dask cluster."),
    workers: int = typer.Option(1, "--workers"), threads: int = typer.Option(2, "--threads"),
    retries: int = typer.Option(2, "--retries"), no_finish: bool = typer.Option(False, "--tiles-only"),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Run a campaign on the local engine: tiles, then failures, merge and validation."""
    from worldcover.campaign.summary import print_summary, summarise
    from worldcover.engines.local import run_campaign
    from worldcover.errors import InputError

    if engine != "local":
        raise InputError(f"unknown engine {engine!r} for `run`: expected local (use `campaign submit` for Argo)")
    plan = build_plan(name or f"wc-{stage or 'custom'}-{year}", year, stage, tiles, bbox, model, source, out,
                      block_size, blocks, 50, max_cloud, seed, reference)
    outcome = run_campaign(plan, scheduler=scheduler, workers=workers, threads=threads, retries=retries,
                           progress=not as_json, console=console, finish=not no_finish)
    summary = summarise(outcome)
    if as_json:
        echo_json(summary)
    else:
        print_summary(summary, console)
    if outcome.failed_tiles:
        raise typer.Exit(1)




@app.command("promote")
def promote_cmd(
    from_stage: str = typer.Option(..., "--from", help="Stage that was validated (e.g. 1pct)."),
    to_stage: str = typer.Option(..., "--to", help="The next stage (e.g. 10pct); skipping one needs --force."),
    source: str = typer.Option(..., "--source", help="Catalogue preset or STAC API URL for the next stage "
                               "(given again: the validated stage's may be gone)."),
    out: str = typer.Option("campaigns", "--out", "--out-root", help="Output root of the validated stage."),
    threshold: float = typer.Option(0.75, "--threshold", help="Minimum overall accuracy (fraction)."),
    force: bool = typer.Option(False, "--force", help="Allow skipping a stage (1pct -> 100pct)."),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Promote a validated stage: refused unless its overall accuracy meets the bar.

    Writes the next stage's plan as OUT/campaign-<to>.json beside OUT/campaign-<from>.json, and makes it the
    current one (OUT/campaign.json)."""
    from worldcover.campaign.promote import promote, run_command, stage_plan_path

    p = promote(out, from_stage, to_stage, threshold, source=source, force=force)
    result = {"campaign": p.plan.name, "stage": p.plan.stage, "overall_accuracy": p.overall_accuracy,
              "tiles": len(p.plan.tiles), "reused_tiles": list(p.reused_tiles), "new_tiles": len(p.new_tiles),
              "plan": str(stage_plan_path(out, to_stage)), "previous_plan": str(stage_plan_path(out, from_stage)),
              "run": run_command(p.plan)}
    if as_json:
        echo_json(result)
        return
    console.print(f"[green]promoted[/green] {from_stage} -> {to_stage}: OA {100 * p.overall_accuracy:.1f} % >= "
                  f"{100 * threshold:.0f} %; {len(p.plan.tiles)} tiles, {len(p.reused_tiles)} already finished "
                  f"and reused, {len(p.new_tiles)} to run", highlight=False)
    console.print(f"plan: {result['plan']} (beside {result['previous_plan']}; campaign.json is now {to_stage})",
                  highlight=False, soft_wrap=True)
    console.print(f"run it: {result['run']}", highlight=False, soft_wrap=True)


@app.command(ROOT_STATUS, hidden=True)
def root_status_cmd(
    root: str = typer.Argument(..., help="Campaign output root (the --out of `campaign run`): a folder or s3:// URL."),
    watch: bool = typer.Option(False, "--watch", "-w", help="Live view, refreshed until every tile is done or "
                               "failed and nobody writes (Ctrl-C stops watching, not the campaign)."),
    interval: float = typer.Option(2.0, "--interval", min=0.2, help="Seconds between refreshes with --watch."),
    as_json: bool = typer.Option(False, "--json", help="Print the status as JSON."),
) -> None:
    """Progress of a campaign run by the local engine, read from its output root: tiles done / failed / running /
    pending, blocks, throughput and ETA (`campaign status ROOT`; a workflow name asks the Argo Server instead)."""
    import time

    from worldcover.campaign.status import StatusReader, render, summary_lines

    reader = StatusReader(root)
    status = reader.read()  # a root without a plan is refused here, before any live view
    if watch and not as_json:
        from rich.console import Console
        from rich.live import Live

        try:
            with Live(render(status), console=Console(), refresh_per_second=4) as live:
                while not status.finished:
                    time.sleep(interval)
                    status = reader.read()
                    live.update(render(status))
        except KeyboardInterrupt:
            pass
        return
    if as_json:
        echo_json(status.to_dict())
        return
    for line in summary_lines(status):
        typer.echo(line)


def _add_argo_commands() -> None:
    """render / submit / status / retry live in their own module; expose them here."""
    from worldcover.cli import campaign_argo

    app.registered_commands.extend(campaign_argo.app.registered_commands)
    for info in app.registered_commands:  # say in `campaign status --help` that a root works too
        if info.name == "status" and info.callback is not None:
            info.help = (info.help or info.callback.__doc__ or "").rstrip() + (
                "\n\nGiven a campaign root (a path or s3:// URL) instead of a workflow: the progress of a local-engine "
                "campaign read from the root (`campaign status ROOT [--watch] [--json]`).")


_add_argo_commands()
