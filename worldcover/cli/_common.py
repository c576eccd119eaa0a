"""Small helpers shared by the CLI modules."""

from __future__ import annotations

import json
import os
import sys
from typing import Any

import click
import typer
import typer.exceptions
from rich.console import Console
from typer.core import TyperGroup

from worldcover.credentials import redact
from worldcover.errors import InputError, WorldCoverError

console = Console(stderr=True)

DEBUG_ENV = "WORLDCOVER_DEBUG"
SIGPIPE_EXIT = 141  # 128 + SIGPIPE: what the shell reports for a tool whose reader went away
# A bad option, argument or sub-command (typer >= 0.20 vendors click, whose exceptions derive from this).
_USAGE_ERRORS = tuple({getattr(typer.exceptions, "TyperException", click.ClickException), click.ClickException})


def _one_line(message: object) -> str:
    """A message as one line, with any secret value masked."""
    return redact(" ".join(str(message).split()))


class _FriendlyErrors(TyperGroup):
    """Our own exceptions and bad options: one line and exit code 2. Anything else: one line and exit code 1;
    a closed stdout (``| head``): no message, exit code 141.

    Set WORLDCOVER_DEBUG=1 to see the traceback of an unexpected error.
    """

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except WorldCoverError as exc:
            typer.echo(f"error: {_one_line(exc)}", err=True)
            raise typer.Exit(2) from None
        except (typer.Exit, typer.Abort, KeyboardInterrupt):
            raise
        except BrokenPipeError:  # the reader stopped early (``| head``): stop as a Unix tool does, quietly
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())  # so the exit's flush of stdout does not fail again
            raise typer.Exit(SIGPIPE_EXIT) from None
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


def echo_json(value: Any) -> None:
    """Print JSON on stdout (machine-readable; everything else goes to stderr)."""
    typer.echo(json.dumps(value, indent=2, default=str))


def parse_year(year: int) -> int:
    if not 2015 <= year <= 2100:
        raise InputError(f"invalid year {year}: Sentinel-2 data start in 2015 (expected 2015..2100)")
    return year
