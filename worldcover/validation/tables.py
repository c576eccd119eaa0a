"""Reading and writing the validation team's tables, with one-line errors for bad ones.

* COUNTS.csv: map classes as rows (first column = class name), reference classes as
  columns (header row), sample counts in the cells.
* AREA.csv: ``class,mapped_pixels`` (with a pixel area) or ``class,mapped_area_ha``.
* samples (design output) as CSV, GeoJSON or GeoPackage; the labelled CSV read back
  with ``reference_class`` filled by code or by legend name.
Class names are arbitrary strings (Collect Earth / Geo-Wiki labels) matched exactly
after trimming surrounding spaces.
"""

from __future__ import annotations

import csv
import json
import math
import sqlite3
import struct
from pathlib import Path

import numpy as np
import pandas as pd

from worldcover import storage
from worldcover.errors import InputError
from worldcover.legend import BY_CODE, CLASSES
from worldcover.validation._io import atomic_path, write_text
from worldcover.validation.estimators import AccuracyResult, olofsson

SAMPLE_FORMATS = (".csv", ".geojson", ".gpkg")


def _read_rows(path: str | storage.Location, what: str) -> list[list[str]]:
    """Non-blank CSV rows with cells trimmed; raise if the file is missing or empty."""
    path = storage.path(path)
    try:
        text = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise InputError(f"{what} {path}: file not found") from None
    except (UnicodeDecodeError, IsADirectoryError) as exc:
        raise InputError(f"{what} {path}: cannot be read as UTF-8 CSV text ({exc.__class__.__name__})") from None
    rows = [[cell.strip() for cell in row] for row in csv.reader(text.splitlines())]
    rows = [row for row in rows if any(row)]
    if not rows:
        raise InputError(f"{what} {path} is empty: expected a header row and one row per class")
    return rows


def _number(cell: str, where: str, *, whole: bool) -> float:
    """Parse a non-negative finite number (whole if asked) or raise naming the cell."""
    kind = "a non-negative whole number" if whole else "a non-negative number"
    if cell == "":
        raise InputError(f"{where} is empty: expected {kind}")
    try:
        if "_" in cell:  # float() accepts 1_000; a spreadsheet cell should not
            raise ValueError(cell)
        value = float(cell)
    except ValueError:
        raise InputError(f"{where} = {cell!r} is not numeric: expected {kind}") from None
    if not math.isfinite(value) or value < 0 or (whole and value != int(value)):
        raise InputError(f"{where} = {cell!r}: expected {kind}")
    return value


def _no_duplicates(names: list[str], where: str) -> None:
    seen: set[str] = set()
    for name in names:
        if name == "":
            raise InputError(f"{where}: a class name is empty")
        if name in seen:
            raise InputError(f"{where}: class {name!r} appears twice; expected each class once")
        seen.add(name)


def read_counts(path: str | storage.Location) -> tuple[list[str], np.ndarray]:
    """Class names (row order) and the square count matrix, columns reordered to match the rows."""
    rows = _read_rows(path, "counts table")
    header, body = rows[0], rows[1:]
    while len(header) > 1 and header[-1] == "":
        header = header[:-1]  # trailing separators some spreadsheets add
    ref_names = header[1:]
    if not ref_names or not body:
        raise InputError(
            f"counts table {path}: expected a header row of reference classes and one row of counts per map class"
        )
    _no_duplicates(ref_names, f"counts table {path} header (reference classes)")
    width = len(header)
    cleaned = []
    for k, row in enumerate(body, start=2):
        if len(row) > width and not any(row[width:]):
            row = row[:width]
        if len(row) != width:
            raise InputError(
                f"counts table {path} line {k} ({row[0]!r}): {len(row)} cells, expected {width} "
                "(class name + one count per reference class)"
            )
        cleaned.append(row)
    map_names = [row[0] for row in cleaned]
    _no_duplicates(map_names, f"counts table {path} first column (map classes)")
    for name in ref_names:
        if name not in map_names:
            raise InputError(
                f"counts table {path}: reference class {name!r} (a column) has no row; every class "
                "must be both a map class (row) and a reference class (column)"
            )
    for name in map_names:
        if name not in ref_names:
            raise InputError(
                f"counts table {path}: map class {name!r} (a row) has no column; every class "
                "must be both a map class (row) and a reference class (column)"
            )
    values = np.array(
        [
            [_number(cell, f"counts table {path} cell (map {row[0]!r}, reference {ref!r})", whole=True)
             for ref, cell in zip(ref_names, row[1:], strict=True)]
            for row in cleaned
        ]
    )
    values = values[:, [ref_names.index(name) for name in map_names]]
    return map_names, values.astype(np.int64)


