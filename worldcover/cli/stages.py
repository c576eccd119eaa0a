"""``worldcover stages``: how the nested stages cover the latitude zones."""

from __future__ import annotations

import typer
from rich.table import Table

from worldcover.cli._common import echo_json
from worldcover.stages import DEFAULT_SEED, STAGES
from worldcover.stages import summary as stage_summary

app = typer.Typer(no_args_is_help=True)


@app.command("summary")
def summary(
    seed: int = typer.Option(DEFAULT_SEED, "--seed", help="Stage sampling seed."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON rows."),
) -> None:
    """Per-zone tile counts of each stage."""
    rows = stage_summary(seed)
    if as_json:
        echo_json(rows)
        return
    table = Table(title=f"WorldCover stages (seed {seed})")
    table.add_column("latitude zone")
    table.add_column("lat range")
    for name in STAGES:
        table.add_column(name, justify="right")
    for row in rows:
        table.add_row(row["zone"], row["lat_range"], *(str(row[n]) for n in STAGES))
    from rich.console import Console

    Console().print(table)
