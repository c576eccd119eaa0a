"""``worldcover campaign render|render-golden|submit|status|retry|cleanup``: the Argo engine's commands.

A typer sub-app (``app``) meant to be merged into ``worldcover campaign``.
It only parses and prints; the work is in :mod:`worldcover.engines.argo`.
Tokens come from ``$ARGO_TOKEN`` or ``--token-file`` and are never printed.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import typer

from worldcover.cli._common import echo_json

app = typer.Typer(no_args_is_help=True)

DEFAULT_OUT_ROOT = "s3://worldcover/campaigns"
SERVER_ENV = "ARGO_SERVER"
NAMESPACE_ENV = "ARGO_NAMESPACE"

_stage = typer.Option(None, "--stage", help="1pct, 10pct or 100pct.")
_year = typer.Option(2021, "--year", help="Year of the map.")
_tiles = typer.Option(None, "--tiles", help="Comma-separated tile ids (instead of --stage), e.g. N00E006,S03W063.")
_name = typer.Option(None, "--name", help="Campaign name (default wc-<stage>-<year>).")
_image = typer.Option(None, "--image", help="Container image (default ghcr.io/worldcover/worldcover:<version>).")
_batch = typer.Option(50, "--batch-size", help="Tiles per child workflow.")
_out_root = typer.Option(DEFAULT_OUT_ROOT, "--out-root", help="Where tiles and mosaics go (s3://bucket/prefix).")
_model = typer.Option("default", "--model", help="'default' (the model packaged in the image) or an s3:// URI.")
_source = typer.Option("planetary-computer", "--source", help="Catalogue preset or STAC API URL.")
_max_cloud = typer.Option(None, "--max-cloud", help="Skip scenes above this cloud cover (%).")
_reference = typer.Option("", "--reference", help="Labelled samples for the validate step (s3:// CSV, or "
                          "sim:s3://ARCHIVE for a simulated archive's truth); empty: stop at the sampling design.")
_server = typer.Option(None, "--argo-server", help=f"Argo Server URL (default ${SERVER_ENV}).")
_namespace = typer.Option(None, "--namespace", "-n", help=f"Namespace (default ${NAMESPACE_ENV} or 'argo').")
_token_file = typer.Option(None, "--token-file", help="File holding the Argo token (default $ARGO_TOKEN).")
_insecure = typer.Option(False, "--insecure-skip-verify", help="Do not verify the server's TLS certificate.")
_json = typer.Option(False, "--json", help="Print JSON.")


def _plan(stage, year, tiles, name, batch_size, out_root, model, source, max_cloud, reference=""):
    from worldcover.campaign.plan import CampaignPlan

    tile_list = [t.strip() for t in tiles.split(",") if t.strip()] if tiles else None
    name = name or f"wc-{stage or 'custom'}-{year}"  # as `worldcover campaign plan`
    opts = {"batch_size": batch_size, "reference": reference}
    if max_cloud is not None:
        opts["max_cloud"] = max_cloud
    return CampaignPlan.create(name, year, stage=stage, tiles=tile_list, model=model, source=source,
                               out_root=out_root, engine="argo", **opts)


_max_failed = typer.Option(None, "--max-failed-tiles", help="Failed tiles the final gate accepts (default: 0 for "
                           "1pct and tile lists, 1 % of the tiles for 10pct/100pct).")
_source_kind = typer.Option("planetary-computer", "--source-kind", help="The cluster's catalogue, whose Secret is "
                            "required: planetary-computer, sentinelhub or stac.")
_node_selector = typer.Option(None, "--node-selector", help="Node label KEY=VALUE for every pod (repeatable).")
_toleration = typer.Option(None, "--toleration", help="KEY=VALUE:Effect or KEY:Effect (repeatable).")
_priority = typer.Option("", "--priority-class", help="PriorityClass of the pods.")
_spot = typer.Option(False, "--spot", help="Tile pods tolerate the usual spot / preemptible taints.")
_tile_deadline = typer.Option(None, "--tile-deadline", help="How long one attempt of one tile may run, e.g. 8h or "
                              "1h30m (default: 3x the estimate of a whole land tile at make bench's throughput).")
_workflow_deadline = typer.Option(None, "--workflow-deadline", help="How long a campaign workflow may run, e.g. 10d "
                                  "(default: 3x its estimate, 2 to 60 days).")


def _config(image, max_failed=None, source_kind="planetary-computer", node_selector=None, toleration=None,
            priority_class="", spot=False, tile_deadline=None, workflow_deadline=None):
    """RenderConfig from the command's options (validated there: one line, exit 2, on a bad value)."""
    from worldcover.engines.argo.parts import RenderConfig, parse_duration
    from worldcover.errors import InputError

    pairs = []
    for item in node_selector or []:
        key, eq, value = item.partition("=")
        if not eq:
            raise InputError(f"invalid --node-selector {item!r}: expected KEY=VALUE")
        pairs.append((key, value))
    opts = {"source_kind": source_kind, "node_selector": tuple(pairs), "tolerations": tuple(toleration or []),
            "priority_class": priority_class, "spot": spot}
    if max_failed is not None:
        opts["max_failed_tiles"] = max_failed
    if tile_deadline is not None:
        opts["tile_deadline_s"] = parse_duration(tile_deadline, "--tile-deadline")
    if workflow_deadline is not None:
        opts["workflow_deadline_s"] = parse_duration(workflow_deadline, "--workflow-deadline")
    return RenderConfig(image=image, **opts) if image else RenderConfig(**opts)


