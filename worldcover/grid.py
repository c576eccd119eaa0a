"""The ESA WorldCover grid: 3x3 degree tiles of 36000 x 36000 px in EPSG:4326.

Tiles are named by their south-west corner (``N00E006`` covers lon 6..9, lat
0..3). A tile is processed in square blocks; a block carries its own odc-geo
GeoBox so every later stage loads and writes on exactly the same pixels.
"""

from __future__ import annotations

import functools
import math
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from importlib import resources

import numpy as np
from affine import Affine
from odc.geo.geobox import GeoBox

from worldcover.errors import InputError

CRS = "EPSG:4326"
PIXELS_PER_DEGREE = 12000
PIXEL_SIZE = 1.0 / PIXELS_PER_DEGREE  # "10 m"
TILE_DEGREES = 3
TILE_PIXELS = TILE_DEGREES * PIXELS_PER_DEGREE  # 36000
DEFAULT_BLOCK_SIZE = 3000
# WorldCover's tiles run from S60 to the row starting at N81 (lat 81..84).
PRODUCT_SOUTH, PRODUCT_NORTH = -60, 84

# InputQuality layer: 0.0005 degree (6000 x 6000 per tile).
QUALITY_PIXELS_PER_DEGREE = 2000

_TILE_RE = re.compile(r"^([NS])(\d{2})([EW])(\d{3})$")
_BLOCK_RE = re.compile(r"^r(\d+)c(\d+)$")


@dataclass(frozen=True, order=True)
class Tile:
    """One 3x3 degree WorldCover tile, identified by its south-west corner."""

    lat: int  # south edge, degrees
    lon: int  # west edge, degrees

    def __post_init__(self) -> None:
        if self.lat % TILE_DEGREES or self.lon % TILE_DEGREES:
            raise InputError(
                f"tile corner ({self.lat}, {self.lon}) is not on the {TILE_DEGREES}-degree lattice"
            )
        if not (-90 <= self.lat <= 90 - TILE_DEGREES and -180 <= self.lon <= 180 - TILE_DEGREES):
            raise InputError(f"tile corner ({self.lat}, {self.lon}) is outside the globe")

    @classmethod
    def parse(cls, tile_id: str) -> Tile:
        """Parse ``N00E006``; raise :class:`InputError` saying what was expected."""
        m = _TILE_RE.match(tile_id.strip()) if isinstance(tile_id, str) else None
        expected = "expected e.g. N00E006: N/S + 2-digit latitude, E/W + 3-digit longitude"
        if not m:
            raise InputError(f"invalid tile id {tile_id!r}: {expected}")
        ns, lat_s, ew, lon_s = m.groups()
        lat = int(lat_s) * (1 if ns == "N" else -1)
        lon = int(lon_s) * (1 if ew == "E" else -1)
        if lat > 90 - TILE_DEGREES or lat < -90 or lon < -180 or lon > 180 - TILE_DEGREES:
            raise InputError(
                f"invalid tile id {tile_id!r}: latitude must be S90..N87 and longitude W180..E177"
            )
        if lat % TILE_DEGREES or lon % TILE_DEGREES:
            raise InputError(
                f"invalid tile id {tile_id!r}: corner is not on the 3-degree lattice "
                f"(latitude and longitude must be multiples of {TILE_DEGREES})"
            )
        tile = cls(lat, lon)
        if tile.id != tile_id.strip():  # S00 or W000 are not the canonical spelling
            raise InputError(f"invalid tile id {tile_id!r}: the canonical id is {tile.id}")
        return tile

    @property
    def id(self) -> str:
        ns = "N" if self.lat >= 0 else "S"
        ew = "E" if self.lon >= 0 else "W"
        return f"{ns}{abs(self.lat):02d}{ew}{abs(self.lon):03d}"

    def __str__(self) -> str:
        return self.id

    @property
    def bbox(self) -> tuple[float, float, float, float]:
        """(west, south, east, north) in degrees."""
        return (self.lon, self.lat, self.lon + TILE_DEGREES, self.lat + TILE_DEGREES)

    @property
    def center(self) -> tuple[float, float]:
        """(lon, lat) of the tile centre."""
        return (self.lon + TILE_DEGREES / 2, self.lat + TILE_DEGREES / 2)

    @property
    def shape(self) -> tuple[int, int]:
        return (TILE_PIXELS, TILE_PIXELS)

    @property
    def transform(self) -> Affine:
        return Affine(PIXEL_SIZE, 0.0, float(self.lon), 0.0, -PIXEL_SIZE, float(self.lat + TILE_DEGREES))

    @property
    def geobox(self) -> GeoBox:
        return GeoBox(self.shape, self.transform, CRS)

    def quality_geobox(self) -> GeoBox:
        """GeoBox of the InputQuality layer (0.0005 degree, 6000 x 6000)."""
        n = TILE_DEGREES * QUALITY_PIXELS_PER_DEGREE
        res = 1.0 / QUALITY_PIXELS_PER_DEGREE
        return GeoBox((n, n), Affine(res, 0.0, float(self.lon), 0.0, -res, float(self.lat + TILE_DEGREES)), CRS)

    def block_grid(self, block_size: int = DEFAULT_BLOCK_SIZE) -> tuple[int, int]:
        """Number of block rows and columns for ``block_size`` (edge blocks may be smaller)."""
        check_block_size(block_size)
        n = math.ceil(TILE_PIXELS / block_size)
        return (n, n)

    def block(self, row: int, col: int, block_size: int = DEFAULT_BLOCK_SIZE) -> Block:
        nrows, ncols = self.block_grid(block_size)
        if not (0 <= row < nrows and 0 <= col < ncols):
            raise InputError(
                f"block r{row}c{col} is outside tile {self.id}: rows and columns run 0..{nrows - 1} "
                f"for block size {block_size}"
            )
        return Block(self, row, col, block_size)

    def blocks(self, block_size: int = DEFAULT_BLOCK_SIZE) -> Iterator[Block]:
        nrows, ncols = self.block_grid(block_size)
        for r in range(nrows):
            for c in range(ncols):
                yield Block(self, r, c, block_size)

    @property
    def land_fraction(self) -> float:
        return land_fraction(self)


