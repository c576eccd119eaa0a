"""Per-tile cached pieces: a tile's 100 m / 1 km / 10 km modes and class areas, in one pass.

Each finished tile is read once, window by window (strips of 1000 x W pixels,
counted 100 rows at a time), and gives:

- three small GeoTIFF pieces (categorical mode at 100 m, 1 km, 10 km) on the
  tile's grid, cut on the 10 km grid so every level's cells are whole;
- the pixel count and geodesic area of every class in the tile.

They are cached under ``ROOT/mosaic/<YEAR>/cache/<TILE>/`` with a record
(``record.json``, written last, like a tile's STAC item) whose key is the
Map COG's sha256 multihash from the tile's STAC item. A later build reuses a
piece whose record matches the current checksum and recomputes only new or
changed tiles: the build is incremental and linear in the number of tiles.
Memory is bounded by one tile (about 200 MB measured for a 36000 px wide window),
whatever the number of tiles.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import numpy as np
import rasterio
from affine import Affine
from rasterio.windows import Window

from worldcover import storage
from worldcover.errors import DataError
from worldcover.grid import CRS as GRID_CRS
from worldcover.grid import PIXEL_SIZE, TILE_PIXELS, Tile
from worldcover.layout import TilePaths, multihash_sha256
from worldcover.legend import colormap
from worldcover.mosaic.areas import strip_class_area_m2
from worldcover.mosaic.maps import MapFile, map_file_checksum
from worldcover.mosaic.overviews import (
    CLASS_CODES,
    LEVELS,
    N_CLASSES,
    PIECE_ALIGN,
    aggregate,
    categorical_mode,
    class_index_lut,
    count_cells,
)
from worldcover.storage import atomic_path, atomic_write_text
from worldcover.storage import sha256 as sha256_file

CACHE_VERSION = 1  # bump when the pieces' content or layout changes: every cache entry is then stale
RECORD = "record.json"
SUB_ROWS = 100  # rows counted per np.bincount call (bounds its temporaries to ~30 MB per 36000 columns)


@dataclass(frozen=True)
class PixelBox:
    """A rectangle of 10 m pixels in a tile's pixel grid (row/col offsets from the tile's NW corner)."""

    row: int
    col: int
    height: int
    width: int

    @property
    def row_stop(self) -> int:
        return self.row + self.height

    @property
    def col_stop(self) -> int:
        return self.col + self.width

    def aligned(self, align: int) -> PixelBox:
        """The smallest box containing this one whose edges are multiples of ``align``."""
        r0, c0 = (self.row // align) * align, (self.col // align) * align
        r1, c1 = -(-self.row_stop // align) * align, -(-self.col_stop // align) * align
        return PixelBox(r0, c0, r1 - r0, c1 - c0)

    def as_list(self) -> list[int]:
        return [self.row, self.col, self.height, self.width]


def map_window(src: rasterio.DatasetReader, tile: Tile, name: str) -> PixelBox:
    """Where a tile's Map COG lies in the tile's pixel grid; checks CRS, pixel size, alignment, dtype."""
    if src.count != 1 or src.dtypes[0] != "uint8":
        raise DataError(f"{name}: expected one uint8 band of class codes, found {src.count} x {src.dtypes[0]}")
    if src.crs is None or src.crs.to_epsg() != 4326:
        raise DataError(f"{name}: expected CRS {GRID_CRS}, found {src.crs}")
    t = src.transform
    if t.b or t.d or not np.isclose(t.a, PIXEL_SIZE, rtol=1e-9) or not np.isclose(t.e, -PIXEL_SIZE, rtol=1e-9):
        raise DataError(f"{name}: expected a north-up grid of {PIXEL_SIZE:.10g} degree pixels, found {tuple(t)[:6]}")
    col = (t.c - tile.lon) / PIXEL_SIZE
    row = (tile.lat + 3 - t.f) / PIXEL_SIZE
    if abs(col - round(col)) > 1e-3 or abs(row - round(row)) > 1e-3:
        raise DataError(f"{name}: origin ({t.c}, {t.f}) is not on tile {tile.id}'s pixel grid")
    box = PixelBox(int(round(row)), int(round(col)), src.height, src.width)
    if box.row < 0 or box.col < 0 or box.row_stop > TILE_PIXELS or box.col_stop > TILE_PIXELS:
        raise DataError(f"{name}: window {box.as_list()} (row, col, height, width) extends outside tile {tile.id}")
    return box


def map_checksum(paths: TilePaths | MapFile, memo_folder: storage.Location | None = None) -> str:
    """The Map COG's sha256 multihash as recorded in the tile's STAC item (hashing the file if absent).

    A plain Map file (:class:`worldcover.mosaic.maps.MapFile`) has no item: it is hashed, and the
    hash remembered in ``memo_folder`` while the file is unchanged."""
    if paths.item is None:
        return map_file_checksum(paths, memo_folder if memo_folder is not None else paths.dir)
    item = json.loads(paths.item.read_text())
    for asset in item.get("assets", {}).values():
        if str(asset.get("href", "")).rsplit("/", 1)[-1] == paths.map.name and asset.get("file:checksum"):
            return str(asset["file:checksum"])
    return multihash_sha256(sha256_file(paths.map))


def cache_dir(mosaic_dir: storage.Location, tile: Tile) -> storage.Location:
    return mosaic_dir / "cache" / tile.id


def load_record(folder: storage.Location) -> dict | None:
    try:
        return json.loads((folder / RECORD).read_text())
    except (OSError, json.JSONDecodeError):
        return None


def is_current(record: dict | None, folder: storage.Location, checksum: str) -> bool:
    """True when a cached record was made by this cache version from a Map with ``checksum``,
    and its piece files are all there with the recorded sizes."""
    if not record or record.get("version") != CACHE_VERSION or record.get("checksum") != checksum:
        return False
    for level in LEVELS:
        info = record.get("levels", {}).get(level.name, {})
        if storage.size(folder / str(info.get("file", ""))) != info.get("size"):
            return False
    return True


def _count_strip(
    src: rasterio.DatasetReader, window: PixelBox, box: PixelBox, strip_row: int, tile: Tile, lut: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
    """100 m class counts (y, x, class), pixel counts and areas (class) of one 10 km strip of the box.

    Returns None when the strip has no pixel of the window (all nodata).
    """
    r0, r1 = max(strip_row, window.row), min(strip_row + PIECE_ALIGN, window.row_stop)
    if r1 <= r0:
        return None
    codes = np.zeros((PIECE_ALIGN, box.width), dtype=np.uint8)  # padding is nodata
    c0 = window.col - box.col
    codes[r0 - strip_row : r1 - strip_row, c0 : c0 + window.width] = src.read(
        1, window=Window(0, r0 - window.row, window.width, r1 - r0)
    )
    cls = lut[codes]
    if (cls == 255).any():
        bad = sorted(set(np.unique(codes[cls == 255]).tolist()))
        raise DataError(
            f"{src.name}: codes {bad} are not WorldCover legend codes (expected 0 or {CLASS_CODES[1:].tolist()})"
        )
    f = LEVELS[0].factor
    cells = np.zeros((PIECE_ALIGN // f, box.width // f, N_CLASSES), dtype=np.uint16)  # zero counts: nodata
    pixels = np.zeros(N_CLASSES, dtype=np.int64)
    area = np.zeros(N_CLASSES, dtype=np.float64)
    for sub in range(0, PIECE_ALIGN, SUB_ROWS):
        if sub + SUB_ROWS <= r0 - strip_row or sub >= r1 - strip_row:
            continue  # only padding rows: nothing to count
        c, rows = count_cells(cls[sub : sub + SUB_ROWS], f)
        cells[sub // f : (sub + SUB_ROWS) // f] = c
        pixels += rows.sum(axis=0)
        area += strip_class_area_m2(rows, tile, strip_row + sub)
    return cells, pixels, area


def _write_piece(dest: storage.Location, data: np.ndarray, transform: Affine) -> dict:
    """A small GeoTIFF piece (uint8 codes, nodata 0, colour table), atomically; its header facts."""
    h, w = data.shape
    tiled = h >= 256 and w >= 256
    blocks = {"blockxsize": 256, "blockysize": 256} if tiled else {}
    profile = dict(driver="GTiff", height=h, width=w, count=1, dtype="uint8", crs=GRID_CRS, transform=transform,
                   nodata=0, compress="deflate", tiled=tiled, **blocks)
    with atomic_path(dest, suffix=".tif") as tmp:
        with rasterio.open(tmp, "w", **profile) as dst:
            dst.write(data, 1)
            dst.write_colormap(1, colormap())
        with rasterio.open(tmp) as src:
            by, bx = src.block_shapes[0]
        nbytes = tmp.stat().st_size  # the bytes stored at dest
    return {"file": dest.name, "shape": [h, w], "block": [bx, by], "size": nbytes}


def compute_tile_pieces(paths: TilePaths | MapFile, folder: storage.Location, checksum: str) -> dict:
    """Read a tile's Map COG once, window by window; write its level pieces and record; return the record."""
    tile = paths.tile
    lut = class_index_lut()
    with rasterio.open(storage.gdal_path(paths.map)) as src:
        window = map_window(src, tile, paths.map.name)
        map_block = [src.block_shapes[0][1], src.block_shapes[0][0]]
        box = window.aligned(PIECE_ALIGN)
        levels = {lv.name: np.zeros((box.height // lv.factor, box.width // lv.factor), np.uint8) for lv in LEVELS}
        pixels = np.zeros(N_CLASSES, dtype=np.int64)
        area = np.zeros(N_CLASSES, dtype=np.float64)
        for strip_row in range(box.row, box.row_stop, PIECE_ALIGN):
            counted = _count_strip(src, window, box, strip_row, tile, lut)
            if counted is None:
                continue
            counts, p, a = counted
            pixels += p
            area += a
            for i, lv in enumerate(LEVELS):
                if i:
                    counts = aggregate(counts, lv.factor // LEVELS[i - 1].factor)
                y0 = (strip_row - box.row) // lv.factor
                levels[lv.name][y0 : y0 + counts.shape[0]] = categorical_mode(counts)
    storage.makedirs(folder)
    origin = tile.transform @ Affine.translation(box.col, box.row)
    record = {
        "version": CACHE_VERSION,
        "tile": tile.id,
        "year": paths.year,
        "checksum": checksum,
        "map": storage.relpath(paths.map, folder),
        "window": window.as_list(),
        "map_block": map_block,
        "box": box.as_list(),
        "levels": {
            lv.name: _write_piece(folder / f"{lv.name}.tif", levels[lv.name], origin @ Affine.scale(lv.factor))
            for lv in LEVELS
        },
        "pixels": {str(int(c)): int(n) for c, n in zip(CLASS_CODES[1:], pixels[1:], strict=True)},
        "area_m2": {str(int(c)): float(x) for c, x in zip(CLASS_CODES[1:], area[1:], strict=True)},
    }
    atomic_write_text(folder / RECORD, json.dumps(record, indent=1))
    return record


def tile_pieces(paths: TilePaths | MapFile, mosaic_dir: storage.Location, checksum: str) -> tuple[dict, bool]:
    """The tile's cached record, computing it only if missing or stale; (record, computed?)."""
    folder = cache_dir(mosaic_dir, paths.tile)
    record = load_record(folder)
    if is_current(record, folder, checksum):
        return record, False  # type: ignore[return-value]
    return compute_tile_pieces(paths, folder, checksum), True
