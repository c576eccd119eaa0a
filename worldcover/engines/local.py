"""The local engine: a campaign's step calls on a dask cluster (LocalCluster by default).

Tiles run as independent dask tasks, each retried with exponential backoff;
one bad tile never stops the others. Merge and validation run once the tiles
are through. A lock on the output root keeps two runs from writing the same
campaign at once. Progress (tiles, and blocks per running tile) is read from
the block records the tiles write, so workers need no channel back to us.
"""

from __future__ import annotations

import json
import time
import traceback
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from worldcover import storage

if TYPE_CHECKING:
    from rich.console import Console
    from rich.progress import TaskID
from worldcover.campaign.calls import StepCall, phases, step_calls
from worldcover.campaign.plan import CampaignPlan
from worldcover.credentials import install as install_log_redaction
from worldcover.credentials import redact
from worldcover.errors import WorldCoverError
from worldcover.storage import remove_temps


@dataclass
class StepOutcome:
    """What one step call gave: its result, or the error after all retries."""

    call: StepCall
    ok: bool
    result: dict = field(default_factory=dict)
    error: str = ""
    attempts: int = 1
    seconds: float = 0.0

    @property
    def tile(self) -> str | None:
        return self.call.arguments.get("tile")


@dataclass
class CampaignOutcome:
    plan: CampaignPlan
    steps: list[StepOutcome]

    @property
    def tiles(self) -> list[StepOutcome]:
        return [s for s in self.steps if s.call.name == "process_tile"]

    @property
    def failed_tiles(self) -> list[str]:
        return sorted(s.tile or "" for s in self.tiles if not s.ok)

    def step(self, name: str) -> StepOutcome | None:
        return next((s for s in self.steps if s.call.name == name), None)


def run_step(call_json: str, retries: int = 2, backoff_s: float = 1.0) -> dict:
    """Execute one call with retries and exponential backoff; never raises (runs on a worker).

    Errors we raise on purpose (bad input, unusable data) are not retried:
    trying again cannot fix them.
    """
    install_log_redaction()  # a dask worker's process: its third-party log records are redacted too
    spec = json.loads(call_json)
    call = StepCall(spec["function"], tuple(sorted(spec["kwargs"].items())))
    t0 = time.perf_counter()
    attempt = 0
    while True:
        attempt += 1
        try:
            result = call()
            return {"ok": True, "result": result, "attempts": attempt, "seconds": time.perf_counter() - t0}
        except WorldCoverError as exc:
            return {"ok": False, "error": redact(f"{type(exc).__name__}: {exc}"), "attempts": attempt,
                    "seconds": time.perf_counter() - t0}
        except Exception as exc:  # an unexpected failure may be transient: retry
            if attempt > retries:
                last = redact(traceback.format_exception_only(type(exc), exc)[-1].strip())
                return {"ok": False, "error": last, "attempts": attempt, "seconds": time.perf_counter() - t0}
            time.sleep(backoff_s * 2 ** (attempt - 1))


def _blocks_done(out_root: str, tile: str) -> int:
    d = storage.path(out_root) / "tiles" / tile / "blocks"
    try:
        return sum(1 for p in d.iterdir() if p.name.endswith(".json"))
    except (FileNotFoundError, NotADirectoryError):
        return 0


def _client(scheduler: str | None, workers: int, threads: int):
    from dask.distributed import Client, LocalCluster

    if scheduler:
        return Client(scheduler), None
    cluster = LocalCluster(n_workers=workers, threads_per_worker=threads, processes=True,
                           dashboard_address=None, silence_logs=40)
    return Client(cluster), cluster


