"""Simulated Sentinel-2 L2A scenes: 12 bands at native resolution, SCL, and the true cloud mask.

Per acquisition: the surface state of that day is mixed from endmembers at
10 m, lit by the sun over the terrain, blurred by the sensor's point spread
function (mixed pixels at class borders), given a residual of atmospheric
correction, covered by clouds, cirrus and shadows, averaged to 20 m and 60 m
for the bands that have that resolution, given sensor noise, and encoded as
L2A digital numbers: ``DN = round(reflectance * 10000) + 1000`` from
processing baseline 04.00 on, without the +1000 before; DN 0 is nodata.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np
import xarray as xr
from odc.geo.xr import wrap_xr

from worldcover.bands import (
    S2_BANDS,
    S2_BOA_OFFSET_DN,
    S2_QUANTIFICATION,
    SCL_CLOUDS,
    SCL_INVALID,
    baseline_has_offset,
)
from worldcover.sim import spectra
from worldcover.sim.clouds import CloudFields, apply_clouds, cloud_fields, scene_classification, scl_percentages
from worldcover.sim.dynamics import endmember_fractions, state_at
from worldcover.sim.noise import key, pixel_random
from worldcover.sim.psf import blur
from worldcover.sim.schedule import S2Acquisition, day_key, solar_geometry

if TYPE_CHECKING:  # pragma: no cover
    from worldcover.sim.simulate import BlockWorld

RESOLUTIONS = (10, 20, 60)
PSF = np.array([0.15, 0.7, 0.15], np.float32)  # MSI point spread function at 10 m (separable)


@dataclass
class S2Scene:
    """One simulated L2A acquisition over a block's chip."""

    acquisition: S2Acquisition
    bands: dict[str, xr.DataArray]  # DN, uint16, native resolution, UTM
    scl: xr.DataArray  # uint8, 20 m
    cloud: xr.DataArray  # bool, 10 m: pixels truly altered by cloud or cirrus
    shadow: xr.DataArray  # bool, 10 m: pixels in cloud shadow
    stats: dict[str, float] = field(default_factory=dict)  # SCL percentages, nodata %
    surface: dict[str, xr.DataArray] | None = None  # true surface reflectance (keep_surface=True)

    @property
    def baseline(self) -> str:
        return self.acquisition.baseline

    @property
    def offset_dn(self) -> int:
        return S2_BOA_OFFSET_DN if baseline_has_offset(self.baseline) else 0

    def reflectance(self, band: str, harmonise: bool = True) -> xr.DataArray:
        """Reflectance of a band (float32, NaN nodata); ``harmonise=False`` ignores the DN offset."""
        dn = self.bands[band]
        off = self.offset_dn if harmonise else 0
        out = ((dn.astype(np.float32) + np.float32(off)) / np.float32(S2_QUANTIFICATION)).where(dn > 0)
        return out.astype(np.float32)

    def clear(self, res: int = 20) -> xr.DataArray:
        """SCL says the pixel is usable (not nodata, cloud, shadow, cirrus, saturated)."""
        ok = ~self.scl.isin(list(SCL_INVALID))
        if res == 20:
            return ok
        if res == 10:
            return xr.DataArray(np.repeat(np.repeat(ok.values, 2, 0), 2, 1), coords=self.cloud.coords,
                                dims=self.cloud.dims)
        raise ValueError("res must be 10 or 20")


