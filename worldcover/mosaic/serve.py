"""A web map of a mosaic: ``worldcover mosaic serve ROOT`` (tiles, click-to-query, a Leaflet page).

The tile server is titiler (FastAPI) over rio-tiler: no tile maths here.

* **Map** is titiler's ``TilerFactory`` over the mosaic's 10 m VRT
  (:class:`~worldcover.mosaic.build.MosaicPaths`); zoomed out, GDAL reads the
  VRT's 100 m / 1 km / 10 km overview COGs, and the VRT's colour table colours it.
* **Probability** and **InputQuality** have no mosaic of their own: each tile
  is served by rio-tiler's :func:`~rio_tiler.mosaic.mosaic_reader` over the
  per-tile COGs named by the mosaic's STAC items (``mosaic/<Y>/items/``), the
  ones whose footprint meets the web tile, from zoom :data:`TILE_LAYER_MINZOOM` on.
* **Land** (the background) is GLOBE's 1 km land mask sampled every
  :data:`LAND_STEP` degrees into an in-memory GeoTIFF that rio-tiler serves:
  the continents show without a base-map server (nothing leaves the machine).
* ``/query`` reads the class (VRT), probability and input-quality bands at a
  point with rio-tiler's ``Reader.point``; ``/outlines.geojson`` gives the
  3-degree tiles and their data footprints; ``/samples.geojson`` the validation
  sample (``validation/reference.csv`` if labelled, else ``samples.csv``).
* The page (``web/``) uses Leaflet from the npm registry, installed by
  ``make web`` (``npm ci``) into ``web/node_modules`` and served from there:
  nothing comes from a CDN, so the map works offline. Without it the server
  refuses to start (:func:`vendored_leaflet`).

Roots are local folders or ``s3://`` prefixes: paths go to GDAL through
:func:`worldcover.storage.gdal_path` (``/vsis3/``, configured from
``AWS_ENDPOINT_URL`` by :mod:`worldcover.storage`).
"""

from __future__ import annotations

import io
import json
import os
import posixpath
import socket
import threading
from dataclasses import dataclass, field
from pathlib import Path

import numpy

from worldcover import storage
from worldcover.errors import InputError
from worldcover.grid import Tile
from worldcover.landmask import GlobeLandMask
from worldcover.legend import BY_CODE, CLASSES, NODATA
from worldcover.mosaic.build import MosaicPaths

WEB_DIR = Path(__file__).with_name("web")
LEAFLET_DIR = WEB_DIR / "node_modules" / "leaflet" / "dist"
#: Below this zoom a web tile can meet hundreds of 3-degree tiles: the per-tile layers are not drawn.
TILE_LAYER_MINZOOM = 6


@dataclass(frozen=True)
class TileLayer:
    """A layer drawn from the tile COGs: which product and band, its value range and rio-tiler colour map."""

    product: str
    band: int
    range: tuple[float, float]
    colormap: str
    title: str


#: The per-tile layers (``/layers/{name}/tiles/...``).
TILE_LAYERS = {
    "probability": TileLayer("Prob", 1, (0, 100), "viridis", "Probability of the mapped class (%)"),
    "input_quality": TileLayer("InputQuality", 2, (0, 100), "magma", "Sentinel-2 observations (InputQuality band 2)"),
}
#: The land background: GLOBE's land mask (worldcover.landmask) sampled every LAND_STEP degrees
#: into one small in-memory GeoTIFF, so the page shows where the continents are without any base map server.
LAND_STEP = 0.1
LAND_RGBA = (236, 232, 222, 255)
SAMPLE_NAMES = ("reference.csv", "samples.csv")  # labelled first: it holds the design's columns and the labels
SAMPLES_SHOWN_MAX = 100  # more samples than this start hidden (ticked on in the page's layer control)


@dataclass(frozen=True)
class TileEntry:
    """One tile of the mosaic: its id, 3-degree box, data footprint and product paths as GDAL opens them."""

    tile: str
    box: tuple[float, float, float, float]
    footprint: dict  # GeoJSON geometry of the tile's data (its STAC item's geometry)
    bbox: tuple[float, float, float, float]
    products: dict[str, str] = field(default_factory=dict)  # "Map"/"Prob"/"InputQuality" -> GDAL path


