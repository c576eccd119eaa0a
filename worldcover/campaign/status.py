"""Where a campaign stands, read from what the local engine leaves under its output root.

Nothing reports to us: the state is in the files every step writes anyway
(see :mod:`worldcover.layout`), so any machine that reads the root can
follow the campaign, while it runs or after it stopped:

* ``campaign.json``: the plan, hence the tiles and the blocks of each;
* a tile is **done** when its STAC item exists with its assets (sizes checked,
  not checksums: a status is asked for every few seconds);
* **failed** when ``tiles/<TILE>/FAILED.json`` exists (and it is not done);
* **running** when some of its block records ``tiles/<TILE>/blocks/rRRcCC.json``
  exist; **pending** otherwise;
* throughput from the ``written`` time inside the block records (the most
  recent ones: the current speed, not the average since a morning pause);
* whether a writer holds the root, from its lock (``.worldcover.lock``: the
  pid behind a live ``flock``, or an unexpired lock object on object storage).
"""

from __future__ import annotations

import contextlib
import json
import os
import time
from dataclasses import asdict, dataclass, field
from datetime import datetime

from worldcover import storage
from worldcover.campaign.plan import CampaignPlan
from worldcover.errors import InputError
from worldcover.grid import Tile, parse_blocks
from worldcover.layout import find_tile_paths, is_finished

PLAN_FILE = "campaign.json"
STATES = ("done", "failed", "running", "pending")
RATE_WINDOW = 100  # the throughput is measured over at most this many of the latest blocks


@dataclass
class TileState:
    """One tile: its state, blocks recorded of those planned, and the error of a failed tile."""

    tile: str
    state: str
    blocks_done: int
    blocks_total: int
    pixels_total: int
    error: str = ""


@dataclass
class CampaignStatus:
    """A campaign's progress: tiles by state, blocks, throughput and ETA."""

    root: str
    campaign: str
    stage: str | None
    year: int
    tiles: list[TileState]
    writer: str  # "" when no live writer holds the root
    blocks_per_hour: float | None  # None: fewer than two recent blocks to measure
    mpx_per_hour: float | None
    rate_blocks: int  # how many block records the rate was measured on
    last_block_age_s: float | None
    mosaic_tiles: int | None = None  # tiles in the last mosaic built (its manifest), None: no mosaic yet
    overall_accuracy: tuple[float, float] | None = None  # (estimate, 95 % CI half-width) of the last report
    checked_at: float = field(default_factory=time.time)

    def count(self, state: str) -> int:
        return sum(1 for t in self.tiles if t.state == state)

    @property
    def blocks_done(self) -> int:
        return sum(t.blocks_done for t in self.tiles)

    @property
    def blocks_total(self) -> int:
        return sum(t.blocks_total for t in self.tiles)

    @property
    def blocks_to_go(self) -> int:
        """Blocks still to compute in tiles that have not failed (a failed tile waits for a retry)."""
        return sum(t.blocks_total - t.blocks_done for t in self.tiles if t.state in ("running", "pending"))

    @property
    def eta_s(self) -> float | None:
        """Seconds until the blocks still to go are done at the current rate; None if it cannot be measured."""
        if not self.blocks_to_go:
            return 0.0
        if not self.blocks_per_hour:
            return None
        return 3600.0 * self.blocks_to_go / self.blocks_per_hour

    @property
    def finished(self) -> bool:
        """Every tile done or failed, and nobody writing."""
        return not self.writer and self.count("running") + self.count("pending") == 0

    def to_dict(self) -> dict:
        d = asdict(self)
        d["counts"] = {s: self.count(s) for s in STATES}
        d.update(blocks_done=self.blocks_done, blocks_total=self.blocks_total, blocks_to_go=self.blocks_to_go,
                 eta_s=self.eta_s, finished=self.finished)
        return d


def _parse_time(text) -> float | None:
    try:
        return datetime.fromisoformat(str(text)).timestamp()
    except ValueError:
        return None


