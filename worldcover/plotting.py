"""Class maps in the official WorldCover colours, for notebooks and scripts (matplotlib imported lazily)."""

from __future__ import annotations

from typing import Any

import numpy as np

from worldcover.legend import CLASSES, colormap


def class_rgba(codes: Any) -> np.ndarray:
    """An (…, 4) uint8 RGBA image of a uint8 class-code array: legend colours, nodata (0) transparent."""
    lut = np.array([colormap()[i] for i in range(256)], dtype=np.uint8)
    return lut[np.asarray(codes, dtype=np.uint8)]


def legend_patches(codes: Any = None) -> list:
    """Matplotlib legend handles for the classes in ``codes`` (all eleven when None)."""
    from matplotlib.patches import Patch

    present = None if codes is None else {int(c) for c in np.unique(np.asarray(codes))}
    return [Patch(facecolor=f"#{c.colour}", edgecolor="0.3", linewidth=0.5, label=f"{c.code} {c.name}")
            for c in CLASSES if present is None or c.code in present]


def show_classes(ax: Any, codes: Any, extent: Any = None, title: str | None = None, legend: bool = True) -> Any:
    """Draw a class map on ``ax`` (extent W, E, S, N in its CRS units), with a legend of the classes present."""
    image = ax.imshow(class_rgba(codes), extent=extent, interpolation="nearest")
    if extent is not None:
        ax.ticklabel_format(useOffset=False)  # degrees in full, not as offsets from 46.49
    if title:
        ax.set_title(title, fontsize=9)
    if legend:
        ax.legend(handles=legend_patches(codes), loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=7,
                  frameon=False)
    return image