@dataclass(frozen=True, order=True)
class Block:
    """A square window of a tile: the unit of loading and classification."""

    tile: Tile
    row: int
    col: int
    size: int = DEFAULT_BLOCK_SIZE

    @property
    def key(self) -> str:
        """Short name inside the tile, e.g. ``r00c01``."""
        return f"r{self.row:02d}c{self.col:02d}"

    @property
    def id(self) -> str:
        return f"{self.tile.id}_{self.key}"

    def __str__(self) -> str:
        return self.id

    @property
    def window(self) -> tuple[slice, slice]:
        """(rows, cols) slices of this block inside the tile's pixel grid."""
        y0, x0 = self.row * self.size, self.col * self.size
        return (slice(y0, min(y0 + self.size, TILE_PIXELS)), slice(x0, min(x0 + self.size, TILE_PIXELS)))

    @property
    def shape(self) -> tuple[int, int]:
        ys, xs = self.window
        return (ys.stop - ys.start, xs.stop - xs.start)

    @property
    def geobox(self) -> GeoBox:
        ys, xs = self.window
        return self.tile.geobox[ys, xs]

    @property
    def bbox(self) -> tuple[float, float, float, float]:
        b = self.geobox.extent.boundingbox
        return (b.left, b.bottom, b.right, b.top)


def check_block_size(block_size: int) -> int:
    if not isinstance(block_size, int) or not (16 <= block_size <= TILE_PIXELS):
        raise InputError(f"invalid block size {block_size!r}: expected an integer 16..{TILE_PIXELS}")
    return block_size


