"""The mosaic's STAC collection (pystac), and its validation without network.

One collection per campaign year, written beside the mosaic::

    ROOT/mosaic/<YEAR>/collection.json       mosaic assets: VRT, overview COGs, quicklook, area tables
    ROOT/mosaic/<YEAR>/items/<TILE>.json     one item per finished tile, from the tile's own item

Raster assets carry the projection (v2.0.0: ``proj:code``, shape, transform,
bbox), raster (v1.1.0: ``raster:bands``) and classification (v1.1.0:
``classification:classes`` with value, name, description, color_hint)
extensions; every file asset carries ``file:checksum``/``file:size``. All
hrefs are relative, so the catalogue moves with the folder.

Offline validation: pystac validates with JSON schemas it would fetch over
HTTP. pystac ships the STAC core schemas (v1.1.0) and GeoJSON schemas; the
extension schemas are vendored verbatim in ``worldcover/mosaic/schemas/``
(from the stac-extensions ``gh-pages`` branches, the files served at the
schema URIs; see ``schemas/SOURCE.md``), and PROJJSON's schema comes from the
pyproj wheel. :class:`OfflineValidator` preloads them under their URIs and
refuses to fetch anything else, so validation never touches the network.
The classification extension is declared at v1.1.0, the newest release whose
published schema we hold (pystac's default, v2.0.0, is not vendorable here);
the classes we write also satisfy v2.0.0 (``name`` is machine-readable).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib import resources
from pathlib import Path
from typing import Any

import pystac
import rasterio
from pystac.extensions.classification import Classification
from pystac.validation.local_validator import get_local_schema_cache
from pystac.validation.stac_validator import JsonSchemaSTACValidator

from worldcover import storage
from worldcover.errors import DataError
from worldcover.layout import TilePaths, multihash_sha256
from worldcover.legend import CLASSES, NODATA
from worldcover.mosaic.maps import MapFile, map_file_item
from worldcover.storage import atomic_write_text
from worldcover.storage import sha256 as sha256_file

PROJECTION = "https://stac-extensions.github.io/projection/v2.0.0/schema.json"
RASTER = "https://stac-extensions.github.io/raster/v1.1.0/schema.json"
CLASSIFICATION = "https://stac-extensions.github.io/classification/v1.1.0/schema.json"
FILE = "https://stac-extensions.github.io/file/v2.1.0/schema.json"
PROJJSON = "https://proj.org/schemas/v0.7/projjson.schema.json"
VENDORED = {
    PROJECTION: "projection-v2.0.0.json",
    RASTER: "raster-v1.1.0.json",
    CLASSIFICATION: "classification-v1.1.0.json",
    FILE: "file-v2.1.0.json",
}
MEDIA_VRT = "application/x-gdal-vrt+xml"  # no registered type; GDAL's format is XML
LICENSE = "CC-BY-4.0"  # as ESA WorldCover


# --- offline validation --------------------------------------------------------------------


class SchemaNotVendored(DataError):
    """A STAC object declares an extension whose schema is not available offline."""


def vendored_schemas() -> dict[str, dict]:
    """Extension schemas shipped in this package, by schema URI (plus PROJJSON from pyproj)."""
    folder = resources.files("worldcover.mosaic").joinpath("schemas")
    out = {uri: json.loads(folder.joinpath(name).read_text()) for uri, name in VENDORED.items()}
    import pyproj

    projjson = Path(pyproj.datadir.get_data_dir()) / "projjson.schema.json"
    if projjson.is_file():
        schema = json.loads(projjson.read_text())
        if schema.get("$id") == PROJJSON:
            out[PROJJSON] = schema
    return out


class OfflineValidator(JsonSchemaSTACValidator):
    """pystac's JSON-schema validator with every schema preloaded; it never fetches."""

    def __init__(self) -> None:
        super().__init__()
        self.schema_cache = {**get_local_schema_cache(), **vendored_schemas()}
        self._validators: dict[str, Any] = {}

    def _get_schema(self, schema_uri: str) -> dict[str, Any]:
        try:
            return self.schema_cache[schema_uri]
        except KeyError:
            raise SchemaNotVendored(f"schema {schema_uri} is not available offline") from None

    def _validate_from_uri(self, stac_dict: dict[str, Any], stac_object_type: Any, schema_uri: str,
                           href: str | None = None) -> None:
        """pystac's check, with one compiled validator per schema: thousands of items check fast.

        (pystac re-checks the schema and rebuilds the registry for every object.)
        """
        import jsonschema

        validator = self._validators.get(schema_uri)
        if validator is None:
            schema = self._get_schema(schema_uri)
            cls = jsonschema.validators.validator_for(schema)
            cls.check_schema(schema)
            validator = self._validators[schema_uri] = cls(schema, registry=self.registry)
        errors = list(validator.iter_errors(stac_dict))
        if errors:
            best = jsonschema.exceptions.best_match(errors)
            raise pystac.STACValidationError(
                f"Validation failed for {stac_object_type} with ID {stac_dict.get('id')} against schema at "
                f"{schema_uri}\n{best}", source=errors,
            )


