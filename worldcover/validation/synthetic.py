"""Small synthetic class-map COGs on the WorldCover grid, for tests, demos and notebooks."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from worldcover import storage
from worldcover.legend import NODATA, colormap
from worldcover.validation._io import write_with

PIXEL_DEG = 1.0 / 12000  # the WorldCover "10 m" pixel


def write_class_map(
    path: str | storage.Location, data: np.ndarray, west: float, north: float, pixel_deg: float = PIXEL_DEG
) -> storage.Location:
    """Write a uint8 class map as a COG in EPSG:4326 with the legend colour table, nodata 0, atomically."""
    import rasterio
    from affine import Affine

    data = np.asarray(data, dtype=np.uint8)
    profile = dict(
        driver="COG", width=data.shape[1], height=data.shape[0], count=1, dtype="uint8", crs="EPSG:4326",
        transform=Affine(pixel_deg, 0.0, west, 0.0, -pixel_deg, north), nodata=NODATA, blocksize=256,
    )

    def write(tmp: Path) -> None:
        with rasterio.open(tmp, "w", **profile) as dst:
            dst.write(data, 1)
            dst.write_colormap(1, colormap())

    return write_with(path, write)


def banded_map(
    shape: tuple[int, int], codes_and_fractions: list[tuple[int, float]], nodata_rows: int = 0
) -> np.ndarray:
    """Vertical bands of classes whose widths follow the given fractions (each class spans every row)."""
    h, w = shape
    fractions = [f for _, f in codes_and_fractions]
    edges = np.round(np.cumsum([0.0] + fractions) / sum(fractions) * w)
    cols = np.arange(w)
    codes = np.array([c for c, _ in codes_and_fractions], dtype=np.uint8)
    row = codes[np.clip(np.searchsorted(edges, cols, side="right") - 1, 0, len(codes) - 1)]
    data = np.broadcast_to(row, (h, w)).copy()
    if nodata_rows:
        data[-nodata_rows:] = NODATA
    return data
