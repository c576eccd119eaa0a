"""The simulated land surface: climate, terrain and land-cover fields, and the truth map.

Everything here is a pure function of (longitude, latitude, seed): the same
point always gets the same elevation, climate, vegetation covers and class,
whichever block or grid asks. That is what makes blocks seamless and lets
the truth map (on the WorldCover grid) and the Sentinel chips (on UTM grids)
describe one and the same world.

The model, from large to small scales:

* **terrain**: a continentality field bends the real per-tile land fraction
  (``worldcover.data``) into coasts; mountains, ridges and hills on top;
* **climate**: annual mean temperature from latitude and elevation (lapse
  rate), a seasonal amplitude growing with latitude, moisture from a
  latitude profile (wet tropics, dry subtropics, ...) plus large anomalies,
  rain seasonality (tropical wet/dry, Mediterranean winter rain);
* **continuous covers** (fractions of a pixel): tree, shrub, herbaceous,
  lichen/moss, bare soil, water, flooding, perennial ice, impervious
  surface, each a climate potential plus multi-scale patch noise, so that
  ecotones are gradual and some pixels are genuinely ambiguous;
* **overlays**: cities and villages, agricultural regions cut into
  parcels (crop, meadow, fallow, woodlot) with per-parcel crop calendars,
  lakes with shores, rivers, bogs and swamps, mangroves on tropical coasts;
* **the class** of a pixel follows from its covers with LCCS-like rules
  (e.g. tree cover >= 35 % is Tree cover), so the label is a deterministic
  function of what the sensors see, blurred only by mixing and noise.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, fields
from typing import NamedTuple

import numpy as np
import xarray as xr
from odc.geo.geobox import GeoBox
from odc.geo.xr import wrap_xr

from worldcover.grid import Block, land_fraction_table
from worldcover.legend import BARE, BUILT, CROP, GRASS, MANGROVE, MOSS, SHRUB, SNOW, TREE, WATER, WETLAND
from worldcover.sim.mgrs import to_lonlat
from worldcover.sim.noise import (
    Domain,
    domain,
    fbm,
    fbm_where,
    key,
    sigmoid,
    smoothstep,
    unit_of,
    voronoi,
)

# --- climate tables (zonal means over land, rounded) ------------------------

LAT_NODES = np.array([0, 10, 20, 30, 40, 50, 60, 70, 80, 90], dtype=np.float64)
# Mean temperature of the warmest and of the coldest month at sea level, deg C.
T_WARM_LAT = np.array([26.5, 27.0, 28.0, 27.5, 24.0, 19.5, 16.0, 10.5, 4.5, 0.0])
T_COLD_LAT = np.array([26.0, 24.0, 19.0, 11.0, 2.0, -7.0, -16.0, -25.0, -31.0, -33.0])
# The mildest winters (coldest month, deg C) that an ocean upwind gives at each latitude
# (western coasts: Lisbon ~10, Brest ~7, Flanders ~3, Bergen ~1): the maritime
# warming of a zonal-mean winter stops there.
T_COLD_MARITIME_LAT = np.array([26.0, 24.0, 19.0, 12.0, 8.0, 4.0, 0.0, -5.0, -15.0, -25.0])
MOIST_LAT = np.array([0.85, 0.68, 0.30, 0.22, 0.40, 0.60, 0.62, 0.52, 0.42, 0.40])  # 0 desert .. 1 rainforest
LAPSE_RATE = 6.5  # deg C per km

NOISE_MAX = 3.0  # |fbm| practically never exceeds this (used to skip fields that cannot matter)

# Thresholds of the class rules (fractions of a pixel).
TREE_MIN = 0.35
SHRUB_MIN = 0.25
HERB_MIN = 0.25
LICHEN_MIN = 0.25
FLOOD_MIN = 0.35
BUILT_MIN = 0.35

# Crop types (per parcel).
NO_CROP, SUMMER, WINTER, SPRING, DOUBLE, RICE = -1, 0, 1, 2, 3, 4
# Parcel uses inside agricultural regions.
USE_NONE, USE_CROP, USE_MEADOW, USE_FALLOW, USE_WOODLOT = 0, 1, 2, 3, 4


def _interp_lat(abslat: np.ndarray, table: np.ndarray) -> np.ndarray:
    return np.interp(abslat, LAT_NODES, table).astype(np.float32)


def _bump(x: np.ndarray, centre: float, width: float) -> np.ndarray:
    z = (np.asarray(x, np.float32) - np.float32(centre)) / np.float32(width)
    return np.exp(-z * z)


@functools.lru_cache(maxsize=1)
def _land_table_padded() -> np.ndarray:
    t = land_fraction_table().astype(np.float32)
    # Pad one column each side (wrap in longitude) and one row each side (edge) for bilinear lookup.
    t = np.concatenate([t[:, -1:], t, t[:, :1]], axis=1)
    return np.concatenate([t[:1], t, t[-1:]], axis=0)


def land_fraction_at(lon: np.ndarray, lat: np.ndarray) -> np.ndarray:
    """Bilinear interpolation of the per-tile land fraction at tile centres: a smooth field."""
    return _bilinear(_land_table_padded(), lon, lat)


# Upwind reach of the ocean's hold on winter temperatures (e-folding distance, km).
MARITIME_REACH_KM = 1200.0


@functools.lru_cache(maxsize=1)
def _oceanity_table_padded() -> np.ndarray:
    """Share of ocean upwind of every 3-degree cell, distance-weighted (0 continental .. 1 maritime).

    Winds blow from the west poleward of ~30 degrees (westerlies) and from the
    east nearer the equator (trades); an upwind ocean keeps winters mild, which
    is why Flanders (3 E 51 N) has January at +3 C while the zonal mean at 50 N
    (Siberia and Canada weigh in) is -7 C.
    """
    ocean = 1.0 - land_fraction_table().astype(np.float64)
    lat = 90.0 - 1.5 - 3.0 * np.arange(ocean.shape[0])
    cell_km = np.maximum(333.0 * np.cos(np.radians(lat)), 50.0)[:, None]
    westerly = smoothstep(np.abs(lat), 25.0, 35.0)[:, None]
    total = np.zeros_like(ocean)
    weights = np.zeros_like(cell_km)
    for k in range(1, 41):  # np.roll(ocean, k)[:, c] is the cell k steps west of c
        w = np.exp(-k * cell_km / MARITIME_REACH_KM)
        total += w * (westerly * np.roll(ocean, k, axis=1) + (1 - westerly) * np.roll(ocean, -k, axis=1))
        weights = weights + w
    t = (total / weights).astype(np.float32)
    t = np.concatenate([t[:, -1:], t, t[:, :1]], axis=1)
    return np.concatenate([t[:1], t, t[-1:]], axis=0)


def oceanity_at(lon: np.ndarray, lat: np.ndarray) -> np.ndarray:
    """Upwind ocean share at points (smooth, bilinear between cell centres)."""
    return _bilinear(_oceanity_table_padded(), lon, lat)


def _bilinear(t: np.ndarray, lon: np.ndarray, lat: np.ndarray) -> np.ndarray:
    """Bilinear lookup in a padded (60+2, 120+2) table of 3-degree cell centres."""
    r = (90.0 - np.asarray(lat, np.float64)) / 3.0 - 0.5 + 1.0
    c = ((np.asarray(lon, np.float64) + 180.0) % 360.0) / 3.0 - 0.5 + 1.0
    r = np.clip(r, 0, t.shape[0] - 1.000001)
    c = np.clip(c, 0, t.shape[1] - 1.000001)
    r0 = np.floor(r).astype(np.int64)
    c0 = np.floor(c).astype(np.int64)
    fr = (r - r0).astype(np.float32)
    fc = (c - c0).astype(np.float32)
    a, b = t[r0, c0], t[r0, c0 + 1]
    cc, d = t[r0 + 1, c0], t[r0 + 1, c0 + 1]
    return (a * (1 - fc) + b * fc) * (1 - fr) + (cc * (1 - fc) + d * fc) * fr


# --- the surface -----------------------------------------------------------


@dataclass
class Surface:
    """Static description of the land surface at a set of points (all arrays of one shape)."""

    code: np.ndarray  # uint8 WorldCover class
    elev: np.ndarray  # m
    # climate
    t_mean: np.ndarray  # annual mean temperature, deg C
    t_amp: np.ndarray  # seasonal half-amplitude, deg C
    t_peak: np.ndarray  # day of year of the warmest day
    moisture: np.ndarray  # 0..1
    rain_seas: np.ndarray  # 0 aseasonal .. 1 strongly seasonal rain
    rain_peak: np.ndarray  # day of year of the rain maximum
    rain_k: np.ndarray  # concentration of the rainy season (higher = shorter)
    # covers (fractions of the pixel)
    water: np.ndarray  # permanent open water
    turbid: np.ndarray  # 0 clear .. 1 turbid water
    flood: np.ndarray  # seasonal flooding amplitude (wetlands, flood plains)
    tidal: np.ndarray  # 1 in the mangrove intertidal zone
    ice: np.ndarray  # perennial snow and ice
    imp: np.ndarray  # impervious (buildings, roads)
    urban_mat: np.ndarray  # 0 dark asphalt .. 1 bright concrete
    urban_orient: np.ndarray  # 0..1, how much walls face the radar (double bounce)
    tree: np.ndarray
    needle: np.ndarray  # needleleaf share of the canopy
    evergreen: np.ndarray  # evergreen share of the canopy
    shrub: np.ndarray
    herb: np.ndarray
    lichen: np.ndarray
    soil_bright: np.ndarray  # 0 dark moist soil .. 1 bright sand/rock
    rough: np.ndarray  # surface roughness for radar, 0 smooth sand .. 1 rock
    # phenology
    pheno_shift: np.ndarray  # days
    pheno_amp: np.ndarray  # 0..1
    snow_off: np.ndarray  # deg C offset of the snow line (drifts, exposure)
    # agriculture (per parcel)
    use: np.ndarray  # int8 parcel use (USE_*)
    crop_type: np.ndarray  # int8 (NO_CROP, SUMMER, ...)
    sow1: np.ndarray
    len1: np.ndarray
    sow2: np.ndarray
    len2: np.ndarray
    crop_peak: np.ndarray
    plough: np.ndarray  # days after harvest until ploughing
    cover_crop: np.ndarray  # peak green cover of the catch crop sown after harvest (0 = none)
    mow1: np.ndarray  # meadow cut dates (day of year; NaN = none)
    mow2: np.ndarray
    field_edge: np.ndarray  # 1 on parcel borders (tracks, hedges), 0 inside

    @property
    def shape(self) -> tuple[int, ...]:
        return self.code.shape

    def subset(self, index) -> Surface:
        """The same fields at ``index`` (any numpy index)."""
        return Surface(**{f.name: getattr(self, f.name)[index] for f in fields(self)})


def _climate(lon, lat, dom: Domain, elev, seed):
    abslat = np.abs(lat)
    south = lat < 0
    lapse = LAPSE_RATE * elev / 1000.0
    t_warm = _interp_lat(abslat, T_WARM_LAT) + 1.5 * fbm(dom, key(seed, "t-summer"), 500.0, 2) - lapse
    # Continentality moves winters much more than summers; southern winters are oceanic (milder).
    t_cold = _interp_lat(abslat, T_COLD_LAT) + 3.0 * fbm(dom, key(seed, "t-winter"), 900.0, 2) - lapse
    t_cold = np.where(south, t_cold + 0.35 * (t_warm - t_cold), t_cold)
    # The zonal means mix both: an upwind ocean (share above the ~0.25 typical of
    # land) narrows the seasons, mostly by milder winters; a continent upwind widens them.
    maritime = (oceanity_at(lon, lat) - 0.25) * np.where(south, 0.5, 1.0)
    t_range = t_warm - t_cold
    mild = _interp_lat(abslat, T_COLD_MARITIME_LAT) + 1.0 * fbm(dom, key(seed, "t-winter"), 900.0, 2) - lapse
    t_cold = np.where(maritime > 0, np.minimum(t_cold + 1.1 * maritime * t_range, np.maximum(t_cold, mild)),
                      t_cold + 1.1 * maritime * t_range)
    t_warm = t_warm - 0.1 * maritime * t_range
    t_cold = np.minimum(t_cold, t_warm - 0.5)
    t_mean = 0.5 * (t_warm + t_cold)
    t_amp = 0.5 * (t_warm - t_cold)
    t_peak = np.where(south, 20.0, 200.0).astype(np.float32)
    # Cold climates evaporate little: their moisture varies less (no polar deserts at 70 N).
    moist_amp = 0.24 * (1.0 - 0.5 * smoothstep(abslat, 50.0, 70.0))
    moisture = np.clip(_interp_lat(abslat, MOIST_LAT) + moist_amp * fbm(dom, key(seed, "moist"), 700.0, 3)
                       + 0.07 * fbm(dom, key(seed, "moist-local"), 40.0, 3), 0.02, 1.0).astype(np.float32)
    tropical = np.clip((abslat - 4.0) / 10.0, 0, 1) * (1 - np.clip((abslat - 28.0) / 8.0, 0, 1))
    med = (smoothstep(abslat, 28, 32) * (1 - smoothstep(abslat, 42, 46))
           * smoothstep(fbm(dom, key(seed, "mediterranean"), 600.0, 2), 0.3, 0.8))
    arid = smoothstep(0.38 - moisture, 0.0, 0.15)
    rain_seas = np.clip(np.maximum.reduce([tropical * 0.9, med * 0.85, arid * 0.7]), 0, 0.95).astype(np.float32)
    rain_peak = np.where(med > tropical, np.where(south, 197.0, 15.0), np.where(south, 32.0, 215.0)).astype(np.float32)
    rain_k = (0.8 + 3.5 * (1.0 - moisture)).astype(np.float32)
    return t_mean.astype(np.float32), t_amp.astype(np.float32), t_peak, moisture, rain_seas, rain_peak, rain_k


def _terrain(lon, lat, dom: Domain, seed):
    """(base, mountainousness, elevation): base < 0 is sea; elevation in metres (0 over the sea)."""
    lp = land_fraction_at(lon, lat)
    base = (lp - 0.5) * 0.9 + 0.22 * fbm(dom, key(seed, "continent"), 120.0, 9)
    mount = np.clip(0.25 + 0.45 * fbm(dom, key(seed, "mountains"), 250.0, 3), 0, 1) ** 2
    ridge = np.clip(1.0 - np.abs(fbm(dom, key(seed, "ridges"), 12.0, 7)) / 2.2, 0, 1) ** 2
    hills = fbm(dom, key(seed, "hills"), 2.5, 6)
    inland = smoothstep(base, 0.0, 0.15)
    elev = 600.0 * base + mount * inland * (3000.0 * ridge + 300.0 * hills) + 20.0 * hills * smoothstep(base, 0.0, 0.03)
    elev = np.where(base > 0, np.maximum(elev, 0.3), 0.0).astype(np.float32)
    return base.astype(np.float32), mount.astype(np.float32), elev


def elevation_at(lon: np.ndarray, lat: np.ndarray, seed: int = 0) -> np.ndarray:
    """Terrain height in metres (0 over the sea), the field the DEM samples."""
    lon = np.asarray(lon, np.float64)
    lat = np.asarray(lat, np.float64)
    dom = domain(lon, lat)
    return _terrain(lon, lat, dom, seed)[2]


def surface_at(lon: np.ndarray, lat: np.ndarray, seed: int = 0) -> Surface:
    """The static surface (covers, climate, parcels, class) at points given by lon/lat arrays."""
    lon = np.asarray(lon, np.float64)
    lat = np.asarray(lat, np.float64)
    shape = lon.shape
    dom = domain(lon, lat)
    f32 = np.float32

    base, mount, elev = _terrain(lon, lat, dom, seed)
    t_mean, t_amp, t_peak, moist, rain_seas, rain_peak, rain_k = _climate(lon, lat, dom, elev, seed)
    t_warm = t_mean + t_amp  # warmest-month temperature: tree line, perennial ice, crops

    # Two pixel-scale noises (tens of metres) roughen every cover a little.
    px1 = fbm(dom, key(seed, "pixel-1"), 0.04, 2)
    px2 = fbm(dom, key(seed, "pixel-2"), 0.04, 2)

    waters = _waters(dom, seed, base, mount, elev, t_mean, moist)
    flood = _wetlands(dom, seed, base, mount, moist, waters)
    mangrove_zone = _mangrove_zone(dom, seed, base, t_mean, moist)
    tidal = mangrove_zone.astype(f32)
    ice = _perennial_ice(dom, seed, moist, t_warm)
    veg = _natural_vegetation(dom, seed, t_mean, t_amp, t_warm, moist, mount, px1, px2)
    water = _mangrove_forests(dom, seed, mangrove_zone, veg, waters.water)

    # --- phenology per pixel -------------------------------------------------------
    pheno_shift = 8.0 * fbm(dom, key(seed, "pheno-shift"), 4.0, 3) + 4.0 * px2
    pheno_amp = np.clip(0.95 + 0.08 * fbm(dom, key(seed, "pheno-amp"), 1.0, 4), 0.4, 1.0)
    snow_off = 1.5 * fbm(dom, key(seed, "snow-line"), 1.5, 4)

    imp, urban_mat, urban_orient = _settlements(dom, seed, shape, t_mean, moist, mount, elev, base, mangrove_zone,
                                                water)
    agri = _agriculture(dom, seed, shape, lat, t_mean, t_amp, t_warm, moist, rain_seas, rain_peak, mount, base, water,
                        ice, imp, flood, mangrove_zone, veg)
    code = _classes(veg, agri["use"], flood, imp, ice, water, mangrove_zone)
    # Wetland vegetation is herbaceous: make the herb layer dense where the class is wetland.
    herb = np.where(code == WETLAND, np.maximum(veg["herb"], 0.55 * (1 - veg["tree"] - veg["shrub"])), veg["herb"])

    return Surface(
        code=code, elev=elev, t_mean=t_mean, t_amp=t_amp, t_peak=t_peak, moisture=moist,
        rain_seas=rain_seas, rain_peak=rain_peak, rain_k=rain_k,
        water=water.astype(f32), turbid=waters.turbid, flood=flood.astype(f32), tidal=tidal, ice=ice,
        imp=imp.astype(f32), urban_mat=urban_mat.astype(f32), urban_orient=urban_orient.astype(f32),
        tree=np.asarray(veg["tree"], f32), needle=np.asarray(veg["needle"], f32),
        evergreen=np.asarray(veg["evergreen"], f32), shrub=np.asarray(veg["shrub"], f32), herb=np.asarray(herb, f32),
        lichen=np.asarray(veg["lichen"], f32), soil_bright=veg["soil_bright"].astype(f32),
        rough=veg["rough"].astype(f32),
        pheno_shift=pheno_shift.astype(f32), pheno_amp=pheno_amp.astype(f32), snow_off=snow_off.astype(f32),
        use=agri["use"], crop_type=agri["crop_type"], sow1=agri["sow1"], len1=agri["len1"], sow2=agri["sow2"],
        len2=agri["len2"], crop_peak=agri["crop_peak"], plough=agri["plough"], cover_crop=agri["cover_crop"],
        mow1=agri["mow1"], mow2=agri["mow2"], field_edge=agri["field_edge"],
    )


class _Waters(NamedTuple):
    water: np.ndarray  # sea, lakes and rivers, 0..1
    turbid: np.ndarray  # sediment load of the water
    shore: np.ndarray  # lake shores (wetland candidates)
    plain: np.ndarray  # river flood plains (wetland candidates)
    boreal: np.ndarray  # cold, wet climate: many lakes and bogs


def _waters(dom: Domain, seed: int, base, mount, elev, t_mean, moist) -> _Waters:
    """Sea, lakes and rivers, with the shores and flood plains around them."""
    f32 = np.float32
    sea = np.clip(0.5 - base / 0.0001, 0, 1)
    boreal = (1 - smoothstep(t_mean, 2.0, 7.0)) * smoothstep(moist, 0.35, 0.5)
    n_lake = fbm(dom, key(seed, "lakes"), 4.0, 6)
    lake_thr = 2.35 - 1.0 * boreal - 0.3 * moist + 1.0 * mount
    lake = np.clip((n_lake - lake_thr) / 0.012 + 0.5, 0, 1) * (base > 0.002)
    shore_patch = smoothstep(fbm(dom, key(seed, "shore-patches"), 0.8, 4), -0.3, 0.6)
    shore_w = 0.05 + 0.3 * moist * shore_patch
    shore = smoothstep(n_lake, lake_thr - shore_w, lake_thr - 0.006) * (1 - lake) * (base > 0.002)
    river_gate = (fbm(dom, key(seed, "river-gate"), 60.0, 2) > -0.2) & (moist > 0.3) & (elev < 2000) & (base > 0.002)
    n_river = fbm_where(dom, river_gate, key(seed, "rivers"), 30.0, 6, fill=1.0)
    river_w = 0.003 + 0.008 * moist
    river = np.clip((river_w - np.abs(n_river)) / 0.0015 + 0.5, 0, 1) * river_gate
    plain = smoothstep(river_w * 6 - np.abs(n_river), 0, river_w * 3) * river_gate * (1 - river)
    water = np.maximum.reduce([sea, lake, river]).astype(f32)
    # Rivers carry sediment; inland waters of dry regions are murkier than the open sea.
    inland = (sea < 0.5).astype(f32)
    turbid = np.clip(0.3 + 0.5 * river + 0.3 * fbm(dom, key(seed, "turbidity"), 20.0, 3)
                     + 0.3 * inland * (1 - moist), 0, 1).astype(f32)
    return _Waters(water, turbid, shore, plain, boreal)


def _wetlands(dom: Domain, seed: int, base, mount, moist, waters: _Waters) -> np.ndarray:
    """Wetland cover: shores, flood plains, bogs, tropical swamps."""
    # Fields that can only matter in some climates are evaluated there only
    # (NOISE_MAX bounds the noise): the masks are functions of position too.
    bog_thr = 2.1 - 1.8 * waters.boreal - 1.2 * (moist - 0.6) + 1.5 * mount
    z_bog = fbm_where(dom, bog_thr < NOISE_MAX, key(seed, "bogs"), 2.0, 6, fill=-NOISE_MAX) - bog_thr
    swamp_thr = 1.7 - 2.0 * (moist - 0.75) + 1.5 * mount - 0.8 * waters.plain
    z_swamp = fbm_where(dom, swamp_thr < NOISE_MAX, key(seed, "swamps"), 5.0, 6, fill=-NOISE_MAX) - swamp_thr
    return np.maximum.reduce([
        0.8 * waters.shore, 0.6 * waters.plain * smoothstep(moist, 0.4, 0.8),
        smoothstep(z_bog, 0.0, 0.3), smoothstep(z_swamp, 0.0, 0.3),
    ]).astype(np.float32) * (1 - waters.water) * (base > 0.002)


def _mangrove_zone(dom: Domain, seed: int, base, t_mean, moist) -> np.ndarray:
    """The intertidal fringe of warm, wet coasts where mangroves grow (bool)."""
    warm_coast = (base > -0.0008) & (base < 0.0045) & (t_mean > 20.0) & (moist > 0.45)
    return warm_coast & (fbm_where(dom, warm_coast, key(seed, "mangrove-patches"), 3.0, 5, fill=-1) > -0.35)


def _perennial_ice(dom: Domain, seed: int, moist, t_warm) -> np.ndarray:
    """Perennial snow and ice cover, 0..1."""
    t_ice = -1.5 + 3.0 * moist  # dry polar deserts must be colder to keep ice
    z_ice = (t_ice - t_warm) / 1.4 + 0.9 * fbm_where(dom, t_warm - t_ice < 6.5, key(seed, "ice"), 3.0, 6)
    return np.clip(sigmoid(3.0 * z_ice) * 1.1 - 0.05, 0, 1).astype(np.float32)


def _natural_vegetation(dom: Domain, seed: int, t_mean, t_amp, t_warm, moist, mount, px1, px2) -> dict[str, np.ndarray]:
    """Natural covers (tree, shrub, herb, lichen), leaf types and the soil under them."""
    forest_p = sigmoid((moist - 0.45) / 0.06) * sigmoid((t_warm - 11.0) / 1.2)
    shrub_p = np.maximum(_bump(moist, 0.28, 0.10) * sigmoid((t_warm - 8.0) / 2.0),
                         0.8 * _bump(t_warm, 9.0, 2.5) * sigmoid((moist - 0.3) / 0.08))
    grass_p = sigmoid((moist - 0.27) / 0.05) * sigmoid((t_warm - 7.0) / 1.5)
    lichen_p = _bump(t_warm, 5.5, 2.8) * sigmoid((moist - 0.2) / 0.05)
    z_t = 4.0 * (forest_p - 0.5) + 1.2 * fbm_where(dom, forest_p > 0.02, key(seed, "trees"), 2.5, 7) + 0.3 * px1
    tree = 0.95 * sigmoid(2.4 * z_t) * smoothstep(forest_p, 0.02, 0.25)
    z_s = 4.0 * (shrub_p - 0.5) + 1.1 * fbm_where(dom, shrub_p > 0.02, key(seed, "shrubs"), 1.5, 7) + 0.3 * px2
    shrub = (1 - tree) * 0.8 * sigmoid(2.2 * z_s) * smoothstep(shrub_p, 0.02, 0.25)
    z_g = 4.0 * (grass_p - 0.45) + 1.1 * fbm_where(dom, grass_p > 0.02, key(seed, "grass"), 2.0, 7) - 0.3 * px1
    herb = (1 - tree - shrub) * 0.95 * sigmoid(2.0 * z_g) * smoothstep(grass_p, 0.02, 0.25)
    z_l = 4.0 * (lichen_p - 0.5) + 1.1 * fbm_where(dom, lichen_p > 0.05, key(seed, "lichen"), 1.0, 6) - 0.3 * px2
    lichen = (1 - tree - shrub - herb) * 0.9 * sigmoid(2.0 * z_l) * smoothstep(lichen_p, 0.05, 0.3)

    soil_bright = sigmoid((0.35 - moist) / 0.1 + 0.8 * fbm(dom, key(seed, "soil-brightness"), 5.0, 5) + 0.2 * px1)
    rough = sigmoid(2.0 * mount + fbm(dom, key(seed, "roughness"), 3.0, 4))
    needle = sigmoid((6.0 - t_mean) / 3.0 + 0.9 * fbm_where(dom, tree > 0, key(seed, "needleleaf"), 8.0, 5))
    ev_needle = 1 - sigmoid((t_amp - 19.0) / 0.8)  # larch in the most continental climates
    ev_broad = sigmoid((t_mean - 18.0) / 2.0) * sigmoid((moist - 0.62) / 0.05)
    evergreen = needle * ev_needle + (1 - needle) * ev_broad
    return {"tree": tree, "shrub": shrub, "herb": herb, "lichen": lichen, "soil_bright": soil_bright,
            "rough": rough, "needle": needle, "evergreen": evergreen}


def _mangrove_forests(dom: Domain, seed: int, mangrove_zone, veg: dict[str, np.ndarray], water) -> np.ndarray:
    """Mangrove forests, dense canopy over tidal water: set in ``veg`` in place; returns the water left."""
    mg_canopy = 0.9 * sigmoid(2.0 * (fbm_where(dom, mangrove_zone, key(seed, "mangrove-canopy"), 0.5, 4) + 1.5))
    veg["tree"] = np.where(mangrove_zone, mg_canopy, veg["tree"])
    veg["shrub"] = np.where(mangrove_zone, (1 - mg_canopy) * 0.3, veg["shrub"])
    veg["herb"] = np.where(mangrove_zone, 0.0, veg["herb"])
    veg["lichen"] = np.where(mangrove_zone, 0.0, veg["lichen"])
    veg["evergreen"] = np.where(mangrove_zone, 1.0, veg["evergreen"])
    veg["needle"] = np.where(mangrove_zone, 0.0, veg["needle"])
    return np.where(mangrove_zone, 0.0, water)


def _settlements(dom: Domain, seed: int, shape: tuple[int, ...], t_mean, moist, mount, elev, base, mangrove_zone,
                 water) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(impervious cover, roof material, street orientation) of cities and villages."""
    hab = (sigmoid((t_mean - 1.0) / 3.0) * sigmoid((moist - 0.18) / 0.05) * (1 - mount) ** 2
           * (elev < 3500) * (base > 0.002) * (~mangrove_zone))
    core = (fbm_where(dom, 3.45 - 1.6 * hab < NOISE_MAX, key(seed, "cities"), 15.0, 6, fill=-NOISE_MAX)
            + 1.6 * hab - 3.45)
    village = fbm_where(dom, 2.75 - 0.9 * hab < NOISE_MAX - 0.4, key(seed, "villages"), 1.0, 4,
                        fill=-NOISE_MAX) + 0.9 * hab - 2.75
    i_pot = np.maximum(smoothstep(core, 0.0, 0.9), 0.75 * smoothstep(village, 0.0, 0.25)) * (1 - water)
    imp = np.zeros(shape, np.float32)
    urban = i_pot > 0.02
    if urban.any():
        d_urban = dom.subset(urban)
        _, street = voronoi(d_urban, key(seed, "city-blocks"), 0.08)
        bld = fbm(d_urban, key(seed, "buildings"), 0.03, 2)
        imp[urban] = np.clip(i_pot[urban] * (0.55 + 0.3 * bld + 0.45 * (street < 0.007)), 0, 1)
    urban_mat = sigmoid(1.5 * fbm_where(dom, urban, key(seed, "roofs"), 0.12, 3))
    urban_orient = np.clip(0.5 + 0.35 * fbm_where(dom, urban, key(seed, "street-orientation"), 0.25, 3), 0, 1)
    return imp, urban_mat, urban_orient


