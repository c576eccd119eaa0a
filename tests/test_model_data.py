"""Synthetic labelled blocks for the model tests, and checks that they mean what the tests assume.

Each block is a (feature, y, x) float32 DataArray with stable feature names
and a (y, x) uint8 truth of WorldCover codes on the same grid. Truth is a
mosaic of square patches; a class's pixels are its fixed mean vector plus
Gaussian noise in the informative features (separable), and pure noise in
``noise_u``. Blocks also get scattered NaNs in single features, a few
pixels with every feature NaN (no clear observation) and nodata truth.
"""

from __future__ import annotations

import numpy as np
import xarray as xr

from worldcover.grid import PIXEL_SIZE, Tile
from worldcover.legend import CODES

NAMES = ("s2_B04_p50", "s2_B08_p50", "ndvi_m07", "s1_vh_db_p90", "s2_B11_p10", "noise_u")
INFORMATIVE = 4
CLASSES = (10, 20, 30, 40, 50, 80)
NOISE = 0.35
_MEANS = np.random.default_rng(1234).normal(scale=2.0, size=(len(CODES), len(NAMES)))
_MEANS[:, INFORMATIVE:] = 0.0  # s2_B11_p10 and noise_u carry no class signal


def block_coords(block_id: str, size: int) -> dict[str, np.ndarray]:
    """Pixel-centre lon/lat of a ``TILE_rRcC`` block of ``size`` pixels on the WorldCover grid."""
    tile_id, key = block_id.split("_")
    tile = Tile.parse(tile_id)
    r, c = (int(v) for v in key[1:].split("c"))
    y0, x0 = r * size, c * size
    lat = tile.lat + 3 - (y0 + np.arange(size) + 0.5) * PIXEL_SIZE
    lon = tile.lon + (x0 + np.arange(size) + 0.5) * PIXEL_SIZE
    return {"y": lat, "x": lon}


def make_block(
    block_id: str = "N00E006_r00c00",
    *,
    size: int = 40,
    classes: tuple[int, ...] = CLASSES,
    seed: int = 0,
    patch: int = 8,
    nan_fraction: float = 0.05,
    empty_fraction: float = 0.02,
    nodata_fraction: float = 0.03,
    coords: bool = True,
) -> tuple[xr.DataArray, xr.DataArray]:
    rng = np.random.default_rng(seed)
    cells = rng.choice(np.asarray(classes), size=(-(-size // patch), -(-size // patch)))
    truth = np.kron(cells, np.ones((patch, patch), dtype=np.int64))[:size, :size].astype(np.uint8)
    means = _MEANS[np.searchsorted(np.asarray(CODES), truth)]  # (y, x, feature)
    offset = rng.normal(scale=0.1, size=len(NAMES))  # a little block-to-block shift
    values = (means + offset + rng.normal(scale=NOISE, size=means.shape)).transpose(2, 0, 1)
    values = values.astype(np.float32)
    values[rng.random(values.shape) < nan_fraction] = np.nan
    empty = rng.random((size, size)) < empty_fraction
    values[:, empty] = np.nan
    truth[rng.random((size, size)) < nodata_fraction] = 0
    c = block_coords(block_id, size) if coords else {}
    features = xr.DataArray(values, dims=("feature", "y", "x"), coords={"feature": list(NAMES), **c})
    return features, xr.DataArray(truth, dims=("y", "x"), coords=c)


BLOCK_IDS = tuple(f"{t}_r00c0{i}" for t in ("N00E006", "N03E006", "S03W063", "N45E009") for i in range(2))


def labelled_blocks(ids=BLOCK_IDS, **kw) -> list[tuple[str, xr.DataArray, xr.DataArray]]:
    return [(b, *make_block(b, seed=i, **kw)) for i, b in enumerate(ids)]


# --- the generator itself ---------------------------------------------------------


def test_blocks_are_separable_by_nearest_class_mean():
    """The premise of 'training reaches high accuracy': a nearest-mean rule already does."""
    features, truth = make_block(seed=3, nan_fraction=0.0, empty_fraction=0.0, nodata_fraction=0.0)
    x = features.values.reshape(len(NAMES), -1).T[:, :INFORMATIVE]
    t = truth.values.ravel()
    means = _MEANS[np.searchsorted(np.asarray(CODES), np.asarray(CLASSES))][:, :INFORMATIVE]
    nearest = np.asarray(CLASSES)[((x[:, None, :] - means[None]) ** 2).sum(-1).argmin(1)]
    assert (nearest == t).mean() > 0.95


def test_blocks_have_gaps_and_nodata():
    features, truth = make_block(seed=1)
    empty = np.isnan(features.values).all(axis=0)
    assert empty.any() and (truth.values == 0).any()
    assert np.isnan(features.values).any(axis=0).sum() > empty.sum()  # some partial NaN pixels too
    assert set(np.unique(truth.values)) <= {0, *CLASSES}
    assert features.dtype == np.float32 and truth.dtype == np.uint8
