"""A model on real pixels: the WorldCereal Flanders patch through the production chain.

Imports ``../shared/realdata/worldcereal-flanders-A`` (real S2 L2A + S1 of a
640 m patch of Flemish farmland, 2018, with parcel labels) into a cached
archive, serves it as a STAC API on loopback, runs ``worldcover tile run``'s
library call (:func:`worldcover.tile.run.run_tile`) on just the blocks of
N48E003 that hold the patch, samples the Map at every labelled 10 m pixel
(crop 1,401, grassland 835, built-up 107; LC 99 is unlabelled) and prints
OA, per-class recall/precision and the confusion matrix.

    python -m benchmarks.realdata_flanders [--model default|DIR] [--archive DIR] [--json OUT]

The import is cached (``benchmarks/.cache/realdata/flanders-A``), so a re-run
with another model costs only the tile run (about a minute on 2 cores).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from worldcover.chain import Source
from worldcover.errors import WorldCoverError
from worldcover.model import Model
from worldcover.sources.local_api import LocalStacApi
from worldcover.sources.worldcereal import import_extraction
from worldcover.storage import atomic_write_text
from worldcover.tile.run import run_tile
from worldcover.validation.points import blocks_for_points, blocks_spec, format_metrics, label_points, sample_map, score

REPO = Path(__file__).resolve().parents[1]
SOURCE = REPO.parent / "shared" / "realdata" / "worldcereal-flanders-A"
CACHE = REPO / "benchmarks" / ".cache" / "realdata" / "flanders-A"
YEAR = 2018
BLOCK_SIZE = 256  # the patch lies in two 256 px blocks: half the pixels of the one 512 px block


def evaluate(model: str = "default", archive: str | Path = CACHE, source_dir: str | Path = SOURCE,
             block_size: int = BLOCK_SIZE, out: str | Path | None = None,
             make_source: Callable[[str], Source | str] | None = None) -> dict:
    """Import (cached), run the tile chain on the patch's blocks, score the Map at the labels; a JSON-ready dict.

    ``make_source(url)`` may wrap the loopback API URL in a Source (default: the URL, as `tile run --source`).
    """
    t0 = time.perf_counter()
    record = import_extraction(source_dir, archive)
    t_import = time.perf_counter() - t0
    points = label_points(archive, year=YEAR)
    tile, blocks = blocks_for_points(points["lon"].to_numpy(), points["lat"].to_numpy(), block_size)
    with tempfile.TemporaryDirectory(prefix="wc-flanders-") as tmp:
        out_root = Path(out) if out is not None else Path(tmp)
        if out is not None and out_root.exists() and any(out_root.iterdir()):
            raise WorldCoverError(f"--out {str(out_root)!r} is not empty: expected a fresh folder (a finished "
                                  "tile there would be reused, whatever the model)")
        t1 = time.perf_counter()
        with LocalStacApi(archive) as api:
            source = make_source(api.url) if make_source else api.url
            run = run_tile(tile, YEAR, source, model, out_root, block_size=block_size, blocks=blocks_spec(blocks))
        t_run = time.perf_counter() - t1
        predicted = sample_map(run.outputs["map"], points["lon"].to_numpy(), points["lat"].to_numpy())
    metrics = score(points["class"].to_numpy(), predicted)
    card = Model.load(model).card
    return {
        "model": str(model), "model_card": {"name": card.name, "version": card.version, "created": card.created},
        "tile": tile.id, "year": YEAR, "block_size": block_size,
        "blocks": blocks_spec(blocks), "archive": str(archive), "source_commit": record["source_commit"],
        "labelled_pixels": int(len(points)), "metrics": metrics.to_dict(),
        "seconds": {"import": round(t_import, 1), "tile_run": round(t_run, 1),
                    "total": round(time.perf_counter() - t0, 1)},
        "_metrics": metrics,
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="default", help="'default' or a model folder")
    ap.add_argument("--archive", default=str(CACHE), help="where the imported archive is cached")
    ap.add_argument("--source", default=str(SOURCE), help="the WorldCereal extraction folder")
    ap.add_argument("--block-size", type=int, default=BLOCK_SIZE)
    ap.add_argument("--out", default=None, help="keep the tile outputs in this (fresh) folder")
    ap.add_argument("--json", default=None, help="also write the figures as JSON here")
    ap.add_argument("--record", action="store_true",
                    help="write the figures into the model's card (provenance.real_data) and re-save it")
    args = ap.parse_args(argv)
    try:
        result = evaluate(args.model, args.archive, args.source, args.block_size, args.out)
    except WorldCoverError as exc:
        print(f"error: {' '.join(str(exc).split())}", file=sys.stderr)
        return 2
    print(report(result))
    if args.record:
        record_in_card(args.model, result)
    if args.json:
        atomic_write_text(args.json, json.dumps({k: v for k, v in result.items() if not k.startswith("_")}, indent=1))
    return 0


def record_in_card(model: str, result: dict) -> None:
    """Add the evaluation to the model card's provenance (``real_data.flanders``) and re-save the model.

    The patch only *evaluates* the model: no real pixel is in its training set.
    """
    from worldcover.model.location import resolve_model

    directory = resolve_model(model)
    m = Model.load(directory)
    metrics = result["metrics"]
    entry = {"dataset": "WorldCereal worldcereal-flanders-A (2018, 640 m, LPIS parcel labels)",
             "source_commit": result["source_commit"],
             "chain": "tile run on the imported archive (STAC API on loopback)",
             "labelled_pixels": result["labelled_pixels"], "overall_accuracy": metrics["overall_accuracy"],
             "kappa": metrics["kappa"],
             "recall": {c: r["recall"] for c, r in metrics["per_class"].items() if r.get("support")},
             "confusion_matrix": metrics.get("confusion_matrix"), "used_for_training": False}
    prov = dict(m.card.provenance)
    prov["real_data"] = {**prov.get("real_data", {}), "flanders": entry}
    sealed = m.with_card(m.card.replace(provenance=prov))
    # model.txt is unchanged: only the (re-sealed) card is rewritten, beside whatever else the folder holds
    atomic_write_text(Path(directory) / "card.json", sealed.card.to_json())
    Model.load(directory)  # the new card verifies against the model text
    print(f"recorded in {directory}/card.json (provenance.real_data.flanders)")


def report(result: dict) -> str:
    """The compact text printed by ``main``."""
    s = result["seconds"]
    head = (f"Flanders patch ({result['tile']} {result['blocks']} @ {result['block_size']} px, {result['year']}), "
            f"model {result['model']} ({result['model_card']['name']} {result['model_card']['version'][:12]}): "
            f"tile run {s['tile_run']} s, import {s['import']} s")
    return head + "\n" + format_metrics(result["_metrics"])


if __name__ == "__main__":
    sys.exit(main())
