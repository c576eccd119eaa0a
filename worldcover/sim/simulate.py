"""One block of the simulated world in memory: truth, Sentinel-2, Sentinel-1 and DEM.

:class:`BlockWorld` holds what every acquisition of a block shares (the chip
grid, the static surface at 10 m, terrain slopes, textures, schedules) and
renders single acquisitions on demand, so the writer can stream a year of
data to disk without holding it. :func:`simulate_block` renders everything
into a :class:`SimResult` for tests and benchmarks.
"""

from __future__ import annotations

import math
import zlib
from dataclasses import asdict, dataclass, fields
from datetime import date
from typing import cast

import numpy as np
import xarray as xr

from worldcover.bands import parse_baseline
from worldcover.errors import InputError
from worldcover.grid import Block
from worldcover.sim import dem as dem_mod
from worldcover.sim.clouds import cloud_cover
from worldcover.sim.dynamics import Weather
from worldcover.sim.mgrs import ChipGrid, chip_grid, mgrs_centre
from worldcover.sim.noise import domain, fbm, key, mix32, smoothstep, unit
from worldcover.sim.s1 import S1Scene, render_s1
from worldcover.sim.s2 import S2Scene, render_s2, upsample
from worldcover.sim.schedule import S1Acquisition, S2Acquisition, day_key, s1_schedule, s2_schedule
from worldcover.sim.world import surface_at, truth

MODEL_VERSION = "1"
# extra 10 m pixels around the chip for gradients and blurs; bump when the simulated world changes for the same seed
HALO = 2
YEAR_MIN, YEAR_MAX = 2015, 2100


@dataclass(frozen=True)
class SimOptions:
    """Knobs of the simulation (keyword ``**options`` of the public functions)."""

    looks: float = 4.4  # equivalent number of looks of the S1 speckle
    s2_revisit_days: int = 5
    s1_revisit_days: int | None = None  # None: 6 or 12 days as in the era
    cloudiness: float = 1.0  # multiplies the climatological cloud cover
    missing_fraction: float = 0.04  # share of S2 overpasses missing from the archive
    baseline: str | None = None  # force one S2 processing baseline (e.g. "03.01" or "04.00")
    margin_m: float = 120.0  # chip margin around the block bbox
    period: tuple[str, str] | None = None  # only acquisitions between these ISO dates (inclusive)
    keep_surface: bool = False  # keep true reflectance / speckle-free backscatter in memory
    s2: bool = True
    s1: bool = True
    dem: bool = True

    @classmethod
    def from_kwargs(cls, **kw) -> SimOptions:
        names = {f.name for f in fields(cls)}
        unknown = sorted(set(kw) - names)
        if unknown:
            raise InputError(f"unknown simulation option(s) {', '.join(unknown)}: expected {', '.join(sorted(names))}")
        opts = cls(**kw)
        opts.check()
        return opts

    def check(self) -> None:
        if not (isinstance(self.looks, (int, float)) and 0.5 <= self.looks <= 1000):
            raise InputError(f"invalid looks {self.looks!r}: expected a number 0.5..1000")
        if self.s2_revisit_days not in (1, 2, 3, 5, 10):
            raise InputError(f"invalid s2_revisit_days {self.s2_revisit_days!r}: expected 1, 2, 3, 5 or 10")
        if self.s1_revisit_days not in (None, 6, 12):
            raise InputError(f"invalid s1_revisit_days {self.s1_revisit_days!r}: expected 6, 12 or None")
        if not (0 <= self.cloudiness <= 3):
            raise InputError(f"invalid cloudiness {self.cloudiness!r}: expected 0..3")
        if not (0 <= self.missing_fraction < 1):
            raise InputError(f"invalid missing_fraction {self.missing_fraction!r}: expected 0 <= f < 1")
        if self.baseline is not None:
            try:
                parse_baseline(self.baseline)
            except ValueError as exc:
                raise InputError(str(exc)) from None
        if not (0 <= self.margin_m <= 5000):
            raise InputError(f"invalid margin_m {self.margin_m!r}: expected 0..5000")
        self.period_dates()

    def period_dates(self) -> tuple[date, date] | None:
        """The ``period`` as dates (validated)."""
        if self.period is None:
            return None
        try:
            start, end = (date.fromisoformat(str(p)) for p in self.period)
        except (TypeError, ValueError):
            raise InputError(f"invalid period {self.period!r}: expected two ISO dates (start, end)") from None
        if end < start:
            raise InputError(f"invalid period {self.period!r}: the end is before the start")
        return start, end

    def as_dict(self) -> dict:
        return asdict(self)


