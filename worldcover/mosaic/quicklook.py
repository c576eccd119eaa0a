"""A PNG quicklook of the mosaic with the legend (class names, official colours).

Drawn from a coarse level COG (1 km, or 10 km when the 1 km level is large),
read with ``out_shape`` when it is still larger than ``max_pixels`` on a side:
rasterio then reads the COG's own (mode) overviews, so memory stays small
whatever the extent. Tiles are outlined, and when the mapped data cover little
of the extent (a pilot campaign of a few blocks), panels zoom on the data of
the first tiles, read from their 10 m Map COGs. Uses matplotlib's object API
(no pyplot global state).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

import numpy as np
import rasterio
from rasterio.enums import Resampling

from worldcover import storage
from worldcover.cog import atomic_path
from worldcover.legend import CLASSES, colormap

MAX_PIXELS = 1024  # the figure shows about 800 px of map: more would only cost memory
MAX_PANELS = 4  # zoomed tile panels under the overview
PANEL_PIXELS = 256


def pick_level(paths: list[Path], max_pixels: int = MAX_PIXELS) -> Path:
    """The finest of ``paths`` (fine to coarse) whose larger side fits ``max_pixels``; else the coarsest."""
    for p in paths:
        with rasterio.open(storage.gdal_path(p)) as src:
            if max(src.width, src.height) <= max_pixels:
                return p
    return paths[-1]


def read_small(path: Path, max_pixels: int = MAX_PIXELS) -> tuple[np.ndarray, tuple[float, float, float, float]]:
    """Codes of a level COG at most ``max_pixels`` on a side (overview read), and its (W, E, S, N) extent."""
    with rasterio.open(storage.gdal_path(path)) as src:
        scale = max(1.0, max(src.width, src.height) / max_pixels)
        shape = (max(1, round(src.height / scale)), max(1, round(src.width / scale)))
        data = src.read(1, out_shape=shape, resampling=Resampling.mode)
        b = src.bounds
    return data, (b.left, b.right, b.bottom, b.top)


def data_window(map_path: Path, max_pixels: int = PANEL_PIXELS) -> tuple[np.ndarray, tuple] | None:
    """The mapped part of one tile's Map COG (bounding box of data, at most ``max_pixels`` a side), or None.

    The box is found on a decimated read (the COG's mode overviews), then read
    again at up to ``max_pixels``: two small reads whatever the tile size.
    """
    from rasterio.windows import Window

    with rasterio.open(storage.gdal_path(map_path)) as src:
        scale = max(1.0, max(src.width, src.height) / 512)
        coarse = src.read(1, out_shape=(max(1, round(src.height / scale)), max(1, round(src.width / scale))),
                          resampling=Resampling.nearest)
        rows, cols = np.nonzero(coarse != src.nodata)
        if rows.size == 0:
            return None
        fy, fx = src.height / coarse.shape[0], src.width / coarse.shape[1]
        r0, r1 = max(0, int((rows.min() - 1) * fy)), min(src.height, int((rows.max() + 2) * fy))
        c0, c1 = max(0, int((cols.min() - 1) * fx)), min(src.width, int((cols.max() + 2) * fx))
        win = Window(c0, r0, c1 - c0, r1 - r0)
        k = max(1.0, max(win.width, win.height) / max_pixels)
        data = src.read(1, window=win, out_shape=(max(1, round(win.height / k)), max(1, round(win.width / k))),
                        resampling=Resampling.mode)
        b = src.window_bounds(win)
    return data, (b[0], b[2], b[1], b[3])


def render_quicklook(dest: str | os.PathLike, level_path: Path, title: str, max_pixels: int = MAX_PIXELS,
                     tiles: Sequence[tuple[str, tuple[float, float, float, float], Path]] = ()) -> Path:
    """Write the quicklook PNG of one level COG, atomically.

    ``tiles``: (id, (W, S, E, N), Map COG path) of the mosaic's tiles, outlined
    on the overview; when the data fill under a tenth of the overview, the
    first :data:`MAX_PANELS` tiles get a zoomed panel each.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.patches import Patch, Rectangle

    data, extent = read_small(level_path, max_pixels)
    lut = np.array([colormap()[i] for i in range(256)], dtype=np.uint8)
    rgba = lut[data]  # (y, x, rgba); nodata is transparent
    h, w = data.shape
    aspect = w / h
    sparse = bool(tiles) and np.count_nonzero(data) < 0.1 * data.size
    panels = [(tid, win) for tid, _, path in list(tiles)[:MAX_PANELS]
              if sparse and (win := data_window(path)) is not None]
    fig = Figure(figsize=(min(14.0, max(6.0, 5.0 * aspect)) + 3.2, 5.5 + (3.0 if panels else 0.0)), dpi=120)
    FigureCanvasAgg(fig)
    top = 3.0 / 8.5 if panels else 0.0
    ax = fig.add_axes((0.06, top + 0.1 * (1 - top), 0.62, 0.8 * (1 - top)))
    ax.set_facecolor("#dde6ee")
    ax.imshow(rgba, extent=extent, interpolation="nearest")
    for tid, (west, south, east, north), _ in tiles:
        ax.add_patch(Rectangle((west, south), east - west, north - south, fill=False, edgecolor="0.25",
                               linewidth=0.6))
        if len(tiles) <= 30:
            ax.annotate(tid, (west, north), fontsize=6, color="0.2", va="bottom")
    ax.set_xlabel("longitude (°)")
    ax.set_ylabel("latitude (°)")
    ax.set_title(title, fontsize=10)
    for i, (tid, (pdata, pext)) in enumerate(panels):
        width = 0.92 / len(panels)
        pax = fig.add_axes((0.06 + i * width, 0.04, width - 0.04, top - 0.04))
        pax.set_facecolor("#dde6ee")
        pax.imshow(lut[pdata], extent=pext, interpolation="nearest")
        pax.set_title(f"{tid} (data)", fontsize=7)
        pax.tick_params(labelsize=6)
        pax.locator_params(nbins=3)
    handles = [Patch(facecolor=f"#{c.colour}", edgecolor="0.3", linewidth=0.5, label=f"{c.code}  {c.name}")
               for c in CLASSES]
    fig.legend(handles=handles, loc="center left", bbox_to_anchor=(0.7, 0.5), frameon=False, fontsize=8,
               title="WorldCover legend", title_fontsize=9)
    dest = storage.path(dest)
    with atomic_path(dest, suffix=".png") as tmp:
        fig.savefig(tmp, format="png")
    return dest
