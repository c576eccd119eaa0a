"""Fabricated tile products in the tile runner's layout, for tests and benchmarks.

A finished tile here is what :func:`worldcover.layout.finished_tiles` accepts:
Map / Prob (/ InputQuality) COGs over a window of the tile, aligned to its
pixel grid, and a STAC item written last whose assets carry ``file:checksum``.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from worldcover import storage
from worldcover.cog import write_cog
from worldcover.grid import Tile
from worldcover.layout import TilePaths, multihash_sha256, tile_paths
from worldcover.legend import CODES, NODATA, colormap
from worldcover.storage import atomic_write_text
from worldcover.storage import sha256 as sha256_file

FILE_EXT = "https://stac-extensions.github.io/file/v2.1.0/schema.json"
COG_TYPE = "image/tiff; application=geotiff; profile=cloud-optimized"
QUALITY_STEP = 6  # 10 m pixels per InputQuality pixel (0.0005 degree)


def synthetic_codes(shape: tuple[int, int], seed: int, patch: int = 40, speckle: float = 0.25,
                    nodata_fraction: float = 0.1) -> np.ndarray:
    """Class codes with patches, speckle and a nodata band: modes are neither trivial nor uniform."""
    rng = np.random.default_rng(seed)
    h, w = shape
    coarse = rng.choice(np.array(CODES, np.uint8), size=(-(-h // patch), -(-w // patch)))
    data = np.repeat(np.repeat(coarse, patch, axis=0), patch, axis=1)[:h, :w].copy()
    noisy = rng.random((h, w)) < speckle
    data[noisy] = rng.choice(np.array(CODES, np.uint8), size=int(noisy.sum()))
    band = int(h * nodata_fraction)
    if band:
        data[:band, : w // 2] = NODATA  # a nodata area (e.g. ocean) in one corner
    return data


def _asset(path: storage.Location, roles: list[str]) -> dict:
    return {"href": f"./{path.name}", "type": COG_TYPE, "roles": roles,
            "file:checksum": multihash_sha256(sha256_file(path)), "file:size": path.stat().st_size}


def write_tile(root: str | Path, tile: Tile | str, year: int, data: np.ndarray, row: int = 0, col: int = 0,
               quality: bool = True) -> TilePaths:
    """Write a finished tile whose Map covers ``data`` at (row, col) of the tile's pixel grid."""
    paths = tile_paths(root, tile, year)
    t = paths.tile
    h, w = data.shape
    geobox = t.geobox[row : row + h, col : col + w]
    write_cog(paths.map, data.astype(np.uint8), geobox, nodata=NODATA, overview_resampling="mode", colormap=colormap())
    prob = np.where(data == NODATA, 255, 40 + (data.astype(np.uint16) * 7) % 60).astype(np.uint8)
    write_cog(paths.prob, prob, geobox, nodata=255, overview_resampling="average")
    assets = {"map": _asset(paths.map, ["data"]), "prob": _asset(paths.prob, ["data"])}
    if quality and not (row % QUALITY_STEP or col % QUALITY_STEP or h % QUALITY_STEP or w % QUALITY_STEP):
        q = QUALITY_STEP
        qbox = t.quality_geobox()[row // q : (row + h) // q, col // q : (col + w) // q]
        qdata = np.stack([np.full(qbox.shape, v, np.int16) for v in (30, 60, 25)])
        write_cog(paths.quality, qdata, qbox, nodata=-1, band_names=["s1_obs", "s2_obs", "s2_invalid_pct"])
        assets["input_quality"] = _asset(paths.quality, ["metadata"])
    west, south, east, north = geobox.extent.boundingbox
    item = {
        "type": "Feature", "stac_version": "1.1.0", "stac_extensions": [FILE_EXT],
        "id": paths.stem,
        "geometry": {"type": "Polygon", "coordinates": [[[west, south], [east, south], [east, north],
                                                          [west, north], [west, south]]]},
        "bbox": [west, south, east, north],
        "properties": {"datetime": None, "start_datetime": f"{year}-01-01T00:00:00Z",
                       "end_datetime": f"{year}-12-31T23:59:59Z", "worldcover:tile": t.id},
        "links": [], "assets": assets,
    }
    atomic_write_text(paths.item, json.dumps(item, indent=1))
    return paths