@dataclass
class ValidationReport:
    """Which schemas a STAC object was validated against, and which it declares but we cannot check."""

    validated: list[str] = field(default_factory=list)
    not_vendored: list[str] = field(default_factory=list)


def _deepest(errors: list) -> Any:
    """The jsonschema error deepest in the instance, looking inside oneOf/anyOf branches: the one to show."""
    best, stack = None, list(errors)
    while stack:
        e = stack.pop(0)
        if best is None or len(e.absolute_path) > len(best.absolute_path):
            best = e
        stack.extend(e.context or [])
    return best


def validate_offline(stac_dict: dict, validator: OfflineValidator | None = None) -> ValidationReport:
    """Validate a STAC dict against its core schema and each declared extension, offline.

    Raises :class:`DataError` (with the best jsonschema error) when it does not
    validate; extensions without a vendored schema are listed in ``not_vendored``.
    """
    from pystac.serialization import identify_stac_object

    v = validator or OfflineValidator()
    kind = identify_stac_object(stac_dict).object_type
    version = str(stac_dict.get("stac_version", ""))
    report = ValidationReport()
    what = f"{kind} {stac_dict.get('id')!r}"
    try:
        report.validated.append(str(v.validate_core(stac_dict, kind, version)))
        for ext in stac_dict.get("stac_extensions", []):
            if ext not in v.schema_cache:
                report.not_vendored.append(ext)
                continue
            report.validated.append(str(v.validate_extension(stac_dict, kind, version, ext)))
    except pystac.STACValidationError as exc:
        best = _deepest(exc.source or [])
        detail = (f"{best.message[:300]} at {'/'.join(map(str, best.absolute_path)) or '(root)'}" if best
                  else str(exc).splitlines()[0])
        raise DataError(f"STAC {what} does not validate: {detail}") from None
    return report


# --- asset fields ------------------------------------------------------------------------


def class_slug(name: str) -> str:
    """Machine-readable class name (classification v2 pattern ``^[0-9A-Za-z-_]+$``)."""
    return "-".join("".join(ch if ch.isalnum() else " " for ch in name.lower()).split())


def classification_fields() -> dict:
    """``classification:classes``: the legend with official colours, and the nodata value."""
    classes = [
        Classification.create(value=c.code, description=c.name, name=class_slug(c.name), color_hint=c.colour.upper())
        for c in CLASSES
    ]
    nodata = Classification.create(value=NODATA, description="No data", name="no-data", nodata=True)
    return {"classification:classes": [nodata.to_dict()] + [c.to_dict() for c in classes]}


def raster_fields(path: storage.Location, metres: float | None = None) -> dict:
    """Projection and raster extension fields read from a raster's header."""
    with rasterio.open(storage.gdal_path(path)) as src:
        t, b = src.transform, src.bounds
        band: dict[str, Any] = {"data_type": src.dtypes[0]}
        if src.nodata is not None:
            band["nodata"] = src.nodata if src.dtypes[0].startswith("float") else int(src.nodata)
        if metres is not None:
            band["spatial_resolution"] = metres
        return {
            "proj:code": f"EPSG:{src.crs.to_epsg()}" if src.crs and src.crs.to_epsg() else None,
            "proj:shape": [src.height, src.width],
            "proj:transform": [t.a, t.b, t.c, t.d, t.e, t.f],
            "proj:bbox": [b.left, b.bottom, b.right, b.top],
            "raster:bands": [band] * src.count,
        }


def file_fields(path: storage.Location, checksum: str | None = None) -> dict:
    """``file:size`` and ``file:checksum`` (sha256 multihash) of a file."""
    return {"file:size": storage.size(path), "file:checksum": checksum or multihash_sha256(sha256_file(path))}


def _rel(path, start) -> str:
    return storage.relpath(path, start)


# --- objects -----------------------------------------------------------------------------


@dataclass(frozen=True)
class MosaicAsset:
    """A file of the mosaic to list in the collection."""

    key: str
    path: storage.Location
    media_type: str
    roles: tuple[str, ...]
    title: str
    metres: float | None = None  # raster: nominal pixel size; None for non-rasters
    categorical: bool = False


