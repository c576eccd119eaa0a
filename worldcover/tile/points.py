"""Training from reference points: features through the production chain, a spatial split, a carded model.

WorldCover was trained on ~150k reference points, not on wall-to-wall truth.
A points file (CSV, GeoParquet or GeoJSON) gives ``lon``, ``lat``, ``class``
(a WorldCover code), ``year`` and optionally ``weight`` and ``group``. The
points are gathered into small chips (blocks of the WorldCover grid, 64 px by
default) so each chip is loaded once; each chip goes through the same loader,
preprocessing and features as ``worldcover tile run``
(:func:`worldcover.chain.chain_features`), and the features are read at
the point pixels. The points are split into train and test by spatial groups
(tile, 1-degree cell, chip, or the file's own ``group`` column), so nearby
pixels of one field never sit on both sides, and the model card records the
reference's provenance (file, sha256, points per class), the source, the
year and the split.

Reading GeoParquet and GeoJSON needs no geopandas: GeoJSON is plain JSON,
and a GeoParquet's geometry column is WKB decoded with shapely.
"""

from __future__ import annotations

import io
import json
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import PurePosixPath
from typing import Any

import numpy as np
import pandas as pd

from worldcover import storage
from worldcover.chain import ChainParams, chain_features, load_block
from worldcover.errors import DataError, InputError, WorldCoverError
from worldcover.features import FeatureConfig, required_s2_bands
from worldcover.grid import PIXELS_PER_DEGREE, TILE_DEGREES, TILE_PIXELS, Block, Tile, check_block_size
from worldcover.legend import CODES
from worldcover.model.sampling import BLOCK_COLUMN, CODE_COLUMN, COL_COLUMN, LAT_COLUMN, LON_COLUMN, ROW_COLUMN
from worldcover.model.training import train_from_tables
from worldcover.tile.run import open_source, product_features

LON, LAT, CLASS, YEAR, WEIGHT, GROUP = "lon", "lat", "class", "year", "weight", "group"
REQUIRED_COLUMNS = (LON, LAT, CLASS, YEAR)
OPTIONAL_COLUMNS = (WEIGHT, GROUP)
#: how points are grouped for the train/test split
GROUP_BY = ("tile", "cell", "chip", "column")
#: chip (block) size for loading: 64 px is 640 m, small enough that a sparse
#: reference set does not load whole tiles, large enough for the chain's
#: spatial filters (cloud dilation, speckle window) to see context
DEFAULT_CHIP_SIZE = 64
DEFAULT_TEST_FRACTION = 0.25
DEFAULT_MODEL_NAME = "worldcover-points"
#: chip and pixel location columns added by :func:`locate`
CHIP_COLUMN, TILE_COLUMN, CELL_COLUMN = "chip", "tile", "cell"
FORMATS = {".csv": "csv", ".geojson": "geojson", ".json": "geojson", ".parquet": "geoparquet",
           ".geoparquet": "geoparquet"}


# --- reading and checking ---------------------------------------------------------------


def points_format(location: str | os.PathLike) -> str:
    """``csv``, ``geojson`` or ``geoparquet`` from the file's suffix; InputError otherwise."""
    suffix = PurePosixPath(str(location)).suffix.lower()
    if suffix not in FORMATS:
        raise InputError(f"points file {location}: unknown suffix {suffix!r}: expected .csv, .geojson/.json "
                         "or .parquet/.geoparquet")
    return FORMATS[suffix]


def read_points(location: str | os.PathLike) -> tuple[pd.DataFrame, dict]:
    """The checked points of a CSV, GeoJSON or GeoParquet file, and the file's provenance.

    The frame has ``lon``, ``lat`` (float64), ``class`` (uint8), ``year``
    (int), ``weight`` (float64; 1 when the file has none) and, when the file
    has one, ``group`` (str). Provenance: file name, format, sha256, rows.
    """
    fmt = points_format(location)
    name = PurePosixPath(str(location)).name
    try:
        data = storage.path(location).read_bytes()
    except FileNotFoundError:
        raise InputError(f"points file {location} does not exist") from None
    except IsADirectoryError:
        raise InputError(f"points file {location} is a directory: expected a {fmt} file") from None
    reader = {"csv": _read_csv, "geojson": _read_geojson, "geoparquet": _read_geoparquet}[fmt]
    frame = check_points(reader(data, name), name)
    prov = {"file": name, "format": fmt, "sha256": _sha256(data), "rows": int(len(frame))}
    return frame, prov