def _service(server, namespace, token_file, insecure):
    from worldcover.engines.argo import submit as s
    from worldcover.errors import InputError

    server = server or os.environ.get(SERVER_ENV)
    if not server:
        raise InputError(f"no Argo Server: pass --argo-server URL or set ${SERVER_ENV}")
    namespace = namespace or os.environ.get(NAMESPACE_ENV) or "argo"
    token = s.read_token(token_file)
    return s.service(server, namespace, token, verify_ssl=not insecure), server, namespace


def _table(rows: list[dict], columns: list[str]) -> None:
    widths = {c: max(len(c), *(len(str(r.get(c, ""))) for r in rows)) for c in columns}
    typer.echo("  ".join(c.ljust(widths[c]) for c in columns))
    for r in rows:
        typer.echo("  ".join(str(r.get(c, "")).ljust(widths[c]) for c in columns))


@app.command("render")
def render_cmd(
    out: str = typer.Option(..., "--out", help="Folder (or s3:// prefix) to write the YAML into."),
    stage: str | None = _stage, year: int = _year, tiles: str | None = _tiles, name: str | None = _name,
    image: str | None = _image, batch_size: int = _batch, out_root: str = _out_root, model: str = _model,
    source: str = _source, max_cloud: float | None = _max_cloud, reference: str = _reference,
    schema: str = typer.Option("v4.1.2", "--schema", help="Argo schema to validate against (v4.1.2, v3.7.18)."),
    max_failed: int | None = _max_failed, source_kind: str = _source_kind,
    node_selector: list[str] | None = _node_selector, toleration: list[str] | None = _toleration,
    priority_class: str = _priority, spot: bool = _spot,
    tile_deadline: str | None = _tile_deadline, workflow_deadline: str | None = _workflow_deadline,
    as_json: bool = _json,
) -> None:
    """Render a campaign into Argo YAML (shared templates, then the workflow or parent workflow), validated."""
    from worldcover.engines.argo.render import render, write

    start = time.perf_counter()
    plan = _plan(stage, year, tiles, name, batch_size, out_root, model, source, max_cloud, reference)
    cfg = _config(image, max_failed, source_kind, node_selector, toleration, priority_class, spot,
                  tile_deadline, workflow_deadline)
    rendering = render(plan, cfg, version=schema)
    files = write(rendering.objects, out)
    seconds = time.perf_counter() - start
    largest = rendering.largest()
    summary = {
        "campaign": plan.name, "tiles": len(plan.tiles), "batches": len(plan.batches()), "objects": len(files),
        "out": str(out), "seconds": round(seconds, 2), "schema": schema,
        "largest": {"object": f"{largest.kind} {largest.name}", "bytes": largest.json_bytes,
                    "yaml_bytes": largest.yaml_bytes},
        "kinds": rendering.table(),
    }
    if as_json:
        echo_json(summary)
        return
    _table(rendering.table(), ["kind", "objects", "tasks_max", "nodes_min", "nodes_max", "largest_kb",
                               "largest_yaml_kb"])
    typer.echo(f"largest object: {largest.kind} {largest.name} {largest.json_bytes:,} bytes "
               f"(JSON; YAML {largest.yaml_bytes:,}); limit 262,144")
    typer.echo("nodes = 1 per DAG + per task 1 pod (+1 retry node, + up to `limit` retried pods); "
               "min: no retries, max: every retry used")
    if any(r["kind"] == "batch" for r in rendering.table()):
        typer.echo("batch = the child Workflows the parent creates at run time from worldcover-batch (sizes: their "
                   "manifests)")
    typer.echo(f"{len(files)} objects for {len(plan.tiles):,} tiles written to {out} in {seconds:.2f} s "
               f"(valid against Argo {schema}, strict)")


@app.command("render-golden")
def render_golden_cmd(
    out: Path | None = typer.Option(None, "--out", help="Folder to write (default: argo/ of the repository)."),
    check: bool = typer.Option(False, "--check", help="Only list the stale files; exit 1 if any."),
) -> None:
    """Regenerate the repository's argo/ folder (templates, install manifests, campaigns per stage) from dags/."""
    from worldcover.engines.argo import golden

    root = out or golden.REPO_FOLDER
    files = golden.render_tree()
    if check:
        diff = golden.stale(root, files)
        for path in diff:
            typer.echo(f"stale: {path}")
        raise typer.Exit(1 if diff else 0)
    changed = golden.write_tree(root, files)
    typer.echo(f"{root}: {len(files)} files, {len(changed)} changed")


