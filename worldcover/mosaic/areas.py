"""Mapped area of every class, in km², per stage and per continent, from geodesic pixel areas.

A 10 m pixel of EPSG:4326 is a lat/lon cell, not a square: its area falls
with the cosine of latitude (a pixel at 60° is half the one at the equator),
so areas are never pixel counts times a constant. The area of each row of
pixels comes from :func:`worldcover.area.row_areas_m2` (closed form
on the WGS84 ellipsoid through the authalic latitude; radius R_q = 6371007.2 m),
and a tile's class areas are ``row_areas x per-row class counts`` summed over rows, the counts
taken with ``np.bincount`` while the tile is streamed for its overview pieces
(:mod:`worldcover.mosaic.pieces`). Each tile's areas are cached with its pieces,
so tables are sums over cached tiles: nothing is re-read when a tile is added.

Groups: every stage of :data:`worldcover.stages.STAGES` (a tile belongs to a
stage when the stage's nested selection contains it) plus ``all`` (every
finished tile); within each, every continent of
``stages.stratum(tile).continent`` plus ``all``.
"""

from __future__ import annotations

import csv
import io
import json

import numpy as np

from worldcover import storage
from worldcover.area import row_areas_m2, weighted_sum
from worldcover.grid import Tile
from worldcover.legend import CLASSES
from worldcover.stages import DEFAULT_SEED, STAGES, stage_tiles, stratum
from worldcover.storage import atomic_write_text

M2_PER_KM2 = 1e6
ALL = "all"
METHOD = (
    "sum over pixels of the geodesic area of each EPSG:4326 pixel on the WGS84 ellipsoid "
    "(authalic latitude, R_q = 6371007.2 m), per row of pixels; nodata (0) excluded"
)


def strip_class_area_m2(row_counts: np.ndarray, tile: Tile, row_start: int) -> np.ndarray:
    """Area (m²) per class of a strip, from its (row, class) pixel counts starting at tile row ``row_start``."""
    return weighted_sum(row_areas_m2(tile.transform, row_start, row_counts.shape[0]), row_counts)


def tile_stages(tiles: list[str], seed: int = DEFAULT_SEED) -> dict[str, list[str]]:
    """Which of the nested stages each tile belongs to (``[]`` for a tile outside the land-tile stages)."""
    members = {name: {t.id for t in stage_tiles(name, seed)} for name in STAGES}
    return {t: [name for name in STAGES if t in members[name]] for t in tiles}


def area_groups(records: dict[str, dict], stages_of: dict[str, list[str]]) -> list[dict]:
    """Per (stage, continent) group: tile count and km² of each class, from the tiles' cached areas."""
    codes = [c.code for c in CLASSES]
    km2 = {t: np.array([r["area_m2"].get(str(c), 0.0) for c in codes]) / M2_PER_KM2 for t, r in records.items()}
    continent = {t: stratum(Tile.parse(t)).continent for t in records}
    out = []
    for stage in (ALL, *STAGES):
        in_stage = sorted(t for t in records if stage == ALL or stage in stages_of.get(t, []))
        if not in_stage:
            continue
        for cont in (ALL, *sorted({continent[t] for t in in_stage})):
            members = [t for t in in_stage if cont == ALL or continent[t] == cont]
            total = np.sum([km2[t] for t in members], axis=0)
            out.append({
                "stage": stage, "continent": cont, "tiles": len(members),
                "area_km2": {str(c): float(a) for c, a in zip(codes, total, strict=True)},
                "total_km2": float(total.sum()),
            })
    return out


def merge_identical_stages(groups: list[dict]) -> list[dict]:
    """Groups of the same continent whose tiles are the same merged into one, ``stages`` listing them all.

    Stages are nested (1pct ⊂ 10pct ⊂ 100pct ⊂ all), so within a continent two of
    them hold the same tiles exactly when they hold as many with the same areas;
    a pilot of 1pct tiles would otherwise repeat each row four times. Stages come
    smallest first, ``all`` last."""
    order = {name: i for i, name in enumerate((*STAGES, ALL))}
    merged: dict[tuple, dict] = {}
    for g in sorted(groups, key=lambda g: order[g["stage"]]):
        key = (g["continent"], g["tiles"], tuple(sorted(g["area_km2"].items())))
        if key in merged:
            merged[key]["stages"].append(g["stage"])
        else:
            merged[key] = {**g, "stages": [g["stage"]]}
    return list(merged.values())


def areas_csv(groups: list[dict]) -> str:
    """One row per (stages, continent, class): stages, continent, tiles, code, class, area_km2.

    ``stages`` names every stage the row holds for, space-separated (``1pct 10pct 100pct all``
    when the mapped tiles are all in 1pct): identical rows are not repeated per stage."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["stages", "continent", "tiles", "code", "class", "area_km2"])
    for g in merge_identical_stages(groups):
        for c in CLASSES:
            w.writerow([" ".join(g["stages"]), g["continent"], g["tiles"], c.code, c.name,
                        f"{g['area_km2'][str(c.code)]:.6f}"])
    return buf.getvalue()


def write_area_tables(
    csv_path: storage.Location, json_path: storage.Location, records: dict[str, dict],
    stages_of: dict[str, list[str]], meta: dict,
) -> list[dict]:
    """Write the CSV and JSON area tables atomically; return the groups."""
    groups = area_groups(records, stages_of)
    doc = {
        **meta,
        "unit": "km2",
        "method": METHOD,
        "classes": [{"code": c.code, "name": c.name} for c in CLASSES],
        "groups": groups,
        "tiles": {
            t: {
                "continent": stratum(Tile.parse(t)).continent,
                "stages": stages_of.get(t, []),
                "area_km2": {k: v / M2_PER_KM2 for k, v in r["area_m2"].items()},
            }
            for t, r in sorted(records.items())
        },
    }
    atomic_write_text(csv_path, areas_csv(groups))
    atomic_write_text(json_path, json.dumps(doc, indent=1))
    return groups
