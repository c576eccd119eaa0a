"""The step functions of a campaign: the only entry points both engines call.

The local engine calls them through dask; the Argo engine calls them from
hera runner scripts inside the worldcover image (through the typed adapters
in :mod:`worldcover.engines.argo.entry`). Arguments are plain JSON values so
that they travel as Argo parameters unchanged, and each returns a small
JSON-able dict (it becomes ``outputs.result``). Nothing here prints to
stdout: the runner's stdout is the step's result.
"""

from __future__ import annotations

import contextlib
import json

from worldcover import storage
from worldcover.campaign.plan import (
    CampaignPlan,
    check_blocks,
    check_model,
    check_name,
    check_source,
    check_uri,
    check_year,
)
from worldcover.errors import DataError, InputError
from worldcover.grid import Tile, parse_blocks
from worldcover.landmask import DEFAULT_MASK, parse_land_mask
from worldcover.layout import is_finished, tile_paths
from worldcover.storage import atomic_write_text

# tile, mosaic and validation are imported inside the steps that run them: engines.argo.render imports this
# module (through engines.argo.entry, for the steps' signatures), and rendering loads no rasterio, xarray or pandas


def _check_arguments(*, out_root: str, campaign: str = "", year: int | None = None, model: str | None = None,
                     source: str | None = None, blocks: str | None = None, reference: str | None = None) -> None:
    """The checks a plan's values pass, again: a runner's parameters can be edited on resubmission."""
    check_uri(out_root, "output root")
    if campaign:
        check_name(campaign)
    if year is not None:
        check_year(year)
    if model is not None:
        check_model(model)  # exists, with its card: the pod must be able to read it
    if source is not None:
        check_source(source)
    if blocks is not None:
        check_blocks(blocks)
    if reference:
        check_uri(reference.removeprefix("sim:") if isinstance(reference, str) else reference, "reference")


def write_plan(out_root: str, campaign: str, plan: str) -> dict:
    """The campaign's first step: record its plan as ``out_root/campaign.json``.

    ``plan`` is the whole plan as JSON text (:meth:`CampaignPlan.to_json`). The
    later steps read it from the output root (``collect_failures`` lists its
    tiles and writes ``failed_tiles.json`` beside it), so no step depends on
    a file only one engine writes. A root holding another campaign is
    refused; stages of one year may share a root (promotion reuses finished
    tiles), so a staged plan of the same year extends the recorded tile list,
    and a retry of a subset keeps the full list.
    """
    _check_arguments(out_root=out_root, campaign=campaign)
    try:
        new = CampaignPlan.from_dict(json.loads(plan))
    except (TypeError, ValueError) as exc:  # not JSON text (InputError is a ValueError: keep its message)
        raise InputError(f"invalid plan parameter: {exc}" if isinstance(exc, InputError) else
                         f"invalid plan parameter: expected the plan as JSON text ({type(exc).__name__})") from None
    if new.out_root != out_root or new.name != campaign or not new.tiles:
        raise InputError(f"invalid plan parameter: campaign {new.name!r} at {new.out_root!r} with "
                         f"{len(new.tiles)} tiles; expected campaign {campaign!r} at {out_root!r} with its tiles")
    path = storage.path(out_root) / "campaign.json"
    recorded, status = new, "written"
    if path.exists():
        existing = CampaignPlan.load(path)
        if existing.year != new.year or (existing.name != new.name and existing.stage is None):
            raise InputError(f"output root {out_root!r} holds campaign {existing.name!r} ({existing.year}); "
                             f"refusing to mix in {new.name!r} ({new.year})")
        recorded, status = existing, "kept"  # a retry of a subset keeps the full tile list
        if not set(new.tiles) <= set(existing.tiles):
            recorded, status = existing.with_tiles(sorted(set(existing.tiles) | set(new.tiles))), "extended"
    if status != "kept":
        recorded.save(path)
    return {"campaign": campaign, "plan": storage.uri(path), "tiles": len(recorded.tiles), "status": status}


def process_tile(tile: str, year: int, source: str, model: str, out_root: str,
                 block_size: int = 3000, blocks: str = "all", max_cloud: float | None = None,
                 campaign: str = "") -> dict:
    """Produce one tile's Map, Probability and InputQuality COGs and its STAC item (idempotent)."""
    from worldcover.tile.run import run_tile  # lazy: pulls rasterio, xarray, odc.stac

    _check_arguments(out_root=out_root, campaign=campaign, year=year, model=model, source=source, blocks=blocks)
    run = run_tile(tile, year, source, model, out_root, block_size=block_size, blocks=blocks,
                   max_cloud=max_cloud, on_block=_progress(tile, blocks, block_size))
    return {"tile": run.tile, "status": run.status, "pixels": run.pixels, "blocks_computed": run.blocks_computed,
            "blocks_reused": run.blocks_reused, "seconds": round(run.seconds, 2), "campaign": campaign}