@app.command("submit")
def submit_cmd(
    stage: str | None = _stage, year: int = _year, tiles: str | None = _tiles, name: str | None = _name,
    image: str | None = _image, batch_size: int = _batch, out_root: str = _out_root, model: str = _model,
    source: str = _source, max_cloud: float | None = _max_cloud, reference: str = _reference,
    server: str | None = _server, namespace: str | None = _namespace,
    token_file: Path | None = _token_file, insecure: bool = _insecure, as_json: bool = _json,
    max_failed: int | None = _max_failed, source_kind: str = _source_kind,
    node_selector: list[str] | None = _node_selector, toleration: list[str] | None = _toleration,
    priority_class: str = _priority, spot: bool = _spot,
    tile_deadline: str | None = _tile_deadline, workflow_deadline: str | None = _workflow_deadline,
) -> None:
    """Render, validate and submit a campaign to an Argo Server."""
    from worldcover.engines.argo import submit as s

    plan = _plan(stage, year, tiles, name, batch_size, out_root, model, source, max_cloud, reference)
    svc, server, namespace = _service(server, namespace, token_file, insecure)
    cfg = _config(image, max_failed, source_kind, node_selector, toleration, priority_class, spot,
                  tile_deadline, workflow_deadline)
    result = s.submit(plan, svc, namespace, cfg)
    if as_json:
        echo_json(result.to_dict())
        return
    typer.echo(f"submitted {result.workflow} ({result.tiles:,} tiles, {len(result.templates)} templates) "
               f"in namespace {namespace}")
    typer.echo(s.ui_link(server, namespace, result.workflow))


@app.command("status")
def status_cmd(
    workflow: str = typer.Argument(..., help="Name of the campaign workflow (single or parent)."),
    server: str | None = _server, namespace: str | None = _namespace,
    token_file: Path | None = _token_file, insecure: bool = _insecure, as_json: bool = _json,
    failed_only: bool = typer.Option(False, "--failed", help="List only failed tiles."),
) -> None:
    """Per-tile phases of a campaign workflow (and of its child workflows)."""
    from worldcover.engines.argo import submit as s

    svc, server, namespace = _service(server, namespace, token_file, insecure)
    st = s.campaign_status(workflow, svc, namespace)
    if as_json:
        echo_json(st.to_dict())
        return
    typer.echo(f"{st.name}: {st.phase} (campaign {st.campaign or '?'}, stage {st.stage or '?'}); tiles: "
               + (", ".join(f"{k} {v}" for k, v in st.counts().items()) or "none yet"))
    rows = [t.__dict__ for t in st.tiles if not failed_only or t.phase in s.FAILED_PHASES]
    if rows:
        _table(rows, ["tile", "phase", "attempts", "workflow"])
    for step in st.steps:
        typer.echo(f"step {step['step']}: {step['phase']}")


@app.command("retry")
def retry_cmd(
    workflow: str = typer.Argument(..., help="Name of the campaign workflow whose failed tiles to run again."),
    image: str | None = _image,
    server: str | None = _server, namespace: str | None = _namespace,
    token_file: Path | None = _token_file, insecure: bool = _insecure, as_json: bool = _json,
) -> None:
    """Submit a new workflow over the failed tiles of a campaign workflow."""
    from worldcover.engines.argo import submit as s

    svc, server, namespace = _service(server, namespace, token_file, insecure)
    result = s.retry(workflow, svc, namespace, _config(image))
    if as_json:
        echo_json(result.to_dict())
        return
    typer.echo(f"submitted {result.workflow}: {result.tiles:,} failed tiles of {workflow} again")
    typer.echo(s.ui_link(server, namespace, result.workflow))


@app.command("cleanup")
def cleanup_cmd(
    campaign: str = typer.Argument(..., help="Campaign name (label worldcover.io/campaign), e.g. wc-1pct-2021."),
    force: bool = typer.Option(False, "--force", help="Also delete workflows that are still running."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Only list what would be deleted."),
    server: str | None = _server, namespace: str | None = _namespace,
    token_file: Path | None = _token_file, insecure: bool = _insecure, as_json: bool = _json,
) -> None:
    """Delete a campaign's workflows (the shared templates and the outputs stay)."""
    from worldcover.engines.argo import submit as s

    svc, server, namespace = _service(server, namespace, token_file, insecure)
    result = s.cleanup(campaign, svc, namespace, force=force, dry_run=dry_run)
    if as_json:
        echo_json(result.to_dict())
        return
    verb = "would delete" if dry_run else "deleted"
    typer.echo(f"{campaign}: {verb} {len(result.workflows)} workflows in namespace {namespace}")


def main() -> None:
    """``python -m worldcover.cli.campaign_argo ...``: this sub-app alone, with the CLI's error handling."""
    import sys

    from worldcover.cli._common import _FriendlyErrors
    from worldcover.errors import WorldCoverError

    root = typer.Typer(cls=_FriendlyErrors, no_args_is_help=True, add_completion=False,
                       pretty_exceptions_enable=False)
    root.add_typer(app, name="campaign")
    try:
        root(args=["campaign", *sys.argv[1:]], prog_name="worldcover")
    except WorldCoverError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    main()