def read_mapped_area(path: str | storage.Location, pixel_area_ha: float | None = None) -> dict[str, float]:
    """Mapped area (ha) per class from ``class,mapped_area_ha`` or ``class,mapped_pixels`` (x pixel area)."""
    rows = _read_rows(path, "mapped-area table")
    header = [h.lower() for h in rows[0]]
    if "class" not in header:
        raise InputError(
            f"mapped-area table {path}: no 'class' column; expected class,mapped_pixels or class,mapped_area_ha"
        )
    has_px, has_ha = "mapped_pixels" in header, "mapped_area_ha" in header
    if has_px == has_ha:
        raise InputError(
            f"mapped-area table {path}: expected exactly one of the columns mapped_pixels, mapped_area_ha "
            f"(found {', '.join(rows[0])})"
        )
    column = "mapped_pixels" if has_px else "mapped_area_ha"
    if has_px and pixel_area_ha is None:
        raise InputError(
            f"mapped-area table {path} gives mapped_pixels: --pixel-area-ha is needed to turn them into ha"
        )
    if has_ha and pixel_area_ha is not None:
        raise InputError(
            f"mapped-area table {path} gives mapped_area_ha: --pixel-area-ha applies to mapped_pixels only"
        )
    if pixel_area_ha is not None and not (math.isfinite(pixel_area_ha) and pixel_area_ha > 0):
        raise InputError(f"--pixel-area-ha {pixel_area_ha}: expected a positive number of hectares")
    ci, vi = header.index("class"), header.index(column)
    body = rows[1:]
    if not body:
        raise InputError(f"mapped-area table {path}: no rows after the header; expected one row per class")
    names, values = [], []
    for k, row in enumerate(body, start=2):
        if len(row) <= max(ci, vi):
            raise InputError(f"mapped-area table {path} line {k}: {len(row)} cells, expected {len(header)}")
        names.append(row[ci])
        values.append(_number(row[vi], f"mapped-area table {path} line {k} {column}", whole=has_px))
    _no_duplicates(names, f"mapped-area table {path}")
    factor = pixel_area_ha if has_px and pixel_area_ha is not None else 1.0  # has_px without it: refused above
    return {name: value * factor for name, value in zip(names, values, strict=True)}


def estimate_from_tables(
    counts_path: str | storage.Location, area_path: str | storage.Location, pixel_area_ha: float | None = None
) -> AccuracyResult:
    """Olofsson et al. (2014) estimates from a COUNTS.csv and an AREA.csv (strata = map classes)."""
    names, counts = read_counts(counts_path)
    area = read_mapped_area(area_path, pixel_area_ha)
    missing = [n for n in names if n not in area]
    if missing:
        raise InputError(
            f"mapped-area table {area_path}: no row for class(es) {', '.join(map(repr, missing))} of {counts_path}"
        )
    extra = [n for n, a in area.items() if n not in names and a > 0]
    if extra:
        raise InputError(
            f"mapped-area table {area_path}: class(es) {', '.join(map(repr, extra))} have mapped area but no "
            f"row in {counts_path} (a stratum with no samples)"
        )
    for name, row_total in zip(names, counts.sum(axis=1), strict=True):
        if row_total == 0 and area[name] > 0:
            raise InputError(
                f"counts table {counts_path}: stratum {name!r} has no samples (its row sums to 0) but "
                f"{area[name]:g} ha mapped; expected at least one sample unit per mapped class"
            )
        if row_total > 0 and area[name] == 0:
            raise InputError(f"mapped-area table {area_path}: class {name!r} has samples but zero mapped area")
    return olofsson(counts, [area[n] for n in names], names)


def write_counts(
    path: str | storage.Location, names: list[str], counts: np.ndarray, corner: str = "map\\reference"
) -> storage.Location:
    """Write a count matrix in the COUNTS.csv layout (readable by :func:`read_counts`)."""
    frame = pd.DataFrame(np.asarray(counts, dtype=np.int64), index=pd.Index(names, name=corner), columns=names)
    return write_text(path, frame.to_csv(lineterminator="\n"))


def write_mapped_area(path: str | storage.Location, names: list[str], area_ha: np.ndarray) -> storage.Location:
    """Write ``class,mapped_area_ha`` (readable by :func:`read_mapped_area`)."""
    frame = pd.DataFrame({"class": names, "mapped_area_ha": np.asarray(area_ha, dtype=float)})
    return write_text(path, frame.to_csv(index=False, lineterminator="\n", float_format="%.6f"))


# ----------------------------------------------------------------------------------------------
# sample files
# ----------------------------------------------------------------------------------------------


