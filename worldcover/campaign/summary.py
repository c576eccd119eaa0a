"""What a campaign run reports: its outcome as plain data, and that data printed for people.

Shared by ``worldcover campaign run`` and the demo, so neither imports the other.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from rich.console import Console
from rich.table import Table

from worldcover.mosaic.build import summary_table

if TYPE_CHECKING:  # the engine produces the outcome; this module only reads it
    from worldcover.engines.local import CampaignOutcome

def summarise(outcome: CampaignOutcome) -> dict:
    """A campaign run's outcome as plain JSON-able data: tiles, failed tiles, and each other step's result."""
    tiles = {s.tile: {"ok": s.ok, "status": s.result.get("status", "failed" if not s.ok else ""),
                      "seconds": round(s.seconds, 1), "attempts": s.attempts, "error": s.error}
             for s in outcome.tiles}
    rest = {s.call.name: ({"ok": s.ok, **s.result} if s.ok else {"ok": False, "error": s.error})
            for s in outcome.steps if s.call.name != "process_tile"}
    return {"campaign": outcome.plan.name, "out_root": outcome.plan.out_root, "tiles": tiles,
            "failed_tiles": outcome.failed_tiles, **rest}


def print_summary(summary: dict, console: Console) -> None:
    """The campaign's tiles as a table, then the merge and validate results, on ``console``."""
    table = Table(title=f"Campaign {summary['campaign']}")
    for col in ("tile", "status", "seconds", "attempts", "error"):
        table.add_column(col)
    for tile, t in sorted(summary["tiles"].items()):
        status = t["status"] if t["ok"] else "[red]failed[/red]"
        table.add_row(tile, status, f"{t['seconds']:.1f}", str(t["attempts"]), t["error"][:80])
    console.print(table)
    if summary["failed_tiles"]:
        console.print(f"[red]failed tiles[/red]: {', '.join(summary['failed_tiles'])} "
                      f"(re-run the same command to retry only those)")
    merge, validate = summary.get("merge"), summary.get("validate")
    if merge is not None:
        if merge.get("ok", True) and "year" in merge:
            console.print(summary_table(merge))
        else:
            console.print(f"[red]merge failed[/red]: {merge.get('error', '')}", highlight=False)
    if validate is not None:
        console.print(validation_line(validate), highlight=False, soft_wrap=True)


def validation_line(result: dict) -> str:
    """One line for the validate step's result: the OA with its interval and the report, or what went wrong."""
    if not result.get("ok", True):
        return f"[red]validate failed[/red]: {result.get('error', '')}"
    if result.get("status") == "reported":
        return (f"validate: OA {100 * result['overall_accuracy']:.1f} % ± {100 * result['ci95_halfwidth']:.1f} "
                f"(95 % CI, n = {result['n']}); report {result['report']}")
    if result.get("status") == "awaiting-reference":
        return f"validate: sampling design written for labelling: {result.get('samples', '')}"
    return f"validate: {result.get('status', '?')}"