_PARCEL_FIELDS = ("sow1", "len1", "sow2", "len2", "crop_peak", "plough", "cover_crop", "mow1", "mow2",
                  "field_edge")


def _agriculture(dom: Domain, seed: int, shape: tuple[int, ...], lat, t_mean, t_amp, t_warm, moist, rain_seas,
                 rain_peak, mount, base, water, ice, imp, flood, mangrove_zone,
                 veg: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Agricultural regions cut into parcels and their calendars; managed parcels replace the natural
    covers in ``veg`` (in place). Returns ``use``, ``crop_type`` and the calendar fields."""
    f32 = np.float32
    suit = (sigmoid((t_warm - 14.0) / 2.0) * sigmoid((moist - 0.27) / 0.05) * sigmoid((0.93 - moist) / 0.04)
            * (1 - mount) ** 3 * sigmoid((t_mean + 1.0) / 2.0))
    agri_z = fbm(dom, key(seed, "agriculture"), 25.0, 6) + 2.6 * suit - 1.9
    agri = ((agri_z > 0) & (water < 0.5) & (ice < 0.5) & (imp < BUILT_MIN) & (base > 0.002)
            & (~mangrove_zone) & (flood < 0.5))
    nanf = np.full(shape, np.nan, f32)
    out: dict[str, np.ndarray] = {"use": np.zeros(shape, np.int8), "crop_type": np.full(shape, NO_CROP, np.int8),
           "sow1": nanf.copy(), "len1": nanf.copy(), "sow2": nanf.copy(), "len2": nanf.copy(),
           "crop_peak": np.zeros(shape, f32), "plough": np.zeros(shape, f32), "cover_crop": np.zeros(shape, f32),
           "mow1": nanf.copy(), "mow2": nanf.copy(), "field_edge": np.zeros(shape, f32)}
    if not agri.any():
        return out
    p = _parcels(seed, dom.subset(agri), t_mean[agri], t_amp[agri], moist[agri], rain_seas[agri],
                 rain_peak[agri], lat[agri])
    for name in ("use", "crop_type", *_PARCEL_FIELDS):
        out[name][agri] = p[name]
    use = out["use"]
    fallow_herb = np.zeros(shape, f32)
    fallow_herb[agri] = p["fallow_herb"]
    meadow = use == USE_MEADOW
    fallow = use == USE_FALLOW
    woodlot = use == USE_WOODLOT
    managed = (use == USE_CROP) | fallow | meadow
    # Managed parcels replace the natural covers; on cropland the herb layer
    # is filled in season by the crop calendar (see sim.dynamics).
    veg["tree"] = np.where(woodlot, 0.85, np.where(managed, 0.0, veg["tree"]))
    veg["shrub"] = np.where(managed | woodlot, 0.0, veg["shrub"])
    veg["lichen"] = np.where(managed | woodlot, 0.0, veg["lichen"])
    veg["herb"] = np.where(meadow, 0.97, np.where(fallow, fallow_herb, np.where(use == USE_CROP, 0.0, veg["herb"])))
    veg["evergreen"] = np.where(woodlot, np.clip(veg["evergreen"] + 0.3, 0, 1), veg["evergreen"])
    return out


def _classes(veg: dict[str, np.ndarray], use, flood, imp, ice, water, mangrove_zone) -> np.ndarray:
    """The WorldCover class of each point from its covers (uint8): the rules, in order of precedence."""
    tree, shrub, herb, lichen = veg["tree"], veg["shrub"], veg["herb"], veg["lichen"]
    code = np.full(tree.shape, BARE, np.uint8)
    veg_natural = np.select(
        [tree >= TREE_MIN, flood >= FLOOD_MIN,
         (shrub >= SHRUB_MIN) & (shrub >= 0.5 * herb), herb >= HERB_MIN, lichen >= LICHEN_MIN],
        [TREE, WETLAND, SHRUB, GRASS, MOSS], default=BARE,
    ).astype(np.uint8)
    code[:] = veg_natural
    code = np.where(use == USE_WOODLOT, TREE, code)
    code = np.where(use == USE_MEADOW, GRASS, code)
    code = np.where((use == USE_CROP) | (use == USE_FALLOW), CROP, code)
    code = np.where(imp >= BUILT_MIN, BUILT, code)
    code = np.where(ice >= 0.5, SNOW, code)
    code = np.where(mangrove_zone & (tree >= TREE_MIN), MANGROVE, code)
    return np.where(water >= 0.5, WATER, code).astype(np.uint8)


FIELD_SIZES_KM = (0.09, 0.2, 0.4)  # smallholder, medium, large mechanised parcels


def _parcels(seed, dom: Domain, t_mean, t_amp, moist, rain_seas, rain_peak, lat) -> dict[str, np.ndarray]:
    """Parcels of agricultural regions (1-D arrays of agricultural points) and their calendars.

    Every attribute is drawn from the hash of the parcel id, so a parcel
    looks the same from any block. Fields are larger at mid-latitudes
    (mechanised farming) and smaller in the tropics (smallholders).
    """
    f32 = np.float32
    n = dom.dominant.size
    tropics = np.abs(lat) < 23.5
    fs = fbm(dom, key(seed, "field-size"), 300.0, 2) - 0.5 * tropics + 0.3
    level = np.digitize(fs, [-0.4, 0.5])
    ids = np.zeros(n, np.uint32)
    edge = np.zeros(n, f32)
    for lv, size in enumerate(FIELD_SIZES_KM):
        m = level == lv
        if m.any():
            ids[m], edge[m] = voronoi(dom.subset(m), key(seed, "parcels", lv), size, stretch=1.5)

    def u(name: str) -> np.ndarray:
        return unit_of(ids, key(seed, f"parcel-{name}"))

    u_use = u("use")
    use = np.select([u_use < 0.68, u_use < 0.82, u_use < 0.86, u_use < 0.91],
                    [USE_CROP, USE_MEADOW, USE_FALLOW, USE_WOODLOT], default=USE_NONE).astype(np.int8)
    u1, u2, u3, u4, u5, u6 = (u(f"u{i}") for i in range(1, 7))
    south = lat < 0
    hemi = np.where(south, 182.0, 0.0).astype(f32)
    # A cold month below ~10 C sets the calendar (maritime climates too, whose seasons are narrow).
    temp_limited = ((t_amp > 6.0) & (t_mean < 20.0) | (t_mean - t_amp < 10.0)) & (rain_seas < 0.5)
    continental = (t_amp > 16.0) | (t_mean < 4.0)
    # Maritime farming (western Europe) is mostly summer crops (maize, potatoes, beet) and winter cereals.
    p_winter = np.where(continental, 0.05, 0.30)
    p_spring = np.where(continental, 0.35, 0.12)
    t_type = np.where(u1 < p_winter, WINTER, np.where(u1 < p_winter + p_spring, SPRING, SUMMER))
    r_type = np.where((u1 < 0.3) & (moist > 0.5), DOUBLE, np.where((u1 > 0.85) & (moist > 0.6), RICE, SUMMER))
    crop_type = np.where(temp_limited, t_type, r_type).astype(np.int8)

    t_sow = np.select([crop_type == WINTER, crop_type == SPRING], [275 + 25 * u2, 85 + 25 * u2], 115 + 30 * u2) + hemi
    t_len = np.select([crop_type == WINTER, crop_type == SPRING], [285 + 20 * u3, 120 + 15 * u3], 140 + 30 * u3)
    r_sow = rain_peak - 50 + 30 * u2
    r_len = np.where(crop_type == RICE, 120 + 20 * u3, np.where(crop_type == DOUBLE, 95 + 15 * u3, 105 + 30 * u3))
    sow1 = np.where(temp_limited, t_sow, r_sow) % 365.0
    len1 = np.where(temp_limited, t_len, r_len)
    sow2 = np.where(crop_type == DOUBLE, (sow1 + len1 + 10 + 20 * u4) % 365.0, np.nan)
    len2 = np.where(crop_type == DOUBLE, 90 + 20 * u5, np.nan)
    mow1 = np.where(temp_limited, (150 + 25 * u2 + hemi) % 365.0, np.nan)
    mow2 = np.where(temp_limited & (u4 < 0.7), (mow1 + 45 + 20 * u3) % 365.0, np.nan)
    crop = use == USE_CROP
    # Catch crops between harvest and the next sowing where winters are mild and
    # wet (EU rules make them common in western Europe): fields stay green in winter.
    mild_wet = temp_limited & (t_mean - t_amp > -6.0) & (moist > 0.3) & (crop_type != WINTER)
    cover_crop = np.where(crop & mild_wet & (u("cover") < 0.85), 0.7 + 0.3 * u("cover-peak"), 0)
    return {
        "use": use,
        "crop_type": np.where(crop, crop_type, NO_CROP).astype(np.int8),
        "sow1": np.where(crop, sow1, np.nan).astype(f32),
        "len1": np.where(crop, len1, np.nan).astype(f32),
        "sow2": np.where(crop, sow2, np.nan).astype(f32),
        "len2": np.where(crop, len2, np.nan).astype(f32),
        "crop_peak": np.where(crop, 0.82 + 0.16 * u5, 0).astype(f32),
        "plough": (10 + 60 * u6).astype(f32),
        "cover_crop": cover_crop.astype(f32),
        "mow1": np.where(use == USE_MEADOW, mow1, np.nan).astype(f32),
        "mow2": np.where(use == USE_MEADOW, mow2, np.nan).astype(f32),
        "field_edge": (1 - smoothstep(edge, 0.003, 0.008)).astype(f32),
        "fallow_herb": (0.15 + 0.6 * u4).astype(f32),
    }


# --- truth and DEM on their own grids --------------------------------------------


def geobox_lonlat(geobox: GeoBox) -> tuple[np.ndarray, np.ndarray]:
    """Longitude/latitude of the pixel centres of a GeoBox (2-D arrays): EPSG:4326, or a projected CRS with an
    EPSG code (a block's native UTM grid), projected as the simulator projects its UTM chips."""
    if geobox.crs is None or geobox.crs.epsg is None:
        raise ValueError("expected a geobox in EPSG:4326 or a projected CRS with an EPSG code")
    coords = geobox.coordinates
    names = list(coords)  # (y, x) in the geobox's own names: latitude/longitude or y/x
    ys, xs = coords[names[0]].values.astype(np.float64), coords[names[1]].values.astype(np.float64)
    x, y = np.meshgrid(xs, ys)
    if geobox.crs.epsg == 4326:
        return x, y
    lon, lat = to_lonlat(geobox.crs.epsg, x, y)
    return np.asarray(lon), np.asarray(lat)


def truth_on(geobox: GeoBox, seed: int = 0) -> xr.DataArray:
    """WorldCover codes (uint8) at the pixel centres of a GeoBox (EPSG:4326, or a native UTM grid)."""
    lon, lat = geobox_lonlat(geobox)
    codes = surface_at(lon, lat, seed).code
    da = wrap_xr(codes, geobox, nodata=0, always_yx=True)
    da.name = "truth"
    da.attrs["long_name"] = "simulated WorldCover class"
    return da


def truth(block: Block, seed: int = 0) -> xr.DataArray:
    """The land-cover truth of a block on its own GeoBox (EPSG:4326, 1/12000 degree)."""
    return truth_on(block.geobox, seed)