def _sha256(data: bytes) -> str:
    import hashlib

    return hashlib.sha256(data).hexdigest()


def _read_csv(data: bytes, name: str) -> pd.DataFrame:
    try:
        return pd.read_csv(io.BytesIO(data), skipinitialspace=True)
    except pd.errors.EmptyDataError:
        raise InputError(f"points file {name} is empty: expected a header {','.join(REQUIRED_COLUMNS)} and rows") \
            from None
    except (pd.errors.ParserError, UnicodeDecodeError) as exc:
        raise InputError(f"points file {name} is not a readable CSV: {' '.join(str(exc).split())}") from None


def _check_crs(crs, name: str, what: str) -> None:
    """Refuse coordinates that are not longitude/latitude degrees (CRS84 or EPSG:4326)."""
    if crs is None:
        return  # GeoJSON and GeoParquet default to OGC:CRS84
    text = json.dumps(crs).upper() if not isinstance(crs, str) else crs.upper()
    if not any(k in text for k in ("CRS84", "4326", "WGS 84\"", "WGS84")):
        raise InputError(f"points file {name}: {what} {str(crs)[:80]!r} is not longitude/latitude: expected "
                         "OGC:CRS84 or EPSG:4326 coordinates")


def _read_geojson(data: bytes, name: str) -> pd.DataFrame:
    """A GeoJSON FeatureCollection of Points: lon/lat from the geometry, the rest from the properties."""
    try:
        doc = json.loads(data)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise InputError(f"points file {name} is not valid JSON: {exc}") from None
    if not isinstance(doc, dict) or doc.get("type") != "FeatureCollection" or not isinstance(doc.get("features"), list):
        raise InputError(f"points file {name}: expected a GeoJSON FeatureCollection of Point features")
    crs = (doc.get("crs") or {}).get("properties", {}).get("name") if isinstance(doc.get("crs"), dict) else None
    _check_crs(crs, name, "crs")
    rows = []
    for i, feat in enumerate(doc["features"]):
        geom = feat.get("geometry") if isinstance(feat, dict) else None
        coords = geom.get("coordinates") if isinstance(geom, dict) else None
        if not isinstance(geom, dict) or geom.get("type") != "Point" or not isinstance(coords, list) or len(coords) < 2:
            got = geom.get("type") if isinstance(geom, dict) else type(geom).__name__
            raise InputError(f"points file {name}: feature {i} has geometry {got}: expected a Point [lon, lat]")
        props = feat.get("properties") or {}
        rows.append({**{k: v for k, v in props.items() if k not in (LON, LAT)}, LON: coords[0], LAT: coords[1]})
    return pd.DataFrame(rows)


