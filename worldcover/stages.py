"""Nested, stratified stage selections: 1pct ⊂ 10pct ⊂ 100pct of the land tiles.

Tiles are stratified by latitude zone and continent. Inside each stratum the
tiles get one random order (weighted by land fraction, Efraimidis-Spirakis, so
a tile that is 2 % land is rarely picked over a full one) from a seeded hash of
the tile id; every stage takes a prefix of that order. Nesting therefore holds
by construction, and the same seed gives the same stages on every machine.
"""

from __future__ import annotations

import hashlib
import math
from collections import Counter
from dataclasses import dataclass
from functools import lru_cache

from worldcover.errors import InputError
from worldcover.grid import Tile, land_tiles

STAGES: dict[str, float] = {"1pct": 0.01, "10pct": 0.10, "100pct": 1.0}
DEFAULT_SEED = 2021

# Latitude zones by tile-centre latitude (degrees), north to south.
ZONES: tuple[tuple[str, float, float], ...] = (
    ("arctic", 66.5, 90.0),
    ("boreal", 50.0, 66.5),
    ("temperate-N", 35.0, 50.0),
    ("subtropical-N", 23.5, 35.0),
    ("tropical-N", 0.0, 23.5),
    ("tropical-S", -23.5, 0.0),
    ("subtropical-S", -35.0, -23.5),
    ("temperate-S", -90.0, -35.0),
)
CONTINENTS = ("Africa", "Asia", "Europe", "North America", "Oceania", "South America", "Antarctica")


def check_stage(stage: str) -> str:
    if stage not in STAGES:
        raise InputError(f"unknown stage {stage!r}: expected one of {', '.join(STAGES)}")
    return stage


def latitude_zone(lat: float) -> str:
    """The latitude zone (a stratum of the stages) a latitude falls in."""
    for name, lo, hi in ZONES:
        if lo <= lat < hi or (hi == 90.0 and lat == 90.0):
            return name
    raise InputError(f"latitude {lat} is outside -90..90")


def continent(lon: float, lat: float) -> str:
    """Approximate continent of a point, good enough for 3-degree strata.

    Hand-drawn boxes (no boundary data ships offline); tiles straddling a
    boundary go to one side deterministically. Islands go to the nearest
    continent in the usual convention (Greenland: North America, Iceland:
    Europe, Madagascar: Africa, Indonesia west of New Guinea: Asia).
    """
    if lat < -60:
        return "Antarctica"
    pacific = lat < 30 and (lon >= 165 or lon < -130)
    if pacific or (lon >= 110 and lat < -10) or (lon >= 130 and lat < 0):
        return "Oceania"  # Australia, New Zealand, New Guinea and the Pacific islands
    iceland = 62 <= lat <= 67.5 and lon > -25
    if lon < -25 or (lon < -10 and lat > 58 and not iceland):
        # The Americas and Greenland; Panama is the divide.
        if lat > 12.5 or (lat > 7 and lon < -77):
            return "North America"
        return "South America"
    if (lat >= 36 and lon < 27) or (lat >= 42 and lon < 60):
        return "Europe"  # west of the Urals, north of the Caucasus and the Aegean
    horn_of_africa = lon < 52 and lat < 12.5 and not (lon >= 42 and lat >= 11)
    if (lon < 32.5 and lat < 37.5) or horn_of_africa or (lon < 36 and lat < 31.5):
        return "Africa"  # includes Sinai and the Nile delta
    return "Asia"


@dataclass(frozen=True)
class Stratum:
    zone: str
    continent: str

    def __str__(self) -> str:
        return f"{self.zone}/{self.continent}"


def stratum(tile: Tile) -> Stratum:
    """The tile's stratum for stage sampling: latitude zone and continent of its centre."""
    lon, lat = tile.center
    return Stratum(latitude_zone(lat), continent(lon, lat))


def _order_key(tile: Tile, seed: int) -> float:
    """Weighted random key u**(1/w): sorting by it descending is weighted sampling."""
    digest = hashlib.sha256(f"worldcover-stage:{seed}:{tile.id}".encode()).digest()
    u = (int.from_bytes(digest[:8], "big") + 0.5) / 2**64
    w = max(tile.land_fraction, 1e-6)
    return math.log(u) / w  # log of u**(1/w); monotone, avoids underflow


def _allocate(sizes: dict[Stratum, int], fraction: float, min_one: bool) -> dict[Stratum, int]:
    """Hamilton (largest-remainder) allocation of ``fraction`` of the tiles to strata."""
    total = sum(sizes.values())
    target = max(1, round(fraction * total))
    quotas = {s: fraction * n for s, n in sizes.items()}
    alloc = {s: int(math.floor(q)) for s, q in quotas.items()}
    rest = target - sum(alloc.values())
    by_remainder = sorted(sizes, key=lambda s: (-(quotas[s] - alloc[s]), -sizes[s], str(s)))
    for s in by_remainder[: max(rest, 0)]:
        alloc[s] += 1
    if min_one:
        alloc = {s: max(k, 1) for s, k in alloc.items()}
    return {s: min(k, sizes[s]) for s, k in alloc.items()}


@lru_cache(maxsize=8)
def _stage_table(seed: int) -> dict[str, tuple[Tile, ...]]:
    tiles = land_tiles()
    groups: dict[Stratum, list[Tile]] = {}
    for t in tiles:
        groups.setdefault(stratum(t), []).append(t)
    for s in groups:
        groups[s].sort(key=lambda t: (-_order_key(t, seed), t.id))
    sizes = {s: len(v) for s, v in groups.items()}
    # A stage's allocation is never smaller than the stage inside it: nesting.
    out: dict[str, tuple[Tile, ...]] = {}
    previous: dict[Stratum, int] = {s: 0 for s in groups}
    for name, fraction in sorted(STAGES.items(), key=lambda kv: kv[1]):
        alloc = _allocate(sizes, fraction, min_one=fraction >= 0.1)
        alloc = {s: max(alloc[s], previous[s]) for s in groups}
        out[name] = tuple(sorted((t for s, v in groups.items() for t in v[: alloc[s]]), key=lambda t: t.id))
        previous = alloc
    return out


def stage_tiles(stage: str, seed: int = DEFAULT_SEED) -> list[Tile]:
    """The tiles of a stage, sorted by id."""
    return list(_stage_table(seed)[check_stage(stage)])


def summary(seed: int = DEFAULT_SEED) -> list[dict]:
    """Per latitude zone: tile counts of each stage (rows for a table)."""
    rows = []
    counts = {name: Counter(stratum(t).zone for t in stage_tiles(name, seed)) for name in STAGES}
    for zone, lo, hi in ZONES:
        row: dict[str, str | int] = {"zone": zone, "lat_range": f"{lo:g}..{hi:g}"}
        row.update({name: counts[name].get(zone, 0) for name in STAGES})
        rows.append(row)
    rows.append({"zone": "total", "lat_range": "", **{n: sum(c.values()) for n, c in counts.items()}})
    return rows
