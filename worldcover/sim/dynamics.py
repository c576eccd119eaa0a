"""The surface through the year: phenology, crop calendars, snow, flooding, and what the sensors see.

:func:`state_at` turns the static :class:`~worldcover.sim.world.Surface` and
a date (plus the weather of that date) into time-varying quantities:
herbaceous greenness, leaf-on of deciduous canopies, seasonal snow, frozen
lakes, flooding, tides, crop growth per parcel and meadow cuts.
:func:`endmember_fractions` mixes those into the areal fractions of the
spectral endmembers of :mod:`worldcover.sim.spectra` (optical), and
:func:`backscatter` into Sentinel-1 VV/VH gamma0 (radar).

Timing and amplitude vary per pixel (``pheno_shift``, ``pheno_amp``), per
parcel (sowing dates, season lengths) and per year (weather), so classes
that look alike on one date (grassland, cropland, shrubland; wetland and
grassland) differ mainly in *how* they change through the year.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

import numpy as np

from worldcover.sim import spectra
from worldcover.sim.noise import sigmoid
from worldcover.sim.world import DOUBLE, NO_CROP, RICE, USE_FALLOW, USE_MEADOW, WINTER, Surface

YEAR_DAYS = np.float32(365.25)
TWO_PI = np.float32(2 * np.pi)


@dataclass
class Weather:
    """Weather of one date, arrays broadcastable to the surface (smooth over tens of km)."""

    d_temp: np.ndarray | float = 0.0  # deg C anomaly
    wet: np.ndarray | float = 0.5  # soil wetness 0..1 (recent rain)
    wind: np.ndarray | float = 0.2  # 0 calm .. 1 gale (water roughness)
    tide: np.ndarray | float = 0.5  # 0 low .. 1 high tide
    drought: np.ndarray | float = 0.0  # 0 normal .. 1 severe summer drought of the year


@dataclass
class State:
    """Time-varying state at one date (arrays of the surface's shape)."""

    temp: np.ndarray  # air temperature, deg C (lagged climatology + anomaly)
    green: np.ndarray  # herbaceous greenness 0..1 (natural phenology)
    leaf: np.ndarray  # leaf-on of deciduous canopies 0..1
    snow: np.ndarray  # seasonal snow cover of the ground 0..1
    frozen: np.ndarray  # lakes and rivers frozen 0..1
    ice_snow: np.ndarray  # share of perennial ice covered by fresh snow
    flood: np.ndarray  # open water over the land part from flooding / tides, 0..1
    cut: np.ndarray  # meadow biomass left after mowing 0..1
    crop_green: np.ndarray  # green crop cover of the parcel
    crop_dry: np.ndarray  # ripe (senescent) crop cover
    crop_residue: np.ndarray  # stubble and straw after harvest
    crop_water: np.ndarray  # paddy flooding
    wet: np.ndarray | float
    wind: np.ndarray | float


def day_of_year(when: date) -> float:
    return float(when.timetuple().tm_yday)


def _cycle(doy: float | np.floating, sow: np.ndarray, length: np.ndarray, jitter: np.ndarray,
           winter: np.ndarray, g_temp: np.ndarray):
    """Growth of one crop cycle: (green, ripe, days since harvest or NaN) for each pixel."""
    delta = np.mod(np.float32(doy) - sow - jitter, YEAR_DAYS)
    inside = delta < length
    x = delta / length
    grow = sigmoid((x - 0.32) / 0.07)
    # Winter cereals emerge and tiller in autumn (a partial green cover), then sit
    # dormant through the cold months.
    tiller = 0.7 * sigmoid((delta - 25.0) / 7.0)
    grow = np.where(winter & (x < 0.6), np.maximum(grow, tiller) * (0.3 + 0.7 * g_temp), grow)
    sen = sigmoid((x - 0.84) / 0.04)
    green = np.where(inside, grow * (1 - sen), 0)
    ripe = np.where(inside, grow * sen, 0)
    since = np.where(inside, np.nan, delta - length)
    return green, ripe, since, np.where(inside, x, np.nan)


def _catch_crop(doy: float | np.floating, since: np.ndarray, next_sow: np.ndarray, cover: np.ndarray,
                g_temp: np.ndarray):
    """Green cover of a catch crop: sown ~3 weeks after harvest, ploughed in ~3 weeks before the next sowing."""
    to_sow = np.mod(next_sow - np.float32(doy), YEAR_DAYS)
    grown = sigmoid((np.nan_to_num(since, nan=-99.0) - 35.0) / 7.0)
    kept = sigmoid((to_sow - 25.0) / 5.0)
    return np.where(np.isfinite(since), cover * grown * kept * (0.6 + 0.4 * g_temp), 0).astype(np.float32)


def state_at(s: Surface, when: date, weather: Weather | None = None) -> State:
    """The state of the surface on ``when``."""
    w = weather or Weather()
    f32 = np.float32
    doy = f32(day_of_year(when))
    # Phenology and snow follow the seasonal cycle with a ~12-day lag.
    clim = s.t_mean + s.t_amp * np.cos(TWO_PI * (doy - 12 - s.t_peak) / YEAR_DAYS)
    temp = clim + np.asarray(w.d_temp, f32)
    # Grass and winter cereals keep their leaves green through mild winters (real
    # Flemish meadows read NDVI 0.86-0.92 in January at +3 C); frost browns them.
    g_temp = sigmoid((temp + 1.5 - 0.04 * s.pheno_shift) / 1.5)
    theta_r = TWO_PI * (doy - s.rain_peak - 25 - s.pheno_shift) / YEAR_DAYS
    g_rain = (1 - s.rain_seas) + s.rain_seas * np.exp(s.rain_k * (np.cos(theta_r) - 1))
    green = np.clip(g_temp * g_rain * s.pheno_amp, 0, 1)
    # A summer drought browns shallow-rooted grass while it is warm (crops and trees hold on).
    green = green * (1 - 0.55 * np.asarray(w.drought, f32) * sigmoid((temp - 13.0) / 2.0))
    leaf_rain = (1 - s.rain_seas) + s.rain_seas * np.exp(0.5 * s.rain_k * (np.cos(theta_r) - 1))
    leaf = sigmoid((temp - 7.0 - s.pheno_shift / 6.0) / 2.0) * leaf_rain
    # Snow lies where the day's mean stays below about -2 C, not on mild lowland winters.
    snow = sigmoid((-2.0 + s.snow_off - temp) / 1.0) * np.clip((s.moisture - 0.08) / 0.17, 0, 1)
    frozen = sigmoid((-2.0 - temp) / 1.0)
    ice_snow = 1 - 0.6 * sigmoid(temp / 1.5)

    # Floods: two weeks after the snow melts in cold climates (the day the lagged
    # climatology crosses 0 C), after the rains elsewhere; a wet year floods more.
    crossing = np.arccos(np.clip(-s.t_mean / np.maximum(s.t_amp, 0.1), -1, 1)) * YEAR_DAYS / TWO_PI
    melt = np.where(s.t_mean - s.t_amp < 0, s.t_peak - crossing + 12, s.t_peak - 80)
    flood_day = np.where(s.t_amp > 8, melt + 15, s.rain_peak + 30)
    theta_f = TWO_PI * (doy - flood_day) / YEAR_DAYS
    flood = (s.flood * (0.15 + 0.85 * np.exp(3.0 * (np.cos(theta_f) - 1))) * (1 - frozen)
             * (0.7 + 0.6 * np.asarray(w.wet, f32)))
    flood = np.clip(flood + s.tidal * (0.1 + 0.5 * np.asarray(w.tide, f32)), 0, 1)

    # Meadows: each cut leaves a third of the biomass, which regrows in ~5 weeks.
    cut = np.ones(s.shape, f32)
    for mow in (s.mow1, s.mow2):
        d = np.mod(doy - mow, YEAR_DAYS)
        cut = np.where(np.isfinite(mow) & (d < 35), cut * (0.3 + 0.7 * d / 35), cut)
    cut = np.where(s.use == USE_MEADOW, cut, 1).astype(f32)

    crop_green = np.zeros(s.shape, f32)
    crop_dry = np.zeros(s.shape, f32)
    crop_res = np.zeros(s.shape, f32)
    crop_water = np.zeros(s.shape, f32)
    crop = s.crop_type != NO_CROP
    if crop.any():
        ct = s.crop_type[crop]
        jitter = 0.3 * s.pheno_shift[crop]
        winter = ct == WINTER
        gt = g_temp[crop]
        g1, r1, since1, x1 = _cycle(doy, s.sow1[crop], s.len1[crop], jitter, winter, gt)
        double = ct == DOUBLE
        sow2 = np.where(double, s.sow2[crop], 0)
        len2 = np.where(double, s.len2[crop], 1)
        g2, r2, since2, _ = _cycle(doy, sow2, len2, jitter, winter, gt)
        g2 = np.where(double, g2, 0)
        r2 = np.where(double, r2, 0)
        since2 = np.where(double, since2, np.nan)
        since = np.fmin(since1, since2)
        active = (g1 + r1 + g2 + r2) > 0.02
        plough = s.plough[crop]
        residue = np.where(active | ~np.isfinite(since), 0,
                           np.where(since < plough, 0.45 * np.exp(-np.nan_to_num(since) / 50.0), 0.05))
        peak = s.crop_peak[crop]
        catch = _catch_crop(doy, since, s.sow1[crop] + jitter, s.cover_crop[crop], gt)
        crop_green[crop] = np.maximum(peak * np.maximum(g1, g2), catch)
        crop_dry[crop] = peak * np.maximum(r1, r2)
        crop_res[crop] = residue * (1 - catch)
        paddy = (ct == RICE) & np.isfinite(x1) & (np.nan_to_num(x1, nan=1.0) < 0.45)
        crop_water[crop] = np.where(paddy, 0.7 * (1 - np.maximum(g1, g2)), 0)

    return State(temp=temp.astype(f32), green=green.astype(f32), leaf=leaf.astype(f32), snow=snow.astype(f32),
                 frozen=frozen.astype(f32), ice_snow=ice_snow.astype(f32), flood=flood.astype(f32), cut=cut,
                 crop_green=crop_green, crop_dry=crop_dry, crop_residue=crop_res, crop_water=crop_water,
                 wet=w.wet, wind=w.wind)


def endmember_fractions(s: Surface, st: State) -> np.ndarray:
    """Areal fractions of the spectral endmembers, shape (n_endmembers, *surface shape), summing to 1."""
    f32 = np.float32
    ix = spectra.INDEX
    F = np.zeros((len(spectra.NAMES),) + s.shape, f32)
    wet = np.asarray(st.wet, f32)

    water = s.water
    ice = (1 - water) * s.ice
    imp = (1 - water) * (1 - s.ice) * s.imp
    land = (1 - water) * (1 - s.ice) * (1 - s.imp)

    # Open water, frozen in winter (then white with snow, or grey ice).
    liquid = water * (1 - st.frozen)
    frozen = water * st.frozen
    F[ix["water_clear"]] += liquid * (1 - s.turbid)
    F[ix["water_turbid"]] += liquid * s.turbid
    F[ix["snow"]] += frozen * st.snow + ice * st.ice_snow
    F[ix["ice"]] += frozen * (1 - st.snow) + ice * (1 - st.ice_snow)

    # Buildings and roads: bright or dark materials with shadows between them.
    snow_on_roofs = 0.6 * st.snow
    F[ix["concrete"]] += imp * 0.85 * s.urban_mat * (1 - snow_on_roofs)
    F[ix["asphalt"]] += imp * 0.85 * (1 - s.urban_mat) * (1 - snow_on_roofs)
    F[ix["shadow"]] += imp * 0.15
    F[ix["snow"]] += imp * 0.85 * snow_on_roofs

    # Canopy: evergreen part always on, deciduous part with the leaves.
    tree = land * s.tree
    on = tree * (s.evergreen + (1 - s.evergreen) * st.leaf)
    F[ix["needleleaf"]] += on * s.needle
    F[ix["broadleaf"]] += on * (1 - s.needle) * (1 - s.tidal)
    F[ix["mangrove"]] += on * (1 - s.needle) * s.tidal
    bare_branches = 0.5 * (tree - on)

    # The ground: what is not canopy. Crops replace the herb layer on their parcels.
    crop = s.crop_type != NO_CROP
    margin = np.where(crop, 0.35 * s.field_edge, 0)  # tracks and grass strips between parcels
    herb = land * np.where(crop, margin, s.herb)
    herb_green = herb * np.where(s.use == USE_FALLOW, st.green * 0.8, st.green) * st.cut
    crop_area = land * np.where(crop, 1 - margin, 0)
    shrub = land * s.shrub
    lichen = land * s.lichen
    ground_veg = (herb + shrub + lichen + crop_area * (st.crop_green + st.crop_dry + st.crop_residue))
    soil = np.clip(land - tree - ground_veg, 0, None) + (tree - on) * 0.5

    # Seasonal snow covers the ground layer (and a little shows through canopy gaps).
    sn = st.snow
    F[ix["snow"]] += sn * (soil + ground_veg + bare_branches) + 0.15 * sn * on
    keep = 1 - sn
    for canopy in ("needleleaf", "broadleaf", "mangrove"):
        F[ix[canopy]] *= 1 - 0.15 * sn
    # Floods and tides cover the ground layer: bare ground goes under water,
    # vegetation keeps half its cover above the water (emergent stems and leaves).
    fl = np.clip(st.flood + np.where(crop, (1 - margin) * st.crop_water, 0), 0, 1)
    keep_soil = keep * (1 - fl)
    keep_veg = keep * (1 - 0.5 * fl)
    F[ix["water_turbid"]] += (soil + 0.5 * ground_veg) * fl * keep * 0.6
    F[ix["water_clear"]] += (soil + 0.5 * ground_veg) * fl * keep * 0.4
    F[ix["green_veg"]] += (herb_green + crop_area * st.crop_green) * keep_veg
    F[ix["dry_veg"]] += ((herb - herb_green) + crop_area * (st.crop_dry + st.crop_residue)) * keep_veg
    F[ix["dry_veg"]] += bare_branches * keep
    F[ix["shrub"]] += shrub * (0.65 + 0.35 * st.green) * keep_veg
    F[ix["dry_veg"]] += shrub * 0.35 * (1 - st.green) * keep_veg
    F[ix["lichen"]] += lichen * keep_veg
    # Soil: wet soil is darker.
    bright = s.soil_bright * (1 - 0.35 * wet)
    F[ix["soil_bright"]] += soil * bright * keep_soil
    F[ix["soil_dark"]] += soil * (1 - bright) * keep_soil
    total = F.sum(axis=0)
    F /= np.maximum(total, 1e-6)
    return F


def backscatter(s: Surface, st: State) -> tuple[np.ndarray, np.ndarray]:
    """Sentinel-1 gamma0 (linear power) VV and VH before speckle."""
    f32 = np.float32
    lin = spectra.s1_linear
    wind = np.asarray(st.wind, f32)
    wet = np.asarray(st.wet, f32)
    out = []
    for pol in (0, 1):
        # pol bound as a default: the helpers are called in this iteration only, but must not see a later pol
        def c(name: str, pol: int = pol):
            return lin(name)[pol]

        def db(name: str, pol: int = pol):
            return f32(spectra.S1_DB[name][pol])

        water = s.water
        ice = (1 - water) * s.ice
        imp = (1 - water) * (1 - s.ice) * s.imp
        land = (1 - water) * (1 - s.ice) * (1 - s.imp)
        # Water: calm is dark, wind roughens it.
        sig_water = np.power(f32(10), (db("water_calm") + (db("water_windy") - db("water_calm")) * wind ** 1.5) / 10)
        sig_frozen = c("ice_dry")
        sig_ice = np.where(st.temp > 0, c("ice_wet"), c("ice_dry"))
        # Buildings: double bounce where walls face the radar.
        sig_urban = np.power(f32(10), (db("urban_low") + (db("urban_high") - db("urban_low")) * s.urban_orient) / 10)
        # Soil: roughness and moisture.
        soil_db = db("soil_smooth") + (db("soil_rough") - db("soil_smooth")) * s.rough + db("soil_wet_gain") * wet
        sig_soil = np.power(f32(10), soil_db / 10)
        crop = s.crop_type != NO_CROP
        biomass = np.where(crop, st.crop_green + 0.5 * st.crop_dry, st.green * s.pheno_amp * st.cut)
        green_db = np.where(crop, db("crop_green"), db("herb_green"))
        herb_db = db("herb_dry") + (green_db - db("herb_dry")) * np.clip(biomass, 0, 1)
        # Cereals: upright stems attenuate VV while they grow.
        herb_db = herb_db - np.where(crop & (pol == 0), 2.0 * st.crop_green, 0)
        sig_herb = np.power(f32(10), herb_db / 10)
        tree_db = (db("needleleaf") * s.needle + db("broadleaf") * (1 - s.needle)
                   + db("leafless_loss") * (1 - s.evergreen) * (1 - st.leaf))
        sig_tree = np.power(f32(10), tree_db / 10)
        tree = land * s.tree
        shrub = land * s.shrub
        herb = land * np.where(crop, np.clip(st.crop_green + st.crop_dry + st.crop_residue, 0, 1), s.herb)
        lichen = land * s.lichen
        soil = np.clip(land - tree - shrub - herb - lichen, 0, None)
        fl = np.clip(st.flood + np.where(crop, st.crop_water, 0), 0, 1)
        sigma = (water * ((1 - st.frozen) * sig_water + st.frozen * sig_frozen) + ice * sig_ice + imp * sig_urban
                 + tree * sig_tree + shrub * c("shrub") + lichen * c("lichen")
                 + (herb * sig_herb + soil * sig_soil) * (1 - fl) + (herb + soil) * fl * sig_water)
        # Flooded vegetation (wetlands, mangroves, paddies): double bounce between water and stems.
        sigma = sigma + fl * (herb * np.clip(biomass, 0.2, 1) + 0.5 * tree) * c("double_bounce")
        # Wet snow absorbs.
        wet_snow = st.snow * sigmoid((st.temp + 1.0) / 0.7) * (land + imp)
        sigma = sigma * np.power(f32(10), db("wet_snow_loss") * wet_snow / 10)
        out.append(sigma.astype(f32))
    return out[0], out[1]