def block_mean(a: np.ndarray, f: int) -> np.ndarray:
    """Mean over f x f blocks of the last two axes (their sizes are multiples of f)."""
    *lead, h, w = a.shape
    return a.reshape(*lead, h // f, f, w // f, f).mean(axis=(-3, -1), dtype=np.float32)


def upsample(a: np.ndarray, f: int) -> np.ndarray:
    return np.repeat(np.repeat(a, f, axis=-2), f, axis=-1)


def illumination(slope_x: np.ndarray, slope_y: np.ndarray, zenith: float, azimuth: float,
                 strength: float = 0.6) -> np.ndarray:
    """Terrain illumination factor: cos(incidence)/cos(zenith), partly corrected (``strength``)."""
    z, a = np.radians(zenith), np.radians(azimuth)
    sun = np.array([np.sin(z) * np.sin(a), np.sin(z) * np.cos(a), np.cos(z)], np.float32)
    norm = np.sqrt(slope_x ** 2 + slope_y ** 2 + 1)
    cos_i = (-slope_x * sun[0] - slope_y * sun[1] + sun[2]) / norm
    f = 1 + strength * (cos_i / max(float(sun[2]), 0.1) - 1)
    return np.clip(f, 0.25, 1.8).astype(np.float32)


def encode_dn(refl: np.ndarray, baseline: str) -> np.ndarray:
    """L2A digital numbers of reflectances for a processing baseline (valid DN >= 1)."""
    off = -S2_BOA_OFFSET_DN if baseline_has_offset(baseline) else 0
    dn = np.rint(refl * np.float32(S2_QUANTIFICATION)) + np.float32(off)
    return np.clip(dn, 1, 65535).astype(np.uint16)


def render_s2(world: BlockWorld, acq: S2Acquisition, baseline: str | None = None,
              keep_surface: bool = False) -> S2Scene:
    """Simulate one acquisition over the block's chip (see the module docstring for the chain)."""
    grid, seed, opts = world.grid, world.seed, world.options
    baseline = baseline or opts.baseline or acq.baseline
    if baseline != acq.baseline:
        from dataclasses import replace

        acq = replace(acq, baseline=baseline)
    dk = day_key(acq.day)
    lat_c = world.centre[1]
    zen, az = solar_geometry(lat_c, acq.day)

    # 1. Surface reflectance at 10 m: endmember mixture, terrain light, texture, PSF.
    st = state_at(world.surface_padded, acq.day, world.weather(acq.day))
    frac = endmember_fractions(world.surface_padded, st)
    e, h, w = frac.shape
    refl = (spectra.MATRIX.T @ frac.reshape(e, -1)).reshape(len(spectra.BANDS), h, w)
    del frac
    refl *= world.texture[None] * illumination(world.slope_x, world.slope_y, zen, az)[None]
    refl *= world.spectral_drift[:, None, None]
    refl = blur(refl, PSF)[(slice(None), *world.crop)]
    surface = None
    if keep_surface:
        surface = _native(world, refl, "surface reflectance")

    # 2. Residual of the atmospheric correction: per-date haze and per-band gain.
    u = world.draws("s2-atmosphere", dk, 3)
    aerosol = np.float32(-0.3 + 1.3 * u[0])
    gain = np.float32(1.0) + np.float32(0.015) * np.float32(2 * u[1] - 1)
    refl = refl * gain + spectra.HAZE[:, None, None] * aerosol

    # 3. Clouds at 20 m (their fields are smooth; SCL works at 20 m too).
    lon20, lat20 = world.lonlat(20)
    cu = world.draws("s2-clouds", dk, 6)
    cover = world.cloud_cover(acq)
    cf20 = cloud_fields(lon20, lat20, seed, dk, cover, zen, az, tuple(cu[2:6]))
    cf10 = CloudFields(upsample(cf20.alpha, 2), upsample(cf20.cirrus, 2), upsample(cf20.shadow, 2), cf20.brightness)
    refl = apply_clouds(refl, cf10, spectra.CLOUD, spectra.CIRRUS, spectra.SHADOW_DEPTH)

    # 4. Native resolutions, sensor noise, nodata outside the swath, DN encoding.
    observed = _aggregate(refl)
    del refl
    nodata = {}
    for res in RESOLUTIONS:
        if acq.swath is not None:
            x, y = grid.centres(res)
            nodata[res] = acq.swath.nodata(x, y)
        else:
            nodata[res] = np.zeros(grid.shape(res), bool)
    dn_bands: dict[str, np.ndarray] = {}
    for i, band in enumerate(spectra.BANDS):
        res = S2_BANDS[band]
        col0, row0 = grid.lattice_origin(res)
        noise = pixel_random(grid.shape(res), col0, row0, (seed, key(seed, "s2-noise"), grid.epsg, dk, i),
                             lambda rng, size: rng.standard_normal(size, dtype=np.float32))
        obs = observed[res][band] + spectra.NOISE[i] * noise
        observed[res][band] = obs
        dn = encode_dn(obs, baseline)
        dn[nodata[res]] = 0
        dn_bands[band] = dn

    # 5. Scene classification at 20 m from the observed reflectances.
    r20 = observed[20]
    b02 = block_mean(observed[10]["B02"], 2)
    b03 = block_mean(observed[10]["B03"], 2)
    b04 = block_mean(observed[10]["B04"], 2)
    saturated = dn_bands["B8A"] >= 65535
    scl = scene_classification(b02, b03, b04, r20["B8A"], r20["B11"], cf20, nodata[20], saturated,
                               lon20, lat20, seed, dk, grid.lattice_origin(20))

    gb = {res: grid.geobox(res) for res in RESOLUTIONS}
    bands = {b: _wrap(dn_bands[b], gb[S2_BANDS[b]], b, 0) for b in spectra.BANDS}
    cloud10 = cf10.cloud & ~nodata[10]
    shadow10 = cf10.shadow_mask & ~nodata[10]
    stats = scl_percentages(scl)
    stats["s2:nodata_pixel_percentage"] = round(100.0 * float(nodata[20].mean()), 6)
    clear_data = ~nodata[10]
    stats["true_cloud_percentage"] = round(100.0 * float(cloud10[clear_data].mean()) if clear_data.any() else 0.0, 6)
    return S2Scene(
        acquisition=acq,
        bands=bands,
        scl=_wrap(scl, gb[20], "SCL", 0),
        cloud=_wrap(cloud10, gb[10], "cloud", None),
        shadow=_wrap(shadow10, gb[10], "shadow", None),
        stats=stats,
        surface=surface,
    )


def _aggregate(refl10: np.ndarray) -> dict[int, dict[str, np.ndarray]]:
    """Per resolution, per band: 10 m bands as they are, 20 m and 60 m as block means of 10 m."""
    out: dict[int, dict[str, np.ndarray]] = {10: {}, 20: {}, 60: {}}
    for i, band in enumerate(spectra.BANDS):
        res = S2_BANDS[band]
        out[res][band] = refl10[i] if res == 10 else block_mean(refl10[i], res // 10)
    return out


def _native(world: BlockWorld, refl10: np.ndarray, name: str) -> dict[str, xr.DataArray]:
    agg = _aggregate(refl10)
    return {
        b: _wrap(agg[S2_BANDS[b]][b].astype(np.float32), world.grid.geobox(S2_BANDS[b]), b, None) for b in spectra.BANDS
    }


def _wrap(a: np.ndarray, geobox, name: str, nodata) -> xr.DataArray:
    da = wrap_xr(a, geobox, nodata=nodata) if nodata is not None else wrap_xr(a, geobox)
    da.name = name
    return da


def cloud_flag_rates(scene: S2Scene) -> tuple[float, float]:
    """(share of truly cloudy 20 m pixels that SCL lets pass as usable, share of clear pixels it flags as cloud).

    A cloudy pixel counts as caught when SCL marks it invalid in any way
    (cloud, cirrus, shadow): what matters downstream is whether it is masked.
    """
    true20 = block_mean(scene.cloud.values.astype(np.float32), 2) >= 0.5
    valid = scene.scl.values != 0
    caught = np.isin(scene.scl.values, list(SCL_INVALID))
    cloud_flag = np.isin(scene.scl.values, list(SCL_CLOUDS))
    n_cloud = int((true20 & valid).sum())
    n_clear = int((~true20 & valid).sum())
    miss = float((true20 & valid & ~caught).sum()) / n_cloud if n_cloud else 0.0
    false = float((~true20 & valid & cloud_flag).sum()) / n_clear if n_clear else 0.0
    return miss, false