def _read_geoparquet(data: bytes, name: str) -> pd.DataFrame:
    """GeoParquet: the primary geometry column's WKB Points decoded by shapely; plain Parquet: lon/lat columns."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        table = pq.read_table(io.BytesIO(data))
    except (pa.ArrowException, OSError) as exc:
        raise InputError(f"points file {name} is not readable Parquet: {' '.join(str(exc).split())}") from None
    geo = (table.schema.metadata or {}).get(b"geo")
    if geo is None:
        return table.to_pandas()
    meta = json.loads(geo)
    column = meta.get("primary_column", "geometry")
    spec = (meta.get("columns") or {}).get(column, {})
    if spec.get("encoding", "WKB").upper() != "WKB":
        raise InputError(f"points file {name}: geometry column {column!r} is encoded as {spec.get('encoding')!r}: "
                         "expected WKB")
    _check_crs(spec.get("crs"), name, f"geometry column {column!r} CRS")
    if column not in table.column_names:
        raise InputError(f"points file {name}: the GeoParquet metadata names geometry column {column!r}, "
                         f"which is absent (columns: {table.column_names})")
    import shapely

    wkb = np.asarray(table.column(column).to_pylist(), dtype=object)
    try:
        geoms = shapely.from_wkb(wkb)
    except shapely.errors.ShapelyError as exc:
        raise InputError(f"points file {name}: geometry column {column!r} is not valid WKB ({exc})") from None
    kinds = shapely.get_type_id(geoms)
    bad = np.flatnonzero(kinds != shapely.GeometryType.POINT)
    if bad.size:
        raise InputError(f"points file {name}: row {int(bad[0]) + 1} of column {column!r} is a "
                         f"{shapely.get_type_id(geoms[bad[0]])!s} geometry, not a Point: expected Points")
    frame = table.drop_columns([column]).to_pandas()
    frame = frame.drop(columns=[c for c in (LON, LAT) if c in frame.columns])  # the geometry is authoritative
    frame[LON] = shapely.get_x(geoms)
    frame[LAT] = shapely.get_y(geoms)
    return frame


def _numbers(frame: pd.DataFrame, column: str, name: str) -> np.ndarray:
    """A column as float64; InputError naming the first row that is empty or not a number."""
    values = pd.to_numeric(frame[column], errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)
    bad = np.flatnonzero(~np.isfinite(values))
    if bad.size:
        raw = frame[column].iloc[bad[0]]
        what = "is empty" if pd.isna(raw) else f"has {raw!r}, not a finite number"
        raise InputError(f"points file {name}: column {column!r} row {int(bad[0]) + 1} {what}")
    return values


def _in_range(values: np.ndarray, lo: float, hi: float, column: str, name: str) -> None:
    bad = np.flatnonzero((values < lo) | (values > hi))
    if bad.size:
        raise InputError(f"points file {name}: column {column!r} row {int(bad[0]) + 1} is {values[bad[0]]:g}: "
                         f"expected {lo:g}..{hi:g} ({bad.size} rows out of range)")


def _integers(values: np.ndarray, column: str, name: str) -> np.ndarray:
    bad = np.flatnonzero(values != np.round(values))
    if bad.size:
        raise InputError(f"points file {name}: column {column!r} row {int(bad[0]) + 1} is {values[bad[0]]:g}: "
                         "expected an integer")
    return values.astype(np.int64)


def check_points(frame: pd.DataFrame, name: str) -> pd.DataFrame:
    """Validate a raw points frame; the canonical columns (see :func:`read_points`) in file order.

    Every refusal is one line naming the file, the column and the first bad row.
    """
    missing = [c for c in REQUIRED_COLUMNS if c not in frame.columns]
    if missing:
        raise InputError(f"points file {name}: missing column(s) {missing}: expected {list(REQUIRED_COLUMNS)} "
                         f"(optional {list(OPTIONAL_COLUMNS)}); found {[str(c) for c in frame.columns][:12]}")
    if len(frame) == 0:
        raise InputError(f"points file {name} has no points")
    lon, lat = _numbers(frame, LON, name), _numbers(frame, LAT, name)
    _in_range(lon, -180.0, 180.0, LON, name)
    _in_range(lat, -90.0, 90.0, LAT, name)
    codes = _integers(_numbers(frame, CLASS, name), CLASS, name)
    unknown = sorted(set(np.unique(codes).tolist()) - set(CODES))
    if unknown:
        row = int(np.flatnonzero(np.isin(codes, unknown))[0]) + 1
        raise InputError(f"points file {name}: column {CLASS!r} has {unknown[:10]} (first at row {row}), "
                         f"not WorldCover codes: expected one of {list(CODES)}")
    years = _integers(_numbers(frame, YEAR, name), YEAR, name)
    _in_range(years.astype(np.float64), 2015, 2100, YEAR, name)
    out = pd.DataFrame({LON: lon, LAT: lat, CLASS: codes.astype(np.uint8), YEAR: years})
    if WEIGHT in frame.columns:
        weights = _numbers(frame, WEIGHT, name)
        bad = np.flatnonzero(weights <= 0)
        if bad.size:
            raise InputError(f"points file {name}: column {WEIGHT!r} row {int(bad[0]) + 1} is {weights[bad[0]]:g}: "
                             "expected a weight > 0")
        out[WEIGHT] = weights
    else:
        out[WEIGHT] = 1.0
    if GROUP in frame.columns:
        empty = np.flatnonzero(frame[GROUP].isna().to_numpy())
        if empty.size:
            raise InputError(f"points file {name}: column {GROUP!r} row {int(empty[0]) + 1} is empty: "
                             "expected a group name for every point (or no group column)")
        out[GROUP] = frame[GROUP].astype(str).to_numpy()
    return out


# --- locating points on the WorldCover grid ---------------------------------------------


def cell_ids(lon: np.ndarray, lat: np.ndarray) -> np.ndarray:
    """1-degree cell of each point, named like a tile by its south-west corner (``N50E003``)."""
    la = np.minimum(np.floor(lat), 89).astype(int)
    lo = np.minimum(np.floor(lon), 179).astype(int)
    ns = np.where(la >= 0, "N", "S")
    ew = np.where(lo >= 0, "E", "W")
    return np.char.add(np.char.add(np.char.add(ns, np.char.zfill(np.abs(la).astype(str), 2)), ew),
                       np.char.zfill(np.abs(lo).astype(str), 3)).astype(object)


def locate(points: pd.DataFrame, chip_size: int = DEFAULT_CHIP_SIZE) -> pd.DataFrame:
    """``points`` with their tile, 1-degree cell, chip (block id) and pixel row/col inside the chip.

    Pixels follow the WorldCover grid (1/12000 degree from 180 W, 90 N): a
    point's pixel is the one whose area contains it, exactly the pixel
    ``tile run`` maps there.
    """
    check_block_size(chip_size)
    lon, lat = points[LON].to_numpy(np.float64), points[LAT].to_numpy(np.float64)
    last = 180 * PIXELS_PER_DEGREE - 1
    grow = np.clip(np.floor((90.0 - lat) * PIXELS_PER_DEGREE), 0, last).astype(np.int64)
    gcol = np.clip(np.floor((lon + 180.0) * PIXELS_PER_DEGREE), 0, 2 * last + 1).astype(np.int64)
    trow, row = np.divmod(grow, TILE_PIXELS)
    tcol, col = np.divmod(gcol, TILE_PIXELS)
    tile_lat = 90 - TILE_DEGREES * (trow + 1)
    tile_lon = TILE_DEGREES * tcol - 180
    brow, prow = np.divmod(row, chip_size)
    bcol, pcol = np.divmod(col, chip_size)
    keys = pd.DataFrame({"la": tile_lat, "lo": tile_lon, "r": brow, "c": bcol})
    uniq = keys.drop_duplicates()
    ids = {k: Block(Tile(int(k[0]), int(k[1])), int(k[2]), int(k[3]), chip_size).id
           for k in uniq.itertuples(index=False, name=None)}  # one Block per chip, not per point
    out = points.copy()
    out[TILE_COLUMN] = _tile_ids(tile_lat, tile_lon)
    out[CELL_COLUMN] = cell_ids(lon, lat)
    out[CHIP_COLUMN] = [ids[k] for k in keys.itertuples(index=False, name=None)]
    out[ROW_COLUMN] = prow.astype(np.int32)
    out[COL_COLUMN] = pcol.astype(np.int32)
    return out


def _tile_ids(tile_lat: np.ndarray, tile_lon: np.ndarray) -> np.ndarray:
    """Tile ids of many points (the distinct corners parsed once)."""
    corners = pd.MultiIndex.from_arrays([tile_lat, tile_lon])
    names = {c: Tile(int(c[0]), int(c[1])).id for c in corners.unique()}
    return np.array([names[c] for c in corners], dtype=object)


def chip_of(chip_id: str, chip_size: int) -> Block:
    """The Block named ``N50E003_r0123c0456`` at ``chip_size``."""
    tile, key = chip_id.split("_", 1)
    r, c = key[1:].split("c")
    return Tile.parse(tile).block(int(r), int(c), chip_size)


def spatial_groups(located: pd.DataFrame, by: str) -> pd.Series:
    """The split group of each located point: its tile, 1-degree cell, chip, or the file's ``group``."""
    if by not in GROUP_BY:
        raise InputError(f"invalid group-by {by!r}: expected one of {list(GROUP_BY)}")
    column = {"tile": TILE_COLUMN, "cell": CELL_COLUMN, "chip": CHIP_COLUMN, "column": GROUP}[by]
    if column not in located.columns:
        raise InputError(f"group-by {by!r} needs a {GROUP!r} column in the points file (e.g. a field or parcel id)")
    return located[column].astype(str)


