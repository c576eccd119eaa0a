"""Training points from labelled blocks, and a spatial train/test split of blocks.

A training table is a :class:`pandas.DataFrame` with one row per sampled
pixel: the metadata columns :data:`META_COLUMNS` (``block_id``, ``row``,
``col``, optional ``lon``/``lat``, and ``code``, the reference class) followed
by one float32 column per feature, named as in the features' ``feature``
coordinate.

WorldCover sampled at most 20 points per class per training location, a
location being a 100 x 100 m GeoWiki square (one hectare). Our unit is a
block (a 3000 px block is about 900 km²; the simulated blocks are usually a
few hundred pixels square) and there are only a handful of simulated
blocks, so :data:`DEFAULT_MAX_PER_CLASS` is 200 per class per block: enough
samples for 11 classes and ~100 features from ~10-50 blocks (some tens of
thousands of rows, trained in seconds), while the cap still does the two jobs
it did for WorldCover: it balances classes (a block that is 90 % forest does
not drown the rare classes) and limits pseudo-replication (neighbouring
pixels of one patch are nearly the same sample, so thousands of them add
little but weight).
"""

from __future__ import annotations

import hashlib
import math
import re
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
import xarray as xr

from worldcover.errors import DataError, InputError
from worldcover.grid import Block, Tile
from worldcover.legend import CODES, NODATA
from worldcover.model.schema import (
    FEATURE_DIM,
    block_feature_names,
    check_block_dims,
    check_feature_names,
    spatial_dims,
)

DEFAULT_MAX_PER_CLASS = 200

BLOCK_COLUMN, ROW_COLUMN, COL_COLUMN = "block_id", "row", "col"
LON_COLUMN, LAT_COLUMN, CODE_COLUMN = "lon", "lat", "code"
META_COLUMNS: tuple[str, ...] = (BLOCK_COLUMN, ROW_COLUMN, COL_COLUMN, LON_COLUMN, LAT_COLUMN, CODE_COLUMN)


def feature_columns(table: pd.DataFrame) -> list[str]:
    """The feature columns of a training table: every column that is not metadata, in order."""
    return [str(c) for c in table.columns if c not in META_COLUMNS]


def _block_rng(seed: int, block_id: str) -> np.random.Generator:
    """A generator seeded by (seed, block id): blocks draw independently, reproducibly."""
    digest = hashlib.sha256(block_id.encode("utf-8")).digest()
    return np.random.default_rng([int(seed), int.from_bytes(digest[:8], "little")])


def _is_geographic(da: xr.DataArray) -> bool:
    """True unless the array says it is in a projected CRS (the WorldCover grid is EPSG:4326)."""
    try:
        import odc.geo.xr  # noqa: F401  (registers the .odc accessor)

        crs = da.odc.crs
    except Exception:  # no odc-geo metadata: assume the WorldCover grid
        return True
    return crs is None or bool(crs.geographic)


def _check_truth(truth: xr.DataArray, features: xr.DataArray) -> np.ndarray:
    """Truth as a numpy (y, x) array on the features' grid, with legal codes only."""
    if not isinstance(truth, xr.DataArray):
        raise DataError(f"truth must be an xarray.DataArray (y, x), got {type(truth).__name__}")
    tdims = spatial_dims(truth, "truth")
    if truth.ndim != 2:
        raise DataError(f"truth has dims {tuple(truth.dims)}: expected (y, x)")
    truth = truth.transpose(*tdims)
    if truth.shape != features.shape[1:]:
        raise DataError(
            f"truth shape {truth.shape} does not match the features' (y, x) shape {features.shape[1:]}"
        )
    for tdim, fdim in zip(tdims, features.dims[1:], strict=True):
        if tdim in truth.coords and fdim in features.coords:
            a, b = np.asarray(truth[tdim].values), np.asarray(features[fdim].values)
            if a.shape != b.shape or not np.allclose(a, b, rtol=0.0, atol=1e-9):
                raise DataError(f"truth and features are not on the same grid: their {fdim} coordinates differ")
    values = np.asarray(truth.values)
    if not np.issubdtype(values.dtype, np.integer):
        raise DataError(f"truth has dtype {values.dtype}: expected uint8 WorldCover codes")
    unknown = sorted(set(np.unique(values).tolist()) - set(CODES) - {NODATA})
    if unknown:
        raise DataError(f"truth holds codes {unknown} that are not WorldCover codes {list(CODES)} or nodata 0")
    return values