def run_campaign(plan: CampaignPlan, *, scheduler: str | None = None, workers: int = 1, threads: int = 1,
                 retries: int = 2, backoff_s: float = 1.0, progress: bool = True, console: Console | None = None,
                 blocks_per_tile: int | None = None, finish: bool = True) -> CampaignOutcome:
    """Run every tile of ``plan``, then (``finish``) collect failures, merge and validate.

    ``progress``: show rich progress bars on ``console`` (the caller's, e.g. the CLI's, so its messages
    and the bars share one live display; default a new console on stderr).
    """
    from dask.distributed import as_completed

    setup, tile_calls, after = phases(step_calls(plan))
    outcomes: list[StepOutcome] = []
    with storage.lock(plan.out_root):
        for call in setup:  # write_plan, here under the lock: a refusal stops the run before any tile
            outcomes.append(StepOutcome(call, True, call()))
        remove_temps(plan.out_root, recursive=True)  # under the lock, any temporary file is a dead run's
        client, cluster = _client(scheduler, workers, threads)
        try:
            futures = {client.submit(run_step, c.to_json(), retries, backoff_s, pure=False,
                                     key=f"tile-{c.arguments['tile']}"): c
                       for c in tile_calls}
            with _Progress(progress, plan, blocks_per_tile, console) as bar:
                pending = set(c.arguments["tile"] for c in tile_calls)
                for fut in as_completed(futures, with_results=False, timeout=None):
                    call = futures[fut]
                    outcomes.append(_outcome(call, fut.result()))
                    pending.discard(call.arguments["tile"])
                    bar.tile_done(call.arguments["tile"], outcomes[-1].ok, pending)
                if finish:
                    for call in after:
                        bar.step(call.name)
                        out = client.submit(run_step, call.to_json(), retries, backoff_s, pure=False).result()
                        outcomes.append(_outcome(call, out))
        finally:
            client.close()
            if cluster is not None:
                cluster.close()
    return CampaignOutcome(plan, outcomes)


def _outcome(call: StepCall, raw: dict) -> StepOutcome:
    return StepOutcome(call=call, ok=raw["ok"], result=raw.get("result") or {}, error=raw.get("error", ""),
                       attempts=raw.get("attempts", 1), seconds=raw.get("seconds", 0.0))


class _Progress:
    """Rich progress bars: one for the campaign's tiles, one per running tile's blocks."""

    def __init__(self, enabled: bool, plan: CampaignPlan, blocks_per_tile: int | None,
                 console: Console | None = None) -> None:
        self.enabled, self.plan, self.blocks_per_tile = enabled, plan, blocks_per_tile
        self.console = console
        self._stop = False

    def __enter__(self) -> _Progress:
        if not self.enabled:
            return self
        import threading

        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        self.progress = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                                 TimeElapsedColumn(), console=self.console or Console(stderr=True), transient=False)
        self.progress.start()
        self.main = self.progress.add_task(f"campaign {self.plan.name}: tiles", total=len(self.plan.tiles))
        self.block_tasks: dict[str, TaskID] = {}
        self._thread = threading.Thread(target=self._poll, daemon=True)
        self._thread.start()
        return self

    def _poll(self) -> None:
        while not self._stop:
            for tile in self.plan.tiles:
                n = _blocks_done(self.plan.out_root, tile)
                if n and tile not in self.block_tasks and len(self.block_tasks) < 32:
                    self.block_tasks[tile] = self.progress.add_task(f"  {tile} blocks", total=self.blocks_per_tile)
                if tile in self.block_tasks:
                    self.progress.update(self.block_tasks[tile], completed=n)
            time.sleep(0.5)

    def tile_done(self, tile: str, ok: bool, pending: set[str]) -> None:
        if self.enabled:
            self.progress.advance(self.main)
            if tile in self.block_tasks:
                status = "[green]done[/green]" if ok else "[red]failed[/red]"
                self.progress.update(self.block_tasks[tile], description=f"  {tile} {status}")

    def step(self, name: str) -> None:
        if self.enabled:
            self.progress.console.print(f"[bold]{name}[/bold] ...")

    def __exit__(self, *exc) -> None:
        self._stop = True
        if self.enabled:
            self.progress.stop()
