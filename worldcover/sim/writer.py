"""Write the simulated world as an archive of COGs and STAC items.

Layout under ``OUT`` (the loopback STAC server and the loaders rely on it)::

    OUT/stac/collections/<collection-id>.json   pystac Collections, extents cover all items
    OUT/stac/items/<collection-id>.json         one FeatureCollection per collection (merged by item id)
    OUT/data/<collection-id>/<item-id>/<asset>.tif
    OUT/truth/<TILE>/<TILE>_<blockkey>_truth.tif   uint8 WorldCover codes on the block GeoBox
    OUT/sim.json                                 manifest: seed, years, tiles/blocks, options, version

Every file is written under a temporary name and renamed when complete
(COGs through :func:`worldcover.cog.write_cog`, JSON through
:func:`worldcover.cog.atomic_write_text`), and an item enters the catalogue
only after all its assets are on disk, so an interrupted run never leaves a
file or an item that looks complete. Catalogue updates take a file lock, so
two processes can fill one archive. Re-running skips items that are already
catalogued with all their files (same seed, options and model version).
"""

from __future__ import annotations

import fcntl
import json
import os
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from datetime import UTC, datetime
from functools import partial
from pathlib import Path

import numpy as np

from worldcover import __version__
from worldcover.bands import S2_ASSET_KEYS, S2_BANDS, SCL
from worldcover.cog import write_cog
from worldcover.errors import InputError
from worldcover.grid import Block
from worldcover.legend import colormap
from worldcover.sim import stac
from worldcover.sim.dem import dem_geobox, dem_tile_name
from worldcover.sim.simulate import MODEL_VERSION, BlockWorld, SimOptions, check_year
from worldcover.storage import atomic_write_text

Progress = Callable[[str, int, int], None]  # (what, done, total) for the current block


def truth_path(out: Path, block: Block) -> Path:
    return Path(out) / "truth" / block.tile.id / f"{block.tile.id}_{block.key}_truth.tif"


def asset_path(out: Path, collection_id: str, item_id: str, asset: str) -> Path:
    return Path(out) / "data" / collection_id / item_id / f"{asset}.tif"


def items_path(out: Path, collection_id: str) -> Path:
    return Path(out) / "stac" / "items" / f"{collection_id}.json"


def collection_path(out: Path, collection_id: str) -> Path:
    return Path(out) / "stac" / "collections" / f"{collection_id}.json"