# --- the spatial split -------------------------------------------------------------------


@dataclass(frozen=True)
class GroupSplit:
    """Which groups train and which test; no group is on both sides."""

    by: str
    train: tuple[str, ...]
    test: tuple[str, ...]
    rule: str = ""


def split_groups(groups: pd.Series, codes: pd.Series, by: str, test_fraction: float = DEFAULT_TEST_FRACTION,
                 seed: int = 0) -> GroupSplit:
    """Hold out about ``test_fraction`` of the groups, stratified by each group's majority class.

    Groups are binned by their most frequent class; in each bin of n groups,
    a seeded draw of round(fraction x n) groups (at least one when n >= 2,
    none when n == 1, so a class seen in one group only is still trained)
    goes to test. Stratifying keeps rare classes on both sides where the
    reference allows it; whole groups keep neighbouring pixels together.
    """
    if not 0.0 < test_fraction < 1.0:
        raise InputError(f"invalid test fraction {test_fraction!r}: expected a number between 0 and 1")
    names = sorted(pd.unique(groups))
    if len(names) < 2:
        others = ", ".join(g for g in ("cell", "chip", "column (a field or parcel id)") if not g.startswith(by))
        raise DataError(f"all points fall in one {by} ({names[0] if names else '-'}): a spatial train/test split "
                        f"needs at least two groups; use --group-by {others}")
    majority = (pd.DataFrame({"g": groups.to_numpy(), "c": codes.to_numpy()})
                .groupby(["g", "c"]).size().reset_index(name="n")
                .sort_values(["g", "n", "c"], ascending=[True, False, True]).drop_duplicates("g")
                .set_index("g")["c"])
    rng = np.random.default_rng(seed)
    test: list[str] = []
    for code in sorted(pd.unique(majority)):
        members = sorted(majority.index[majority == code])
        k = 0 if len(members) < 2 else max(1, int(round(test_fraction * len(members))))
        k = min(k, len(members) - 1)
        test += [members[i] for i in rng.permutation(len(members))[:k]]
    if not test:  # every class lives in a single group: hold out one group anyway
        test = [names[int(rng.integers(len(names)))]]
    held = set(test)
    return GroupSplit(by=by, train=tuple(n for n in names if n not in held), test=tuple(sorted(held)),
                      rule=f"by {by}, stratified by majority class, test fraction {test_fraction}, seed {seed}")