def _all_nan(data, chunk_pixels: int = 262_144) -> np.ndarray:
    """(y, x) mask of pixels whose (feature, y, x) values are all NaN.

    Row chunk by row chunk, so the temporary boolean array stays small (a
    whole 3000 x 3000 x 130 block would need 1.2 GB); dask input is reduced
    chunk-wise by dask.
    """
    if hasattr(data, "dask"):
        return np.asarray(np.isnan(data).all(axis=0).compute())
    data = np.asarray(data)
    _, height, width = data.shape
    mask = np.empty((height, width), dtype=bool)
    rows = max(1, chunk_pixels // max(width, 1))
    for r0 in range(0, height, rows):
        mask[r0 : r0 + rows] = np.isnan(data[:, r0 : r0 + rows]).all(axis=0)
    return mask


def sample_training_points(
    features: xr.DataArray,
    truth: xr.DataArray,
    block_id: str | Block,
    max_per_class: int | None = DEFAULT_MAX_PER_CLASS,
    seed: int = 0,
) -> pd.DataFrame:
    """At most ``max_per_class`` random labelled pixels per class from one block.

    Pixels whose truth is nodata (0) or whose features are all NaN (no clear
    observation) are skipped. The draw is reproducible from ``(seed,
    block_id)`` and independent between blocks. Rows come in raster order.
    Columns: :data:`META_COLUMNS` (``lon``/``lat`` are the pixel centres,
    present when the block has spatial coordinates in a geographic CRS)
    then one float32 column per feature.

    Vectorised: one mask, one permutation, one gather of the chosen pixels
    (dask-backed features are only computed for the mask and those pixels).
    ``max_per_class=None`` keeps every labelled pixel.
    """
    if isinstance(block_id, Block):
        block_id = block_id.id
    if not isinstance(block_id, str) or not block_id.strip():
        raise InputError(f"invalid block_id {block_id!r}: expected a non-empty string such as N00E006_r00c01")
    if max_per_class is not None and (
            isinstance(max_per_class, bool) or not isinstance(max_per_class, (int, np.integer)) or max_per_class < 1):
        raise InputError(f"invalid max_per_class {max_per_class!r}: expected an integer >= 1 (or None for all)")
    features = check_block_dims(features)
    names = check_feature_names(block_feature_names(features))
    clash = [n for n in names if n in META_COLUMNS]
    if clash:
        raise DataError(f"feature names {clash} clash with the training table's metadata columns {list(META_COLUMNS)}")
    codes = _check_truth(truth, features)

    height, width = codes.shape
    valid = (codes != NODATA) & ~_all_nan(features.data)
    pixels = np.flatnonzero(valid)
    labels = codes.ravel()[pixels]

    # Random order within each class: shuffle, then a stable sort by class;
    # a pixel's rank in its class is its position minus the class's first position.
    rng = _block_rng(seed, block_id)
    shuffle = rng.permutation(pixels.size)
    pixels, labels = pixels[shuffle], labels[shuffle]
    by_class = np.argsort(labels, kind="stable")
    pixels, labels = pixels[by_class], labels[by_class]
    if max_per_class is not None:
        rank = np.arange(labels.size) - np.searchsorted(labels, labels, side="left")
        keep = rank < max_per_class
        pixels = pixels[keep]
    chosen = np.sort(pixels)
    rows, cols = np.divmod(chosen, width)

    ydim, xdim = features.dims[1:]
    picked = features.isel({ydim: xr.DataArray(rows, dims="point"), xdim: xr.DataArray(cols, dims="point")})
    values = np.asarray(picked.transpose("point", FEATURE_DIM).values, dtype=np.float32)

    columns: dict[str, object] = {
        BLOCK_COLUMN: np.full(chosen.size, block_id, dtype=object),
        ROW_COLUMN: rows.astype(np.int32),
        COL_COLUMN: cols.astype(np.int32),
    }
    if xdim in features.coords and ydim in features.coords and _is_geographic(features):
        columns[LON_COLUMN] = np.asarray(features[xdim].values, dtype=np.float64)[cols]
        columns[LAT_COLUMN] = np.asarray(features[ydim].values, dtype=np.float64)[rows]
    columns[CODE_COLUMN] = codes.ravel()[chosen].astype(np.uint8)
    table = pd.DataFrame(columns)
    feature_frame = pd.DataFrame(values.reshape(chosen.size, len(names)), columns=list(names))
    return pd.concat([table, feature_frame], axis=1)


def build_training_table(
    blocks: Iterable[tuple[str, xr.DataArray, xr.DataArray]],
    max_per_class: int | None = DEFAULT_MAX_PER_CLASS,
    seed: int = 0,
) -> pd.DataFrame:
    """Concatenate :func:`sample_training_points` over ``(block_id, features, truth)`` items.

    Every block must carry the same feature names in the same order, so the
    table has one consistent set of columns.
    """
    tables = []
    names: list[str] | None = None
    for block_id, features, truth in blocks:
        t = sample_training_points(features, truth, block_id, max_per_class=max_per_class, seed=seed)
        cols = feature_columns(t)
        if names is None:
            names = cols
        elif cols != names:
            raise DataError(f"block {block_id} has features {cols[:5]}... but earlier blocks had {names[:5]}...")
        tables.append(t)
    if not tables:
        raise InputError("no blocks given: a training table needs at least one labelled block")
    return pd.concat(tables, ignore_index=True)


# --- spatial split --------------------------------------------------------------

_BLOCK_ID_RE = re.compile(r"^(?P<tile>[NS]\d{2}[EW]\d{3})_r(?P<row>\d+)c(?P<col>\d+)$")
SPLIT_RULES = ("tile", "row")


@dataclass(frozen=True)
class BlockSplit:
    """Train and test block ids (sorted, disjoint) and the rule that separated them."""

    train: tuple[str, ...]
    test: tuple[str, ...]
    rule: str

    def to_dict(self) -> dict:
        return {"train": list(self.train), "test": list(self.test), "rule": self.rule}


def _region(block_id: str, by: str) -> str:
    m = _BLOCK_ID_RE.fullmatch(block_id) if isinstance(block_id, str) else None
    if not m:
        raise InputError(f"invalid block id {block_id!r}: expected TILE_rROWcCOL, e.g. N00E006_r00c01")
    tile = Tile.parse(m.group("tile")).id
    return tile if by == "tile" else f"{tile}_r{int(m.group('row'))}"


def split_blocks(
    block_ids: Sequence[str], test_fraction: float = 0.25, seed: int = 0, by: str = "tile"
) -> BlockSplit:
    """Split blocks into train and test so that no region is on both sides.

    The rule: blocks are grouped by region, and whole regions go to one side.
    ``by="tile"`` (default) makes a region a 3x3 degree WorldCover tile, so
    train and test blocks are never in the same tile (neighbouring pixels are
    strongly autocorrelated, and a test block beside a training block would
    flatter the accuracy). ``by="row"`` makes a region one row of blocks of a
    tile (a latitude stripe) for the case of a single labelled tile.
    Regions on opposite sides may still share an edge; the split limits
    spatial leakage, it cannot remove it.

    ``round(test_fraction * regions)`` regions (at least one, and at least one
    left for training) are drawn for test with a seeded generator over the
    sorted region names, so the split depends only on the set of ids and the
    seed, not their order.
    """
    if by not in SPLIT_RULES:
        raise InputError(f"invalid split rule {by!r}: expected one of {', '.join(SPLIT_RULES)}")
    if isinstance(test_fraction, bool) or not (0.0 < float(test_fraction) < 1.0):
        raise InputError(f"invalid test_fraction {test_fraction!r}: expected a number strictly between 0 and 1")
    ids = list(block_ids)
    dup = sorted(b for b, n in Counter(ids).items() if n > 1)
    if dup:
        raise InputError(f"duplicated block ids {dup}")
    regions = {b: _region(b, by) for b in ids}
    names = sorted(set(regions.values()))
    if len(names) < 2:
        hint = " (all blocks are in one tile: use by='row')" if by == "tile" and names else ""
        raise InputError(f"cannot split {len(ids)} blocks by {by}: need blocks in at least two regions{hint}")
    n_test = min(max(1, int(math.floor(float(test_fraction) * len(names) + 0.5))), len(names) - 1)
    rng = np.random.default_rng(int(seed))
    test_regions = {names[i] for i in rng.permutation(len(names))[:n_test]}
    test = tuple(sorted(b for b in ids if regions[b] in test_regions))
    train = tuple(sorted(b for b in ids if regions[b] not in test_regions))
    return BlockSplit(train=train, test=test, rule=by)


# --- input groups missing at random ---------------------------------------------------

#: Input groups that can be missing at a pixel in production, and how their
#: features are named: Sentinel-1 has gaps (2022-2024 coverage, swath edges,
#: HH/HV-only modes) and DEMs have voids; Sentinel-2 is required.
MISSING_GROUPS: dict[str, str] = {"s1": "s1_* (Sentinel-1 backscatter)", "dem": "dem, slope (terrain)"}


def group_features(group: str, names: Sequence[str]) -> list[str]:
    """The feature names of ``names`` that come from input ``group`` (``s1``: ``s1_*``; ``dem``: dem, slope)."""
    if group == "s1":
        return [n for n in names if n.startswith("s1_")]
    if group == "dem":
        return [n for n in names if n in ("dem", "slope")]
    raise InputError(f"unknown input group {group!r}: expected one of {sorted(MISSING_GROUPS)}")


def check_missing_groups(shares, names: Sequence[str]) -> dict[str, float]:
    """``{group: share}`` validated against the model's feature ``names``; sorted by group.

    Each share is the fraction of training rows in [0, 1) whose group features
    are set to NaN; a group the features do not have is an error (nothing to mask).
    """
    if shares is None:
        return {}
    if not hasattr(shares, "items"):
        raise InputError(f"missing_groups must be a dict {{group: share}}, e.g. {{'s1': 0.15}}, got {shares!r}")
    out: dict[str, float] = {}
    for group, share in sorted(shares.items()):
        if not group_features(group, names):
            raise InputError(f"missing_groups names {group!r} but the features have none of its "
                             f"({MISSING_GROUPS[group]})")
        if isinstance(share, bool) or not isinstance(share, (int, float, np.integer, np.floating)) \
                or not 0.0 <= float(share) < 1.0:
            raise InputError(f"invalid missing_groups share {share!r} for {group!r}: expected a number in [0, 1)")
        out[group] = float(share)
    return out


def mask_missing_groups(table: pd.DataFrame, shares, seed: int = 0,
                        names: Sequence[str] | None = None) -> tuple[pd.DataFrame, dict]:
    """A copy of ``table`` whose group features are NaN in a random share of rows, and a record of what was masked.

    ``names``: the feature columns the groups are looked up in (default: :func:`feature_columns`).

    Rows are masked in place rather than duplicated: each pixel still counts
    once (class balance, ``min_data_in_leaf`` and the card's sample counts
    keep their meaning, training costs the same), at the price of the masked
    rows' S1/DEM values, negligible with thousands of rows. Groups draw
    independently (a row can miss both), exactly ``round(share * rows)`` rows
    each, from a generator seeded by ``(seed, group)``; so LightGBM sees NaN
    in those features and learns where missing values go (instead of reading
    NaN as 0 at prediction, which it does for features that had no NaN in training).
    Rows whose other features are all NaN are never drawn: masking them would
    leave a row with no information.
    """
    names = feature_columns(table) if names is None else list(names)
    shares = check_missing_groups(shares, names)
    out = table.copy()
    record: dict[str, dict] = {}
    n = len(out)
    for group, share in shares.items():
        cols = group_features(group, names)
        rest = [c for c in names if c not in cols]
        eligible = out[rest].notna().to_numpy().any(axis=1)
        digest = int.from_bytes(hashlib.sha256(group.encode()).digest()[:8], "little")
        order = np.random.default_rng([int(seed), digest]).permutation(n)
        rows = order[eligible[order]][: int(round(share * n))]
        out.iloc[np.sort(rows), [out.columns.get_loc(c) for c in cols]] = np.nan
        record[group] = {"share": share, "rows": int(rows.size), "features": cols}
    return out, record
