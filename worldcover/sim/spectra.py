"""Endmember spectra (Sentinel-2 surface reflectance) and radar backscatter constants.

A simulated pixel is a linear mixture of these endmembers. The values are
typical L2A surface reflectances read off library spectra convolved with the
MSI bands (rounded): vegetation has the red edge and the NIR plateau, soils
rise towards the SWIR, water is dark beyond the red, snow is bright in the
visible and dark in the SWIR, urban materials are flat. They overlap where
real ones do: dry grass and bare soil, shrubs and sparse trees, asphalt and
dark soil, concrete and bright sand.
"""

from __future__ import annotations

import numpy as np

from worldcover.bands import S2_BANDS

BANDS: tuple[str, ...] = tuple(S2_BANDS)  # B01 B02 B03 B04 B05 B06 B07 B08 B8A B09 B11 B12

# name: reflectance per band in BANDS order
ENDMEMBERS: dict[str, tuple[float, ...]] = {
    #               B01   B02   B03   B04   B05   B06   B07   B08   B8A   B09   B11   B12
    "green_veg":   (.025, .028, .068, .022, .110, .340, .450, .495, .515, .505, .205, .095),
    "dry_veg":     (.060, .070, .095, .130, .170, .210, .235, .255, .270, .265, .360, .270),
    "broadleaf":   (.020, .025, .055, .025, .090, .230, .290, .310, .325, .320, .150, .065),
    "needleleaf":  (.015, .020, .040, .020, .065, .160, .195, .210, .220, .215, .100, .045),
    "shrub":       (.035, .040, .065, .060, .105, .180, .210, .225, .240, .235, .210, .125),
    "soil_dark":   (.050, .060, .080, .100, .120, .135, .145, .155, .165, .165, .210, .170),
    "soil_bright": (.150, .180, .240, .300, .340, .360, .375, .390, .400, .400, .480, .410),
    "water_clear": (.060, .055, .045, .025, .015, .008, .007, .006, .005, .005, .002, .001),
    "water_turbid": (.075, .080, .100, .080, .070, .035, .030, .025, .022, .020, .006, .003),
    "snow":        (.900, .920, .910, .890, .870, .830, .800, .770, .740, .720, .080, .050),
    "ice":         (.550, .580, .560, .520, .480, .420, .380, .340, .310, .290, .040, .025),
    "concrete":    (.150, .170, .190, .205, .220, .235, .245, .255, .265, .260, .300, .270),
    "asphalt":     (.070, .075, .085, .090, .095, .100, .105, .110, .115, .115, .130, .120),
    "shadow":      (.020, .020, .020, .018, .018, .018, .018, .018, .018, .018, .015, .012),
    "lichen":      (.040, .045, .070, .085, .130, .190, .220, .240, .255, .250, .300, .220),
    # Mangrove canopies over wet mud are darker in the NIR and SWIR than dry-land forest.
    "mangrove":    (.018, .022, .045, .022, .075, .190, .240, .255, .265, .260, .110, .045),
}
NAMES: tuple[str, ...] = tuple(ENDMEMBERS)
INDEX: dict[str, int] = {n: i for i, n in enumerate(NAMES)}
# (endmember, band) matrix
MATRIX = np.array([ENDMEMBERS[n] for n in NAMES], dtype=np.float32)

# Clouds: bright and nearly flat, darker in the SWIR (ice/water absorption).
CLOUD = np.array([.95, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, .95, .75, .55], dtype=np.float32)
CIRRUS = np.array([1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, .55, .45], dtype=np.float32)
# How much of the direct light a cloud shadow removes per band (diffuse sky light is bluer).
SHADOW_DEPTH = np.array([.50, .55, .62, .68, .72, .76, .78, .80, .80, .80, .82, .82], dtype=np.float32)
# Residual of the atmospheric correction per unit aerosol error (additive, strongest in the blue).
HAZE = np.array([.022, .018, .012, .008, .006, .004, .003, .003, .003, .003, .001, .0005], dtype=np.float32)
# Sensor + processing noise (1 sigma, reflectance) at native resolution.
NOISE = np.array([.004, .003, .003, .003, .003, .003, .003, .004, .004, .006, .004, .004], dtype=np.float32)


# --- Sentinel-1 (gamma0, dB) ---------------------------------------------------
# Typical C-band values: water is dark (wind roughens it), soils depend on
# moisture and roughness, vegetation volume scattering raises VH, forests are
# bright in both, buildings facing the radar give strong double bounce in VV,
# and flooded vegetation gives double bounce too.

S1_DB = {
    #                  VV      VH
    "water_calm":    (-23.0, -29.0),
    "water_windy":   (-13.0, -24.0),
    "soil_smooth":   (-17.0, -25.0),
    "soil_rough":    (-10.0, -18.0),
    "soil_wet_gain": (5.0, 4.0),  # dB added by a fully wet soil
    # herbaceous values raised ~1.5 dB towards real Flemish grass and crops (sigma0 VV -10 to -11, VH -17)
    "herb_dry":      (-12.0, -20.0),
    "herb_green":    (-10.0, -17.0),  # grass: little volume
    "crop_green":    (-9.0, -14.0),  # a crop at full biomass (maize, rape) scatters much more
    "shrub":         (-9.5, -15.5),  # woody volume
    "broadleaf":     (-7.5, -13.0),
    "needleleaf":    (-7.0, -12.5),
    "leafless_loss": (-0.8, -1.5),
    "lichen":        (-14.5, -23.0),
    "urban_low":     (-7.0, -14.0),
    "urban_high":    (4.0, -10.0),
    "ice_dry":       (-9.0, -15.0),
    "ice_wet":       (-19.0, -26.0),
    "wet_snow_loss": (-6.0, -7.0),
    "double_bounce": (-3.0, -13.0),  # flooded vegetation, per unit of (water x vegetation)
}


def s1_linear(name: str) -> tuple[np.float32, np.float32]:
    vv, vh = S1_DB[name]
    return np.float32(10 ** (vv / 10)), np.float32(10 ** (vh / 10))