def write_samples(samples: pd.DataFrame, out: str | storage.Location) -> storage.Location:
    """Write the design's samples as .csv, .geojson or .gpkg (points in EPSG:4326), atomically."""
    out = storage.path(out)
    suffix = out.suffix.lower()
    if suffix == ".csv":
        return write_text(out, samples.to_csv(index=False, lineterminator="\n"))
    if suffix == ".geojson":
        return write_text(out, _geojson(samples))
    if suffix == ".gpkg":
        with atomic_path(out) as tmp:
            _write_gpkg(samples, tmp)
        return out
    raise InputError(f"output {out}: expected a .csv, .geojson or .gpkg file name")


def _records(samples: pd.DataFrame) -> list[dict]:
    """Rows as plain Python values; an empty reference_class becomes None."""
    records = json.loads(samples.to_json(orient="records", double_precision=15))
    for rec in records:
        if rec.get("reference_class") in ("", None):
            rec["reference_class"] = None
    return records


def _geojson(samples: pd.DataFrame) -> str:
    features = [
        {"type": "Feature", "geometry": {"type": "Point", "coordinates": [rec["lon"], rec["lat"]]}, "properties": rec}
        for rec in _records(samples)
    ]
    return json.dumps({"type": "FeatureCollection", "features": features}, indent=1)


_GPKG_4326_WKT = (
    'GEOGCS["WGS 84",DATUM["WGS_1984",SPHEROID["WGS 84",6378137,298.257223563,AUTHORITY["EPSG","7030"]],'
    'AUTHORITY["EPSG","6326"]],PRIMEM["Greenwich",0,AUTHORITY["EPSG","8901"]],UNIT["degree",0.0174532925199433,'
    'AUTHORITY["EPSG","9122"]],AXIS["Latitude",NORTH],AXIS["Longitude",EAST],AUTHORITY["EPSG","4326"]]'
)


def gpkg_point(lon: float, lat: float, srs_id: int = 4326) -> bytes:
    """A GeoPackage binary point: 'GP' header (v0, little-endian, no envelope) + ISO WKB point."""
    return b"GP" + struct.pack("<BBi", 0, 0b00000001, srs_id) + struct.pack("<BIdd", 1, 1, lon, lat)


def _write_gpkg(samples: pd.DataFrame, path: Path, table: str = "samples") -> None:
    """A minimal OGC GeoPackage 1.3 with one point layer (no spatial index)."""
    sql_types = {"i": "INTEGER", "u": "INTEGER", "f": "REAL", "b": "INTEGER"}
    columns = [(c, sql_types.get(samples[c].dtype.kind, "TEXT")) for c in samples.columns]
    records = _records(samples)
    con = sqlite3.connect(path)
    try:
        con.execute("PRAGMA application_id = 1196444487")  # 'GPKG'
        con.execute("PRAGMA user_version = 10300")
        con.executescript(
            """
            CREATE TABLE gpkg_spatial_ref_sys (srs_name TEXT NOT NULL, srs_id INTEGER PRIMARY KEY,
              organization TEXT NOT NULL, organization_coordsys_id INTEGER NOT NULL,
              definition TEXT NOT NULL, description TEXT);
            CREATE TABLE gpkg_contents (table_name TEXT NOT NULL PRIMARY KEY, data_type TEXT NOT NULL,
              identifier TEXT UNIQUE, description TEXT DEFAULT '',
              last_change DATETIME NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ','now')),
              min_x DOUBLE, min_y DOUBLE, max_x DOUBLE, max_y DOUBLE, srs_id INTEGER,
              CONSTRAINT fk_gc_r_srs_id FOREIGN KEY (srs_id) REFERENCES gpkg_spatial_ref_sys(srs_id));
            CREATE TABLE gpkg_geometry_columns (table_name TEXT NOT NULL, column_name TEXT NOT NULL,
              geometry_type_name TEXT NOT NULL, srs_id INTEGER NOT NULL, z TINYINT NOT NULL, m TINYINT NOT NULL,
              CONSTRAINT pk_geom_cols PRIMARY KEY (table_name, column_name),
              CONSTRAINT fk_gc_tn FOREIGN KEY (table_name) REFERENCES gpkg_contents(table_name),
              CONSTRAINT fk_gc_srs FOREIGN KEY (srs_id) REFERENCES gpkg_spatial_ref_sys (srs_id));
            """
        )
        con.executemany(
            "INSERT INTO gpkg_spatial_ref_sys VALUES (?, ?, ?, ?, ?, ?)",
            [
                ("Undefined cartesian SRS", -1, "NONE", -1, "undefined",
                 "undefined cartesian coordinate reference system"),
                ("Undefined geographic SRS", 0, "NONE", 0, "undefined",
                 "undefined geographic coordinate reference system"),
                ("WGS 84 geodetic", 4326, "EPSG", 4326, _GPKG_4326_WKT,
                 "longitude/latitude coordinates in decimal degrees on the WGS 84 spheroid"),
            ],
        )
        cols_sql = ", ".join(f'"{c}" {t}' for c, t in columns)
        con.execute(f'CREATE TABLE "{table}" (fid INTEGER PRIMARY KEY AUTOINCREMENT, geom POINT, {cols_sql})')
        lon, lat = samples["lon"].to_numpy(float), samples["lat"].to_numpy(float)
        bounds = ((float(lon.min()), float(lat.min()), float(lon.max()), float(lat.max())) if len(samples)
                  else (None,) * 4)
        con.execute(
            "INSERT INTO gpkg_contents "
            "(table_name, data_type, identifier, description, min_x, min_y, max_x, max_y, srs_id) "
            "VALUES (?, 'features', ?, 'worldcover validation sample', ?, ?, ?, ?, 4326)",
            (table, table, *bounds),
        )
        con.execute("INSERT INTO gpkg_geometry_columns VALUES (?, 'geom', 'POINT', 4326, 0, 0)", (table,))
        placeholders = ", ".join("?" for _ in range(len(columns) + 1))
        names_sql = ", ".join(f'"{c}"' for c, _ in columns)
        con.executemany(
            f'INSERT INTO "{table}" (geom, {names_sql}) VALUES ({placeholders})',
            [(gpkg_point(r["lon"], r["lat"]), *(r[c] for c, _ in columns)) for r in records],
        )
        con.commit()
    finally:
        con.close()


