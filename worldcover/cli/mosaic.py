"""``worldcover mosaic``: merge a campaign's finished tiles into the global mosaic."""

from __future__ import annotations

import typer

from worldcover.cli._common import _FriendlyErrors, console, echo_json

# _FriendlyErrors here too, so the group gives one line and exit 2 on bad input even when used on its own.
app = typer.Typer(cls=_FriendlyErrors, no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False)


@app.callback()
def _group() -> None:
    """Merge finished tiles into the global mosaic (VRT, overview COGs, areas, quicklook, STAC)."""


@app.command("build")
def build(
    campaign: str | None = typer.Option(
        None, "--campaign", help="Campaign output root (holds campaign.json and tiles/): a folder or s3://bucket/prefix."
    ),
    maps: str | None = typer.Option(None, "--maps", help="Instead of a campaign: a folder of tile *_Map.tif files "
                                       "(ESA's WorldCover tiles, or ours), mosaicked into --out."),
    out: str | None = typer.Option(
        None, "--out", help="With --maps: the output root (the mosaic goes to OUT/mosaic/YEAR)."
    ),
    year: int | None = typer.Option(
        None, "--year", help="Map year (default: the year in campaign.json, or of the maps)."
    ),
    force: bool = typer.Option(False, "--force", help="Recompute every tile's cached pieces."),
    workers: int = typer.Option(1, "--workers", min=1, help="Processes computing tile pieces in parallel."),
    no_validate: bool = typer.Option(False, "--no-validate", help="Skip the offline STAC validation."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress lines on stderr."),
    as_json: bool = typer.Option(False, "--json", help="Print the whole summary as JSON on stdout (for machines)."),
) -> None:
    """Build or update the mosaic: VRT, 100 m / 1 km / 10 km COGs, areas, quicklook, STAC.

    Only tiles that are new or changed since the last build are read again; with
    nothing changed, nothing is recomputed. Prints a short summary (--json: all of it, on stdout).
    """
    from worldcover import storage
    from worldcover.errors import InputError
    from worldcover.mosaic import build_mosaic

    if (campaign is None) == (maps is None):
        raise InputError("mosaic build: expected either --campaign ROOT or --maps FOLDER --out ROOT")
    if maps is not None and out is None:
        raise InputError("mosaic build --maps: expected --out ROOT for the mosaic")
    if campaign is not None and out is not None:
        raise InputError("mosaic build --campaign: the mosaic goes under the campaign root; --out is for --maps")
    root = campaign if campaign is not None else out
    assert root is not None  # exactly one of --campaign and --out, checked above
    storage.check_location(root, "campaign root" if campaign is not None else "output root")
    if campaign is not None and not storage.path(campaign).is_dir():
        raise InputError(f"campaign root {str(campaign)!r} does not exist or is not a folder")
    if maps is not None:
        storage.check_location(maps, "maps folder")
        storage.makedirs(storage.path(out))
    log = None if quiet else (lambda msg: console.print(msg, highlight=False))
    with storage.lock(root):  # never beside a running campaign or another build on this root
        summary = build_mosaic(root, year, maps=maps, force=force, workers=workers, validate=not no_validate,
                               log=log)
    if as_json:
        echo_json(summary)
    else:
        from worldcover.mosaic.build import summary_table

        console.print(summary_table(summary))


@app.command("serve")
def serve(
    root: str = typer.Argument(..., help="Campaign or output root holding mosaic/YEAR/ (a folder or s3://bucket/prefix)."),
    year: int | None = typer.Option(None, "--year", help="Mosaic year (default: campaign.json's, or the only one)."),
    host: str = typer.Option("127.0.0.1", "--host", help="Address to listen on (loopback by default)."),
    port: int = typer.Option(8000, "--port", min=0, max=65535, help="Port to listen on (0: any free port)."),
    verbose: bool = typer.Option(False, "--verbose", "-v", help="Log every request."),
) -> None:
    """Serve a web map of the mosaic: Map / Probability / InputQuality tiles, validation samples, tile outlines
    and click-to-query (titiler over the VRT and overviews; Leaflet vendored by `make web`)."""
    from worldcover.mosaic import serve as web

    web.vendored_leaflet()  # before anything else: the page cannot work without it
    site = web.load_site(root, year)
    sock = web.bind(host, port)
    bound = sock.getsockname()[1]
    shown = f"[{host}]" if ":" in host else host
    console.print(f"web map of {site.root} ({site.year}, {len(site.tiles)} tiles"
                  + (f", samples from {site.samples_file}" if site.samples_file else "")
                  + f") at http://{shown}:{bound}/ (Ctrl-C to stop)", highlight=False, soft_wrap=True)
    web.serve(site, sock, log_level="info" if verbose else "warning")