@dataclass(frozen=True)
class Site:
    """Everything the server serves for one mosaic year, read once at start."""

    root: str
    year: int
    vrt: str  # GDAL path of the 10 m VRT
    tiles: tuple[TileEntry, ...]
    samples: dict | None  # GeoJSON FeatureCollection, or None when the root has no validation sample
    samples_file: str | None

    @property
    def bounds(self) -> tuple[float, float, float, float]:
        """(west, south, east, north) of the tiles' data footprints: where the page opens."""
        boxes = [t.bbox for t in self.tiles]
        return (min(b[0] for b in boxes), min(b[1] for b in boxes), max(b[2] for b in boxes), max(b[3] for b in boxes))


# --- reading the mosaic root -------------------------------------------------------------------


def vendored_leaflet() -> Path:
    """The folder of the vendored Leaflet build; an InputError saying how to install it when it is missing."""
    if not (LEAFLET_DIR / "leaflet.js").is_file() or not (LEAFLET_DIR / "leaflet.css").is_file():
        raise InputError(f"web map: Leaflet is not installed in {LEAFLET_DIR}: run `make web` "
                         f"(npm ci in {WEB_DIR}) first")
    return LEAFLET_DIR


def _year(root: storage.Location, year: int | None) -> int:
    """The mosaic year: the one asked for, else campaign.json's, else the only one under mosaic/."""
    if year is not None:
        return year
    plan_file = root / "campaign.json"
    if plan_file.is_file():
        found = json.loads(plan_file.read_text()).get("year")
        if isinstance(found, int):
            return found
    years = sorted(int(p.name) for p in (root / "mosaic").iterdir() if p.name.isdigit()) \
        if (root / "mosaic").is_dir() else []
    if len(years) != 1:
        raise InputError(f"mosaic root {str(root)!r}: " + (f"several mosaic years ({', '.join(map(str, years))}): "
                         "pass --year" if years else "no mosaic/<YEAR>/ folder: run `worldcover mosaic build` first"))
    return years[0]


def _join(folder: storage.Location, href: str) -> str:
    """GDAL path of ``href`` (relative to ``folder``), with ``..`` folded (object keys have no ``..``)."""
    if storage.is_remote(folder):
        scheme, rest = str(folder).split("://", 1)
        return storage.gdal_path(f"{scheme}://{posixpath.normpath(posixpath.join(rest, href))}")
    return os.path.normpath(os.path.join(str(folder), href))


def _product_of(href: str) -> str | None:
    """Which tile product an asset file is (by the file-name suffix both namings share)."""
    for product in ("Map", "Prob", "InputQuality"):
        if href.endswith(f"_{product}.tif"):
            return product
    return None


def _box(values) -> tuple[float, float, float, float]:
    """(west, south, east, north) as floats."""
    w, s, e, n = (float(v) for v in values)
    return w, s, e, n


def read_tiles(items_dir: storage.Location) -> tuple[TileEntry, ...]:
    """The tiles of the mosaic, from its STAC items (``items/<TILE>.json``)."""
    entries = []
    for name in sorted(p.name for p in items_dir.glob("*.json")):
        item = json.loads((items_dir / name).read_text())
        tile = name.removesuffix(".json")
        products = {p: _join(items_dir, a["href"]) for a in item.get("assets", {}).values()
                    if (p := _product_of(a.get("href", "")))}
        entries.append(TileEntry(tile, _box(Tile.parse(tile).bbox), item["geometry"], _box(item["bbox"]), products))
    return tuple(entries)


