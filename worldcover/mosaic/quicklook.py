"""A PNG quicklook of the mosaic with the legend (class names, official colours).

Drawn from a coarse level COG (1 km, or 10 km when the 1 km level is large),
read with ``out_shape`` when it is still larger than ``max_pixels`` on a side:
rasterio then reads the COG's own (mode) overviews, so memory stays small
whatever the extent. The map lies over sea, land and coastline from the 1 km
GLOBE land mask that ships in the package (no network, no cartopy), framed
around the campaign's tiles with a margin. Tiles are outlined, and when the
mapped data cover little of the extent (a pilot campaign of a few blocks,
smaller than a pixel at that scale) each tile also gets a marker of a fixed
minimum size, and panels zoom on the data of the first tiles, read from their
10 m Map COGs. Uses matplotlib's object API (no pyplot global state).
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np
import rasterio
from rasterio.enums import Resampling

from worldcover import landmask as lm
from worldcover import storage
from worldcover.grid import land_fraction_table
from worldcover.legend import CLASSES, colormap
from worldcover.storage import atomic_path

MAX_PIXELS = 1024  # the figure shows about 800 px of map: more would only cost memory
MAX_PANELS = 4  # zoomed tile panels under the overview
PANEL_PIXELS = 256


def pick_level(paths: list[storage.Location], max_pixels: int = MAX_PIXELS) -> storage.Location:
    """The finest of ``paths`` (fine to coarse) whose larger side fits ``max_pixels``; else the coarsest."""
    for p in paths:
        with rasterio.open(storage.gdal_path(p)) as src:
            if max(src.width, src.height) <= max_pixels:
                return p
    return paths[-1]


def read_small(
    path: storage.Location, max_pixels: int = MAX_PIXELS
) -> tuple[np.ndarray, tuple[float, float, float, float]]:
    """Codes of a level COG at most ``max_pixels`` on a side (overview read), and its (W, E, S, N) extent."""
    with rasterio.open(storage.gdal_path(path)) as src:
        scale = max(1.0, max(src.width, src.height) / max_pixels)
        shape = (max(1, round(src.height / scale)), max(1, round(src.width / scale)))
        data = src.read(1, out_shape=shape, resampling=Resampling.mode)
        b = src.bounds
    return data, (b.left, b.right, b.bottom, b.top)


def data_window(map_path: storage.Location, max_pixels: int = PANEL_PIXELS) -> tuple[np.ndarray, tuple] | None:
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


OCEAN_RGB = (0xD6, 0xE4, 0xEF)  # background where the land mask says sea
LAND_RGB = (0xEE, 0xEB, 0xE3)  # and land; the map's colours go on top
COAST = "0.45"
BACKGROUND_CELLS = 720  # land-mask samples across the widest side of a panel
MIN_MARKER_PT = 7.0  # a tile is drawn at least this big (points), whatever the scale
TILE_EDGE = "#b00020"


def _hex(rgb: tuple[int, int, int]) -> str:
    return "#" + "".join(f"{v:02X}" for v in rgb)


def land_mask(extent: tuple[float, float, float, float], cells: int = BACKGROUND_CELLS) -> np.ndarray:
    """Land (True) / sea at cell centres over (W, E, S, N), at most ``cells`` a side and no finer than the
    mask's 1 km; from the 1 km GLOBE mask that ships in the package (no network, no cartopy)."""
    west, east, south, north = extent
    step = max(max(east - west, north - south) / cells, 1 / 120)
    nx, ny = max(2, int(np.ceil((east - west) / step))), max(2, int(np.ceil((north - south) / step)))
    lon = np.linspace(west, east, nx, endpoint=False) + (east - west) / nx / 2
    lat = np.linspace(north, south, ny, endpoint=False) - (north - south) / ny / 2
    lon2, lat2 = np.meshgrid(lon, lat)
    try:
        return globe_land(lon2, lat2)
    except (ImportError, OSError, KeyError, ValueError):  # the 3-degree land-fraction table: coarse, always there
        table = land_fraction_table()
        rows = np.clip(((90 - lat2) // 3).astype(int), 0, table.shape[0] - 1)
        cols = np.clip(((lon2 + 180) // 3).astype(int), 0, table.shape[1] - 1)
        return table[rows, cols] > 0.5


def globe_land(lon: np.ndarray, lat: np.ndarray) -> np.ndarray:
    """GLOBE's 1 km land mask at points, read bit by bit from the packed coast table that ships in the
    package (:mod:`worldcover.landmask`): 27 MB held for the call, where unpacking the whole
    table (as the validation's repeated look-ups do) would hold 220 MB in the merge for one picture."""
    from importlib import resources

    with resources.files("worldcover.data").joinpath(lm.COAST_TABLE).open("rb") as f:
        z = np.load(f)
        index, packed = z["index"], z["tiles"]  # (60, 120) tile codes; (n, 360, 45) bits of the mixed tiles
    cells = lm.CELLS_PER_DEGREE
    col = ((np.asarray(lon, float) + 180.0) % 360.0 * cells).astype(np.int64).clip(0, 360 * cells - 1)
    row = (np.clip(90.0 - np.asarray(lat, float), 0.0, 180.0 - 1e-9) * cells).astype(np.int64).clip(0, 180 * cells - 1)
    k = index[row // lm.TILE_CELLS, col // lm.TILE_CELLS].astype(np.int64)
    out = k == lm.ALL_LAND
    mixed = k >= 0
    r, c = row[mixed] % lm.TILE_CELLS, col[mixed] % lm.TILE_CELLS
    out[mixed] = (packed[k[mixed], r, c // 8] >> (7 - c % 8)) & 1  # np.packbits' order: first cell in the top bit
    return out


def draw_background(ax, extent: tuple[float, float, float, float], cells: int = BACKGROUND_CELLS) -> None:
    """Sea, land and the coastline under a panel's map, so that the map has a place on Earth."""
    land = land_mask(extent, cells)
    rgb = np.where(land[..., None], np.array(LAND_RGB, np.uint8), np.array(OCEAN_RGB, np.uint8))
    ax.imshow(rgb, extent=extent, interpolation="nearest", zorder=0)
    if land.any() and not land.all():
        ax.contour(land.astype(np.float32), levels=[0.5], colors=COAST, linewidths=0.5, extent=extent,
                   origin="upper", zorder=1)


def view_extent(bounds: tuple[float, float, float, float], min_span: float = 12.0) -> tuple[float, float, float, float]:
    """(W, E, S, N) around ``bounds`` with a margin (a tenth of the span, at least ``min_span`` across), so that
    the coasts around a small campaign show; clipped to the globe."""
    west, east, south, north = bounds
    cx, cy = (west + east) / 2, (south + north) / 2
    half_w = max((east - west) * 0.6, min_span / 2)
    half_h = max((north - south) * 0.6, min_span / 4)
    return (max(-180.0, cx - half_w), min(180.0, cx + half_w), max(-90.0, cy - half_h), min(90.0, cy + half_h))


def render_quicklook(dest: str | os.PathLike | storage.Location, level_path: storage.Location, title: str,
                     max_pixels: int = MAX_PIXELS,
                     tiles: Sequence[tuple[str, tuple[float, float, float, float], storage.Location]] = (),
                     ) -> storage.Location:
    """Write the quicklook PNG of one level COG, atomically.

    The overview shows the map over sea, land and coastline (the 1 km land mask
    that ships in the package) around the campaign's tiles. ``tiles``: (id, (W, S,
    E, N), Map COG path) of the mosaic's tiles, outlined; when the data fill under a
    tenth of the overview (a pilot of a few blocks, smaller than a pixel at that
    scale), each tile is also marked at least :data:`MIN_MARKER_PT` across, and the
    first :data:`MAX_PANELS` tiles get a panel zoomed on their data.
    """
    from matplotlib.artist import Artist
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch, Rectangle

    data, extent = read_small(level_path, max_pixels)
    lut = np.array([colormap()[i] for i in range(256)], dtype=np.uint8)
    rgba = lut[data]  # (y, x, rgba); nodata is transparent
    sparse = bool(tiles) and np.count_nonzero(data) < 0.1 * data.size
    view = view_extent(extent)
    aspect = (view[1] - view[0]) / max(view[3] - view[2], 1e-9)
    panels = [(tid, win) for tid, _, path in list(tiles)[:MAX_PANELS]
              if sparse and (win := data_window(path)) is not None]
    fig = Figure(figsize=(min(14.0, max(6.0, 5.0 * aspect)) + 3.2, 5.5 + (3.0 if panels else 0.0)), dpi=120)
    FigureCanvasAgg(fig)
    top = 3.0 / 8.5 if panels else 0.0
    ax = fig.add_axes((0.06, top + 0.1 * (1 - top), 0.62, 0.8 * (1 - top)))
    draw_background(ax, view)
    ax.imshow(rgba, extent=extent, interpolation="nearest", zorder=2)
    few = sparse or len(tiles) <= 30  # many tiles of a full map: thin grey outlines that leave the map visible
    data_at = {tid: ((pext[0] + pext[1]) / 2, (pext[2] + pext[3]) / 2) for tid, (_, pext) in panels}
    for tid, (west, south, east, north), _ in tiles:
        ax.add_patch(Rectangle((west, south), east - west, north - south, fill=False,
                               edgecolor=TILE_EDGE if few else "0.3", linewidth=0.8 if few else 0.3, zorder=3))
        if sparse:  # the tile's data are smaller than a pixel here: a marker that shows at any scale, on the data
            x, y = data_at.get(tid, ((west + east) / 2, (south + north) / 2))
            ax.plot([x], [y], marker="s", markersize=MIN_MARKER_PT, markerfacecolor="none",
                    markeredgecolor=TILE_EDGE, markeredgewidth=1.4, zorder=4)
        if len(tiles) <= 30:
            ax.annotate(tid, (west, north), xytext=(2, -2), textcoords="offset points", fontsize=7, color="0.1",
                        va="top", zorder=5)  # inside the tile's north-west corner: never beside a neighbour
    ax.set_xlim(view[0], view[1])
    ax.set_ylim(view[2], view[3])
    ax.set_aspect("equal")
    ax.set_xlabel("longitude (°)")
    ax.set_ylabel("latitude (°)")
    ax.set_title(title, fontsize=10)
    for i, (tid, (pdata, pext)) in enumerate(panels):
        width = 0.92 / len(panels)
        pax = fig.add_axes((0.06 + i * width, 0.04, width - 0.04, top - 0.04))
        draw_background(pax, pext, cells=120)
        pax.imshow(lut[pdata], extent=pext, interpolation="nearest", zorder=2)
        pax.set_xlim(pext[0], pext[1])
        pax.set_ylim(pext[2], pext[3])
        pax.set_title(f"{tid} (data)", fontsize=7)
        pax.tick_params(labelsize=6)
        pax.ticklabel_format(useOffset=False)  # plain degrees, not "+4.049e1"
        pax.locator_params(nbins=3)
    handles: list[Artist] = [
        Patch(facecolor=f"#{c.colour}", edgecolor="0.3", linewidth=0.5, label=f"{c.code}  {c.name}") for c in CLASSES
    ]
    handles += [Patch(facecolor=_hex(LAND_RGB), edgecolor=COAST, linewidth=0.5, label="land (not mapped)"),
                Patch(facecolor=_hex(OCEAN_RGB), edgecolor=COAST, linewidth=0.5, label="sea"),
                Line2D([], [], color=TILE_EDGE, marker="s", markerfacecolor="none", linestyle="none",
                       label="mosaic tile (3°)")]
    fig.legend(handles=handles, loc="center left", bbox_to_anchor=(0.7, 0.5), frameon=False, fontsize=8,
               title="WorldCover legend", title_fontsize=9)
    dest = storage.path(dest)
    with atomic_path(dest, suffix=".png") as tmp:
        fig.savefig(tmp, format="png")
    return dest
