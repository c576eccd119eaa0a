"""``worldcover stac``: serve a local STAC archive on loopback."""

from __future__ import annotations


import typer

from worldcover.cli._common import console
from worldcover.sources.local_api import LocalStacApi

app = typer.Typer(no_args_is_help=True)


@app.command("serve")
def serve(
    archive: str = typer.Argument(..., help="Archive written by `worldcover sim generate` (or its `sim publish` URL)."),
    host: str = typer.Option("127.0.0.1", "--host", help="Loopback address to bind."),
    port: int = typer.Option(7822, "--port", help="Port (0 picks a free one)."),
) -> None:
    """Run a STAC API (rustac serve) over ARCHIVE until interrupted."""
    api = LocalStacApi(archive, host=host, port=port or None).start()
    console.print(f"STAC API for {archive} at [bold]{api.url}[/bold] (Ctrl-C stops)")
    typer.echo(api.url)
    try:
        api.wait()
    except KeyboardInterrupt:
        pass
    finally:
        api.stop()
