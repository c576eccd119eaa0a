"""What a campaign will cost before anything runs: tiles, area, inputs, core-hours, outputs, money.

Throughput comes from the benchmark suite: ``make bench`` writes its figure
(key ``end_to_end_mpx_per_s_per_core``) to ``worldcover/data/throughput.json``,
which ships in the package; a results file passed explicitly is read instead,
and the figure measured when this file was last updated is the fallback. Input and output volumes are
rules of thumb from the real archives, stated next to each constant.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass
from pathlib import Path

from worldcover.campaign.plan import CampaignPlan
from worldcover.grid import TILE_DEGREES, TILE_PIXELS, Tile

AUTHALIC_RADIUS_M = 6371007.2
# Measured end-to-end throughput (Mpx/s per core) of the tile chain: `make bench`,
# 2048 px block, a full simulated year, the fastest of 3 runs on a 2-core AMD EPYC VM
# (benchmarks/results/20261202T080823Z.json; the same code ran 2.5x slower on a noisy Intel Xeon VM).
DEFAULT_MPX_PER_S_PER_CORE = 0.06568
MGRS_TILE_KM = 109.8  # a Sentinel-2 granule is 109.8 km square
S2_REVISIT_DAYS = 5
S1_ACQUISITIONS_PER_YEAR = {True: 61, False: 31}  # 6-day (S1A+B, until Dec 2021) or 12-day
S2_GB_PER_SCENE = 0.7  # 12 bands + SCL of one L2A granule, as COGs
S1_GB_PER_SCENE = 0.45  # VV + VH RTC of one granule-sized area, float32 COG
OUTPUT_BYTES_PER_PX = 0.35  # Map (~0.05) + Prob (~0.28) + InputQuality, deflate-compressed
DEFAULT_PRICE_PER_CORE_HOUR = 0.04  # USD, on-demand cloud vCPU


def tile_area_km2(tile: Tile) -> float:
    """Geodesic (authalic sphere) area of a 3x3 degree tile in km²."""
    s, n = math.radians(tile.lat), math.radians(tile.lat + TILE_DEGREES)
    return AUTHALIC_RADIUS_M**2 * math.radians(TILE_DEGREES) * (math.sin(n) - math.sin(s)) / 1e6


def granules_per_tile(tile: Tile) -> float:
    """Sentinel-2 granules touching a tile (with the usual ~10 km overlap between granules)."""
    lat = math.radians(tile.center[1])
    width_km = TILE_DEGREES * 111.32 * max(math.cos(lat), 0.05)
    height_km = TILE_DEGREES * 110.57
    step = MGRS_TILE_KM - 9.8
    return (math.ceil(width_km / step) + 1) * (math.ceil(height_km / step) + 1)


#: the packaged benchmark figure, written by ``make bench`` (benchmarks/run.py)
THROUGHPUT_FILE = Path(__file__).resolve().parents[1] / "data" / "throughput.json"


def measured_throughput(results: Path | None = None) -> tuple[float, str]:
    """Mpx/s per core from ``results`` (a benchmark summary) or the packaged figure, else the default."""
    path = Path(results) if results else THROUGHPUT_FILE
    try:
        doc = json.loads(path.read_text())
        value = float(doc["end_to_end_mpx_per_s_per_core"])
        if value > 0 and math.isfinite(value):
            if results:
                return value, str(path)
            when = str(doc.get("measured", ""))[:10]
            return value, f"make bench{' of ' + when if when else ''}"
    except (OSError, KeyError, ValueError, TypeError, AttributeError, json.JSONDecodeError):
        pass
    return DEFAULT_MPX_PER_S_PER_CORE, "default (no benchmark figure)"


@dataclass(frozen=True)
class Estimate:
    tiles: int
    land_km2: float
    pixels: float
    s2_scenes: int
    s1_scenes: int
    input_gb: float
    mpx_per_s_per_core: float
    throughput_source: str
    core_hours: float
    output_gb: float
    price_per_core_hour: float
    cost: float

    def to_dict(self) -> dict:
        return asdict(self)


def estimate(plan: CampaignPlan, price_per_core_hour: float = DEFAULT_PRICE_PER_CORE_HOUR,
             mpx_per_s_per_core: float | None = None) -> Estimate:
    tiles = [Tile.parse(t) for t in plan.tiles]
    rate, source = (mpx_per_s_per_core, "given") if mpx_per_s_per_core else measured_throughput()
    # Blocks of open ocean are skipped, so work scales with land pixels (at least one block per tile).
    pixels = sum(max(t.land_fraction, 1 / 144) * TILE_PIXELS**2 for t in tiles)
    granules = sum(granules_per_tile(t) for t in tiles)
    s2 = round(granules * 365 / S2_REVISIT_DAYS)
    s1 = round(granules * S1_ACQUISITIONS_PER_YEAR[plan.year <= 2021])
    core_hours = pixels / (rate * 1e6) / 3600
    return Estimate(
        tiles=len(tiles), land_km2=round(sum(tile_area_km2(t) * t.land_fraction for t in tiles), 1),
        pixels=pixels, s2_scenes=s2, s1_scenes=s1, input_gb=round(s2 * S2_GB_PER_SCENE + s1 * S1_GB_PER_SCENE, 1),
        mpx_per_s_per_core=rate, throughput_source=source, core_hours=round(core_hours, 1),
        output_gb=round(pixels * OUTPUT_BYTES_PER_PX / 1e9, 1), price_per_core_hour=price_per_core_hour,
        cost=round(core_hours * price_per_core_hour, 2),
    )
