"""``worldcover mosaic``: merge a campaign's finished tiles into the global mosaic."""

from __future__ import annotations

from typing import Optional

import typer

from worldcover.cli import _FriendlyErrors
from worldcover.cli._common import console, echo_json

# _FriendlyErrors here too, so the group gives one line and exit 2 on bad input even when used on its own.
app = typer.Typer(cls=_FriendlyErrors, no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False)


@app.callback()
def _group() -> None:
    """Merge finished tiles into the global mosaic (VRT, overview COGs, areas, quicklook, STAC)."""


@app.command("build")
def build(
    campaign: str = typer.Option(..., "--campaign", help="Campaign output root (holds campaign.json and tiles/): a folder or s3://bucket/prefix."),
    year: Optional[int] = typer.Option(None, "--year", help="Map year (default: the year in campaign.json)."),
    force: bool = typer.Option(False, "--force", help="Recompute every tile's cached pieces."),
    workers: int = typer.Option(1, "--workers", min=1, help="Processes computing tile pieces in parallel."),
    no_validate: bool = typer.Option(False, "--no-validate", help="Skip the offline STAC validation."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress lines on stderr."),
) -> None:
    """Build or update the mosaic: VRT, 100 m / 1 km / 10 km COGs, areas, quicklook, STAC.

    Only tiles that are new or changed since the last build are read again; with
    nothing changed, nothing is recomputed. Prints a JSON summary on stdout.
    """
    from worldcover import storage
    from worldcover.errors import InputError
    from worldcover.mosaic import build_mosaic

    storage.check_location(campaign, "campaign root")
    if not storage.path(campaign).is_dir():
        raise InputError(f"campaign root {str(campaign)!r} does not exist or is not a folder")
    log = None if quiet else (lambda msg: console.print(msg, highlight=False))
    with storage.lock(campaign):  # never beside a running campaign or another build on this root
        echo_json(build_mosaic(campaign, year, force=force, workers=workers, validate=not no_validate, log=log))