def read_samples(vdir: storage.Location) -> tuple[dict | None, str | None]:
    """The validation sample as GeoJSON points (map class, and reference class where labelled), or None."""
    import pandas as pd

    for name in SAMPLE_NAMES:
        f = vdir / name
        if f.is_file():
            frame = pd.read_csv(io.StringIO(f.read_text()))
            missing = {"lon", "lat", "map_class"} - set(frame.columns)
            if missing:
                raise InputError(f"validation sample {f}: expected columns lon, lat, map_class "
                                 f"(missing {', '.join(sorted(missing))})")
            features: list[dict] = []
            for rec in frame.to_dict("records"):
                ref = rec.get("reference_class")
                ref = None if ref is None or pd.isna(ref) else int(ref)
                props = {"id": int(rec["id"]) if "id" in rec else len(features) + 1,
                         "map_class": int(rec["map_class"]), "reference_class": ref,
                         "agree": None if ref is None else ref == int(rec["map_class"])}
                features.append({"type": "Feature", "properties": props,
                                 "geometry": {"type": "Point", "coordinates": [float(rec["lon"]), float(rec["lat"])]}})
            return {"type": "FeatureCollection", "features": features}, str(f)
    return None, None


def load_site(root, year: int | None = None) -> Site:
    """Check a mosaic root and read what the server needs; an InputError naming what is missing."""
    storage.check_location(str(root), "mosaic root")
    loc = storage.path(root)
    if not loc.is_dir():
        raise InputError(f"mosaic root {str(root)!r} does not exist or is not a folder")
    paths = MosaicPaths(loc, _year(loc, year))
    if not paths.vrt.is_file():
        raise InputError(f"mosaic root {str(root)!r}: no mosaic for {paths.year} ({paths.vrt} is missing): "
                         "run `worldcover mosaic build` first")
    tiles = read_tiles(paths.items)
    if not tiles:
        raise InputError(f"mosaic root {str(root)!r}: no STAC items in {paths.items}: rebuild the mosaic")
    samples, samples_file = read_samples(loc / "validation")
    return Site(storage.uri(loc), paths.year, storage.gdal_path(paths.vrt), tiles, samples, samples_file)


# --- the application ---------------------------------------------------------------------------


def outlines(site: Site) -> dict:
    """GeoJSON of each tile's 3-degree box (kind "tile") and its data footprint (kind "data")."""
    features = []
    for t in site.tiles:
        w, s, e, n = t.box
        features.append({"type": "Feature", "properties": {"tile": t.tile, "kind": "tile"},
                         "geometry": {"type": "Polygon", "coordinates": [[[w, s], [e, s], [e, n], [w, n], [w, s]]]}})
        features.append({"type": "Feature", "properties": {"tile": t.tile, "kind": "data"}, "geometry": t.footprint})
    return {"type": "FeatureCollection", "features": features}


def page_config(site: Site) -> dict:
    """What the page needs to draw itself: legend, layers, bounds, whether there are samples."""
    return {
        "title": f"WorldCover {site.year}: {site.root}",
        "year": site.year,
        "bounds": list(site.bounds),
        "legend": [{"code": c.code, "name": c.name, "colour": f"#{c.colour}"} for c in CLASSES],
        "tile_layer_minzoom": TILE_LAYER_MINZOOM,
        "layers": {name: {"title": spec.title, "range": list(spec.range), "colormap": spec.colormap}
                   for name, spec in TILE_LAYERS.items()},
        "tiles": len(site.tiles),
        "samples": site.samples is not None,
        "samples_shown_max": SAMPLES_SHOWN_MAX,
        "samples_file": site.samples_file,
    }


def _point(path: str, lon: float, lat: float) -> dict[str, float | int | None] | None:
    """Band values (by band description) at a point with rio-tiler; None outside the raster."""
    from rio_tiler.errors import PointOutsideBounds
    from rio_tiler.io import Reader

    try:
        with Reader(path) as src:
            pt = src.point(lon, lat)
            # the dataset's own descriptions: PointData.band_descriptions repeats the last one (rio-tiler 9.4)
            names = [d or f"b{i}" for i, d in enumerate(src.dataset.descriptions, 1)]
    except PointOutsideBounds:
        return None
    values, mask = pt.array.data.tolist(), numpy.ma.getmaskarray(pt.array).tolist()
    return {name: None if masked else value for name, value, masked in zip(names, values, mask, strict=True)}