def _progress(tile: str, blocks: str, block_size: int):
    """Blocks done / blocks written to ``$ARGO_PROGRESS_FILE`` (Argo shows it on the node), else None."""
    import os

    path = os.environ.get("ARGO_PROGRESS_FILE")
    if not path:
        return None
    total, done = len(parse_blocks(Tile.parse(tile), blocks, block_size)), [0]

    def on_block(block, how: str) -> None:
        done[0] += 1
        try:
            with open(path, "w") as f:  # the executor reads it every few seconds; a torn read is retried
                f.write(f"{done[0]}/{total}")
        except OSError:  # progress is best effort
            pass

    return on_block


def collect_failures(out_root: str, campaign: str, year: int) -> dict:
    """List the campaign's tiles (from ``out_root/campaign.json``) without a valid finished product.

    Also writes ``out_root/failed_tiles.json`` so a retry can start from it.
    """
    _check_arguments(out_root=out_root, campaign=campaign, year=year)
    root = storage.path(out_root)
    plan = CampaignPlan.load(root / "campaign.json")
    failed, errors = [], {}
    for t in plan.tiles:
        paths = tile_paths(root, t, year)
        if not is_finished(paths):
            failed.append(t)
            with contextlib.suppress(FileNotFoundError):  # killed before it could write why
                errors[t] = json.loads(paths.failure.read_text()).get("error", "")
    result = {"campaign": campaign or plan.name, "tiles": len(plan.tiles), "finished": len(plan.tiles) - len(failed),
              "failed": failed, "errors": errors}
    atomic_write_text(root / "failed_tiles.json", json.dumps(result, indent=1))
    return result


def merge(out_root: str, campaign: str, year: int) -> dict:
    """Merge finished tiles into the mosaic (VRT + overview pyramid + STAC collection + areas)."""
    from worldcover.mosaic.build import build_mosaic  # lazy: pulls rasterio

    _check_arguments(out_root=out_root, campaign=campaign, year=year)
    return {"campaign": campaign, **build_mosaic(out_root, year)}


def validate(out_root: str, campaign: str, year: int, reference: str = "", n: int = 0) -> dict:
    """Accuracy of the campaign's mosaic: the sampling design, then (with labels) the report.

    ``reference`` is a labelled CSV (the design with ``reference_class``
    filled), ``sim:ARCHIVE`` to label the design from a simulated archive's
    truth, or empty to stop after writing the design for labelling.
    """
    from worldcover.mosaic.build import MosaicPaths  # lazy: pulls rasterio
    from worldcover.validation import build_report  # lazy: pulls pandas, pyarrow
    from worldcover.validation.design import design_sample  # lazy: pulls pandas, pyarrow
    from worldcover.validation.tables import write_samples  # lazy: pulls pandas, pyarrow

    _check_arguments(out_root=out_root, campaign=campaign, year=year, reference=reference)
    root = storage.path(out_root)
    vdir = root / "validation"
    mosaic = MosaicPaths(root, year).vrt
    if not mosaic.exists():
        raise DataError(f"no mosaic at {mosaic}: run the merge step first")
    samples, stamp = vdir / "samples.csv", vdir / "design.json"
    # The design belongs to one build of the mosaic: a mosaic with new tiles needs a new design.
    mosaic_key = json.loads(MosaicPaths(root, year).manifest.read_text()).get("key", "")
    # Land only: a simulated world has its own coastline, so its ocean comes from the simulator.
    land_mask = parse_land_mask(f"sim:{reference[4:]}" if reference.startswith("sim:") else DEFAULT_MASK)
    assert land_mask is not None  # only the spec "none" gives no mask
    current = json.loads(stamp.read_text()) if stamp.exists() else {}
    if not samples.exists() or (current.get("mosaic_key"), current.get("land_mask")) != (mosaic_key, land_mask.name):
        design = design_sample(mosaic, n=n or None, seed=year, land_mask=land_mask)
        write_samples(design.samples, samples)
        atomic_write_text(stamp, json.dumps({"mosaic_key": mosaic_key, **design.summary()}, indent=1, default=str))
    if not reference:
        return {"campaign": campaign, "status": "awaiting-reference", "samples": str(samples)}
    if reference.startswith("sim:"):
        from worldcover.validation.simulated import label_from_truth  # lazy: pulls pandas, pyarrow

        labelled = label_from_truth(samples, reference[4:], vdir / "reference.csv")
    else:
        labelled = storage.path(reference)
    report = build_report(mosaic, labelled, vdir, title=f"WorldCover {year}: campaign {campaign}", land_mask=land_mask)
    oa = report.metrics["overall_accuracy"]
    return {"campaign": campaign, "status": "reported", "report": str(report.html),
            "metrics": str(report.metrics_json), "overall_accuracy": oa["estimate"],
            "ci95_halfwidth": oa["ci95_halfwidth"], "n": report.metrics["n"]}
