"""Per-pixel classification features of one block, with stable names.

Inputs are the preprocessing outputs on the block grid:

* ``s2``: :func:`worldcover.preprocess.s2.composite` output, float32 reflectance
  per band with dims ``(time, y, x)`` (36 gap-filled dekads);
* ``s1``: :func:`worldcover.preprocess.s1.preprocess_s1` ``.db``, with
  ``vv_db``, ``vh_db``, ``ratio_db`` over ``(time, y, x)``;
* ``dem``: ``(y, x)`` float32 metres.

:func:`compute_features` returns a ``(feature, y, x)`` float32 DataArray whose
``feature`` coordinate equals :func:`feature_names` of the same config, which
the model card stores so that a model refuses features it was not trained on.
Names, in order::

    s2_{band}_p{NN}        per-band temporal percentiles (10/25/50/75/90)
    {index}_p{NN}          per-index temporal percentiles (index lower-case: ndvi_p90)
    ndvi_m{MM}             monthly NDVI (mean of the month's dekads), 01..12
    s2_{band}_summer       summer-month median composite (baseline config only)
    {index}_summer         indices of that composite
    s1_{var}_p{NN}         S1 percentiles of vv_db, vh_db, ratio_db
    s1_{var}_std           and their temporal standard deviation
    dem, slope             metres, degrees
    lat_sin lat_cos [lon_sin lon_cos] location encodings (longitude only with ``longitude=True``)

Indices are evaluated with the formulas of spyndex's Awesome Spectral Indices
catalogue (``spyndex.computeIndex``), with S2 bands mapped through spyndex's own
band table (N -> B08, RE1 -> B05, S1 -> B11, ...) and its default constants
(EVI: g=2.5, C1=6, C2=7.5, L=1).  Red-edge indices: spyndex has no ``NDRE``;
its normalised difference of NIR and red-edge 1 is ``NDREI`` (N-RE1)/(N+RE1).

Everything is lazy on dask input; all-NaN pixels give NaN features without
warnings (no ``np.nan*`` reductions, ``np.errstate`` around index formulas).
"""

from __future__ import annotations

import functools
from collections.abc import Iterable
from dataclasses import dataclass, field, fields
from typing import Any, cast

import numpy as np
import xarray as xr

from worldcover.bands import S2_BANDS, S2_CLOUDLESS_BANDS
from worldcover.errors import DataError, InputError
from worldcover.preprocess.kernels import (
    TIME,
    apply_along_time,
    group_mean,
    is_dask,
    map_overlap_yx,
    nan_std,
    sorted_quantiles,
    spatial_dims,
)

__all__ = [
    "DEFAULT_BANDS",
    "DEFAULT_INDICES",
    "FEATURE",
    "FeatureConfig",
    "compute_features",
    "feature_names",
    "location_features",
    "n_features",
    "lonlat",
    "pixel_size_m",
    "slope_degrees",
    "spectral_index",
    "summer_month",
    "temporal_percentiles",
]

FEATURE = "feature"
# The 10 m and 20 m surface bands; B01/B09 (60 m aerosol and water vapour) carry
# atmosphere rather than land cover.
DEFAULT_BANDS = ("B02", "B03", "B04", "B05", "B06", "B07", "B08", "B8A", "B11", "B12")
DEFAULT_INDICES = ("NDVI", "EVI", "NDMI", "NBR", "MNDWI", "NDWI", "NDREI", "IRECI", "CIRE")
DEFAULT_PERCENTILES = (10, 25, 50, 75, 90)
S1_VARIABLES = ("vv_db", "vh_db", "ratio_db")
LOCATION_NAMES = ("lat_sin", "lat_cos", "lon_sin", "lon_cos")
LATITUDE_NAMES = LOCATION_NAMES[:2]

# WGS84, for metres per degree at a latitude.
_WGS84_A = 6378137.0
_WGS84_F = 1 / 298.257223563
_WGS84_E2 = _WGS84_F * (2 - _WGS84_F)


# --- spyndex catalogue ------------------------------------------------------------------