@contextmanager
def archive_lock(out: Path) -> Iterator[None]:
    """An exclusive lock on the archive's catalogue (STAC files and manifest)."""
    lock = Path(out) / "stac" / ".lock"
    lock.parent.mkdir(parents=True, exist_ok=True)
    with open(lock, "a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def read_items(out: Path, collection_id: str) -> dict[str, dict]:
    """Items of one collection already in the archive, by id."""
    path = items_path(out, collection_id)
    if not path.exists():
        return {}
    fc = json.loads(path.read_text())
    return {f["id"]: f for f in fc.get("features", [])}


def merge_items(out: Path, new: dict[str, list[dict]]) -> dict[str, int]:
    """Merge items into the per-collection FeatureCollections (by id) and refresh the collections."""
    counts = {}
    with archive_lock(out):
        for cid, items in new.items():
            existing = read_items(out, cid)
            if not items and not existing:
                continue
            for it in items:
                existing[it["id"]] = it
            features = sorted(existing.values(), key=lambda f: (f["properties"]["datetime"], f["id"]))
            atomic_write_text(items_path(out, cid), json.dumps({"type": "FeatureCollection", "features": features}))
            col = stac.collection(cid, features)
            atomic_write_text(collection_path(out, cid), json.dumps(col.to_dict(include_self_link=False), indent=1))
            counts[cid] = len(features)
    return counts


def _manifest_settings(seed: int, opts: SimOptions, layout: str) -> dict:
    # Options that select what to write (not what the world looks like) may differ between runs.
    keep = {k: v for k, v in opts.as_dict().items() if k not in ("keep_surface", "s2", "s1", "dem", "period")}
    return {"seed": seed, "layout": layout, "options": keep, "model_version": MODEL_VERSION}


def check_manifest(out: Path, seed: int, opts: SimOptions, layout: str) -> dict | None:
    """The existing manifest, after checking it describes the same world (else InputError)."""
    path = Path(out) / "sim.json"
    if not path.exists():
        return None
    man = json.loads(path.read_text())
    want = _manifest_settings(seed, opts, layout)
    have = {k: man.get(k) for k in want}
    if have != want:
        diff = ", ".join(f"{k}: archive {have[k]!r} vs requested {want[k]!r}" for k in want if have[k] != want[k])
        raise InputError(f"archive {str(out)!r} was generated with other settings ({diff}): use a new --out")
    return man


def update_manifest(out: Path, seed: int, opts: SimOptions, layout: str, year: int, blocks: Iterable[Block]) -> dict:
    path = Path(out) / "sim.json"
    with archive_lock(out):
        man = json.loads(path.read_text()) if path.exists() else {}
        man.update(_manifest_settings(seed, opts, layout))
        man["years"] = sorted(set(man.get("years", [])) | {int(year)})
        tiles = man.setdefault("tiles", {})
        for b in blocks:
            t = tiles.setdefault(b.tile.id, {"block_size": b.size, "blocks": []})
            if t["block_size"] != b.size:
                t.setdefault("other_block_sizes", {}).setdefault(str(b.size), [])
                lst = t["other_block_sizes"][str(b.size)]
            else:
                lst = t["blocks"]
            if b.key not in lst:
                lst.append(b.key)
                lst.sort()
        man["looks"] = opts.looks
        man["revisit_days"] = {"s2": opts.s2_revisit_days,
                               "s1": opts.s1_revisit_days or "6 (S1A+S1B/S1C) or 12 (S1A only)"}
        man["code_version"] = __version__
        man["layout_files"] = {
            "collections": "stac/collections/<collection-id>.json",
            "items": "stac/items/<collection-id>.json",
            "data": "data/<collection-id>/<item-id>/<asset>.tif",
            "truth": "truth/<TILE>/<TILE>_<blockkey>_truth.tif",
        }
        man["updated"] = datetime.now(UTC).isoformat(timespec="seconds")
        atomic_write_text(path, json.dumps(man, indent=1))
    return man


def _as_dict(out: Path, item) -> dict:
    """Item as a dict with its ``collection`` link (the STAC item schema requires one with ``collection``)."""
    d = item.to_dict(include_self_link=False)
    href = str(collection_path(out, d["collection"]).resolve())
    d["links"] = [link for link in d.get("links", []) if link.get("rel") != "collection"]
    d["links"].append({"rel": "collection", "href": href, "type": "application/json"})
    return d


def _complete(item: dict) -> bool:
    return all(Path(a["href"]).exists() for a in item.get("assets", {}).values())


class _AsyncWriter:
    """Writes COGs on a small thread pool while the next acquisition is rendered.

    GDAL compresses with the GIL released, so on two cores writing one scene
    overlaps with simulating the next. An item is only finished (added to the
    catalogue list) once all its files are on disk.
    """

    def __init__(self, workers: int = 2, max_pending: int = 2) -> None:
        self.pool = ThreadPoolExecutor(max_workers=workers)
        self.pending: list[tuple[Callable[[], None], list[Future]]] = []
        self.max_pending = max_pending
        self.nbytes = 0

    def write(self, path: Path, data: np.ndarray, geobox, **kw) -> Future:
        def job() -> int:
            write_cog(path, data, geobox, **kw)
            return path.stat().st_size

        return self.pool.submit(job)

    def item(self, futures: list[Future], finish: Callable[[], None]) -> None:
        self.pending.append((finish, futures))
        self.flush(self.max_pending - 1)

    def flush(self, keep: int = 0) -> None:
        while len(self.pending) > keep:
            finish, futures = self.pending.pop(0)
            self.nbytes += sum(f.result() for f in futures)
            finish()

    def close(self) -> None:
        try:
            self.flush()
        finally:
            self.pool.shutdown(wait=True, cancel_futures=True)


def write_block(world: BlockWorld, out: Path, layout: str = "planetary-computer",
                known: dict[str, dict[str, dict]] | None = None, progress: Progress | None = None) -> dict:
    """Write one block-year (truth, DEM, S2 and S1 chips) and return its new items and bytes written."""
    block, grid, seed, opts = world.block, world.grid, world.seed, world.options
    known = known or {c: {} for c in stac.COLLECTIONS}
    new: dict[str, list[dict]] = {c: [] for c in stac.COLLECTIONS}
    total = 2 + len(world.s2_acquisitions) + len(world.s1_acquisitions)
    done = 0

    def step(what: str) -> None:
        nonlocal done
        done += 1
        if progress:
            progress(what, done, total)

    writer = _AsyncWriter()
    try:
        # Truth on the block's own grid, with the WorldCover colours.
        tpath = truth_path(out, block)
        if not tpath.exists():
            tags = {"simulated": "worldcover.sim", "seed": seed, "block": block.id, "model_version": MODEL_VERSION}
            fut = writer.write(tpath, world.truth().values, block.geobox, nodata=0, colormap=colormap(),
                               overview_resampling="mode", tags=tags)
            writer.item([fut], lambda: None)
        step("truth")

        if opts.dem:
            name = dem_tile_name(block)
            iid = stac.dem_item_id(block, name)
            if not (iid in known[stac.DEM_COLLECTION] and _complete(known[stac.DEM_COLLECTION][iid])):
                gb = dem_geobox(block)
                path = asset_path(out, stac.DEM_COLLECTION, iid, "data")
                fut = writer.write(path, world.dem().values, gb, nodata=None, overview_resampling="average")
                item = _as_dict(out, stac.dem_item(block, gb, name, path, seed))
                writer.item([fut], partial(new[stac.DEM_COLLECTION].append, item))
        step("dem")

        keys = S2_ASSET_KEYS[layout]
        for acq in world.s2_acquisitions:
            iid = stac.s2_item_id(block, acq, layout)
            if not (iid in known[stac.S2_COLLECTION] and _complete(known[stac.S2_COLLECTION][iid])):
                scene = world.s2(acq, keep_surface=False)
                hrefs, futures = {}, []
                for band in [*S2_BANDS, SCL]:
                    da = scene.scl if band == SCL else scene.bands[band]
                    path = asset_path(out, stac.S2_COLLECTION, iid, keys[band])
                    futures.append(writer.write(path, da.values, da.odc.geobox, nodata=0,
                                                overview_resampling="nearest" if band == SCL else "average"))
                    hrefs[band] = path
                item = _as_dict(out, stac.s2_item(block, grid, scene.acquisition, scene.stats, hrefs, layout, seed))
                writer.item(futures, partial(new[stac.S2_COLLECTION].append, item))
            step(f"S2 {acq.day}")

        for s1acq in world.s1_acquisitions:
            iid = stac.s1_item_id(block, s1acq)
            if not (iid in known[stac.S1_COLLECTION] and _complete(known[stac.S1_COLLECTION][iid])):
                s1scene = world.s1(s1acq, keep_clean=False)
                hrefs, futures = {}, []
                for pol in ("vv", "vh"):
                    da = s1scene[pol]
                    path = asset_path(out, stac.S1_COLLECTION, iid, pol)
                    futures.append(writer.write(path, da.values, da.odc.geobox, nodata=float("nan"),
                                                overview_resampling="average"))
                    hrefs[pol] = path
                item = _as_dict(out, stac.s1_item(block, grid, s1acq, opts.looks, hrefs, seed))
                writer.item(futures, partial(new[stac.S1_COLLECTION].append, item))
            step(f"S1 {s1acq.day}")
    finally:
        writer.close()
    return {"items": new, "bytes": writer.nbytes}


def generate(blocks: Iterable[Block], year: int, out_dir: str | os.PathLike, seed: int = 0,
             layout: str = "planetary-computer", progress: Progress | None = None,
             on_block: Callable[[Block, int, int], None] | None = None, **options) -> dict:
    """Simulate ``blocks`` for ``year`` and write them under ``out_dir`` (see the module docstring).

    Returns a summary: items written per collection, items in the archive per
    collection, bytes written, elapsed seconds, and the blocks done.
    ``progress(what, done, total)`` is called after each product of the
    current block, ``on_block(block, index, n_blocks)`` before each block.
    """
    t0 = time.perf_counter()
    blocks = list(blocks)
    if not blocks:
        raise InputError("no blocks to simulate: expected at least one block")
    for b in blocks:
        if not isinstance(b, Block):
            raise InputError(f"expected worldcover.grid.Block objects, got {type(b).__name__}")
    year = check_year(year)
    if layout not in stac.LAYOUTS:
        raise InputError(f"unknown layout {layout!r}: expected one of {', '.join(stac.LAYOUTS)}")
    opts = SimOptions.from_kwargs(**options)
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise InputError(f"output {str(out)!r} exists and is not a directory")
    out.mkdir(parents=True, exist_ok=True)
    check_manifest(out, int(seed), opts, layout)
    known = {c: read_items(out, c) for c in stac.COLLECTIONS}
    written = {c: 0 for c in stac.COLLECTIONS}
    nbytes = 0
    archive_counts: dict[str, int] = {}
    for i, block in enumerate(blocks):
        if on_block:
            on_block(block, i, len(blocks))
        world = BlockWorld(block, year, int(seed), opts)
        res = write_block(world, out, layout, known, progress)
        nbytes += res["bytes"]
        archive_counts = merge_items(out, res["items"])
        for c, items in res["items"].items():
            written[c] += len(items)
            known[c].update({it["id"]: it for it in items})
        update_manifest(out, int(seed), opts, layout, year, [block])
    # Collections exist even when a collection got no item yet (e.g. dem=False).
    for c in stac.COLLECTIONS:
        if not collection_path(out, c).exists() and items_path(out, c).exists():
            merge_items(out, {c: []})
    archive_counts = {c: len(read_items(out, c)) for c in stac.COLLECTIONS}
    return {
        "out": str(out),
        "year": year,
        "seed": int(seed),
        "layout": layout,
        "blocks": [b.id for b in blocks],
        "items_written": written,
        "items_in_archive": archive_counts,
        "bytes": int(nbytes),
        "elapsed_s": round(time.perf_counter() - t0, 3),
    }
