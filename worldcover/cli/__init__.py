"""The ``worldcover`` command line: a thin layer that parses and prints.

Each sub-command group lives in its own module and calls library functions.
Those are imported inside each command's body, on purpose: ``worldcover --help``
and every command's parsing would otherwise load rasterio, dask, LightGBM and
hera first (seconds per call). Errors the user can fix
(:class:`~worldcover.errors.WorldCoverError`) become one line on stderr and
exit code 2, never a traceback.
"""

from __future__ import annotations

import sys

import typer

from worldcover.cli._common import _FriendlyErrors, _one_line
from worldcover.credentials import install as install_log_redaction
from worldcover.errors import WorldCoverError

# The command line owns its process's logging: no secret value reaches a log record, whoever logs it
# (requests_oauthlib logs the Sentinel Hub client secret at DEBUG). A library import changes nothing.
install_log_redaction()


def _flags_without_type() -> None:
    """Show boolean flags bare in ``--help`` (``--force``), not as ``--force <bool>``.

    typer >= 0.2x prints every option's type in its rich help, flags included, although a flag
    takes no value; a flag's type column is left empty here, for every command of the CLI.
    """
    from typer.core import TyperOption

    shown = TyperOption.display_type_rich
    if getattr(shown, "_worldcover_flags", False):
        return

    def display_type_rich(self, ctx):
        return None if self.is_flag and self.is_bool_flag else shown(self, ctx)

    display_type_rich._worldcover_flags = True  # type: ignore[attr-defined]
    TyperOption.display_type_rich = display_type_rich  # type: ignore[method-assign]


_flags_without_type()

app = typer.Typer(
    cls=_FriendlyErrors,
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    help="Global 10 m land cover in the way of ESA WorldCover.",
)


def _register() -> None:
    from worldcover.cli import campaign, grid, model, mosaic, sim, stac, stages, tile, validate

    app.add_typer(grid.app, name="grid", help="The WorldCover tile grid.")
    app.add_typer(stages.app, name="stages", help="Nested 1pct / 10pct / 100pct stages.")
    app.add_typer(sim.app, name="sim", help="The simulated Sentinel world.")
    app.add_typer(stac.app, name="stac", help="Serve a STAC archive on loopback.")
    app.add_typer(tile.app, name="tile", help="Process one tile into its products.")
    app.add_typer(campaign.app, name="campaign", help="Plan, run, submit and promote campaigns.")
    app.add_typer(model.app, name="model", help="Train and inspect LightGBM land-cover models.")
    app.add_typer(mosaic.app, name="mosaic", help="Merge finished tiles into the mosaic, pyramid and STAC collection.")
    app.add_typer(validate.app, name="validate", help="Sampling design, accuracy estimates and reports.")


_register()


def _print_version(value: bool) -> None:
    """``worldcover --version``: acts while parsing, so no sub-command is needed."""
    if value:
        from worldcover import __version__

        typer.echo(__version__)
        raise typer.Exit(0)


@app.callback()
def _root(
    version: bool = typer.Option(False, "--version", help="Print the version and exit.", is_eager=True,
                                 callback=_print_version, expose_value=False),
) -> None:
    pass


def main() -> None:
    try:
        app()
    except WorldCoverError as exc:  # raised outside a command (e.g. during parsing)
        print(f"error: {_one_line(exc)}", file=sys.stderr)
        sys.exit(2)