def query(site: Site, lon: float, lat: float) -> dict:
    """Class, probability and input quality at a point (JSON for the page's click)."""
    if not (-180 <= lon <= 180 and -90 <= lat <= 90):
        raise InputError(f"query: lon {lon}, lat {lat} is not a WGS84 point (lon -180..180, lat -90..90)")
    out: dict = {"lon": lon, "lat": lat, "tile": None, "class": None, "class_name": None, "colour": None,
                 "probability": None, "input_quality": None}
    values = _point(site.vrt, lon, lat)
    code = next(iter(values.values())) if values else None
    if code is not None and code != NODATA:
        out.update({"class": int(code), "class_name": BY_CODE[int(code)].name if int(code) in BY_CODE else "unknown",
                    "colour": f"#{BY_CODE[int(code)].colour}" if int(code) in BY_CODE else None})
    for t in site.tiles:
        w, s, e, n = t.bbox
        if w <= lon < e and s < lat <= n:
            out["tile"] = t.tile
            if "Prob" in t.products and (prob := _point(t.products["Prob"], lon, lat)):
                out["probability"] = next(iter(prob.values()))
            if "InputQuality" in t.products:
                out["input_quality"] = _point(t.products["InputQuality"], lon, lat)
            break
    return out


def _tile_layer_png(site: Site, layer: str, z: int, x: int, y: int) -> bytes:
    """One web-mercator PNG of a per-tile layer, mosaicked by rio-tiler over the tiles that meet it."""
    from morecantile import Tile as WebTile
    from morecantile import tms as tms_registry
    from rio_tiler.colormap import cmap
    from rio_tiler.errors import TileOutsideBounds
    from rio_tiler.io import Reader
    from rio_tiler.mosaic import mosaic_reader

    spec = TILE_LAYERS[layer]
    tms = tms_registry.get("WebMercatorQuad")
    if z < TILE_LAYER_MINZOOM:
        raise TileOutsideBounds(f"{layer} is drawn from zoom {TILE_LAYER_MINZOOM} on")
    w, s, e, n = tms.bounds(WebTile(x, y, z))
    assets = [t.products[spec.product] for t in site.tiles if spec.product in t.products
              and t.bbox[0] < e and t.bbox[2] > w and t.bbox[1] < n and t.bbox[3] > s]
    if not assets:
        raise TileOutsideBounds(f"no {layer} data in tile {z}/{x}/{y}")

    def read(path: str, *args, **kwargs):
        with Reader(path, tms=tms) as src:
            return src.tile(*args, indexes=spec.band, **kwargs)

    image, _ = mosaic_reader(assets, read, x, y, z, threads=0)
    image.rescale(in_range=(spec.range,))
    return image.render(img_format="PNG", colormap=cmap.get(spec.colormap))


_land_lock = threading.Lock()
_land_memfile = None  # the land background's MemoryFile, kept open for the life of the process


def _land_raster() -> str:
    """GDAL path of the land background (uint8, 1 = land, nodata 0), built on first use (~1 s) and kept."""
    global _land_memfile
    with _land_lock:  # build it once, even when the first tiles arrive together
        if _land_memfile is None:
            from rasterio.enums import Resampling
            from rasterio.io import MemoryFile
            from rasterio.transform import from_origin

            lon = numpy.arange(-180 + LAND_STEP / 2, 180, LAND_STEP)
            lat = numpy.arange(90 - LAND_STEP / 2, -90, -LAND_STEP)
            grid_lon, grid_lat = numpy.meshgrid(lon, lat)
            land = GlobeLandMask().is_land(grid_lon.ravel(), grid_lat.ravel()).reshape(grid_lat.shape)
            memfile = MemoryFile()
            with memfile.open(driver="GTiff", width=land.shape[1], height=land.shape[0], count=1, dtype="uint8",
                              nodata=0, crs="EPSG:4326", transform=from_origin(-180, 90, LAND_STEP, LAND_STEP),
                              tiled=True, compress="deflate") as dst:
                dst.write(land.astype(numpy.uint8), 1)
                dst.build_overviews([2, 4, 8], Resampling.mode)
            _land_memfile = memfile
        return _land_memfile.name