def parse_blocks(tile: Tile, spec: str | None, block_size: int = DEFAULT_BLOCK_SIZE) -> list[Block]:
    """Blocks named by ``spec``: ``all`` (or None), ``r0c0,r0c1``, or ``first:N``."""
    if spec is None or spec.strip() in ("", "all"):
        return list(tile.blocks(block_size))
    spec = spec.strip()
    if spec.startswith("first:"):
        try:
            n = int(spec.split(":", 1)[1])
        except ValueError:
            n = -1
        if n < 1:
            raise InputError(f"invalid blocks {spec!r}: expected first:N with N >= 1")
        return list(tile.blocks(block_size))[:n]
    out = []
    for part in spec.split(","):
        m = _BLOCK_RE.match(part.strip())
        if not m:
            raise InputError(f"invalid block {part!r}: expected rROWcCOL, e.g. r0c1 (or 'all', 'first:N')")
        out.append(tile.block(int(m.group(1)), int(m.group(2)), block_size))
    return out


def parse_bbox(text: str | Iterable[float]) -> tuple[float, float, float, float]:
    """Parse ``W,S,E,N`` degrees, checking order and range."""
    if isinstance(text, str):
        parts = [p for p in text.replace(" ", "").split(",")]
        try:
            vals = [float(p) for p in parts]
        except ValueError:
            vals = []
    else:
        vals = [float(v) for v in text]
    if len(vals) != 4 or not all(math.isfinite(v) for v in vals):
        raise InputError(f"invalid bbox {text!r}: expected four numbers W,S,E,N in degrees")
    w, s, e, n = vals
    if not (-180 <= w < e <= 180 and -90 <= s < n <= 90):
        raise InputError(
            f"invalid bbox {text!r}: expected -180 <= W < E <= 180 and -90 <= S < N <= 90"
        )
    return (w, s, e, n)


# --- land tiles -------------------------------------------------------------

_LAND_TABLE = "land_fraction_3deg.npy"
_ROWS, _COLS = 180 // TILE_DEGREES, 360 // TILE_DEGREES  # 60 x 120 tiles


def compute_land_fraction_table() -> np.ndarray:
    """Land fraction of every tile from global-land-mask (1 km), shape (60, 120).

    Row 0 is the tile row whose north edge is 90 N; column 0 starts at 180 W.
    Loading the mask costs about 1 GB of memory, so the result ships as a table.
    """
    from global_land_mask import globe

    ocean = globe._mask  # True over ocean; (21600, 43200), 1/120 degree, from 90 N / 180 W
    cells = ocean.shape[0] // _ROWS
    land = ~ocean.reshape(_ROWS, cells, _COLS, cells)
    return land.mean(axis=(1, 3), dtype=np.float64).astype(np.float32)


@functools.lru_cache(maxsize=1)
def land_fraction_table() -> np.ndarray:
    ref = resources.files("worldcover.data").joinpath(_LAND_TABLE)
    with ref.open("rb") as f:
        return np.load(f)