@functools.lru_cache(maxsize=1)
def spyndex_band_map() -> dict[str, str]:
    """spyndex band symbol -> S2 band name, from spyndex's band table (``N`` -> ``B08``)."""
    import spyndex

    out = {}
    for key, band in spyndex.bands.items():
        s2 = getattr(band, "sentinel2a", None)
        if not s2:
            continue
        name = str(s2.band)
        name = name if name in S2_BANDS else f"B{int(name[1:]):02d}" if name[1:].isdigit() else name
        if name in S2_BANDS:
            out[str(key)] = name
    return out


def index_inputs(name: str) -> tuple[dict[str, str], dict[str, float]]:
    """For a spyndex index: ({symbol: S2 band}, {constant: default value}).

    Raises :class:`InputError` if ``name`` is not in the catalogue or needs an
    input that Sentinel-2 does not have.
    """
    import spyndex

    if name not in spyndex.indices:
        raise InputError(f"unknown spectral index {name!r}: expected a name of spyndex.indices, e.g. NDVI, NDREI")
    bandmap = spyndex_band_map()
    bands, consts = {}, {}
    for sym in spyndex.indices[name].bands:
        if sym in bandmap:
            bands[sym] = bandmap[sym]
        elif sym in spyndex.constants and spyndex.constants[sym].default is not None:
            consts[sym] = float(spyndex.constants[sym].default)
        else:
            raise InputError(f"spectral index {name!r} needs {sym!r}, which Sentinel-2 L2A does not provide")
    return bands, consts


@functools.cache
def _index_code(name: str):
    """spyndex's formula of index ``name``, compiled once (``spyndex.computeIndex`` evals the string)."""
    import spyndex

    return compile(spyndex.indices[name].formula, f"<spyndex {name}>", "eval")


def _index_kernel(*arrays: np.ndarray, name: str, symbols: tuple[str, ...], constants: dict) -> np.ndarray:
    """Index ``name`` on the bands' arrays as ``spyndex.computeIndex`` computes it, float32, non-finite -> NaN.

    The same formula is evaluated one time slice at a time, so its temporaries
    are planes that stay in cache, and the rare non-finite values are replaced
    in place (``np.where`` over the block cost as much as the formula).
    """
    bands = [np.asarray(a) for a in arrays]
    code = _index_code(name)
    shape = bands[0].shape
    by_plane = len(shape) >= 3 and all(a.shape == shape for a in bands)
    planes = range(shape[0]) if by_plane else [...]
    out = np.empty(np.broadcast_shapes(*(a.shape for a in bands)), dtype=np.float32)
    with np.errstate(all="ignore"):
        for i in planes:
            params = {**{s: a[i] for s, a in zip(symbols, bands, strict=True)}, **constants}
            o = out[i]
            o[...] = eval(code, {}, params)  # noqa: S307 -- spyndex's catalogue formula
            finite = np.isfinite(o)
            if not finite.all():
                o[~finite] = np.nan
    return out


def spectral_index(ds: xr.Dataset, name: str) -> xr.DataArray:
    """Index ``name`` (spyndex catalogue) on every element of ``ds``'s bands, float32.

    Division by zero and other non-finite results give NaN, silently.
    """
    bands, consts = index_inputs(name)
    missing = sorted({b for b in bands.values() if b not in ds.data_vars})
    if missing:
        raise InputError(f"spectral index {name} needs bands {missing} that the S2 composites lack")
    symbols = tuple(bands)
    arrays = [ds[bands[s]] for s in symbols]
    out = xr.apply_ufunc(
        _index_kernel, *arrays, dask="parallelized", output_dtypes=[np.float32], keep_attrs=True,
        kwargs={"name": name, "symbols": symbols, "constants": consts},
    )
    return out.rename(name.lower())


# --- configuration ----------------------------------------------------------------------


