"""The ``worldcover`` command line: a thin layer that parses and prints.

Each sub-command group lives in its own module and calls library functions.
Errors the user can fix (:class:`~worldcover.errors.WorldCoverError`) become
one line on stderr and exit code 2, never a traceback.
"""

from __future__ import annotations

import os
import sys

import click
import typer
import typer.exceptions
from typer.core import TyperGroup

from worldcover.credentials import install as install_log_redaction
from worldcover.credentials import redact
from worldcover.errors import WorldCoverError

# The command line owns its process's logging: no secret value reaches a log record, whoever logs it
# (requests_oauthlib logs the Sentinel Hub client secret at DEBUG). A library import changes nothing.
install_log_redaction()


DEBUG_ENV = "WORLDCOVER_DEBUG"
# A bad option, argument or sub-command (typer >= 0.20 vendors click, whose exceptions derive from this).
_USAGE_ERRORS = tuple({getattr(typer.exceptions, "TyperException", click.ClickException), click.ClickException})


def _one_line(message: object) -> str:
    """A message as one line, with any secret value masked."""
    return redact(" ".join(str(message).split()))


class _FriendlyErrors(TyperGroup):
    """Our own exceptions and bad options: one line and exit code 2. Anything else: one line and exit code 1.

    Set WORLDCOVER_DEBUG=1 to see the traceback of an unexpected error.
    """

    def invoke(self, ctx):  # type: ignore[override]
        try:
            return super().invoke(ctx)
        except WorldCoverError as exc:
            typer.echo(f"error: {_one_line(exc)}", err=True)
            raise typer.Exit(2) from None
        except (typer.Exit, typer.Abort, KeyboardInterrupt):
            raise
        except _USAGE_ERRORS as exc:  # a bad option, argument or sub-command is bad input too
            typer.echo(f"error: {_one_line(exc.format_message())} (see --help)", err=True)
            raise typer.Exit(2) from None
        except Exception as exc:
            if os.environ.get(DEBUG_ENV):
                raise
            first = redact(str(exc).strip().splitlines()[0]) if str(exc).strip() else ""
            typer.echo(f"error: unexpected {type(exc).__name__}: {first} (set {DEBUG_ENV}=1 for the traceback)",
                       err=True)
            raise typer.Exit(1) from None


def _flags_without_type() -> None:
    """Show boolean flags bare in ``--help`` (``--force``), not as ``--force <bool>``.

    typer >= 0.2x prints every option's type in its rich help, flags included, although a flag
    takes no value; a flag's type column is left empty here, for every command of the CLI.
    """
    from typer.core import TyperOption

    shown = TyperOption.display_type_rich
    if getattr(shown, "_worldcover_flags", False):
        return

    def display_type_rich(self, ctx):  # type: ignore[no-untyped-def]
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
