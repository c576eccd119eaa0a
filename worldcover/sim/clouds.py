"""Clouds, cirrus and cloud shadows of one acquisition, and the imperfect SCL that flags them.

Clouds are functions of position and date (seamless between blocks of the
same overpass): a fractal field thresholded at the quantile that gives the
acquisition's cloud cover, with soft edges, optional thin decks and cirrus
veils. Shadows are the thick clouds displaced away from the sun by the cloud
height times the tangent of the sun zenith angle.

The Scene Classification (SCL) is computed like Sen2Cor does in spirit --
thresholds on the observed reflectances -- with a noisy cloud probability,
so it misses thin cloud edges and some thin veils (a few % of the truly
cloudy pixels are labelled clear), sometimes takes bright ground for cloud,
and misses faint shadows.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy.special import ndtri

from worldcover.bands import (
    SCL_CIRRUS,
    SCL_CLOUD_HIGH,
    SCL_CLOUD_MEDIUM,
    SCL_DARK,
    SCL_NODATA,
    SCL_NOT_VEGETATED,
    SCL_SATURATED,
    SCL_SHADOW,
    SCL_SNOW,
    SCL_UNCLASSIFIED,
    SCL_VEGETATION,
    SCL_WATER,
)
from worldcover.sim.noise import EARTH_RADIUS_KM, domain, fbm, hash2, key, smoothstep, unit

# A pixel is "truly" cloudy when a cloud changes its reflectance by this share or more.
TRUE_CLOUD_OPACITY = 0.1
TRUE_CIRRUS_OPACITY = 0.08
TRUE_SHADOW_DEPTH = 0.3
# Sen2Cor-like thresholds on the (noisy) cloud probability.
SCL_MEDIUM_PROB = 0.25
SCL_HIGH_PROB = 0.6
SCL_CIRRUS_OPACITY = 0.06
# Real Sen2Cor flags only the darkest shadows (1-2 % of Flemish observations).
SCL_SHADOW_DEPTH = 0.6


@dataclass
class CloudFields:
    """Cloud opacity, cirrus opacity and shadow depth (0..1) on one grid."""

    alpha: np.ndarray
    cirrus: np.ndarray
    shadow: np.ndarray
    brightness: float  # cloud-top reflectance scale

    @property
    def cloud(self) -> np.ndarray:
        """True cloud mask: thick or thin cloud, or cirrus, that alters the signal."""
        return (self.alpha >= TRUE_CLOUD_OPACITY) | (self.cirrus >= TRUE_CIRRUS_OPACITY)

    @property
    def shadow_mask(self) -> np.ndarray:
        return (self.shadow >= TRUE_SHADOW_DEPTH) & ~self.cloud


def cloud_cover(moisture: float, rain_factor: float, u_clear: float, u_cover: float, cloudiness: float = 1.0) -> float:
    """Cloud cover (0..1) of one acquisition from the local climate and two uniform draws.

    Wet climates and rainy seasons are cloudier; a share of the dates is clear.
    """
    mean = float(np.clip((0.12 + 0.55 * moisture) * (0.55 + 0.7 * rain_factor) * cloudiness, 0.03, 0.9))
    if u_clear < 0.4 * (1.0 - mean):
        return 0.0
    return float(np.clip(2.0 * mean * u_cover, 0.0, 0.97))


def cloud_fields(lon: np.ndarray, lat: np.ndarray, seed: int, day: int, cover: float, sun_zenith: float,
                 sun_azimuth: float, u: tuple[float, float, float, float]) -> CloudFields:
    """Cloud, cirrus and shadow fields at points (lon/lat arrays) for one acquisition day.

    ``u`` holds four uniform draws of the acquisition (cloud height, thin deck,
    cirrus, brightness).
    """
    shape = np.shape(lon)
    zero = np.zeros(shape, np.float32)
    h_km = 1.0 + 2.5 * u[0]
    brightness = 0.75 + 0.25 * u[3]
    if cover <= 0 and u[2] >= 0.3:
        return CloudFields(zero, zero.copy(), zero.copy(), brightness)
    dom = domain(lon, lat)
    alpha = zero.copy()
    shadow = zero.copy()
    if cover > 0:
        thr = float(ndtri(1.0 - cover)) * 0.95  # fbm is slightly platykurtic
        alpha = _opacity(fbm(dom, key(seed, "cloud", day), 8.0, 7), thr)
        # Shadows: the ground point sees the sun through the cloud at p + d * (sun direction).
        d_km = h_km * math.tan(math.radians(min(sun_zenith, 78.0)))
        az = math.radians(sun_azimuth)
        de, dn = d_km * math.sin(az), d_km * math.cos(az)
        lat_s = np.asarray(lat) + np.degrees(dn / EARTH_RADIUS_KM)
        lon_s = np.asarray(lon) + np.degrees(de / (EARTH_RADIUS_KM * np.cos(np.radians(lat))))
        above = _opacity(fbm(domain(lon_s, lat_s), key(seed, "cloud", day), 8.0, 7), thr)
        shadow = (smoothstep(above, 0.25, 0.7) * 0.9).astype(np.float32)
        if u[1] < 0.15:  # a thin stratus deck over part of the scene
            deck = smoothstep(fbm(dom, key(seed, "deck", day), 30.0, 4), 0.2, 1.0) * 0.25
            alpha = np.maximum(alpha, deck).astype(np.float32)
    cirrus = zero.copy()
    if u[2] < 0.3:  # cirrus veils, up to ~20 % opacity
        veil = smoothstep(fbm(dom, key(seed, "cirrus", day), 25.0, 4), 0.0, 1.2)
        cirrus = (veil * (0.08 + 0.14 * u[2] / 0.3)).astype(np.float32)
    return CloudFields(alpha.astype(np.float32), cirrus, shadow * (1 - alpha), brightness)


def _opacity(n: np.ndarray, thr: float) -> np.ndarray:
    """Soft-edged opacity from a field and its threshold: thin at the edges, thick inside."""
    a = smoothstep(n, thr, thr + 0.35) ** 0.8
    return (a * (0.82 + 0.18 * smoothstep(n, thr + 0.35, thr + 1.0))).astype(np.float32)


def apply_clouds(refl: np.ndarray, cf: CloudFields, cloud_spectrum: np.ndarray, cirrus_spectrum: np.ndarray,
                 shadow_depth: np.ndarray) -> np.ndarray:
    """Cloud-contaminated reflectance (bands first) from the surface and the fields (same grid)."""
    a = cf.alpha[None]
    out = refl * (1 - shadow_depth[:, None, None] * cf.shadow[None])
    out = out * (1 - a) + a * (cloud_spectrum[:, None, None] * np.float32(cf.brightness))
    ci = cf.cirrus[None]
    return (out * (1 - ci) + ci * cirrus_spectrum[:, None, None] * np.float32(0.6)).astype(np.float32)


def scene_classification(b02, b03, b04, b8a, b11, cf: CloudFields, nodata: np.ndarray, saturated: np.ndarray,
                         lon: np.ndarray, lat: np.ndarray, seed: int, day: int, lattice: tuple[int, int]) -> np.ndarray:
    """An SCL-like uint8 layer (codes of worldcover.bands) at 20 m from observed reflectances.

    ``lattice`` is the absolute (column, row) of the first pixel, so the random
    unclassified pixels and commission errors are the same in overlapping chips.
    """
    eps = np.float32(1e-6)
    ndvi = (b8a - b04) / (b8a + b04 + eps)
    ndsi = (b03 - b11) / (b03 + b11 + eps)
    ndwi = (b03 - b8a) / (b03 + b8a + eps)
    scl = np.full(b02.shape, SCL_NOT_VEGETATED, np.uint8)
    scl[(b8a + b11) < 0.1] = SCL_DARK
    scl[ndvi > 0.35] = SCL_VEGETATION
    scl[(ndwi > 0.05) & (b8a < 0.12)] = SCL_WATER
    scl[(ndsi > 0.42) & (b03 > 0.22)] = SCL_SNOW
    h, w = b02.shape
    rows = np.arange(lattice[1], lattice[1] + h)[:, None]
    cols = np.arange(lattice[0], lattice[0] + w)[None, :]
    r = unit(hash2(key(seed, "scl-random", day), cols, rows))
    scl[r < 0.003] = SCL_UNCLASSIFIED
    # Cloud detection with a noisy probability: thin edges and faint veils slip through.
    any_cloud = (cf.alpha > 0.02) | (cf.cirrus > 0.02) | (cf.shadow > 0.05)
    noise = np.zeros(b02.shape, np.float32)
    if any_cloud.any():
        dom = domain(lon, lat)
        noise = fbm(dom, key(seed, "scl-detection", day), 0.4, 3)
    prob = cf.alpha + 0.06 * noise
    shadow_seen = cf.shadow + 0.08 * noise
    scl[(shadow_seen > SCL_SHADOW_DEPTH) & (prob < SCL_MEDIUM_PROB)] = SCL_SHADOW
    scl[(cf.cirrus + 0.02 * noise) > SCL_CIRRUS_OPACITY] = SCL_CIRRUS
    # Bright ground is sometimes taken for cloud (Sen2Cor's classic commission error).
    bright = (b02 > 0.28) & (ndsi < 0.3) & (r > 0.75)
    scl[(prob > SCL_MEDIUM_PROB) | bright] = SCL_CLOUD_MEDIUM
    scl[prob > SCL_HIGH_PROB] = SCL_CLOUD_HIGH
    scl[saturated] = SCL_SATURATED
    scl[nodata] = SCL_NODATA
    return scl


def scl_percentages(scl: np.ndarray) -> dict[str, float]:
    """The ``s2:*_percentage`` properties of an item from its SCL (over the valid pixels)."""
    valid = scl != SCL_NODATA
    n = max(int(valid.sum()), 1)

    def pct(*codes: int) -> float:
        return round(100.0 * float(np.isin(scl[valid], codes).sum()) / n, 6)

    return {
        "s2:high_proba_clouds_percentage": pct(SCL_CLOUD_HIGH),
        "s2:medium_proba_clouds_percentage": pct(SCL_CLOUD_MEDIUM),
        "s2:thin_cirrus_percentage": pct(SCL_CIRRUS),
        "s2:cloud_shadow_percentage": pct(SCL_SHADOW),
        "s2:vegetation_percentage": pct(SCL_VEGETATION),
        "s2:not_vegetated_percentage": pct(SCL_NOT_VEGETATED),
        "s2:water_percentage": pct(SCL_WATER),
        "s2:snow_ice_percentage": pct(SCL_SNOW),
        "s2:unclassified_percentage": pct(SCL_UNCLASSIFIED),
        "s2:dark_features_percentage": pct(SCL_DARK),
        "s2:saturated_defective_pixel_percentage": pct(SCL_SATURATED),
        "eo:cloud_cover": pct(SCL_CLOUD_HIGH, SCL_CLOUD_MEDIUM, SCL_CIRRUS),
    }
