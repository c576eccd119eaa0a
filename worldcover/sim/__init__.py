"""A simulated Sentinel world: the offline stand-in for real Sentinel-1/2 data and WorldCover truth.

Deterministic by (tile, block, year, seed) and seamless across blocks and
tiles: every field is a function of absolute position. Two layers:

* in memory -- :func:`simulate_block` returns a :class:`SimResult` with the
  land-cover truth on the block's GeoBox, every Sentinel-2 L2A acquisition
  (DN per band at native resolution on the UTM grid of the MGRS tile, SCL,
  the true cloud and shadow masks), every Sentinel-1 RTC acquisition (VV/VH
  linear gamma0 with speckle) and a GLO-30-style DEM;
* on disk -- :func:`generate` writes the same as COGs with STAC items in the
  layout of the real catalogues (Planetary Computer by default), plus the
  truth maps and a manifest, ready to be served by ``rustac serve``.

Modules: :mod:`~worldcover.sim.noise` (seamless randomness),
:mod:`~worldcover.sim.world` (terrain, climate, covers, truth),
:mod:`~worldcover.sim.dynamics` (phenology, crops, snow, floods, mixing),
:mod:`~worldcover.sim.spectra` (endmembers, backscatter constants),
:mod:`~worldcover.sim.clouds` (clouds, shadows, SCL),
:mod:`~worldcover.sim.s2`, :mod:`~worldcover.sim.s1`, :mod:`~worldcover.sim.dem`,
:mod:`~worldcover.sim.mgrs` (MGRS names, UTM chip grids),
:mod:`~worldcover.sim.schedule` (acquisition dates),
:mod:`~worldcover.sim.stac` and :mod:`~worldcover.sim.writer` (the archive).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

# The package imports nothing on its own: its submodules import one another (``from worldcover.sim
# import spectra``) without re-entering a half-initialised package, and ``import worldcover.sim.noise``
# does not load the whole simulator. These names are imported on first use (PEP 562).
_LAZY = {
    "BlockWorld": "worldcover.sim.simulate", "SimOptions": "worldcover.sim.simulate",
    "SimResult": "worldcover.sim.simulate", "simulate_block": "worldcover.sim.simulate",
    "generate": "worldcover.sim.writer",
}

__all__ = ["BlockWorld", "SimOptions", "SimResult", "simulate_block", "generate"]


def __getattr__(name: str) -> Any:
    """Import one of :data:`__all__` from its module on first use."""
    if name not in _LAZY:
        raise AttributeError(f"module 'worldcover.sim' has no attribute {name!r}")
    value = getattr(importlib.import_module(_LAZY[name]), name)
    globals()[name] = value
    return value


if TYPE_CHECKING:
    from worldcover.sim.simulate import BlockWorld, SimOptions, SimResult, simulate_block
    from worldcover.sim.writer import generate
