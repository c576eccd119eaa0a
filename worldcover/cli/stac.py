"""``worldcover stac``: serve a local STAC archive on loopback."""

from __future__ import annotations

import signal

import typer

from worldcover.cli._common import console
from worldcover.errors import InputError
from worldcover.sources.local_api import LocalStacApi

app = typer.Typer(no_args_is_help=True)


@app.command("serve")
def serve(
    archive: str = typer.Argument(..., help="Archive written by `worldcover sim generate` (or its `sim publish` URL)."),
    host: str = typer.Option("127.0.0.1", "--host", help="Loopback address to bind."),
    port: int = typer.Option(7822, "--port", help="Port (0 picks a free one)."),
) -> None:
    """Run a STAC API (rustac serve) over ARCHIVE until interrupted (Ctrl-C, SIGTERM or SIGHUP).

    A port already in use is refused (exit 2)."""
    from worldcover.errors import DataError

    if not 0 <= port <= 65535:
        raise InputError(f"invalid --port {port}: expected 0..65535 (0 picks a free one)")
    previous = _stop_on_signals()
    api = LocalStacApi(archive, host=host, port=port or None)
    try:
        api.start()
        console.print(f"STAC API for {archive} at [bold]{api.url}[/bold] (Ctrl-C stops)")
        typer.echo(api.url)
        code = api.wait()
        if code > 0:  # rustac failed on its own (not stopped by a signal, as Ctrl-C to the group does)
            raise DataError(f"rustac serve stopped with exit code {code}")
    except KeyboardInterrupt:
        pass
    finally:
        api.stop()  # on every way out, so no rustac is left serving
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _stop_on_signals() -> dict:
    """SIGTERM and SIGHUP stop the server as Ctrl-C does; by default they would end Python at once,
    skipping the ``finally`` that stops the rustac child. Returns the previous handlers."""

    def interrupt(signum, frame):  # noqa: ARG001 - the signal handler's signature
        raise KeyboardInterrupt

    return {sig: signal.signal(sig, interrupt) for sig in (signal.SIGTERM, signal.SIGHUP)}


@app.command("import-worldcereal")
def import_worldcereal(
    src: str = typer.Argument(
        ..., help="A WorldCereal extraction folder (S2_L2A_10m_*.nc, S2_L2A_20m_*.nc, S1_GRD-*_20m_*.nc)."
    ),
    out: str = typer.Option(..., "--out", help="Archive folder to write (the `sim generate` layout)."),
    name: str = typer.Option(
        None, "--name", help="Patch name for the label raster (default: folder name without 'worldcereal-')."
    ),
) -> None:
    """Convert a WorldCereal NetCDF extraction into a STAC archive of COGs (`stac serve` serves it)."""
    from worldcover.cli._common import echo_json
    from worldcover.sources.worldcereal import import_extraction

    record = import_extraction(src, out, name=name)
    console.print(f"imported {record['name']}: " + ", ".join(f"{n} {c} items" for c, n in record["collections"].items())
                  + f" into {out}")
    echo_json(record)
