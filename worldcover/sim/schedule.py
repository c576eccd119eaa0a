"""When the simulated satellites pass: Sentinel-2 and Sentinel-1 acquisition schedules.

Schedules depend on the MGRS tile, the year and the seed, never on the block,
so every block of one MGRS tile sees the same dates (and the same clouds,
since clouds are functions of position and date).

Sentinel-2: one satellite every 10 days from July 2015, two (5-day revisit)
from July 2017 (S2C takes over from S2A in 2025). Some tiles also lie in the
overlap of a neighbouring orbit track: extra acquisitions whose swath edge
crosses the tile (partial nodata). A few acquisitions are missing (anomalies,
archive gaps), and none is taken in the polar night.

Sentinel-1: one relative orbit per tile, 12-day repeat per satellite; 6 days
while S1B flew (Sep 2016 to Dec 2021) and again with S1C (from May 2025).
"""

from __future__ import annotations

import math
import zlib
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

import numpy as np

from worldcover.bands import baseline_for
from worldcover.sim.mgrs import ChipGrid, mgrs_centre
from worldcover.sim.noise import mix32, unit

S2A_START = date(2015, 7, 4)
S2B_START = date(2017, 7, 6)
S2C_START = date(2025, 1, 21)  # S2C replaces S2A in the constellation
S1A_START = date(2014, 10, 3)
S1B_START, S1B_END = date(2016, 9, 26), date(2021, 12, 23)
S1C_START = date(2025, 5, 21)
EPOCH = date(2015, 1, 1)
MAX_SUN_ZENITH = 82.0  # S2 does not image in the polar night


def _u(*parts) -> float:
    """A uniform [0, 1) number from any hashable parts (stable across runs)."""
    h = zlib.crc32(repr(parts).encode()) & 0xFFFFFFFF
    return float(unit(mix32(np.array([h], np.uint32)))[0])