def check_year(year: int) -> int:
    if not isinstance(year, (int, np.integer)) or not (YEAR_MIN <= int(year) <= YEAR_MAX):
        raise InputError(f"invalid year {year!r}: Sentinel-2 data start in 2015 (expected {YEAR_MIN}..{YEAR_MAX})")
    return int(year)


class BlockWorld:
    """The shared state of one block-year, rendering acquisitions on demand.

    Attributes: ``grid`` (the UTM chip grids), ``surface`` (the static
    :class:`~worldcover.sim.world.Surface` at the 10 m chip pixels, with
    ``surface.code`` the class at each pixel), ``surface_padded`` (the same
    with a halo, used for rendering), ``s2_acquisitions`` and
    ``s1_acquisitions`` (the schedules). Methods render one product each:
    :meth:`truth`, :meth:`dem`, :meth:`s2`, :meth:`s1`.
    """

    def __init__(self, block: Block, year: int, seed: int = 0, options: SimOptions | None = None) -> None:
        if not isinstance(block, Block):
            raise InputError(f"expected a worldcover.grid.Block, got {type(block).__name__}")
        self.block = block
        self.year = check_year(year)
        self.seed = int(seed)
        self.options = options or SimOptions()
        self.options.check()
        self.grid: ChipGrid = chip_grid(block, self.options.margin_m)
        # The 10 m fields are computed with a halo of HALO pixels: the terrain
        # gradient and the sensor blur then see real neighbours at the chip
        # edge, so overlapping chips of adjacent blocks agree exactly.
        lon10, lat10 = self.lonlat(10, HALO)
        self.surface_padded = surface_at(lon10, lat10, self.seed)
        self.surface = self.surface_padded.subset(self.crop)
        # Terrain slopes for the illumination (rows run south, hence the sign).
        gy, gx = cast(list[np.ndarray], np.gradient(self.surface_padded.elev.astype(np.float32), 10.0))
        self.slope_x, self.slope_y = gx.astype(np.float32), (-gy).astype(np.float32)
        dom = domain(lon10, lat10)
        # Static per-pixel brightness texture (+-4 %) and radar texture (+-1 dB).
        self.texture = (1.0 + 0.04 * fbm(dom, key(self.seed, "optical-texture"), 0.05, 2)).astype(np.float32)
        self.s1_texture = tuple(
            np.power(np.float32(10), 0.1 * fbm(dom, key(self.seed, "radar-texture", i), 0.08, 2)).astype(np.float32)
            for i in range(2)
        )
        self.centre = mgrs_centre(self.grid.mgrs)
        self.spectral_drift = spectral_drift(self.centre[0], self.centre[1], self.seed)
        self._climate = surface_at(np.array([self.centre[0]]), np.array([self.centre[1]]), self.seed)
        o = self.options
        period = o.period_dates()

        def within(acqs):
            return [a for a in acqs if period is None or period[0] <= a.day <= period[1]]

        self.s2_acquisitions: list[S2Acquisition] = within(
            s2_schedule(self.grid, self.year, self.seed, o.s2_revisit_days, o.missing_fraction, o.baseline)
            if o.s2 else [])
        self.s1_acquisitions: list[S1Acquisition] = within(
            s1_schedule(self.grid, self.year, self.seed, o.s1_revisit_days) if o.s1 else [])

    # --- shared fields ---------------------------------------------------------------

    crop = (slice(HALO, -HALO), slice(HALO, -HALO))  # padded 10 m arrays -> the chip

    def lonlat(self, res: int, pad: int = 0) -> tuple[np.ndarray, np.ndarray]:
        """Longitude/latitude of the chip's pixel centres at ``res`` metres, ``pad`` pixels wider (cached)."""
        cache = self.__dict__.setdefault("_lonlat", {})
        if (res, pad) not in cache:
            cache[(res, pad)] = self.grid.lonlat(res, pad)
        return cache[(res, pad)]

    def draws(self, name: str, day: int, n: int) -> np.ndarray:
        """``n`` uniform numbers of one overpass (same for every block of the MGRS tile)."""
        k = key(self.seed, name, day, zlib_crc(self.grid.mgrs.id))
        return unit(mix32(np.arange(n, dtype=np.uint32) * np.uint32(0x9E3779B9) ^ np.uint32(k)))

    def cloud_climate(self, day: date) -> tuple[float, float]:
        """(moisture, rainy-season factor 0..1.5) at the MGRS tile centre on ``day``."""
        c = self._climate
        doy = day.timetuple().tm_yday
        theta = 2 * math.pi * (doy - float(c.rain_peak[0])) / 365.25
        rs, k = float(c.rain_seas[0]), float(c.rain_k[0])
        rain = (1 - rs) + rs * math.exp(k * (math.cos(theta) - 1))
        if float(c.t_amp[0]) > 8:  # mid-latitude winters are cloudier
            rain *= 1 + 0.3 * math.cos(2 * math.pi * (doy - float(c.t_peak[0]) - 182.6) / 365.25)
        return float(c.moisture[0]), float(rain)

    def cloud_cover(self, acq: S2Acquisition) -> float:
        """Target cloud cover (0..1) of an S2 acquisition, known before rendering it."""
        moist, rain = self.cloud_climate(acq.day)
        u = self.draws("s2-clouds", day_key(acq.day), 2)
        return cloud_cover(moist, rain, float(u[0]), float(u[1]), self.options.cloudiness)

    def weather(self, day: date, hour: float = 10.5) -> Weather:
        """Weather of a day on the padded 10 m grid (computed at 60 m: it is smooth over tens of km)."""
        dk = day_key(day)
        lon60, lat60 = self.lonlat(60, 1)
        dom = domain(lon60, lat60)
        _, rain = self.cloud_climate(day)
        d_temp = 3.0 * fbm(dom, key(self.seed, "weather-temperature", dk), 800.0, 2)
        wet = np.clip(0.35 + 0.3 * fbm(dom, key(self.seed, "weather-rain", dk), 60.0, 3) + 0.25 * (rain - 0.5), 0, 1)
        wind = np.clip(0.25 + 0.3 * fbm(dom, key(self.seed, "weather-wind", dk), 100.0, 2), 0, 1)
        # Some summers are dry over a whole region (north-west Europe in 2018): meadows brown.
        drought = smoothstep(fbm(dom, key(self.seed, "summer-drought", day.year), 1000.0, 2), 0.4, 1.4)
        hours = (day - date(2015, 1, 1)).days * 24.0 + hour
        tide = 0.5 + 0.5 * np.sin(2 * np.pi * hours / 12.42 + np.radians(lon60) * 2.0)
        cut = 6 - HALO  # one 60 m cell of padding -> HALO pixels of 10 m

        def to10(a: np.ndarray) -> np.ndarray:
            return upsample(a.astype(np.float32), 6)[cut:-cut, cut:-cut]

        return Weather(d_temp=to10(d_temp), wet=to10(wet), wind=to10(wind), tide=to10(tide),
                       drought=to10(drought))

    # --- products --------------------------------------------------------------------

    def truth(self) -> xr.DataArray:
        return truth(self.block, self.seed)

    def dem(self) -> xr.DataArray:
        return dem_mod.dem(self.block, self.seed)

    def s2(self, acq: S2Acquisition, baseline: str | None = None, keep_surface: bool | None = None) -> S2Scene:
        keep = self.options.keep_surface if keep_surface is None else keep_surface
        return render_s2(self, acq, baseline=baseline, keep_surface=keep)

    def s1(self, acq: S1Acquisition, keep_clean: bool | None = None) -> S1Scene:
        keep = self.options.keep_surface if keep_clean is None else keep_clean
        return render_s1(self, acq, keep_clean=keep)


