"""Score a map against labelled reference pixels (e.g. the WorldCereal Flanders parcels).

A label raster in its own (UTM) grid becomes points at its pixel centres
(:func:`label_points`); the blocks of the WorldCover grid that hold them are
found (:func:`blocks_for_points`) so only those are processed; the map is
sampled at the points (:func:`sample_map`) and scored with
:class:`worldcover.model.metrics.ClassificationMetrics`. Sample counts, not
area-weighted estimates: a quick check of a model on real pixels.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd
import rasterio
from pyproj import Transformer

from worldcover.errors import DataError, InputError
from worldcover.grid import PIXELS_PER_DEGREE, TILE_DEGREES, Block, Tile, check_block_size, tile_of
from worldcover.legend import BY_CODE
from worldcover.model.metrics import ClassificationMetrics


def label_points(labels: str | os.PathLike, year: int = 2018, nodata: int = 0) -> pd.DataFrame:
    """Points at the centres of the labelled pixels of a label raster (WorldCover codes, ``nodata`` = unlabelled).

    Columns: lon, lat (WGS84), class (WorldCover code), year, x, y (pixel centre in the raster's CRS).
    Accepts the raster itself or an archive written by :mod:`worldcover.sources.worldcereal`
    (its one ``labels/*_labels.tif``).
    """
    path = label_raster(Path(labels))
    with rasterio.open(path) as src:
        codes = src.read(1)
        transform, crs = src.transform, src.crs
    rows, cols = np.nonzero(codes != nodata)
    xs, ys = rasterio.transform.xy(transform, rows, cols, offset="center")
    xs, ys = np.asarray(xs, dtype=np.float64), np.asarray(ys, dtype=np.float64)
    lon, lat = Transformer.from_crs(crs, "EPSG:4326", always_xy=True).transform(xs, ys)
    return pd.DataFrame({"lon": lon, "lat": lat, "class": codes[rows, cols].astype(np.int64),
                         "year": np.full(rows.size, int(year), dtype=np.int64), "x": xs, "y": ys})


def label_raster(path: Path) -> Path:
    """The label GeoTIFF itself, or the one label raster of an imported archive (labels/*_labels.tif)."""
    if path.is_file():
        return path
    found = sorted((path / "labels").glob("*_labels.tif")) if path.is_dir() else []
    if len(found) != 1:
        raise InputError(f"labels {str(path)!r}: expected a label GeoTIFF or an archive with one "
                         f"labels/*_labels.tif (found {len(found)})")
    return found[0]


def blocks_for_points(lon: np.ndarray, lat: np.ndarray, block_size: int) -> tuple[Tile, list[Block]]:
    """The WorldCover tile holding the points and its blocks (of ``block_size``) that contain any of them."""
    check_block_size(block_size)
    lon, lat = np.asarray(lon, dtype=np.float64), np.asarray(lat, dtype=np.float64)
    if lon.size == 0:
        raise InputError("no points: expected at least one labelled pixel")
    tile = tile_of(float(lon[0]), float(lat[0]))
    col = np.floor((lon - tile.lon) * PIXELS_PER_DEGREE).astype(np.int64)
    row = np.floor((tile.lat + TILE_DEGREES - lat) * PIXELS_PER_DEGREE).astype(np.int64)
    n = TILE_DEGREES * PIXELS_PER_DEGREE
    if (col < 0).any() or (col >= n).any() or (row < 0).any() or (row >= n).any():
        raise InputError(f"points span more than tile {tile.id}: expected a patch inside one WorldCover tile")
    keys = np.unique(np.stack([row // block_size, col // block_size], axis=1), axis=0)
    return tile, [tile.block(int(r), int(c), block_size) for r, c in keys]


def blocks_spec(blocks: list[Block]) -> str:
    """``r8c0,r8c1``: the ``--blocks`` argument of ``worldcover tile run`` for these blocks."""
    return ",".join(f"r{b.row}c{b.col}" for b in blocks)


def sample_map(map_path: str | os.PathLike, lon: np.ndarray, lat: np.ndarray) -> np.ndarray:
    """Map values (band 1) at lon/lat points: one windowed read around the points, nearest pixel."""
    with rasterio.open(map_path) as src:
        if src.crs is None or src.crs.to_epsg() != 4326:
            raise DataError(f"map {str(map_path)!r} is in {src.crs}, expected EPSG:4326")
        rows, cols = rasterio.transform.rowcol(src.transform, np.asarray(lon), np.asarray(lat))
        rows, cols = np.asarray(rows, dtype=np.int64), np.asarray(cols, dtype=np.int64)
        if rows.min() < 0 or cols.min() < 0 or rows.max() >= src.height or cols.max() >= src.width:
            raise DataError(f"points fall outside map {str(map_path)!r}")
        r0, c0 = int(rows.min()), int(cols.min())
        window = rasterio.windows.Window(c0, r0, int(cols.max()) - c0 + 1, int(rows.max()) - r0 + 1)
        data = src.read(1, window=window)
    return data[rows - r0, cols - c0]


def score(reference: np.ndarray, predicted: np.ndarray) -> ClassificationMetrics:
    """Confusion over every code seen in either (0 = no data in the map counts as an error, and shows)."""
    return ClassificationMetrics.from_codes(np.asarray(reference), np.asarray(predicted))


def format_metrics(m: ClassificationMetrics) -> str:
    """OA, per-class recall/precision and the confusion matrix as a compact text table."""
    def name(code: int) -> str:
        return BY_CODE[code].name if code in BY_CODE else ("nodata" if code == 0 else str(code))

    lines = [f"labelled pixels {m.n}   OA {100 * m.overall_accuracy:.1f} %   kappa {m.kappa:.3f}",
             f"{'class':<22}{'n':>6}{'recall':>8}{'prec.':>8}"]
    for i, code in enumerate(m.labels):
        r, p = m.recall[i], m.precision[i]
        fmt = lambda v: f"{100 * v:7.1f}%" if np.isfinite(v) else "      - "  # noqa: E731
        lines.append(f"{code:>3} {name(code):<18}{int(m.support[i]):>6}{fmt(r)}{fmt(p)}")
    lines.append("confusion (rows reference, columns map):")
    lines.append(" " * 6 + "".join(f"{c:>6}" for c in m.labels))
    for i, code in enumerate(m.labels):
        lines.append(f"{code:>6}" + "".join(f"{v:>6}" for v in m.confusion[i]))
    return "\n".join(lines)
