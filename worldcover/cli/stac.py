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


@app.command("import-worldcereal")
def import_worldcereal(
    src: str = typer.Argument(..., help="A WorldCereal extraction folder (S2_L2A_10m_*.nc, S2_L2A_20m_*.nc, S1_GRD-*_20m_*.nc)."),
    out: str = typer.Option(..., "--out", help="Archive folder to write (the `sim generate` layout)."),
    name: str = typer.Option(None, "--name", help="Patch name for the label raster (default: folder name without 'worldcereal-')."),
) -> None:
    """Convert a WorldCereal NetCDF extraction into a STAC archive of COGs (`stac serve` serves it)."""
    from worldcover.cli._common import echo_json
    from worldcover.sources.worldcereal import import_extraction

    record = import_extraction(src, out, name=name)
    console.print(f"imported {record['name']}: " + ", ".join(f"{n} {c} items" for c, n in record["collections"].items())
                  + f" into {out}")
    echo_json(record)