# Regional reflectance gain (a few %): soils, canopies and atmospheric correction
# differ between regions in ways the class rules do not capture, so a model must
# not rely on an exact reflectance level. Smooth in wavelength: an overall level,
# a visible-vs-NIR tilt and a SWIR offset, each varying over hundreds of km.
SPECTRAL_DRIFT = 0.025
SPECTRAL_DRIFT_KM = 800.0
# centre wavelengths (um) of spectra.BANDS
_WAVELENGTH = np.array([0.443, 0.49, 0.56, 0.665, 0.704, 0.74, 0.783, 0.842, 0.865, 0.945, 1.61, 2.19], np.float32)
_DRIFT_BASIS = np.stack([np.ones_like(_WAVELENGTH), np.tanh((_WAVELENGTH - 0.72) / 0.05),
                         (_WAVELENGTH > 1.5).astype(np.float32)])


def spectral_drift(lon: float, lat: float, seed: int) -> np.ndarray:
    """Per-band reflectance gain of the region around (lon, lat), shape (band,)."""
    dom = domain(np.array([lon], np.float64), np.array([lat], np.float64))
    amp = np.array([float(fbm(dom, key(seed, "spectral-drift", i), SPECTRAL_DRIFT_KM, 2)[0]) for i in range(3)],
                   np.float32)
    return (1.0 + SPECTRAL_DRIFT * amp @ _DRIFT_BASIS).astype(np.float32)


