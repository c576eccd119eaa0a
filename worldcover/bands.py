"""Fixed facts about the Sentinel bands, shared by the simulator, loaders and preprocessing.

Data contract between stages (sources hand it to preprocessing and features): an ``xarray.Dataset`` on the
block GeoBox with dims ``(time, y, x)``, one float32 variable per band
(surface reflectance for S2, linear power for S1) with NaN for missing, and
``SCL`` as uint8 with 0 for nodata.
"""

from __future__ import annotations

import re
from datetime import date, datetime

# Sentinel-2 L2A reflectance bands and their native resolution in metres.
S2_BANDS: dict[str, int] = {
    "B01": 60,
    "B02": 10,
    "B03": 10,
    "B04": 10,
    "B05": 20,
    "B06": 20,
    "B07": 20,
    "B08": 10,
    "B8A": 20,
    "B09": 60,
    "B11": 20,
    "B12": 20,
}
SCL = "SCL"
SCL_RESOLUTION = 20

# Scene classification values (ESA L2A).
SCL_NODATA, SCL_SATURATED, SCL_DARK, SCL_SHADOW = 0, 1, 2, 3
SCL_VEGETATION, SCL_NOT_VEGETATED, SCL_WATER, SCL_UNCLASSIFIED = 4, 5, 6, 7
SCL_CLOUD_MEDIUM, SCL_CLOUD_HIGH, SCL_CIRRUS, SCL_SNOW = 8, 9, 10, 11
SCL_INVALID = frozenset({0, 1, 3, 8, 9, 10})
SCL_CLOUDS = frozenset({8, 9, 10})

# Digital numbers: reflectance = (DN + offset) / 10000, DN 0 is nodata.
S2_QUANTIFICATION = 10000.0
S2_BOA_OFFSET_DN = -1000  # from processing baseline 04.00 on
BASELINE_OFFSET_START = date(2022, 1, 25)

# Asset keys of each catalogue, by band.
S2_ASSET_KEYS: dict[str, dict[str, str]] = {
    "planetary-computer": {b: b for b in [*S2_BANDS, SCL]},
    "earth-search": {
        "B01": "coastal", "B02": "blue", "B03": "green", "B04": "red", "B05": "rededge1",
        "B06": "rededge2", "B07": "rededge3", "B08": "nir", "B8A": "nir08", "B09": "nir09",
        "B11": "swir16", "B12": "swir22", "SCL": "scl",
    },
    "copernicus-dataspace": {
        **{b: f"{b}_{r}m" for b, r in S2_BANDS.items()},
        "SCL": "SCL_20m",
    },
}

S1_POLARISATIONS = ("vv", "vh")

# s2cloudless' inputs that L2A provides (its B10 is replaced by a proxy: preprocess.s2.cloud_probability).
S2_CLOUDLESS_BANDS = ("B01", "B02", "B04", "B05", "B08", "B8A", "B09", "B11", "B12")


def s2_asset_keys(layout: str, bands) -> dict[str, str]:
    """{band: asset key} of ``bands`` plus SCL in a catalogue ``layout`` (a key of S2_ASSET_KEYS)."""
    keys = S2_ASSET_KEYS[layout]
    return {b: keys[b] for b in [*bands, SCL]}

_BASELINE_RE = re.compile(r"^(\d{1,2})\.(\d{2})$")


def parse_baseline(value: str) -> tuple[int, int]:
    """``"04.00"`` -> (4, 0)."""
    m = _BASELINE_RE.match(str(value).strip())
    if not m:
        raise ValueError(f"invalid s2:processing_baseline {value!r}: expected NN.NN such as 04.00")
    return int(m.group(1)), int(m.group(2))


def baseline_has_offset(baseline: str) -> bool:
    """True when DN carry the -1000 BOA offset (baseline 04.00 and later)."""
    return parse_baseline(baseline) >= (4, 0)


def baseline_for(when: date | datetime) -> str:
    """The processing baseline ESA used for products sensed on ``when`` (for simulation)."""
    d = when.date() if isinstance(when, datetime) else when
    if d >= date(2024, 7, 23):
        return "05.11"
    if d >= date(2023, 6, 27):
        return "05.09"
    if d >= BASELINE_OFFSET_START:
        return "04.00"
    if d >= date(2021, 7, 1):
        return "03.01"
    return "02.14"


def to_yx(obj):
    """Name the spatial dims ``y``/``x`` whatever the CRS (odc-geo says latitude/longitude for EPSG:4326).

    The odc accessor still finds the GeoBox after the rename, so the contract
    can use one spelling everywhere.
    """
    names = {"latitude": "y", "longitude": "x"}
    present = {k: v for k, v in names.items() if k in obj.dims}
    return obj.rename(present) if present else obj