class StatusReader:
    """Reads a campaign root's status; remembers block record times, which never change once written,
    so that ``--watch`` re-reads only the new records."""

    def __init__(self, root) -> None:
        text = str(root)
        if not text or any(ord(ch) < 32 for ch in text):
            raise InputError(f"invalid campaign root {text!r}: expected a folder or an s3:// URL")
        storage.check_location(text, "campaign root")
        self.root = storage.path(root)
        self._times: dict[str, float | None] = {}
        self._blocks: dict[str, tuple[list[str], int]] = {}

    def plan(self) -> CampaignPlan:
        path = self.root / PLAN_FILE
        if not path.exists():
            raise InputError(f"no {PLAN_FILE} under {str(self.root)!r}: expected a campaign output root "
                             "(the --out of `campaign run`)")
        return CampaignPlan.load(path)

    def _blocks_of(self, plan: CampaignPlan, tile: str) -> tuple[list[str], int]:
        """The planned blocks' keys of a tile, and their pixels."""
        if tile not in self._blocks:
            blocks = parse_blocks(Tile.parse(tile), plan.blocks, plan.block_size)
            self._blocks[tile] = ([b.key for b in blocks], sum(b.shape[0] * b.shape[1] for b in blocks))
        return self._blocks[tile]

    def _recorded(self, blocks_dir, keys: list[str]) -> list[float | None]:
        """The written times of the block records present (None for a record without a readable time)."""
        try:
            names = {p.name for p in blocks_dir.iterdir()}
        except (FileNotFoundError, NotADirectoryError):
            return []
        out = []
        for key in keys:
            if f"{key}.json" not in names:
                continue
            rec = blocks_dir / f"{key}.json"
            where = str(rec)
            if where not in self._times:
                try:
                    self._times[where] = _parse_time(json.loads(rec.read_text()).get("written"))
                except (OSError, ValueError):
                    continue  # being written or damaged: not counted this time
            out.append(self._times[where])
        return out

    def read(self) -> CampaignStatus:
        """The campaign's status now."""
        plan = self.plan()
        tiles: list[TileState] = []
        times: list[float] = []
        for t in plan.tiles:
            keys, pixels = self._blocks_of(plan, t)
            paths = find_tile_paths(self.root, t, plan.year)
            recorded = self._recorded(paths.blocks_dir, keys)
            times.extend(x for x in recorded if x is not None)
            if is_finished(paths, verify=False):
                tiles.append(TileState(t, "done", len(keys), len(keys), pixels))
                continue
            error = ""
            with contextlib.suppress(OSError, ValueError):  # no FAILED.json (or one being written)
                error = str(json.loads(paths.failure.read_text()).get("error", "")) or "failed"
            state = "failed" if error else ("running" if recorded else "pending")
            tiles.append(TileState(t, state, len(recorded), len(keys), pixels, error))
        now = time.time()
        recent = sorted(times)[-RATE_WINDOW:]
        rate = None
        if len(recent) >= 2 and recent[-1] > recent[0]:
            rate = 3600.0 * (len(recent) - 1) / (recent[-1] - recent[0])
        total_blocks = sum(t.blocks_total for t in tiles) or 1
        px_per_block = sum(t.pixels_total for t in tiles) / total_blocks
        return CampaignStatus(
            root=storage.uri(self.root), campaign=plan.name, stage=plan.stage, year=plan.year, tiles=tiles,
            writer=writer(self.root), blocks_per_hour=rate,
            mpx_per_hour=rate * px_per_block / 1e6 if rate else None, rate_blocks=len(recent),
            last_block_age_s=now - recent[-1] if recent else None, mosaic_tiles=self._mosaic_tiles(plan.year),
            overall_accuracy=self._accuracy(), checked_at=now)

    def _mosaic_tiles(self, year: int) -> int | None:
        """Tiles in the mosaic last built (its manifest is written last), None before the first merge."""
        try:
            return int(json.loads((self.root / "mosaic" / str(year) / "manifest.json").read_text())["summary"]["tiles"])
        except (OSError, ValueError, KeyError, TypeError):
            return None

    def _accuracy(self) -> tuple[float, float] | None:
        """Overall accuracy and its 95 % half-width from the last report's metrics, if there is one."""
        try:
            oa = json.loads((self.root / "validation" / "metrics.json").read_text())["overall_accuracy"]
            return float(oa["estimate"]), float(oa.get("ci95_halfwidth", float("nan")))
        except (OSError, ValueError, KeyError, TypeError):
            return None


def campaign_status(root) -> CampaignStatus:
    """The status of the campaign under ``root`` (a folder or an object-store prefix)."""
    return StatusReader(root).read()


def _flock_held(lock_file: str) -> bool | None:
    """Whether some process holds a flock on the file (Linux /proc/locks); None where that cannot be told."""
    try:
        ino = os.stat(lock_file).st_ino
        with open("/proc/locks") as f:
            lines = f.read().splitlines()
    except OSError:
        return None
    for line in lines:
        parts = line.split()
        if "->" in parts:  # a waiter, not a holder
            continue
        if len(parts) >= 6 and parts[1] == "FLOCK" and parts[5].rsplit(":", 1)[-1] == str(ino):
            return True
    return False


def writer(root) -> str:
    """Who holds the root's lock now ('pid 1234', 'host h pid 1234'), or '' if nobody does."""
    p = storage.path(root) / storage.LOCK_NAME
    if storage.is_remote(p):
        try:
            record = json.loads(p.read_text())
        except (OSError, ValueError):
            return ""
        if float(record.get("expires", 0)) < time.time():
            return ""
        return f"host {record.get('host', '?')} pid {record.get('pid', '?')}"
    try:
        pid = int(p.read_text().strip() or 0)
    except (OSError, ValueError):
        return ""
    held = _flock_held(str(p))
    if held is False:
        return ""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return ""
    except (PermissionError, OverflowError, ValueError):
        pass
    return f"pid {pid}" if pid > 0 else ""