_NAME_TO_CODE = {" ".join(c.name.lower().split()): c.code for c in CLASSES}


def parse_class_label(value: object) -> int | None:
    """A WorldCover code from a code (``10``, ``10.0``) or a legend name (any case); None if unknown."""
    text = " ".join(str(value).strip().lower().split())
    if text in _NAME_TO_CODE:
        return _NAME_TO_CODE[text]
    try:
        number = float(text)
    except ValueError:
        return None
    return int(number) if number.is_integer() and int(number) in BY_CODE else None


def read_labelled(path: str | storage.Location) -> pd.DataFrame:
    """The design output with ``reference_class`` filled; adds integer ``ref_code`` (and checks ``map_class``)."""
    path = storage.path(path)
    if not path.exists():
        raise InputError(f"labelled samples {path}: file not found")
    try:
        with path.open("rb") as f:
            df = pd.read_csv(f, dtype={"reference_class": str}, keep_default_na=False, encoding="utf-8-sig")
    except (pd.errors.EmptyDataError, pd.errors.ParserError, UnicodeDecodeError) as exc:
        raise InputError(f"labelled samples {path}: not a readable CSV ({str(exc).splitlines()[0]})") from None
    df.columns = [str(c).strip() for c in df.columns]
    needed = ["lon", "lat", "map_class", "reference_class"]
    missing = [c for c in needed if c not in df.columns]
    if missing:
        raise InputError(f"labelled samples {path}: missing column(s) {', '.join(missing)}; expected the design output")
    if df.empty:
        raise InputError(f"labelled samples {path}: no sample rows")
    ids = df["id"].astype(str) if "id" in df.columns else pd.Series((df.index + 2).astype(str))
    for col in ("lon", "lat"):
        values = pd.to_numeric(df[col], errors="coerce")
        if values.isna().any():
            raise InputError(f"labelled samples {path}: non-numeric {col} at id(s) {', '.join(ids[values.isna()][:5])}")
        df[col] = values.astype(float)
    map_code = df["map_class"].map(parse_class_label)
    if map_code.isna().any():
        raise InputError(
            f"labelled samples {path}: map_class is not a WorldCover class at id(s) "
            f"{', '.join(ids[map_code.isna()][:5])}"
        )
    df["map_class"] = map_code.astype(int)
    empty = df["reference_class"].str.strip() == ""
    if empty.any():
        raise InputError(
            f"labelled samples {path}: {int(empty.sum())} sample(s) have no reference_class "
            f"(id(s) {', '.join(ids[empty][:5])}{', ...' if empty.sum() > 5 else ''}); label them or remove the rows"
        )
    ref = df["reference_class"].map(parse_class_label)
    bad = ref.isna()
    if bad.any():
        labels = sorted(set(df.loc[bad, "reference_class"]))[:5]
        raise InputError(
            f"labelled samples {path}: reference_class {', '.join(map(repr, labels))} (id(s) "
            f"{', '.join(ids[bad][:5])}) is not a WorldCover code or class name"
        )
    df["ref_code"] = ref.astype(int)
    return df