# --- features through the production chain ----------------------------------------------


@dataclass
class PointFeatures:
    """The point table with features, and what happened to the chips and points that gave none."""

    table: pd.DataFrame
    feature_names: tuple[str, ...]
    chips_loaded: int = 0
    chips_failed: dict[str, str] = field(default_factory=dict)
    points_without_clear_observation: int = 0
    points_in_failed_chips: int = 0


def chip_samples(chip: Block, year: int, rows: np.ndarray, cols: np.ndarray, source, config, params=None
                 ) -> tuple[np.ndarray, np.ndarray, tuple[str, ...]]:
    """Features at the given pixels of one chip, through the production chain.

    Returns (values (points, features) float32, clear-observation count per
    point, feature names). The whole chip is preprocessed (the chain's
    spatial filters need the neighbourhood); only the points are gathered.
    """
    params = params or ChainParams()
    inputs = load_block(source, chip, year, params)
    feats, clear = product_features(chip, inputs, chain_features(chip, year, inputs, config, params), params)
    values = feats.values[:, rows, cols].T
    names = tuple(str(n) for n in feats[feats.dims[0]].values)
    return np.asarray(values, dtype=np.float32), np.asarray(clear)[rows, cols], names


def extract_features(located: pd.DataFrame, source, year: int, config, chip_size: int = DEFAULT_CHIP_SIZE,
                     params=None, progress: Callable[[int, int, str], None] | None = None) -> PointFeatures:
    """Features of every located point, one chip load per chip.

    A chip the source cannot serve (no S2 that year, a missing DEM...) is
    skipped and named in ``chips_failed``; points with no clear S2
    observation all year are dropped (``tile run`` maps them as nodata).
    """
    chips = sorted(pd.unique(located[CHIP_COLUMN]))
    parts, failed, names = [], {}, None
    dropped = lost = 0
    by_chip = located.groupby(CHIP_COLUMN, sort=True).indices
    for i, chip_id in enumerate(chips):
        idx = by_chip[chip_id]
        pts = located.iloc[idx]
        try:
            values, clear, chip_names = chip_samples(chip_of(chip_id, chip_size), year,
                                                     pts[ROW_COLUMN].to_numpy(), pts[COL_COLUMN].to_numpy(),
                                                     source, config, params)
        except WorldCoverError as exc:
            failed[chip_id] = " ".join(str(exc).split())[:300]
            lost += len(idx)
            if progress:
                progress(i + 1, len(chips), chip_id)
            continue
        names = names or chip_names
        keep = (clear > 0) & ~np.isnan(values).all(axis=1)
        dropped += int((~keep).sum())
        part = pts.iloc[np.flatnonzero(keep)].reset_index(drop=True)
        parts.append(pd.concat([part, pd.DataFrame(values[keep], columns=list(chip_names))], axis=1))
        if progress:
            progress(i + 1, len(chips), chip_id)
    if not parts:
        first = next(iter(failed.items())) if failed else ("-", "no chips")
        raise DataError(f"no chip of the {len(chips)} gave features (first: {first[0]}: {first[1]})")
    return PointFeatures(pd.concat(parts, ignore_index=True), tuple(names or ()), chips_loaded=len(parts),
                         chips_failed=failed, points_without_clear_observation=dropped, points_in_failed_chips=lost)