@dataclass(frozen=True)
class SwathEdge:
    """A straight swath (or frame) border in UTM metres: nodata on one side."""

    x_ref: float  # easting of the edge at northing y_ref
    y_ref: float
    dx_dy: float  # tilt of the edge (orbits are not exactly north-south)
    nodata_east: bool

    def nodata(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        edge = self.x_ref + self.dx_dy * (np.asarray(y) - self.y_ref)
        return (np.asarray(x) > edge) if self.nodata_east else (np.asarray(x) < edge)


@dataclass(frozen=True)
class S2Acquisition:
    """One Sentinel-2 overpass of an MGRS tile."""

    sensed: datetime  # UTC
    platform: str  # "Sentinel-2A"
    relative_orbit: int
    baseline: str
    generated: datetime
    mgrs: str
    day: date  # local solar day: what phenology, weather and clouds are keyed to
    swath: SwathEdge | None = None

    @property
    def unit(self) -> str:
        return self.platform[-1]  # A, B or C

    @property
    def product_id(self) -> str:
        """Name of the L2A product (``s2:product_uri`` without ``.SAFE``)."""
        b = self.baseline.replace(".", "")
        return (f"S2{self.unit}_MSIL2A_{self.sensed:%Y%m%dT%H%M%S}_N{b}_R{self.relative_orbit:03d}"
                f"_T{self.mgrs}_{self.generated:%Y%m%dT%H%M%S}")

    @property
    def item_base_id(self) -> str:
        """The Planetary Computer item id (before the per-block suffix)."""
        return (f"S2{self.unit}_MSIL2A_{self.sensed:%Y%m%dT%H%M%S}_R{self.relative_orbit:03d}"
                f"_T{self.mgrs}_{self.generated:%Y%m%dT%H%M%S}")


@dataclass(frozen=True)
class S1Acquisition:
    """One Sentinel-1 IW overpass."""

    sensed: datetime  # UTC, start of the slice
    platform: str  # "SENTINEL-1A"
    relative_orbit: int
    absolute_orbit: int
    orbit_state: str  # "ascending" / "descending"
    datatake: int
    day: date  # local solar day
    frame: SwathEdge | None = None

    @property
    def unit(self) -> str:
        return self.platform[-1]

    @property
    def item_base_id(self) -> str:
        end = self.sensed + timedelta(seconds=25)
        return (f"S1{self.unit}_IW_GRDH_1SDV_{self.sensed:%Y%m%dT%H%M%S}_{end:%Y%m%dT%H%M%S}"
                f"_{self.absolute_orbit:06d}_{self.datatake:06X}_rtc")


def solar_geometry(lat: float, day: date, local_hour: float = 10.5) -> tuple[float, float]:
    """(zenith, azimuth) of the sun in degrees at ``local_hour`` solar time; azimuth from north, clockwise."""
    doy = day.timetuple().tm_yday
    decl = math.radians(23.44) * math.sin(2 * math.pi * (284 + doy) / 365.0)
    phi = math.radians(lat)
    h = math.radians(15.0 * (local_hour - 12.0))
    cos_z = math.sin(phi) * math.sin(decl) + math.cos(phi) * math.cos(decl) * math.cos(h)
    zen = math.degrees(math.acos(max(-1.0, min(1.0, cos_z))))
    az = math.degrees(math.atan2(-math.sin(h) * math.cos(decl),
                                 math.cos(phi) * math.sin(decl) - math.sin(phi) * math.cos(decl) * math.cos(h)))
    return zen, az % 360.0


def _utc(day: date, local_hour: float, lon: float, jitter_s: float) -> datetime:
    t = datetime(day.year, day.month, day.day, tzinfo=UTC)
    return t + timedelta(hours=local_hour - lon / 15.0, seconds=jitter_s)


def _chip_centre(grid: ChipGrid) -> tuple[float, float]:
    """Where an overpass is timed: the MGRS square's centre, the same for every block in it."""
    return mgrs_centre(grid.mgrs)


def _valid_fraction(grid: ChipGrid, edge: SwathEdge) -> float:
    x, y = grid.centres(60)
    return float(1.0 - edge.nodata(x, y).mean())


def s2_schedule(grid: ChipGrid, year: int, seed: int = 0, revisit_days: int = 5,
                missing_fraction: float = 0.04, baseline: str | None = None) -> list[S2Acquisition]:
    """Sentinel-2 acquisitions of the chip's MGRS tile in ``year`` that see some of the chip."""
    mg = grid.mgrs.id
    lon_c, lat_c = _chip_centre(grid)
    phase = int(_u(seed, "s2-phase", mg) * revisit_days)
    orbit = 1 + int(_u(seed, "s2-orbit", mg) * 143)
    tracks: list[tuple[int, int, SwathEdge | None]] = [(phase, orbit, None)]
    if _u(seed, "s2-overlap", mg) < 0.35:  # the tile also lies under a neighbouring track
        edge = SwathEdge(
            x_ref=grid.mgrs.origin[0] + _u(seed, "s2-edge-x", mg) * 109_800.0,
            y_ref=grid.mgrs.origin[1] - 54_900.0,
            dx_dy=math.tan(math.radians(12.0)) * (1 if lat_c >= 0 else -1),
            nodata_east=_u(seed, "s2-edge-side", mg) < 0.5,
        )
        tracks.append(((phase + 2) % revisit_days, (orbit + 42) % 143 + 1, edge))
    out = []
    start, end = date(year, 1, 1), date(year, 12, 31)
    for d in range((end - start).days + 1):
        day = start + timedelta(days=d)
        if day < S2A_START:
            continue
        n = (day - EPOCH).days
        for ph, rel, track_edge in tracks:
            if (n - ph) % revisit_days:
                continue
            pair = ((n - ph) // revisit_days) % 2  # which satellite of the pair
            if revisit_days == 5 and day < S2B_START and pair == 1:
                continue  # before S2B: every other slot is empty (10-day revisit)
            first = "Sentinel-2C" if day >= S2C_START else "Sentinel-2A"
            platform = first if pair == 0 or revisit_days != 5 else "Sentinel-2B"
            if _u(seed, "s2-missing", mg, n, rel) < missing_fraction:
                continue
            zen, _ = solar_geometry(lat_c, day)
            if zen > MAX_SUN_ZENITH:
                continue
            if track_edge is not None and _valid_fraction(grid, track_edge) <= 0.0:
                continue
            sensed = _utc(day, 10.5 + (0.25 if track_edge is not None else 0.0), lon_c, _u(seed, "s2-sec", mg, n) * 30)
            generated = sensed + timedelta(hours=2, minutes=int(_u(seed, "s2-gen", mg, n) * 150))
            out.append(S2Acquisition(
                sensed=sensed.replace(microsecond=0), platform=platform, relative_orbit=rel,
                baseline=baseline or baseline_for(day), generated=generated.replace(microsecond=0),
                mgrs=mg, day=day, swath=track_edge,
            ))
    return sorted(out, key=lambda a: a.sensed)


def s1_revisit_for(day: date) -> int:
    """Days between Sentinel-1 passes of one track in the era of ``day``."""
    if S1B_START <= day <= S1B_END or day >= S1C_START:
        return 6
    return 12


def s1_schedule(grid: ChipGrid, year: int, seed: int = 0, revisit_days: int | None = None,
                missing_fraction: float = 0.03) -> list[S1Acquisition]:
    """Sentinel-1 IW acquisitions of the chip in ``year`` (one relative orbit per MGRS tile)."""
    mg = grid.mgrs.id
    lon_c, _ = _chip_centre(grid)
    ascending = _u(seed, "s1-direction", mg) < 0.5
    rel = 1 + int(_u(seed, "s1-orbit", mg) * 175)
    phase = int(_u(seed, "s1-phase", mg) * 12)
    out = []
    start, end = date(year, 1, 1), date(year, 12, 31)
    for d in range((end - start).days + 1):
        day = start + timedelta(days=d)
        if day < S1A_START:
            continue
        n = (day - EPOCH).days
        step = revisit_days or s1_revisit_for(day)
        if (n - phase) % 6:
            continue
        slot = ((n - phase) // 6) % 2  # 0: S1A, 1: the second satellite
        if step == 12 and slot == 1:
            continue
        if slot == 0:
            platform, launch = "SENTINEL-1A", date(2014, 4, 3)
        elif day >= S1C_START:
            platform, launch = "SENTINEL-1C", date(2024, 12, 5)
        else:
            platform, launch = "SENTINEL-1B", date(2016, 4, 25)
        if _u(seed, "s1-missing", mg, n) < missing_fraction:
            continue
        frame = None
        if _u(seed, "s1-frame", mg, n) < 0.08:  # a frame border crosses the chip
            frame = SwathEdge(
                x_ref=grid.x0 + _u(seed, "s1-frame-x", mg, n) * grid.width_m, y_ref=grid.y1,
                dx_dy=math.tan(math.radians(10.0)), nodata_east=_u(seed, "s1-frame-side", mg, n) < 0.5,
            )
            if _valid_fraction(grid, frame) <= 0.0:
                continue
        local = 18.0 if ascending else 6.0
        sensed = _utc(day, local, lon_c, _u(seed, "s1-sec", mg, n) * 40).replace(microsecond=0)
        absolute = int((sensed.date() - launch).days * 175 / 12) + rel
        datatake = int(_u(seed, "s1-datatake", mg, n) * 0xFFFFFF)
        out.append(S1Acquisition(sensed, platform, rel, absolute, "ascending" if ascending else "descending",
                                 datatake, day, frame))
    return sorted(out, key=lambda a: a.sensed)


def day_key(day: date) -> int:
    """Integer key of a day for random streams (days since 2015-01-01, may be negative)."""
    return (day - EPOCH).days + 100_000