def zlib_crc(text: str) -> int:
    return zlib.crc32(text.encode()) & 0x7FFFFFFF


@dataclass
class SimResult:
    """Everything simulated for one block-year, in memory."""

    block: Block
    year: int
    seed: int
    options: SimOptions
    grid: ChipGrid
    truth: xr.DataArray  # uint8 codes on block.geobox
    s2: list[S2Scene]
    s1: list[S1Scene]
    dem: xr.DataArray | None

    def s2_stack(self, band: str, harmonise: bool = True) -> xr.DataArray:
        """Reflectance of one band over time, (time, y, x) float32, NaN nodata (not cloud-masked)."""
        arrs = [s.reflectance(band, harmonise) for s in self.s2]
        times = [np.datetime64(s.acquisition.sensed.replace(tzinfo=None), "ns") for s in self.s2]
        return xr.concat(arrs, dim="time").assign_coords(time=times)

    def s1_stack(self, pol: str) -> xr.DataArray:
        arrs = [s[pol] for s in self.s1]
        times = [np.datetime64(s.acquisition.sensed.replace(tzinfo=None), "ns") for s in self.s1]
        return xr.concat(arrs, dim="time").assign_coords(time=times)


def simulate_block(block: Block, year: int, seed: int = 0, **options) -> SimResult:
    """Simulate one block-year in memory: truth, every S2 and S1 acquisition, and the DEM."""
    opts = SimOptions.from_kwargs(**options)
    world = BlockWorld(block, year, seed, opts)
    return SimResult(
        block=block, year=world.year, seed=world.seed, options=opts, grid=world.grid,
        truth=world.truth(),
        s2=[world.s2(a) for a in world.s2_acquisitions],
        s1=[world.s1(a) for a in world.s1_acquisitions],
        dem=world.dem() if opts.dem else None,
    )
