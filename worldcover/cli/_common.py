"""Small helpers shared by the CLI modules."""

from __future__ import annotations

import json
from typing import Any

import typer
from rich.console import Console

from worldcover.errors import InputError

console = Console(stderr=True)


def echo_json(value: Any) -> None:
    """Print JSON on stdout (machine-readable; everything else goes to stderr)."""
    typer.echo(json.dumps(value, indent=2, default=str))


def parse_year(year: int) -> int:
    if not 2015 <= year <= 2100:
        raise InputError(f"invalid year {year}: Sentinel-2 data start in 2015 (expected 2015..2100)")
    return year