def year_interval(year: int) -> tuple[datetime, datetime]:
    return (datetime(year, 1, 1, tzinfo=UTC), datetime(year, 12, 31, 23, 59, 59, tzinfo=UTC))


def _extension_name(uri: str) -> str | None:
    """'classification' for https://stac-extensions.github.io/classification/v1.1.0/schema.json; None otherwise."""
    prefix = "https://stac-extensions.github.io/"
    return uri[len(prefix):].split("/", 1)[0] if uri.startswith(prefix) else None


def declared_extensions(existing: list[str]) -> list[str]:
    """``existing`` with ours added, each of our extensions at our version only.

    pystac's migration rewrites an item's extension URIs to the versions it knows
    (classification v1.1.0 becomes v2.0.0), so a tile item that declares v1.1.0
    would come out declaring both; the fields we write follow our version, whose
    schema we hold, and that is the one declared."""
    ours = {PROJECTION, RASTER, CLASSIFICATION, FILE}
    names = {_extension_name(u) for u in ours}
    kept = {u for u in existing if _extension_name(u) not in names}
    return sorted(kept | ours)


def tile_item(paths: TilePaths | MapFile, items_dir: storage.Location, collection_id: str, map_checksum: str) -> dict:
    """The collection's item for one tile: the tile's own item, re-homed and extended.

    Links are replaced by the collection's; asset hrefs become relative to
    ``items_dir``; raster assets get projection/raster fields from their
    headers, and the Map asset the legend (classification).
    """
    # a plain Map file (e.g. ESA's own tile) has no item: one from its header
    src = map_file_item(paths) if paths.item is None else json.loads(paths.item.read_text())
    item = pystac.Item.from_dict(src, preserve_dict=True, migrate=True)
    item.clear_links()
    item.collection_id = collection_id
    for asset in item.assets.values():
        local = paths.dir / asset.href.rsplit("/", 1)[-1]
        asset.href = _rel(local, items_dir)
        if local.suffix == ".tif":
            asset.extra_fields.update(raster_fields(local))
            asset.media_type = asset.media_type or pystac.MediaType.COG
        if local.name == paths.map.name:
            asset.extra_fields.update(classification_fields())
            asset.extra_fields.setdefault("file:checksum", map_checksum)
        if "file:checksum" not in asset.extra_fields:
            asset.extra_fields.update(file_fields(local))
    item.stac_extensions = declared_extensions(item.stac_extensions)
    d = item.to_dict(include_self_link=False, transform_hrefs=False)
    d["links"] = [
        {"rel": "root", "href": "../collection.json", "type": "application/json"},
        {"rel": "parent", "href": "../collection.json", "type": "application/json"},
        {"rel": "collection", "href": "../collection.json", "type": "application/json"},
    ]
    return d


def collection_dict(
    collection_id: str,
    year: int,
    bbox: tuple[float, float, float, float],
    folder: storage.Location,
    assets: list[MosaicAsset],
    item_ids: list[str],
    description: str,
) -> dict:
    """The collection: spatial/temporal extent, mosaic assets with their extension fields, item links."""
    start, end = year_interval(year)
    coll = pystac.Collection(
        id=collection_id,
        title=f"WorldCover-style land cover {year} ({collection_id})",
        description=description,
        extent=pystac.Extent(pystac.SpatialExtent([list(bbox)]), pystac.TemporalExtent([[start, end]])),
        license=LICENSE,
        keywords=["land cover", "WorldCover", "Sentinel-1", "Sentinel-2", "10 m"],
        stac_extensions=sorted({PROJECTION, RASTER, CLASSIFICATION, FILE}),
    )
    for a in assets:
        extra = file_fields(a.path)
        if a.metres is not None:
            extra.update(raster_fields(a.path, a.metres))
        if a.categorical:
            extra.update(classification_fields())
        coll.add_asset(a.key, pystac.Asset(_rel(a.path, folder), title=a.title, media_type=a.media_type,
                                           roles=list(a.roles), extra_fields=extra))
    d = coll.to_dict(include_self_link=False, transform_hrefs=False)
    d["links"] = [{"rel": "root", "href": "./collection.json", "type": "application/json"}] + [
        {"rel": "item", "href": f"./items/{t}.json", "type": "application/geo+json"} for t in item_ids
    ]
    return d


def write_json(path: storage.Location, d: dict) -> storage.Location:
    atomic_write_text(path, json.dumps(d, indent=1))
    return path