# --- the whole recipe --------------------------------------------------------------------


def source_needs(config) -> dict:
    """What the features of ``config`` need from a source, as ``tile run`` asks it (only the bands used)."""
    return {"s2_bands": required_s2_bands(config, cloud_probability=False), "need_s1": config.s1}


FEATURE_SETS = ("default", "no-dem", "s2-only")


def feature_config(name: str = "default"):
    """The FeatureConfig of a named set: ``default`` (S2 temporal + S1 + DEM + location), ``no-dem``, ``s2-only``."""
    if name == "default":
        return FeatureConfig()
    if name == "no-dem":
        return FeatureConfig(terrain=False)
    if name == "s2-only":
        return FeatureConfig(s1=False, terrain=False)
    raise InputError(f"invalid feature set {name!r}: expected one of {list(FEATURE_SETS)}")


def _per_class(codes) -> dict[str, int]:
    values, counts = np.unique(np.asarray(codes), return_counts=True)
    return {str(int(v)): int(n) for v, n in zip(values, counts, strict=True)}


def select_year(points: pd.DataFrame, year: int | None, name: str) -> tuple[pd.DataFrame, int]:
    """The points of ``year`` (default: the file's only year); InputError when none or ambiguous."""
    years = sorted(int(y) for y in pd.unique(points[YEAR]))
    if year is None:
        if len(years) > 1:
            raise InputError(f"points file {name} holds years {years}: choose one with --year")
        year = years[0]
    chosen = points[points[YEAR] == year].reset_index(drop=True)
    if chosen.empty:
        raise InputError(f"points file {name} has no points of year {year}: its years are {years}")
    return chosen, int(year)


