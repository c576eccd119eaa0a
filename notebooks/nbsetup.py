"""What the notebooks share: the size knob, the simulated archive and the output folder.

``WORLDCOVER_NB_SIZE`` chooses the configuration: ``normal`` (the default: two
240 px blocks of two tiles, a whole year; minutes) or ``tiny`` (one 60 px block
of each tile, two months; what ``tests/test_notebooks.py`` runs). The simulated
archive and the tile outputs live under ``WORLDCOVER_NB_CACHE`` (default
``build/notebook-cache/``), one folder per size, so the notebooks simulate the
world once and share it; ``WORLDCOVER_NB_ARCHIVE`` names an existing archive
of the same blocks instead (the tests pass their session's one).
"""

from __future__ import annotations

import atexit
import os
import warnings
from dataclasses import dataclass
from pathlib import Path

from rasterio.errors import NotGeoreferencedWarning

import worldcover as wc

# odc-loader reprojects in-memory arrays with rasterio in threads, and rasterio warns on every load that
# they have no geotransform (they do not need one there): noise in every notebook, not ours to fix
warnings.filterwarnings("ignore", category=NotGeoreferencedWarning)
# rio-cogeo says it keeps the Map COG's Palette colour interpretation, which is what the Map wants
warnings.filterwarnings("ignore", message="Dataset color interpretation was set to `Palette`")

REPO = Path(__file__).resolve().parents[1]
SIZE_ENV, CACHE_ENV, ARCHIVE_ENV = "WORLDCOVER_NB_SIZE", "WORLDCOVER_NB_CACHE", "WORLDCOVER_NB_ARCHIVE"


@dataclass(frozen=True)
class Size:
    """One configuration of the notebooks."""

    tiles: tuple[str, ...]  # WorldCover tiles, in different latitude zones
    block_size: int  # pixels
    blocks: tuple[tuple[int, int], ...]  # (row, col) of the blocks in each tile
    period: tuple[str, str] | None  # simulate only these dates (None: the whole year)
    seed: int  # the simulated world's seed
    year: int = 2021
    samples: int | None = None  # validation sample size (None: from the target standard error)
    min_per_class: int = 50  # validation floor per map class
    points_per_block: int = 400  # reference points drawn per block in notebook 3


SIZES = {
    # the blocks, period and seed of tests/small_campaign.py, so the tests' archive serves the notebooks too
    "tiny": Size(("N45E003", "S24E021"), 60, ((300, 300),), ("2021-05-01", "2021-06-30"), seed=11,
                 samples=120, min_per_class=5, points_per_block=150),
    # Flemish farmland, towns, water and wetland; Kalahari shrubland, grassland and bare ground
    "normal": Size(("N51E003", "S24E021"), 240, ((75, 75), (75, 76)), None, seed=0),
}


def size_name() -> str:
    """The configuration chosen by WORLDCOVER_NB_SIZE (one line naming the choices when it is unknown)."""
    name = os.environ.get(SIZE_ENV, "normal")
    if name not in SIZES:
        raise SystemExit(f"{SIZE_ENV}={name!r}: expected one of {', '.join(SIZES)}")
    return name


SIZE = SIZES[size_name()]
CACHE = Path(os.environ.get(CACHE_ENV) or REPO / "build" / "notebook-cache") / size_name()


def blocks() -> list:
    """Every block the notebooks use, tile by tile."""
    return [wc.Tile.parse(t).block(r, c, SIZE.block_size) for t in SIZE.tiles for r, c in SIZE.blocks]


def blocks_spec() -> str:
    """The blocks of one tile as a ``run_tile(blocks=...)`` spec."""
    return ",".join(f"r{r}c{c}" for r, c in SIZE.blocks)


def archive() -> Path:
    """The simulated archive of :func:`blocks`: WORLDCOVER_NB_ARCHIVE, or simulated once into the cache."""
    given = os.environ.get(ARCHIVE_ENV)
    if given:
        path = Path(given)
        truth = [path / "truth" / b.tile.id / f"{b.id}_truth.tif" for b in blocks()]
        missing = [b.id for b, t in zip(blocks(), truth, strict=True) if not t.exists()]
        if missing:
            raise SystemExit(f"{ARCHIVE_ENV}={given}: no simulated truth for block(s) {', '.join(missing)}")
        return path
    path = CACHE / "archive"
    period = {"period": SIZE.period} if SIZE.period else {}
    wc.simulate_archive(blocks(), SIZE.year, path, seed=SIZE.seed, **period)  # only what is not there yet
    return path


def stac_api(path: Path):
    """A started STAC API on loopback over ``path``, stopped when the kernel exits."""
    api = wc.LocalStacApi(path).start()
    atexit.register(api.stop)
    return api


def outputs() -> Path:
    """The output root the tile and mosaic notebooks write (kept between runs: tiles are reused)."""
    path = CACHE / "outputs"
    path.mkdir(parents=True, exist_ok=True)
    return path