@dataclass(frozen=True)
class FeatureConfig:
    """Which features to compute; :func:`feature_names` lists them without computing.

    The default is the WorldCover-style temporal feature set;
    :meth:`summer_only` the single-summer-composite baseline.
    """

    bands: tuple[str, ...] = DEFAULT_BANDS
    indices: tuple[str, ...] = DEFAULT_INDICES
    percentiles: tuple[int, ...] = DEFAULT_PERCENTILES
    monthly_ndvi: bool = True
    summer_composite: bool = False
    summer_month_north: int = 7
    summer_month_south: int = 1
    s1: bool = True
    s1_variables: tuple[str, ...] = S1_VARIABLES
    s1_percentiles: tuple[int, ...] = DEFAULT_PERCENTILES
    s1_std: bool = True
    terrain: bool = True
    location: bool = True
    # Longitude lets a model memorise where the training blocks were instead of what
    # the pixels look like; latitude stands for climate zone and season (off by default).
    longitude: bool = False

    def __post_init__(self) -> None:
        self._check_names()
        self._check_ranges()
        for field_name in ("bands", "indices", "percentiles", "s1_variables", "s1_percentiles"):
            values = list(getattr(self, field_name))
            if len(set(values)) != len(values):
                raise InputError(f"FeatureConfig.{field_name} has duplicates: {values}")

    def _check_names(self) -> None:
        """Bands, indices and S1 variables are ones the features know."""
        for b in self.bands:
            if b not in S2_BANDS:
                raise InputError(f"invalid feature band {b!r}: expected one of {list(S2_BANDS)}")
        for name in self.indices:
            index_inputs(name)
        for v in self.s1_variables:
            if v not in S1_VARIABLES:
                raise InputError(f"invalid S1 feature variable {v!r}: expected one of {list(S1_VARIABLES)}")

    def _check_ranges(self) -> None:
        """Percentiles are integers 0..100 and the summer months 1..12."""
        for field_name in ("percentiles", "s1_percentiles"):
            for p in getattr(self, field_name):
                if not isinstance(p, (int, np.integer)) or isinstance(p, bool) or not 0 <= p <= 100:
                    raise InputError(f"invalid {field_name} value {p!r}: expected integers 0..100")
        for field_name in ("summer_month_north", "summer_month_south"):
            m = getattr(self, field_name)
            if not isinstance(m, (int, np.integer)) or not 1 <= m <= 12:
                raise InputError(f"invalid {field_name} {m!r}: expected a month 1..12")

    def to_dict(self) -> dict:
        """JSON-friendly form (lists for tuples), e.g. for the model card."""
        return {f.name: list(v) if isinstance(v := getattr(self, f.name), tuple) else v for f in fields(self)}

    @classmethod
    def from_dict(cls, d: dict) -> FeatureConfig:
        """Inverse of :meth:`to_dict`; unknown keys are an :class:`InputError`."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise InputError(f"unknown FeatureConfig keys {unknown}: expected some of {sorted(known)}")
        d = dict(d)
        # Cards written before the longitude switch used all four location encodings.
        d.setdefault("longitude", bool(d.get("location", True)))
        kwargs: dict[str, Any] = {k: tuple(v) if isinstance(v, list) else v for k, v in d.items()}
        return cls(**kwargs)

    @classmethod
    def summer_only(cls, **overrides) -> FeatureConfig:
        """Baseline: bands + indices of one summer month's median composite, nothing temporal.

        The month is July north of the equator and January south of it (by the
        block's centre); no percentiles, no monthly NDVI, no S1, no terrain, no location.
        """
        base = dict(
            percentiles=(), monthly_ndvi=False, summer_composite=True, s1=False, s1_std=False,
            terrain=False, location=False,
        )
        return cls(**{**base, **overrides})


def _pname(p: int) -> str:
    return f"p{int(p):02d}"


def _plan(config: FeatureConfig) -> list[tuple[str, dict, list[str]]]:
    """(kind, arguments, names) of each feature group, in output order: the one source of names."""
    plan: list[tuple[str, dict, list[str]]] = []
    pct = tuple(config.percentiles)
    if pct:
        for b in config.bands:
            plan.append(("s2_pct", {"band": b}, [f"s2_{b}_{_pname(p)}" for p in pct]))
        for i in config.indices:
            plan.append(("index_pct", {"index": i}, [f"{i.lower()}_{_pname(p)}" for p in pct]))
    if config.monthly_ndvi:
        plan.append(("ndvi_monthly", {}, [f"ndvi_m{m:02d}" for m in range(1, 13)]))
    if config.summer_composite:
        names = [f"s2_{b}_summer" for b in config.bands] + [f"{i.lower()}_summer" for i in config.indices]
        plan.append(("summer", {}, names))
    if config.s1:
        for v in config.s1_variables:
            names = [f"s1_{v}_{_pname(p)}" for p in config.s1_percentiles]
            plan.append(("s1", {"var": v}, names + ([f"s1_{v}_std"] if config.s1_std else [])))
    if config.terrain:
        plan.append(("terrain", {}, ["dem", "slope"]))
    if config.location:
        plan.append(("location", {}, list(LOCATION_NAMES if config.longitude else LATITUDE_NAMES)))
    return plan


def feature_names(config: FeatureConfig = FeatureConfig()) -> list[str]:
    """The ordered feature names that :func:`compute_features` produces for ``config``."""
    return [n for _, _, names in _plan(config) for n in names]


# --- temporal statistics -------------------------------------------------------------------


def _stack(da: xr.DataArray, names: Iterable[str], dim: str) -> xr.DataArray:
    return da.rename({dim: FEATURE}).assign_coords({FEATURE: list(names)})


def temporal_percentiles(da: xr.DataArray, percentiles: Iterable[int], names: Iterable[str]) -> xr.DataArray:
    """NaN-skipping percentiles over ``time``: (feature, y, x) float32 (numpy "linear" method)."""
    qs = [p / 100.0 for p in percentiles]
    out = apply_along_time(sorted_quantiles, da, out_dim="_q", out_size=len(qs), kwargs={"qs": qs})
    return _stack(out, names, "_q")


def _pct_std_kernel(a: np.ndarray, *, qs: list[float], std: bool) -> np.ndarray:
    parts = [sorted_quantiles(a, qs)] if qs else []
    if std:
        parts.append(nan_std(a)[None])
    return np.concatenate(parts, axis=0)


def _month_groups(times: xr.DataArray) -> list[np.ndarray]:
    months = times.dt.month.values
    return [np.nonzero(months == m)[0] for m in range(1, 13)]


def summer_month(obj: xr.DataArray | xr.Dataset, config: FeatureConfig = FeatureConfig()) -> int:
    """Summer month of the block: ``config.summer_month_north`` if its centre is north of the equator."""
    lon, lat = lonlat(obj)
    centre_lat = float(lat.isel({d: lat.sizes[d] // 2 for d in lat.dims}))
    return config.summer_month_north if centre_lat >= 0 else config.summer_month_south


# --- geometry -------------------------------------------------------------------------------


def _geobox(obj: xr.DataArray | xr.Dataset):
    import odc.geo.xr  # noqa: F401  (registers the .odc accessor)

    gbox = obj.odc.geobox
    if gbox is None or gbox.crs is None:
        raise DataError(
            "input has no GeoBox/CRS: expected the block geobox carried along "
            "(spatial_ref coordinate from odc-stac / odc.geo.xr)"
        )
    return gbox


def lonlat(obj: xr.DataArray | xr.Dataset) -> tuple[xr.DataArray, xr.DataArray]:
    """Longitude and latitude (degrees) of the pixel centres: 1-D for a geographic CRS, else 2-D."""
    gbox = _geobox(obj)
    ydim, xdim = spatial_dims(obj)
    if gbox.crs.geographic:
        return obj[xdim].astype(np.float64).drop_vars(xdim), obj[ydim].astype(np.float64).drop_vars(ydim)
    to_ll = gbox.crs.transformer_to_crs("EPSG:4326")
    xs, ys = np.meshgrid(obj[xdim].values, obj[ydim].values)
    lon, lat = to_ll(xs, ys)
    dims = (ydim, xdim)
    return xr.DataArray(np.asarray(lon), dims=dims), xr.DataArray(np.asarray(lat), dims=dims)


def pixel_size_m(obj: xr.DataArray | xr.Dataset) -> tuple[xr.DataArray | float, xr.DataArray | float]:
    """(dx, dy) pixel size in metres; for a geographic CRS per row, on the WGS84 ellipsoid.

    dy = M(phi) * res_y, dx = N(phi) * cos(phi) * res_x (radians), M and N the
    meridional and prime-vertical radii of curvature at the row's latitude.
    """
    gbox = _geobox(obj)
    res = gbox.resolution
    if gbox.crs.geographic:
        _, lat = lonlat(obj)
        phi = np.deg2rad(lat)
        w = np.sqrt(1 - _WGS84_E2 * np.sin(phi) ** 2)
        m = _WGS84_A * (1 - _WGS84_E2) / w**3
        n = _WGS84_A / w
        return n * np.cos(phi) * np.deg2rad(abs(res.x)), m * np.deg2rad(abs(res.y))
    units = tuple(gbox.crs.units)
    if not all(u in ("metre", "meter", "m") for u in units):
        raise DataError(f"cannot derive a slope on a CRS with units {units}: expected metres or degrees")
    return abs(float(res.x)), abs(float(res.y))


def _gradient_kernel(a: np.ndarray, *, axis: int) -> np.ndarray:
    """Central differences along ``axis`` (-2 rows, -1 columns), one-sided at the edges."""
    if a.shape[axis] < 2:
        return np.full(a.shape, np.nan, dtype=np.float32)
    return np.gradient(a.astype(np.float64), axis=axis).astype(np.float32)


def slope_degrees(dem: xr.DataArray) -> xr.DataArray:
    """Terrain slope in degrees from a DEM in metres on the block grid.

    Central differences (one-sided at the block edge) in pixel units, divided
    by the pixel size in metres (per row for EPSG:4326, see :func:`pixel_size_m`).
    """
    dem = dem.astype(np.float32, copy=False)
    gy = map_overlap_yx(_gradient_kernel, dem, depth=1, axis=-2)
    gx = map_overlap_yx(_gradient_kernel, dem, depth=1, axis=-1)
    dx, dy = pixel_size_m(dem)
    with np.errstate(invalid="ignore"):
        s = cast(xr.DataArray, np.degrees(np.arctan(np.hypot(gx / dx, gy / dy))))  # numpy ufuncs keep DataArrays
    return s.astype(np.float32).rename("slope")


def location_features(template: xr.DataArray, longitude: bool = True) -> xr.DataArray:
    """lat_sin, lat_cos (and lon_sin, lon_cos) of the pixel centres: (feature, y, x) float32."""
    ydim, xdim = spatial_dims(template)
    names = list(LOCATION_NAMES[:4 if longitude else 2])
    if is_dask(template) and not _geobox(template).crs.geographic:
        return _lazy_location(template.transpose(ydim, xdim), names)
    lon, lat = lonlat(template)
    zero = xr.zeros_like(template.transpose(ydim, xdim), dtype=np.float32)
    # numpy ufuncs on DataArrays give DataArrays (numpy's hints say ndarray)
    parts = cast(list[xr.DataArray], _location_parts(lon, lat, len(names)))
    return xr.concat([(p + zero).astype(np.float32) for p in parts], dim=FEATURE).assign_coords({FEATURE: names})


def _location_parts(lon, lat, n: int) -> list:
    """The first ``n`` of sin/cos of latitude, sin/cos of longitude (degrees in; numpy or xarray)."""
    rlat, rlon = np.deg2rad(lat), np.deg2rad(lon)
    return [np.sin(rlat), np.cos(rlat), np.sin(rlon), np.cos(rlon)][:n]


def _lazy_location(template: xr.DataArray, names: list[str]) -> xr.DataArray:
    """:func:`location_features` of a projected dask ``(y, x)`` template, chunk by chunk in the graph: the
    projection of every pixel (0.7 s on one core at 2048 px) then runs on all cores with the rest. Only the
    template's grid and chunks are used, so the tasks do not wait for its values."""
    import dask.array as dsa

    ydim, xdim = template.dims
    crs = _geobox(template).crs
    xs, ys = template[xdim].values, template[ydim].values

    def kernel(block_info=None) -> np.ndarray:
        _, (y0, y1), (x0, x1) = block_info[None]["array-location"]
        lon, lat = crs.transformer_to_crs("EPSG:4326")(*np.meshgrid(xs[x0:x1], ys[y0:y1]))
        return np.stack(_location_parts(lon, lat, len(names))).astype(np.float32)

    data = dsa.map_blocks(kernel, chunks=((len(names),), *template.data.chunks), dtype=np.float32,
                          meta=np.array((), dtype=np.float32))
    coords = {k: v for k, v in template.coords.items() if set(v.dims) <= {ydim, xdim}}
    out = xr.DataArray(data, dims=(FEATURE, ydim, xdim), coords={**coords, FEATURE: names})
    out.name = None  # not the dask array's key, which xarray takes for a name
    return out


# --- grids ---------------------------------------------------------------------------------


def _on_grid(obj, template: xr.DataArray, what: str):
    """``obj`` with ``template``'s spatial dim names and coordinates; InputError if off-grid."""
    ydim, xdim = spatial_dims(template)
    oy, ox = spatial_dims(obj)
    obj = obj.rename({oy: ydim, ox: xdim}) if (oy, ox) != (ydim, xdim) else obj
    for d in (ydim, xdim):
        if obj.sizes[d] != template.sizes[d]:
            raise InputError(
                f"{what} has {obj.sizes[d]} pixels along {d}, the S2 composites {template.sizes[d]}: "
                "expected both on the block geobox"
            )
        if d in obj.coords and d in template.coords:
            step = abs(float(template[d][1] - template[d][0])) if template.sizes[d] > 1 else 0.0
            if not np.allclose(obj[d].values, template[d].values, rtol=0, atol=0.5 * step + 1e-12):
                raise InputError(f"{what} is not on the S2 block grid (its {d} coordinates differ)")
    coords = {d: template[d] for d in (ydim, xdim) if d in template.coords}
    return obj.assign_coords(coords)


# --- all features ---------------------------------------------------------------------------


def compute_features(
    s2: xr.Dataset,
    s1: xr.Dataset | None = None,
    dem: xr.DataArray | None = None,
    config: FeatureConfig = FeatureConfig(),
) -> xr.DataArray:
    """All features of ``config`` for one block: (feature, y, x) float32, lazy on dask.

    ``s2`` are the (gap-filled) composites, ``s1`` the dB composites (needed when
    ``config.s1``), ``dem`` metres (needed when ``config.terrain``).  The
    ``feature`` coordinate equals :func:`feature_names` (checked).
    """
    if TIME not in s2.dims:
        raise InputError(f"S2 composites have dims {tuple(s2.dims)}: expected (time, y, x)")
    ydim, xdim = spatial_dims(s2)
    first = next(iter(s2.data_vars))
    template = s2[first].isel({TIME: 0}, drop=True).transpose(ydim, xdim)
    if config.s1 and s1 is None:
        raise InputError("FeatureConfig(s1=True) needs the S1 dB composites; pass s1= or use s1=False")
    if config.terrain and dem is None:
        raise InputError("FeatureConfig(terrain=True) needs a DEM; pass dem= or use terrain=False")

    inputs = _BlockInputs(s2, s1, dem, config, template)
    parts = [inputs.part(kind, args, names) for kind, args, names in _plan(config)]
    if not parts:
        raise InputError("FeatureConfig selects no features")
    parts = [
        p.transpose(FEATURE, ydim, xdim).drop_vars([c for c in p.coords if c not in (FEATURE, ydim, xdim)])
        for p in parts
    ]
    out = xr.concat(parts, dim=FEATURE, coords="minimal", compat="override", join="override")
    extra = {c: v for c, v in template.coords.items() if c not in out.coords}  # spatial_ref
    out = out.astype(np.float32, copy=False).assign_coords(extra)
    names = feature_names(config)
    if list(out[FEATURE].values) != names:  # the plan is the single source of names
        raise AssertionError(f"feature order drifted from feature_names(): {list(out[FEATURE].values)}")
    out.attrs = {}
    return out.rename("features")


@dataclass
class _BlockInputs:
    """One block's inputs to :func:`compute_features`; each spectral index is computed once."""

    s2: xr.Dataset
    s1: xr.Dataset | None
    dem: xr.DataArray | None
    config: FeatureConfig
    template: xr.DataArray  # one (y, x) S2 layer: the grid S1 and the DEM are checked against
    _indices: dict[str, xr.DataArray] = field(default_factory=dict)

    def index(self, name: str) -> xr.DataArray:
        """Spectral index ``name`` of the composites (cached: several features share NDVI)."""
        if name not in self._indices:
            self._indices[name] = spectral_index(self.s2, name)
        return self._indices[name]

    def band(self, b: str) -> xr.DataArray:
        """S2 band ``b`` as float32."""
        if b not in self.s2.data_vars:
            raise InputError(f"S2 composites lack band {b}: expected {list(self.s2.data_vars)} to include it")
        return self.s2[b].astype(np.float32, copy=False)

    def part(self, kind: str, args: dict, names: list[str]) -> xr.DataArray:
        """The features of one entry of :func:`_plan`, named ``names``."""
        config = self.config
        if kind == "s2_pct":
            return temporal_percentiles(self.band(args["band"]), config.percentiles, names)
        if kind == "index_pct":
            return temporal_percentiles(self.index(args["index"]), config.percentiles, names)
        if kind == "ndvi_monthly":
            groups = _month_groups(self.s2[TIME])
            out = apply_along_time(group_mean, self.index("NDVI"), out_dim="_m", out_size=12,
                                   kwargs={"groups": groups})
            return _stack(out, names, "_m")
        if kind == "summer":
            return _summer(self.s2, config, names, self.band)
        if kind == "s1":
            assert self.s1 is not None  # compute_features refuses config.s1 without s1
            da = _on_grid(self.s1[args["var"]], self.template, "S1").astype(np.float32, copy=False)
            qs = [p / 100.0 for p in config.s1_percentiles]
            out = apply_along_time(
                _pct_std_kernel, da, out_dim="_s", out_size=len(names), kwargs={"qs": qs, "std": config.s1_std}
            )
            return _stack(out, names, "_s")
        if kind == "terrain":
            assert self.dem is not None  # compute_features refuses config.terrain without a DEM
            d = _on_grid(self.dem, self.template, "DEM").astype(np.float32, copy=False)
            return xr.concat([d, slope_degrees(d)], dim=FEATURE).assign_coords({FEATURE: names})
        if kind == "location":
            return location_features(self.template, longitude=config.longitude)
        raise AssertionError(f"unknown feature kind {kind!r} in the plan")


def _summer(s2: xr.Dataset, config: FeatureConfig, names: list[str], band) -> xr.DataArray:
    """Median of the summer month's composites per band, and indices of that composite."""
    month = summer_month(s2, config)
    sel = np.nonzero(s2[TIME].dt.month.values == month)[0]
    needed = set(config.bands)
    for i in config.indices:
        needed |= set(index_inputs(i)[0].values())
    comp = xr.Dataset(
        {
            b: apply_along_time(sorted_quantiles, band(b).isel({TIME: sel}), out_dim="_q", out_size=1,
                                kwargs={"qs": [0.5]}).isel(_q=0, drop=True)
            for b in sorted(needed, key=list(S2_BANDS).index)
        }
    )
    layers = [comp[b] for b in config.bands] + [spectral_index(comp, i) for i in config.indices]
    return xr.concat(layers, dim=FEATURE, coords="minimal", compat="override").assign_coords({FEATURE: names})


def required_s2_bands(config: FeatureConfig | None = None, cloud_probability: bool = False) -> tuple[str, ...]:
    """The S2 reflectance bands a ``FeatureConfig`` needs, in ``S2_BANDS`` order (SCL not included).

    Its bands, the bands of its spectral indices (spyndex), NDVI's for the
    monthly NDVI, and s2cloudless' inputs (B01, B09, ...) only when that mask is
    on: archives that omit unused bands can then be processed, and fewer rasters
    are warped. ``config=None`` means every band (the loader's old contract).
    """
    if config is None:
        return tuple(S2_BANDS)
    needed = set(config.bands)
    for name in [*config.indices, *(["NDVI"] if config.monthly_ndvi else [])]:
        needed |= set(index_inputs(name)[0].values())
    if cloud_probability:
        needed |= set(S2_CLOUDLESS_BANDS)
    return tuple(b for b in S2_BANDS if b in needed)


def n_features(config: FeatureConfig = FeatureConfig()) -> int:
    """Number of features of ``config``."""
    return len(feature_names(config))