def _table_index(tile: Tile) -> tuple[int, int]:
    return ((90 - (tile.lat + TILE_DEGREES)) // TILE_DEGREES, (tile.lon + 180) // TILE_DEGREES)


def land_fraction(tile: Tile) -> float:
    r, c = _table_index(tile)
    return float(land_fraction_table()[r, c])


def land_tiles(
    bbox: tuple[float, float, float, float] | None = None, min_fraction: float = 0.0
) -> list[Tile]:
    """Every tile of the product extent (S60..N84) with land, sorted by id.

    ``bbox`` keeps tiles that intersect it (touching edges do not count).
    """
    table = land_fraction_table()
    out = []
    for r, c in zip(*np.nonzero(table > min_fraction), strict=True):
        tile = Tile(90 - TILE_DEGREES * (int(r) + 1), TILE_DEGREES * int(c) - 180)
        if not (PRODUCT_SOUTH <= tile.lat < PRODUCT_NORTH):
            continue
        if bbox is not None:
            w, s, e, n = bbox
            tw, ts, te, tn = tile.bbox
            if not (tw < e and te > w and ts < n and tn > s):
                continue
        out.append(tile)
    return sorted(out, key=lambda t: t.id)


def tile_of(lon: float, lat: float) -> Tile:
    """The tile containing a point."""
    if not (-180 <= lon <= 180 and -90 <= lat <= 90):
        raise InputError(f"point ({lon}, {lat}) is outside -180..180, -90..90")
    lat0 = min(int(math.floor(lat / TILE_DEGREES)) * TILE_DEGREES, 90 - TILE_DEGREES)
    lon0 = min(int(math.floor(lon / TILE_DEGREES)) * TILE_DEGREES, 180 - TILE_DEGREES)
    return Tile(lat0, lon0)


if __name__ == "__main__":  # regenerate the shipped table: python -m worldcover.grid
    from pathlib import Path

    dest = Path(__file__).parent / "data" / _LAND_TABLE
    np.save(dest, compute_land_fraction_table())
    print(f"wrote {dest}")


# --- the native (UTM) grid of a block's inputs -------------------------------------------

# Sentinel-2 grids (MGRS tiles) start on multiples of 60 m, so a native grid aligned to 60 m holds the
# 10, 20 and 60 m bands pixel for pixel: they are read without resampling.
NATIVE_ALIGN_M = 60
NATIVE_RESOLUTION_M = 10


def utm_zone(lon: float, lat: float) -> int:
    """UTM zone number, with the Norway (32V) and Svalbard (31X..37X) exceptions."""
    lon = ((lon + 180.0) % 360.0) - 180.0
    zone = int((lon + 180.0) // 6) + 1
    if 56.0 <= lat < 64.0 and 3.0 <= lon < 12.0:
        zone = 32
    if 72.0 <= lat < 84.0:
        if 0.0 <= lon < 9.0:
            zone = 31
        elif 9.0 <= lon < 21.0:
            zone = 33
        elif 21.0 <= lon < 33.0:
            zone = 35
        elif 33.0 <= lon < 42.0:
            zone = 37
    return min(max(zone, 1), 60)


def utm_epsg(zone: int, north: bool) -> int:
    return (32600 if north else 32700) + zone


def utm_crs(lon: float, lat: float) -> str:
    """The UTM CRS (WGS 84, EPSG:326xx north / 327xx south) of a point's zone, as the Sentinel-2 tiles use it."""
    return f"EPSG:{utm_epsg(utm_zone(lon, lat), lat >= 0)}"


def native_geobox(block: Block, crs: str | None = None, resolution: float = NATIVE_RESOLUTION_M,
                  margin_px: int = 8) -> GeoBox:
    """The grid a block's inputs are processed on: ``crs`` (default: the tile's UTM zone) at ``resolution``.

    It covers the block's footprint plus ``margin_px`` pixels (the bilinear taps, the cloud dilation and
    the speckle filter of the edge pixels see the same neighbours as inside), snapped outward to the
    60 m lattice so every Sentinel-2 resolution reads without resampling.
    """
    from odc.geo.geom import BoundingBox

    if crs is None:
        lon0, lat0, lon1, lat1 = block.tile.bbox
        crs = utm_crs((lon0 + lon1) / 2, (lat0 + lat1) / 2)
    b = block.geobox.extent.to_crs(crs).boundingbox
    pad = margin_px * NATIVE_RESOLUTION_M
    a = NATIVE_ALIGN_M
    box = BoundingBox(math.floor((b.left - pad) / a) * a, math.floor((b.bottom - pad) / a) * a,
                      math.ceil((b.right + pad) / a) * a, math.ceil((b.top + pad) / a) * a, crs)
    return GeoBox.from_bbox(box, crs, resolution=resolution)