def _land_png(z: int, x: int, y: int) -> bytes:
    """One web-mercator PNG of the land background (rio-tiler reads the in-memory raster)."""
    from morecantile import tms as tms_registry
    from rio_tiler.io import Reader

    with Reader(_land_raster(), tms=tms_registry.get("WebMercatorQuad")) as src:
        image = src.tile(x, y, z)
    return image.render(img_format="PNG", colormap={1: LAND_RGBA})


def create_app(site: Site):
    """The FastAPI application: titiler for Map, rio-tiler for the per-tile layers, the page and its JSON."""
    from fastapi import FastAPI, HTTPException, Query
    from fastapi.responses import FileResponse, JSONResponse, Response
    from fastapi.staticfiles import StaticFiles
    from titiler.core.errors import DEFAULT_STATUS_CODES, add_exception_handlers
    from titiler.core.factory import TilerFactory

    leaflet = vendored_leaflet()
    app = FastAPI(title=f"WorldCover {site.year} web map", docs_url="/api", redoc_url=None)
    add_exception_handlers(app, DEFAULT_STATUS_CODES)  # TileOutsideBounds -> 404, etc.

    def vrt_path() -> str:
        """titiler's dataset path: always the mosaic's VRT (no ?url=, so no other file can be opened)."""
        return site.vrt

    app.include_router(TilerFactory(path_dependency=vrt_path, router_prefix="/map", add_viewer=False).router,
                       prefix="/map", tags=["Map"])

    @app.get("/layers/{layer}/tiles/{z}/{x}/{y}.png", tags=["Layers"])
    def tile_layer(layer: str, z: int, x: int, y: int) -> Response:
        if layer not in TILE_LAYERS:
            raise HTTPException(404, f"no layer {layer!r}: expected one of {', '.join(TILE_LAYERS)}")
        return Response(_tile_layer_png(site, layer, z, x, y), media_type="image/png")

    @app.get("/land/tiles/{z}/{x}/{y}.png", tags=["Layers"])
    def land_layer(z: int, x: int, y: int) -> Response:
        return Response(_land_png(z, x, y), media_type="image/png")

    @app.get("/query", tags=["Query"])
    def query_point(lon: float = Query(...), lat: float = Query(...)) -> JSONResponse:
        try:
            return JSONResponse(query(site, lon, lat))
        except InputError as exc:
            raise HTTPException(400, str(exc)) from None

    @app.get("/config.json", tags=["Page"])
    def config() -> JSONResponse:
        return JSONResponse(page_config(site))

    @app.get("/outlines.geojson", tags=["Page"])
    def tile_outlines() -> JSONResponse:
        return JSONResponse(outlines(site), media_type="application/geo+json")

    @app.get("/samples.geojson", tags=["Page"])
    def samples() -> JSONResponse:
        if site.samples is None:
            raise HTTPException(404, f"no validation sample under {site.root}/validation")
        return JSONResponse(site.samples, media_type="application/geo+json")

    @app.get("/", include_in_schema=False)
    def index() -> FileResponse:
        return FileResponse(WEB_DIR / "index.html")

    app.mount("/vendor/leaflet", StaticFiles(directory=leaflet), name="leaflet")
    app.mount("/static", StaticFiles(directory=WEB_DIR / "static"), name="static")
    return app


def bind(host: str, port: int) -> socket.socket:
    """A listening socket on host:port, or an InputError when the port is taken (never a second server)."""
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
    # as uvicorn does: a restart may reuse a port whose old connections linger in TIME_WAIT; on Linux a
    # port another socket is listening on is still refused
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise InputError(f"web map: cannot listen on {host}:{port} ({exc.strerror}): pick another --port") from None
    sock.listen(128)
    return sock


def serve(site: Site, sock: socket.socket, log_level: str = "warning") -> None:
    """Serve the web map on an already bound socket until interrupted (uvicorn)."""
    import warnings

    import uvicorn

    # rio-tiler says so for every web tile of the global land raster (its poles lie beyond web mercator's)
    warnings.filterwarnings("ignore", message="Adjusting dataset latitudes")
    app = create_app(site)
    threading.Thread(target=_land_raster, name="land-background", daemon=True).start()  # ready before the page asks
    server = uvicorn.Server(uvicorn.Config(app, log_level=log_level, access_log=log_level == "info"))
    server.run(sockets=[sock])
