"""Simulated Sentinel-1 RTC scenes: VV and VH gamma0 in linear power, with speckle.

Backscatter comes from the same surface and the same state of the day as the
optical data (:func:`worldcover.sim.dynamics.backscatter`), with a static
texture, a 20 m-like resolution (blur) and multiplicative speckle drawn from
Gamma(shape=L, scale=1/L) for an equivalent number of looks L, recorded in
the item as ``sar:looks_equivalent_number``. Values are float32 on the
block's UTM chip grid, NaN outside the frame.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import xarray as xr
from odc.geo.xr import wrap_xr

from worldcover.sim.dynamics import backscatter, state_at
from worldcover.sim.noise import key, pixel_random
from worldcover.sim.psf import blur
from worldcover.sim.schedule import S1Acquisition, day_key

if TYPE_CHECKING:  # pragma: no cover
    from worldcover.sim.simulate import BlockWorld

RESOLUTION = 10
RTC_PSF = np.array([0.25, 0.5, 0.25], np.float32)  # IW GRD ~20 m resolution at 10 m spacing
POLARISATIONS = ("vv", "vh")


@dataclass
class S1Scene:
    """One simulated Sentinel-1 RTC acquisition over a block's chip."""

    acquisition: S1Acquisition
    vv: xr.DataArray  # float32 linear gamma0, NaN nodata
    vh: xr.DataArray
    looks: float
    clean: dict[str, xr.DataArray] | None = None  # before speckle (keep_surface=True)

    def __getitem__(self, pol: str) -> xr.DataArray:
        return {"vv": self.vv, "vh": self.vh}[pol]


def speckle(shape: tuple[int, int], col0: int, row0: int, looks: float, keys: tuple[int, ...]) -> np.ndarray:
    """Multiplicative speckle: i.i.d. Gamma(L, 1/L) (mean 1, variance 1/L) on an absolute pixel lattice."""
    return pixel_random(
        shape, col0, row0, keys, lambda rng, size: rng.gamma(looks, 1.0 / looks, size).astype(np.float32)
    )


def render_s1(world: BlockWorld, acq: S1Acquisition, keep_clean: bool = False) -> S1Scene:
    grid, seed = world.grid, world.seed
    looks = float(world.options.looks)
    dk = day_key(acq.day)
    st = state_at(
        world.surface_padded, acq.day, world.weather(acq.day, hour=18.0 if acq.orbit_state == "ascending" else 6.0)
    )
    vv, vh = backscatter(world.surface_padded, st)
    gb = grid.geobox(RESOLUTION)
    col0, row0 = grid.lattice_origin(RESOLUTION)
    nodata = acq.frame.nodata(*grid.centres(RESOLUTION)) if acq.frame is not None else None
    out, clean = {}, {}
    for i, (pol, sigma) in enumerate((("vv", vv), ("vh", vh))):
        sigma = blur(sigma * world.s1_texture[i], RTC_PSF)[world.crop].astype(np.float32)
        if keep_clean:
            clean[pol] = wrap_xr(sigma.copy(), gb)
        noisy = sigma * speckle(sigma.shape, col0, row0, looks, (seed, key(seed, "s1-speckle"), grid.epsg, dk, i))
        if nodata is not None:
            noisy[nodata] = np.nan
        da = wrap_xr(noisy.astype(np.float32), gb, nodata=float("nan"))
        da.name = pol
        out[pol] = da
    return S1Scene(acq, out["vv"], out["vh"], looks, clean or None)