def training_tables(pf: PointFeatures, split: GroupSplit, groups: pd.Series) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Train and test tables in the training module's layout; ``block_id`` is the split group.

    Using the group as the block id lets :func:`~worldcover.model.training.train_from_tables`
    check that no group sits on both sides.
    """
    t = pf.table
    table = pd.DataFrame({BLOCK_COLUMN: groups.to_numpy(), ROW_COLUMN: t[ROW_COLUMN].to_numpy(),
                          COL_COLUMN: t[COL_COLUMN].to_numpy(), LON_COLUMN: t[LON].to_numpy(),
                          LAT_COLUMN: t[LAT].to_numpy(), CODE_COLUMN: t[CLASS].to_numpy(np.uint8),
                          WEIGHT: t[WEIGHT].to_numpy(np.float64)})
    table = pd.concat([table, t[list(pf.feature_names)].reset_index(drop=True)], axis=1)
    test = table[BLOCK_COLUMN].isin(set(split.test)).to_numpy()
    return table[~test].reset_index(drop=True), table[test].reset_index(drop=True)


def train_from_points(points_file: str | os.PathLike, source: str, out_dir: str | os.PathLike, *,
                      year: int | None = None, group_by: str = "tile", chip_size: int = DEFAULT_CHIP_SIZE,
                      test_fraction: float = DEFAULT_TEST_FRACTION, seed: int = 0, features: str = "default",
                      params: Mapping | None = None, num_threads: int | None = None,
                      missing_groups: Mapping[str, float] | None = None, name: str = DEFAULT_MODEL_NAME,
                      source_obj=None, progress: Callable[[int, int, str], None] | None = None) -> dict:
    """Read, locate, featurise through the chain, split by group, train, card and save; a summary dict.

    ``source`` is the URL (or preset) recorded in the card; ``source_obj``
    an already opened source (default: :func:`worldcover.tile.run.open_source`).
    """
    if group_by not in GROUP_BY:
        raise InputError(f"invalid group-by {group_by!r}: expected one of {list(GROUP_BY)}")
    config = feature_config(features)
    raw, reference = read_points(points_file)
    points, year = select_year(raw, year, reference["file"])
    located = locate(points, chip_size)
    # refuse a missing group column, a bad fraction or a single group before minutes of loading
    split_groups(spatial_groups(located, group_by), located[CLASS], group_by, test_fraction, seed)
    src = source_obj if source_obj is not None else open_source(source, **source_needs(config))
    pf = extract_features(located, src, year, config, chip_size, progress=progress)
    groups = spatial_groups(pf.table, group_by)
    split = split_groups(groups, pf.table[CLASS], group_by, test_fraction, seed)
    train_df, test_df = training_tables(pf, split, groups)
    weighted = bool((points[WEIGHT] != 1.0).any())
    reference.update({
        "points_of_year": int(len(points)), "points_other_years": int(len(raw) - len(points)),
        "points_used": int(len(pf.table)), "points_per_class": _per_class(pf.table[CLASS]),
        "points_without_clear_observation": pf.points_without_clear_observation,
        "points_in_failed_chips": pf.points_in_failed_chips,
        "weights": ({"sum": float(points[WEIGHT].sum()), "min": float(points[WEIGHT].min()),
                     "max": float(points[WEIGHT].max())} if weighted else None),
    })
    provenance = {
        "reference": reference, "source": str(source), "year": year, "feature_config": config.to_dict(),
        "feature_set": features,
        "chain": "STAC API -> odc-stac -> preprocess_s2/preprocess_s1 -> compute_features "
                 "(worldcover.chain.chain_features, as tile run)",
        "chips": {"size": chip_size, "loaded": pf.chips_loaded, "failed": pf.chips_failed},
        "split": {"by": group_by, "rule": split.rule, "test_fraction": test_fraction, "seed": seed,
                  "train_groups": list(split.train), "test_groups": list(split.test),
                  "train_points": int(len(train_df)), "test_points": int(len(test_df)),
                  "train_points_per_class": _per_class(train_df[CODE_COLUMN]),
                  "test_points_per_class": _per_class(test_df[CODE_COLUMN])},
        "metrics_unit": "held-out points (unweighted)",
    }
    extra: dict[str, Any] = {}
    if weighted:
        extra["weight_column"] = WEIGHT
    if missing_groups:
        extra["missing_groups"] = dict(missing_groups)
    model = train_from_tables(train_df, test_df, list(pf.feature_names), params=params, seed=seed,
                              num_threads=num_threads, name=name, provenance=provenance, **extra)
    path = model.save(out_dir, overwrite=True)
    return {"model_dir": str(path), "name": model.name, "version": model.version, "year": year,
            "reference": reference, "split": provenance["split"], "chips": provenance["chips"],
            "metrics": dict(model.card.metrics or {})}


__all__ = [
    "DEFAULT_CHIP_SIZE", "FEATURE_SETS", "GROUP_BY", "GroupSplit", "PointFeatures", "check_points",
    "chip_samples", "extract_features", "feature_config", "locate", "read_points", "spatial_groups",
    "split_groups", "train_from_points",
]
