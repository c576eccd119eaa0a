"""A PNG quicklook of the mosaic with the legend (class names, official colours).

Drawn from a coarse level COG (1 km, or 10 km when the 1 km level is large),
read with ``out_shape`` when it is still larger than ``max_pixels`` on a side:
rasterio then reads the COG's own (mode) overviews, so memory stays small
whatever the extent. Uses matplotlib's object API (no pyplot global state).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import rasterio
from rasterio.enums import Resampling

from worldcover.cog import atomic_path
from worldcover.legend import CLASSES, colormap

MAX_PIXELS = 1024  # the figure shows about 800 px of map: more would only cost memory


def pick_level(paths: list[Path], max_pixels: int = MAX_PIXELS) -> Path:
    """The finest of ``paths`` (fine to coarse) whose larger side fits ``max_pixels``; else the coarsest."""
    for p in paths:
        with rasterio.open(p) as src:
            if max(src.width, src.height) <= max_pixels:
                return p
    return paths[-1]


def read_small(path: Path, max_pixels: int = MAX_PIXELS) -> tuple[np.ndarray, tuple[float, float, float, float]]:
    """Codes of a level COG at most ``max_pixels`` on a side (overview read), and its (W, E, S, N) extent."""
    with rasterio.open(path) as src:
        scale = max(1.0, max(src.width, src.height) / max_pixels)
        shape = (max(1, round(src.height / scale)), max(1, round(src.width / scale)))
        data = src.read(1, out_shape=shape, resampling=Resampling.mode)
        b = src.bounds
    return data, (b.left, b.right, b.bottom, b.top)


def render_quicklook(dest: str | os.PathLike, level_path: Path, title: str, max_pixels: int = MAX_PIXELS) -> Path:
    """Write the quicklook PNG of one level COG, atomically."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.patches import Patch

    data, extent = read_small(level_path, max_pixels)
    lut = np.array([colormap()[i] for i in range(256)], dtype=np.uint8)
    rgba = lut[data]  # (y, x, rgba); nodata is transparent
    h, w = data.shape
    aspect = w / h
    fig = Figure(figsize=(min(14.0, max(6.0, 5.0 * aspect)) + 3.2, 5.5), dpi=120)
    FigureCanvasAgg(fig)
    ax = fig.add_axes((0.06, 0.1, 0.62, 0.8))
    ax.set_facecolor("#dde6ee")
    ax.imshow(rgba, extent=extent, interpolation="nearest")
    ax.set_xlabel("longitude (°)")
    ax.set_ylabel("latitude (°)")
    ax.set_title(title, fontsize=10)
    handles = [Patch(facecolor=f"#{c.colour}", edgecolor="0.3", linewidth=0.5, label=f"{c.code}  {c.name}")
               for c in CLASSES]
    fig.legend(handles=handles, loc="center left", bbox_to_anchor=(0.7, 0.5), frameon=False, fontsize=8,
               title="WorldCover legend", title_fontsize=9)
    dest = Path(dest)
    with atomic_path(dest, suffix=".png") as tmp:
        fig.savefig(tmp, format="png")
    return dest
