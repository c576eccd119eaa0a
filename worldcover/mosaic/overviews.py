"""The overview pyramid: categorical mode of the 10 m classes at 100 m, 1 km and 10 km.

Class codes are labels, never numbers to average: an overview pixel is the
most frequent *class* among the 10 m pixels it covers. Nodata (0) never wins
over a class; a pixel is nodata only when all its 10 m pixels are nodata.
Ties go to the lower class code (deterministic, documented).

Exactness: every level is the mode of the **10 m pixels** (not a mode of
modes). Per 100 m cell we count the pixels of each class once; the 1 km and
10 km counts are sums of those counts, and each level's mode is taken from
its own counts. Every level cell lies inside one WorldCover tile (36000 px is
a multiple of 1000), so tiles never share a cell and each tile's pieces are
computed independently and cached (see :mod:`worldcover.mosaic.pieces`).

The global level COGs are then assembled from the cached per-tile pieces
through a VRT and GDAL's COG driver, which streams block by block with a
bounded block cache: memory does not depend on the number of tiles.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np
import rasterio
from rasterio.shutil import copy as rio_copy
from rio_cogeo.cogeo import cog_validate

from worldcover import storage
from worldcover.errors import DataError
from worldcover.grid import PIXELS_PER_DEGREE
from worldcover.legend import CODES, NODATA
from worldcover.storage import atomic_workdir


@dataclass(frozen=True)
class Level:
    """One level of the pyramid: ``factor`` 10 m pixels per side of a cell."""

    name: str
    factor: int

    @property
    def res(self) -> float:
        """Pixel size in degrees (1/1200, 1/120, 1/12)."""
        return self.factor / PIXELS_PER_DEGREE

    @property
    def metres(self) -> int:
        """Nominal pixel size in metres at the equator (WorldCover's naming: 10 m per 1/12000 degree)."""
        return 10 * self.factor


LEVELS: tuple[Level, ...] = (Level("100m", 10), Level("1km", 100), Level("10km", 1000))
# Pieces are cut on the coarsest level's grid so that every level's cells are whole.
PIECE_ALIGN = max(level.factor for level in LEVELS)

# Class index k (axis "class" of count arrays): 0 is nodata, 1..11 the legend codes in order.
CLASS_CODES = np.array([NODATA, *CODES], dtype=np.uint8)
N_CLASSES = len(CLASS_CODES)


def class_index_lut() -> np.ndarray:
    """256-entry lookup from a code to its class index; codes outside the legend map to 255."""
    lut = np.full(256, 255, dtype=np.uint8)
    lut[CLASS_CODES] = np.arange(N_CLASSES, dtype=np.uint8)
    return lut


def count_cells(cls: np.ndarray, factor: int) -> tuple[np.ndarray, np.ndarray]:
    """Class counts per ``factor`` x ``factor`` cell and per row of a class-index strip.

    ``cls`` is (y, x) class indices with y and x multiples of ``factor``. Returns
    ``cells`` (y/factor, x/factor, class) uint16 and ``rows`` (y, class) int64.
    One ``np.bincount`` over (row, cell column, class): no per-pixel Python loop.
    """
    h, w = cls.shape
    if h % factor or w % factor:
        raise ValueError(f"strip {cls.shape} is not a multiple of the cell size {factor}")
    ncol = w // factor
    base = (np.arange(h, dtype=np.int64)[:, None] * ncol + np.arange(w, dtype=np.int64)[None, :] // factor) * N_CLASSES
    per_row_col = np.bincount((base + cls).ravel(), minlength=h * ncol * N_CLASSES).reshape(h, ncol, N_CLASSES)
    rows = per_row_col.sum(axis=1)
    cells = per_row_col.reshape(h // factor, factor, ncol, N_CLASSES).sum(axis=1, dtype=np.uint16)
    return cells, rows


def aggregate(counts: np.ndarray, factor: int) -> np.ndarray:
    """Sum (y, x, class) counts over ``factor`` x ``factor`` blocks of cells (uint32)."""
    h, w, k = counts.shape
    return counts.reshape(h // factor, factor, w // factor, factor, k).sum(axis=(1, 3), dtype=np.uint32)


def categorical_mode(counts: np.ndarray) -> np.ndarray:
    """Most frequent class code per cell of (y, x, class) counts; nodata only if no class pixel.

    Class index 0 (nodata) is excluded from the vote; ``argmax`` returns the first
    maximum, so ties go to the lower code.
    """
    classes = counts[..., 1:]
    winner = classes.argmax(axis=-1) + 1
    winner = np.where(classes.max(axis=-1) > 0, winner, 0)
    return CLASS_CODES[winner]


def write_level_cog(
    source: str | os.PathLike | storage.Location, dest: str | os.PathLike | storage.Location, blocksize: int = 512
) -> storage.Location:
    """Copy a level mosaic (a VRT of cached pieces) into a validated COG, atomically.

    GDAL's COG driver streams the source block by block (the caller bounds
    GDAL's block cache). Overviews the source declares (the coarser levels)
    become the COG's internal overviews as they are; only a source without
    any gets overviews computed, with MODE resampling (categorical); GDAL
    then writes its own ``<file>.ovr.tmp`` beside the output, so the COG is
    written in a scratch folder that a killed run leaves swept, not beside ``dest``.
    """
    dest = storage.path(dest)
    with atomic_workdir(dest) as tmp:
        rio_copy(
            storage.gdal_path(source), str(tmp), driver="COG", COMPRESS="DEFLATE", BLOCKSIZE=str(blocksize),
            OVERVIEW_RESAMPLING="MODE", OVERVIEWS="AUTO", SPARSE_OK="TRUE", BIGTIFF="IF_SAFER", NUM_THREADS="ALL_CPUS",
        )
        ok, errors, _ = cog_validate(str(tmp), quiet=True)
        if not ok:
            raise DataError(f"{dest.name} is not a valid COG: {'; '.join(errors)}")
        with rasterio.open(tmp) as src:  # the colour table and nodata must survive the copy
            if src.nodata != NODATA or src.colormap(1)[CODES[0]][:3] == (0, 0, 0):
                raise DataError(f"{dest.name} lost its nodata value or colour table")
    return dest