# --- for people ------------------------------------------------------------------------------


def duration(seconds: float | None) -> str:
    """'1 h 07 min', '3 min 20 s', '12 s'; '?' when unknown."""
    if seconds is None:
        return "?"
    s = int(round(seconds))
    if s >= 86400:
        return f"{s // 86400} d {s % 86400 // 3600} h"
    if s >= 3600:
        return f"{s // 3600} h {s % 3600 // 60:02d} min"
    if s >= 60:
        return f"{s // 60} min {s % 60:02d} s"
    return f"{s} s"


def summary_lines(st: CampaignStatus) -> list[str]:
    """The status as a few plain lines (the one-shot output; no colour, no control codes)."""
    stage = f"stage {st.stage}, " if st.stage else ""
    if st.writer:
        through = st.count("running") + st.count("pending") == 0
        running = f"running ({st.writer}" + ("; tiles through: merging or validating)" if through else ")")
    else:
        running = "finished" if st.finished else "not running"
    pct = 100.0 * st.blocks_done / st.blocks_total if st.blocks_total else 0.0
    lines = [
        f"campaign {st.campaign} ({stage}{st.year}) at {st.root}: {running}",
        f"tiles: {st.count('done')} done, {st.count('failed')} failed, {st.count('running')} running, "
        f"{st.count('pending')} pending (of {len(st.tiles)})",
        f"blocks: {st.blocks_done} of {st.blocks_total} done ({pct:.0f} %)",
    ]
    if st.blocks_per_hour:
        lines.append(f"throughput: {st.blocks_per_hour:,.1f} blocks/h, {st.mpx_per_hour:,.1f} Mpx/h "
                     f"(last {st.rate_blocks} blocks); last block {duration(st.last_block_age_s)} ago")
    else:
        lines.append("throughput: not measured yet (fewer than two blocks written)")
    if st.blocks_to_go:
        stalled = " (nobody is writing: rerun the campaign to go on)" if not st.writer else ""
        blocks = f"{st.blocks_to_go} block" + ("" if st.blocks_to_go == 1 else "s")
        lines.append(f"ETA: {duration(st.eta_s)} for {blocks} to go{stalled}")
    if st.mosaic_tiles is not None:
        lines.append(f"mosaic: {st.mosaic_tiles} tiles (last merge)")
    if st.overall_accuracy is not None:
        oa, ci = st.overall_accuracy
        lines.append(f"validation: OA {100 * oa:.1f} % ± {100 * ci:.1f} (last report)")
    for t in st.tiles:
        if t.state == "failed":
            lines.append(f"failed {t.tile}: {t.error[:160]}")
    return lines


def render(st: CampaignStatus, max_rows: int = 20):
    """A rich view of the status (``campaign status --watch``): header, a progress bar, unfinished tiles."""
    from rich.console import Group, RenderableType
    from rich.progress_bar import ProgressBar
    from rich.table import Table
    from rich.text import Text

    head = summary_lines(st)
    colours = {"done": "green", "failed": "red", "running": "yellow", "pending": "dim"}
    counts = Text("tiles: ")
    for i, state in enumerate(STATES):
        counts.append(f"{st.count(state)} {state}", style=colours[state])
        counts.append(", " if i < len(STATES) - 1 else f" (of {len(st.tiles)})")
    bar = Table.grid(padding=(0, 1))
    bar.add_row(ProgressBar(total=max(st.blocks_total, 1), completed=st.blocks_done, width=40),
                Text(f"{st.blocks_done}/{st.blocks_total} blocks"))
    table = Table(title="tiles not done", title_justify="left", show_edge=False)
    for col in ("tile", "state", "blocks", "error"):
        table.add_column(col)
    rest = [t for t in st.tiles if t.state != "done"]
    order = {"running": 0, "failed": 1, "pending": 2}
    for t in sorted(rest, key=lambda t: (order[t.state], t.tile))[:max_rows]:
        table.add_row(t.tile, Text(t.state, style=colours[t.state]), f"{t.blocks_done}/{t.blocks_total}",
                      t.error[:70])
    parts: list[RenderableType] = [Text(head[0], style="bold"), counts, bar,
             *(Text(line) for line in head if line.startswith(("throughput", "ETA", "mosaic", "validation")))]
    if rest:
        parts.append(table)
        if len(rest) > max_rows:
            parts.append(Text(f"... and {len(rest) - max_rows} more"))
    return Group(*parts)
