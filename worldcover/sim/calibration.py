"""Real observation statistics as calibration targets for the simulator, and the distance of a simulation to them.

Per region, WorldCover class and feature, the real data in ``shared/realdata``
(Flanders S2/S1 time series with parcel labels, WorldCereal monthly point
composites from Uganda/Kenya, Dynamic World-labelled US point series) are
reduced to a distribution, stored as quantiles q05..q95 in
``worldcover/sim/data/real_targets.json`` (regenerate with
``python -m worldcover.sim.calibration``). The same features are computed
from simulated blocks in matching regions (:func:`simulated_samples`) and
compared per class x feature by a 1-D Wasserstein distance and the shift of
the medians (:func:`distance_table`). Real pixels only yield statistics here:
they never train a model.

Features (``FEATURES`` gives the definitions): yearly per-pixel NDVI
percentiles of the clear observations, monthly per-pixel NDVI medians, clear
reflectances of six bands, S1 VV/VH dB per season and (with SCL) per-pixel
shares of snow, cloud and shadow flags.
"""

from __future__ import annotations

import json
import math
import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache
from pathlib import Path

import numpy as np
import pandas as pd

from worldcover.bands import SCL_INVALID
from worldcover.errors import InputError
from worldcover.grid import TILE_DEGREES, TILE_PIXELS, tile_of
from worldcover.legend import BY_CODE
from worldcover.sim.simulate import BlockWorld, SimOptions
from worldcover.sim.world import surface_at
from worldcover.storage import atomic_write_text

TARGETS_PATH = Path(__file__).parent / "data" / "real_targets.json"
QUANTILES = tuple(round(0.05 * i, 2) for i in range(1, 20))  # q05..q95
QCOLS = tuple(f"q{int(round(q * 100)):02d}" for q in QUANTILES)
BANDS = ("B02", "B03", "B04", "B08", "B11", "B12")
SEASONS = {"djf": (12, 1, 2), "mam": (3, 4, 5), "jja": (6, 7, 8), "son": (9, 10, 11)}
# "Clear" = Sen2Cor says vegetation, not-vegetated or water: what a feature chain keeps
# (water is kept so that lakes have observations at all).
CLEAR_SCL = (4, 5, 6)
SCL_FLAGS = {"snow": (11,), "cloud": (8, 9, 10), "shadow": (3,)}
MIN_SAMPLES = 5  # a class with fewer real pixels/points is not a target
YEAR_SHARE = 0.75  # per-pixel yearly percentiles need clear data in this share of the months (point series)
MIN_CLEAR_OBS = 3  # ... or this many clear acquisitions (acquisition series)

FEATURES: dict[str, str] = {
    **{f"ndvi_p{p}": f"per pixel, {p}th percentile of NDVI over the year's clear observations" for p in (10, 50, 90)},
    **{f"ndvi_chain_p{p}": f"per pixel, {p}th percentile of NDVI over the observations the production chain keeps "
       "(SCL not 0/1/3/8/9/10: snow, dark and unclassified included; acquisition series only)" for p in (10, 50, 90)},
    **{f"ndvi_m{m:02d}": f"per pixel, median NDVI of the clear observations of month {m:02d}" for m in range(1, 13)},
    **{b: f"{b} surface reflectance of every clear observation" for b in BANDS},
    **{f"{pol}_db_{s}": f"S1 {pol.upper()} backscatter (dB) of every observation in {s.upper()}"
       for pol in ("vv", "vh") for s in SEASONS},
    **{f"scl_{k}": f"per pixel, share of the valid observations that SCL flags {k} ({'/'.join(map(str, v))})"
       for k, v in SCL_FLAGS.items()},
}


def feature_group(feature: str) -> str:
    """The unit group of a feature: distances are only averaged within one (ndvi, reflectance, s1_db, scl_share)."""
    if feature.startswith("ndvi"):
        return "ndvi"
    if feature.startswith(("vv_", "vh_")):
        return "s1_db"
    if feature.startswith("scl_"):
        return "scl_share"
    return "reflectance"


@dataclass(frozen=True)
class Region:
    """A real data set and where/when the simulator should reproduce it."""

    name: str
    title: str
    source: str  # folder under realdata
    kind: str  # "acquisitions" (individual S2/S1 scenes) or "monthly" (monthly composites per point)
    sim_year: int
    period: str  # of the real data
    notes: str = ""
    thin_months: bool = False  # the real data cover only some months by design: weigh the simulated months alike


REGIONS: dict[str, Region] = {r.name: r for r in (
    Region("flanders", "Flanders farmland patch (BE)", "worldcereal-flanders-A", "acquisitions", 2018,
           "2017-12-01..2018-11-30",
           "S1 is geocoded sigma0 at 20 m (Earth Engine), the simulator's RTC gamma0 reads about 0.5-1.5 dB higher "
           "on flat ground; the simulated blocks are farmland of the region, not the patch itself"),
    Region("uganda", "WorldCereal points, Uganda/Kenya/South Sudan", "worldcereal-points", "monthly", 2017,
           "2016-12..2017-11", "monthly composites; the simulated side is made of monthly medians of clear scenes"),
    Region("us-lakes", "Dynamic World points, US lakes", "dynamicworld-points/algae_blooms", "monthly", 2021,
           "unknown year (presto)", "Dynamic World labels are model proxies; points with a stable label only"),
    Region("us-west", "Dynamic World points, western US", "dynamicworld-points/fuel_moisture", "monthly", 2021,
           "unknown year (presto), 3 months per point",
           "Dynamic World labels are model proxies; 3 months per point, mostly summer: the simulated months are "
           "thinned to the real month shares (month_share); no yearly NDVI percentiles", thin_months=True),
)}

FLANDERS_LC = {11: 40, 12: 40, 10: 40, 13: 30, 20: 30, 30: 20, 40: 10, 41: 10, 42: 10, 50: 60, 60: 50, 70: 80, 80: 70}
WORLDCEREAL_LC = {"temporary_crops": 40, "permanent_crops": 10, "grasslands": 30, "temporary_grasses": 30,
                  "trees": 10, "shrubland": 20, "built_up": 50, "bare_sparsely_vegetated": 60, "water": 80,
                  "wetlands": 90}
DYNAMICWORLD_LC = {0: 80, 1: 10, 2: 30, 3: 90, 4: 40, 5: 20, 6: 50, 7: 60, 8: 70}
DW_CHANNELS = {"vv": 0, "vh": 1, "B02": 2, "B03": 3, "B04": 4, "B08": 8, "B11": 11, "B12": 12}


def realdata_root() -> Path:
    """``$WORLDCOVER_REALDATA`` or ``../shared/realdata`` beside the repository."""
    env = os.environ.get("WORLDCOVER_REALDATA")
    return Path(env) if env else Path(__file__).resolve().parents[3] / "shared" / "realdata"


def lookup(table: dict[int, int], values: np.ndarray) -> np.ndarray:
    """Map integer class codes through ``table`` (0 for codes it lacks), as an array lookup."""
    values = np.asarray(values, np.int64)
    lut = np.zeros(max(int(values.max(initial=0)), max(table)) + 1, np.int64)
    lut[list(table)] = list(table.values())
    return lut[values]


# --- the common feature definitions -----------------------------------------------------


@dataclass
class Series:
    """Time series of the pixels (or points) of one class: the input of :func:`series_features`.

    ``refl``: band -> (time, pixel) reflectance, NaN missing; ``clear``: (time, pixel)
    usable observations; ``months``: (time,) 1..12; ``s1``: pol -> (time1, pixel) dB;
    ``scl``: (time, pixel) Sen2Cor classes or None; ``year_min``: the fewest clear
    observations a pixel needs for its yearly NDVI percentiles (None: not computed).
    """

    months: np.ndarray
    refl: dict[str, np.ndarray]
    clear: np.ndarray
    s1_months: np.ndarray
    s1: dict[str, np.ndarray]
    scl: np.ndarray | None = None
    year_min: int | None = MIN_CLEAR_OBS


def ndvi(b08: np.ndarray, b04: np.ndarray) -> np.ndarray:
    """NDVI from spyndex's catalogue formula (as the feature chain computes it), NaN where undefined."""
    import spyndex

    with np.errstate(all="ignore"):
        out = np.asarray(spyndex.computeIndex("NDVI", params={"N": b08, "R": b04}), dtype=np.float32)
    return np.where(np.isfinite(out), out, np.float32(np.nan))


def _per_pixel_median(values: np.ndarray) -> np.ndarray:
    """Median over time of (time, pixel) values, NaN for pixels without any (no warning)."""
    has = np.isfinite(values).any(axis=0)
    out = np.full(values.shape[1], np.nan, np.float32)
    if has.any():
        out[has] = np.nanmedian(values[:, has], axis=0)
    return out


def series_features(s: Series) -> dict[str, np.ndarray]:
    """Every feature's sample (1-D, finite) from one class's series; see ``FEATURES``."""
    out: dict[str, np.ndarray] = {}
    raw = ndvi(s.refl["B08"], s.refl["B04"])
    v = np.where(s.clear, raw, np.nan)
    masks = {"ndvi": v}
    if s.scl is not None:  # what the feature chain sees: snow and Sen2Cor's misses included
        masks["ndvi_chain"] = np.where(np.isin(s.scl, list(SCL_INVALID)), np.nan, raw)
    for name, vals in masks.items() if s.year_min is not None else ():
        enough = np.isfinite(vals).sum(axis=0) >= s.year_min
        if enough.any():
            pct = np.nanpercentile(vals[:, enough], (10, 50, 90), axis=0)
            for p, row in zip((10, 50, 90), pct, strict=True):
                out[f"{name}_p{p}"] = row
    for m in range(1, 13):
        sel = s.months == m
        if sel.any():
            out[f"ndvi_m{m:02d}"] = _per_pixel_median(v[sel])
    for b in BANDS:
        out[b] = s.refl[b][s.clear]
    for pol, db in s.s1.items():
        for name, months in SEASONS.items():
            out[f"{pol}_db_{name}"] = db[np.isin(s.s1_months, months)].ravel()
    if s.scl is not None:
        valid = s.scl != 0
        n = valid.sum(axis=0)
        for k, codes in SCL_FLAGS.items():
            hit = (np.isin(s.scl, codes) & valid).sum(axis=0)
            out[f"scl_{k}"] = (hit[n > 0] / n[n > 0]).astype(np.float32)
    return {k: a[np.isfinite(a)].astype(np.float64) for k, a in out.items()}


def month_share(s: Series) -> list[float]:
    """Share of the real observations (steps with data) falling in each calendar month."""
    counts = np.array([np.isfinite(s.refl["B04"][s.months == m]).sum() for m in range(1, 13)], float)
    return (counts / max(counts.sum(), 1)).round(4).tolist()


def thin_months(s: Series, share, seed: int = 0) -> Series:
    """Drop observations at random so that the months' weights follow ``share`` (the real data's):
    an observation of month m is kept with probability share[m] / max(share)."""
    keep_p = np.asarray(share, float) / max(max(share), 1e-12)
    rng = np.random.default_rng(seed)
    keep = rng.random(s.clear.shape) < keep_p[s.months - 1][:, None]
    s1 = {}
    if s.s1:
        keep1 = rng.random(next(iter(s.s1.values())).shape) < keep_p[s.s1_months - 1][:, None]
        s1 = {p: np.where(keep1, a, np.nan) for p, a in s.s1.items()}
    refl = {b: np.where(keep, a, np.nan) for b, a in s.refl.items()}
    return Series(s.months, refl, s.clear & keep, s.s1_months, s1, s.scl, s.year_min)


def merge_samples(parts: list[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    """Concatenate per-feature samples of several series (e.g. blocks of one class)."""
    keys = sorted({k for p in parts for k in p})
    return {k: np.concatenate([p[k] for p in parts if k in p]) for k in keys}


def summarise(sample: np.ndarray) -> dict:
    """n, mean and the quantiles q05..q95 of a sample (p10/p50/p90 repeated for quick lookup)."""
    q = np.quantile(sample, QUANTILES)
    r = lambda a: round(float(a), 5)  # noqa: E731
    return {"n": int(sample.size), "mean": r(sample.mean()), "p10": r(q[1]), "p50": r(q[9]), "p90": r(q[17]),
            "q": [r(x) for x in q]}


# --- real data -> per-class series ---------------------------------------------------------


def _open_nc(path: Path):
    import xarray as xr

    try:
        return xr.open_dataset(path, mask_and_scale=False, engine="h5netcdf")
    except (ImportError, ValueError) as exc:  # the engine is an optional dependency
        raise InputError(f"cannot open {path}: {exc} (expected h5netcdf and h5py installed)") from None


def _one(folder: Path, prefix: str) -> Path:
    hits = sorted(folder.glob(f"{prefix}*.nc"))
    if len(hits) != 1:
        raise InputError(f"{folder}: expected one {prefix}*.nc file, found {len(hits)}")
    return hits[0]


def flanders_series(root: Path) -> dict[int, Series]:
    """Per WorldCover class, the 10 m pixels of the Flanders patch over one year (Dec 2017 - Nov 2018).

    20 m bands, SCL and S1 are repeated onto the 10 m label grid; DN / 1e4 (baselines before
    04.00 carry no offset); S1 is stored as dB x 1e4.
    """
    folder = root / REGIONS["flanders"].source
    s10, s20 = _open_nc(_one(folder, "S2_L2A_10m")), _open_nc(_one(folder, "S2_L2A_20m"))
    s1, lab = _open_nc(_one(folder, "S1_GRD")), _open_nc(_one(folder, "OUTPUT_POLY"))
    t0, t1 = np.datetime64("2017-12-01"), np.datetime64("2018-12-01")

    def up(a: np.ndarray) -> np.ndarray:  # 20 m -> 10 m
        return np.repeat(np.repeat(a, 2, axis=-2), 2, axis=-1)

    keep = (s10.timestamp.values >= t0) & (s10.timestamp.values < t1)
    if not np.array_equal(s10.timestamp.values, s20.timestamp.values):
        raise InputError(f"{folder}: the 10 m and 20 m S2 files have different dates")
    dn = {b: (s10[b].values[keep] if b in s10 else up(s20[b].values[keep])) for b in BANDS}
    refl = {b: np.where(a > 0, a / np.float32(1e4), np.nan).astype(np.float32) for b, a in dn.items()}
    scl = up(s20["SCL"].values[keep])
    months = (s10.timestamp.values[keep].astype("datetime64[M]").astype(int) % 12) + 1
    k1 = (s1.timestamp.values >= t0) & (s1.timestamp.values < t1)
    db = {p.lower(): np.where(s1[p].values[k1] != 0, s1[p].values[k1] / 1e4, np.nan).astype(np.float32)
          for p in ("VV", "VH")}
    db = {p: up(a) for p, a in db.items()}
    months1 = (s1.timestamp.values[k1].astype("datetime64[M]").astype(int) % 12) + 1
    codes = lookup(FLANDERS_LC, lab["LC"].values)
    valid_all = np.all([np.isfinite(a) for a in refl.values()], axis=0)
    clear = np.isin(scl, CLEAR_SCL) & valid_all
    def series(m: np.ndarray) -> Series:
        flat = lambda a: a.reshape(a.shape[0], -1)[:, m]  # noqa: E731
        return Series(months, {b: flat(a) for b, a in refl.items()}, flat(clear), months1,
                      {p: flat(a) for p, a in db.items()}, flat(scl), MIN_CLEAR_OBS)

    return _per_class(codes.ravel(), series)


def _per_class(codes: np.ndarray, series: Callable[[np.ndarray], Series]) -> dict[int, Series]:
    """``series(mask)`` of every class code (> 0) with at least MIN_SAMPLES samples in ``codes``."""
    masks = {int(c): codes == c for c in np.unique(codes[codes > 0])}
    return {c: series(m) for c, m in masks.items() if m.sum() >= MIN_SAMPLES}


def _point_series(months: np.ndarray, refl: dict, clear: np.ndarray, db: dict,
                  year_min: int | None) -> Callable[[np.ndarray], Series]:
    """Series of the points selected by a mask, from (month, point) arrays of monthly composites."""
    return lambda m: Series(months, {b: a[:, m] for b, a in refl.items()}, clear[:, m], months,
                            {p: a[:, m] for p, a in db.items()}, None, year_min)


def worldcereal_series(root: Path) -> tuple[dict[int, Series], np.ndarray]:
    """Per WorldCover class, the WorldCereal monthly point composites (and the points' lon/lat)."""
    folder = root / REGIONS["uganda"].source
    df = pd.read_parquet(folder / "test_public_extractions.parquet")
    mapping = json.loads((folder / "class_mappings.json").read_text())["LANDCOVER10"]
    names = df["ewoc_code"].astype("int64").astype(str).map(mapping)
    codes = names.map(WORLDCEREAL_LC).fillna(0).to_numpy(np.int64)
    starts = pd.to_datetime(df["start_date"]).dt.month.unique()
    if len(starts) != 1:
        raise InputError(f"{folder}: expected one start_date month for all samples, found {sorted(starts)}")
    months = (int(starts[0]) - 1 + np.arange(12)) % 12 + 1

    def stack(prefix: str, suffix: str) -> np.ndarray:  # (time, point) uint16, nodata 0/65535 -> NaN
        a = np.stack([df[f"{prefix}-ts{i}-{suffix}"].to_numpy(np.float64) for i in range(12)])
        return np.where((a > 0) & (a < 65535), a, np.nan)

    res = {b: "10m" if b in ("B02", "B03", "B04", "B08") else "20m" for b in BANDS}
    refl = {b: (stack(f"OPTICAL-{b}", res[b]) / 1e4).astype(np.float32) for b in BANDS}
    db = {p.lower(): (20 * np.log10(stack(f"SAR-{p}", "20m")) - 83).astype(np.float32) for p in ("VV", "VH")}
    clear = np.all([np.isfinite(a) for a in refl.values()], axis=0)
    series = _point_series(months, refl, clear, db, math.ceil(YEAR_SHARE * 12))
    return _per_class(codes, series), df[["lon", "lat"]].to_numpy(np.float64)


def dynamicworld_series(root: Path, region: str) -> tuple[dict[int, Series], np.ndarray]:
    """Per WorldCover class, the Dynamic World points whose label is stable (the mode in >= 2/3 of the steps).

    Each point's steps are months of one year (``month.npy``, 0-11); NDVI is recomputed from B8/B4
    so that it has the same definition as everywhere else.
    """
    folder = root / REGIONS[region].source
    x = np.load(folder / "s1_s2_era5_srtm.npy")
    dw = np.load(folder / "dynamic_world.npy").astype(np.int64)
    month = np.load(folder / "month.npy").astype(np.int64) + 1
    latlon = np.load(folder / "latlon.npy")
    n, t = dw.shape
    counts = np.stack([(dw == k).sum(axis=1) for k in range(9)], axis=1)
    mode = counts.argmax(axis=1)
    stable = counts.max(axis=1) >= math.ceil(2 * t / 3)
    codes = np.where(stable, lookup(DYNAMICWORLD_LC, mode), 0)
    # (T, N) arrays with per-point months: Series wants one month per step, so steps are
    # re-ordered per point into calendar months (a point has at most one step per month).
    order = np.argsort(month, axis=1)
    mon = np.take_along_axis(month, order, axis=1)
    per = lambda c: np.take_along_axis(x[:, :, c], order, axis=1)  # noqa: E731
    grid = np.full((12, n), np.nan, np.float32)

    def calendar(a: np.ndarray) -> np.ndarray:  # (N, T) in month order -> (12, N)
        g = grid.copy()
        g[mon.T - 1, np.arange(n)[None, :].repeat(t, 0)] = a.T
        return g

    refl = {b: calendar(np.where(per(c) > 0, per(c) / 1e4, np.nan))
            for b, c in DW_CHANNELS.items() if b.startswith("B")}
    db = {p: calendar(np.where(per(c) != 0, per(c), np.nan)) for p, c in DW_CHANNELS.items() if not p.startswith("B")}
    months = np.arange(1, 13)
    clear = np.all([np.isfinite(a) for a in refl.values()], axis=0)
    year_min = math.ceil(YEAR_SHARE * 12) if t >= 12 else None
    series = _point_series(months, refl, clear, db, year_min)
    return _per_class(codes, series), latlon[:, ::-1].astype(np.float64)  # (lat, lon) -> (lon, lat)


def _concat_series(parts: list[Series]) -> Series:
    """Series of one calendar (same months) side by side along the pixel axis."""
    first = parts[0]
    cat = lambda arrs: np.concatenate(arrs, axis=1)  # noqa: E731
    return Series(first.months, {b: cat([p.refl[b] for p in parts]) for b in first.refl},
                  cat([p.clear for p in parts]), first.s1_months, {k: cat([p.s1[k] for p in parts]) for k in first.s1},
                  None, first.year_min)


# --- targets: compute, store, load ------------------------------------------------------


def flanders_sites() -> np.ndarray:
    """Where to look for simulated Flanders-like blocks: a grid over 2.6-4.6 E, 50.2-50.95 N (tile N48E003).

    The simulated world is not the real one (its coast, rivers and towns lie elsewhere),
    so the counterpart is the region's farmland, not the patch's exact pixels.
    """
    lon, lat = np.meshgrid(np.linspace(2.6, 4.6, 9), np.linspace(50.2, 50.95, 4))
    return np.column_stack([lon.ravel(), lat.ravel()])


def _sites(lonlat: np.ndarray, n: int = 48) -> list[list[float]]:
    """Up to ``n`` real point locations, evenly spread in longitude order, rounded to 0.01 degree."""
    pts = np.unique(np.round(lonlat, 2), axis=0)
    pts = pts[np.argsort(pts[:, 0], kind="stable")]
    idx = np.unique(np.linspace(0, len(pts) - 1, min(n, len(pts))).round().astype(int))
    return pts[idx].tolist()


def compute_real_targets(root: Path | None = None) -> dict:
    """The targets document (see the module docstring) from the real data under ``root``."""
    root = Path(root) if root else realdata_root()
    if not root.is_dir():
        raise InputError(f"real data folder {root} not found (expected shared/realdata or $WORLDCOVER_REALDATA)")
    wc, wc_pts = worldcereal_series(root)
    lakes, lake_pts = dynamicworld_series(root, "us-lakes")
    west, west_pts = dynamicworld_series(root, "us-west")
    data = {
        "flanders": (flanders_series(root), flanders_sites()),
        "uganda": (wc, wc_pts), "us-lakes": (lakes, lake_pts), "us-west": (west, west_pts),
    }
    regions = {}
    for name, (series, pts) in data.items():
        reg = REGIONS[name]
        classes = {}
        for code, s in sorted(series.items()):
            feats = series_features(s)
            classes[str(code)] = {
                "name": BY_CODE[code].name,
                "features": {f: summarise(a) for f, a in sorted(feats.items()) if a.size >= MIN_SAMPLES},
            }
        regions[name] = {"title": reg.title, "source": f"realdata/{reg.source}", "kind": reg.kind,
                         "period": reg.period, "sim_year": reg.sim_year, "notes": reg.notes,
                         "sites": _sites(pts) if name != "flanders" else np.round(pts, 3).tolist(),
                         "classes": classes}
        if reg.kind == "monthly":  # all classes pooled: the calendar of the data set, not of a class
            regions[name]["month_share"] = month_share(_concat_series(list(series.values())))
            regions[name]["thin_months"] = reg.thin_months
    return {
        "version": 1,
        "generated": datetime.now(UTC).isoformat(timespec="seconds"),
        "quantiles": list(QUANTILES),
        "clear_scl": list(CLEAR_SCL),
        "features": FEATURES,
        "lookup": "regions[region]['classes'][code]['features'][feature] -> n, mean, p10, p50, p90, q (q05..q95)",
        "regions": regions,
    }


def write_real_targets(path: Path | None = None, root: Path | None = None) -> Path:
    """Regenerate ``real_targets.json`` from the shared real data (temp file then rename)."""
    dest = Path(path) if path else TARGETS_PATH
    dest.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(dest, dumps_compact(compute_real_targets(root)))
    load_targets.cache_clear()
    return dest


def dumps_compact(doc: dict) -> str:
    """JSON with one line per feature's statistics, so that the file reads (and diffs) as a table."""
    text = json.dumps(doc, indent=1)
    flat = lambda m: " ".join(m.group(0).split())  # noqa: E731
    text = re.sub(r"\[[^\[\]{}]*\]", flat, text)  # lists of numbers
    return re.sub(r'\{\s*"n": [^{}]*\}', flat, text) + "\n"  # a feature's statistics


@lru_cache(maxsize=4)
def load_targets(path: Path | None = None) -> dict:
    """The targets document (cached); a missing or unreadable file is a one-line error."""
    p = Path(path) if path else TARGETS_PATH
    try:
        doc = json.loads(p.read_text())
    except FileNotFoundError:
        raise InputError(f"calibration targets {p} not found "
                         "(regenerate: python -m worldcover.sim.calibration)") from None
    except json.JSONDecodeError as exc:
        raise InputError(f"calibration targets {p} are not valid JSON: {exc}") from None
    if doc.get("version") != 1 or "regions" not in doc:
        raise InputError(f"calibration targets {p}: expected version 1 with 'regions'")
    return doc


def targets_frame(doc: dict) -> pd.DataFrame:
    """The targets document in long format: region, class, class_name, feature, group, n, mean, q05..q95."""
    rows = []
    for region, r in doc["regions"].items():
        for code, c in r["classes"].items():
            for feature, st in c["features"].items():
                rows.append({"region": region, "class": int(code), "class_name": c["name"], "feature": feature,
                             "group": feature_group(feature), "n": st["n"], "mean": st["mean"],
                             **dict(zip(QCOLS, st["q"], strict=True))})
    return pd.DataFrame(rows)


def real_targets(path: Path | None = None) -> pd.DataFrame:
    """Per region, class and feature the real distribution's quantiles (long format; from the cached JSON)."""
    return targets_frame(load_targets(path))


# --- simulated counterpart ----------------------------------------------------------------


def block_at(lon: float, lat: float, block_size: int):
    """The grid block of ``block_size`` containing a point."""
    tile = tile_of(lon, lat)
    per_deg = TILE_PIXELS / TILE_DEGREES
    west, south, _, north = tile.bbox
    row = min(int((north - lat) * per_deg) // block_size, (TILE_PIXELS - 1) // block_size)
    col = min(int((lon - west) * per_deg) // block_size, (TILE_PIXELS - 1) // block_size)
    return tile.block(row, col, block_size)


def class_shares(block, seed: int = 0, n: int = 24) -> dict[int, float]:
    """Share of each simulated class in a block, from the truth at an n x n lattice of points (cheap)."""
    w, s, e, nth = block.bbox
    lon, lat = np.meshgrid(np.linspace(w, e, n), np.linspace(s, nth, n))
    codes, counts = np.unique(surface_at(lon, lat, seed).code, return_counts=True)
    return {int(c): float(k) / counts.sum() for c, k in zip(codes, counts, strict=True)}


def pick_blocks(shares: dict, classes: list[int], n_blocks: int, cap: float = 0.25) -> list:
    """Greedy choice of ``n_blocks`` blocks covering ``classes`` (deterministic).

    Each step takes the block with the largest gain sum_c w_c * min(share_c, cap), where
    w_c = 1 / (1 + 20 * share of c collected so far): a block holding a little of a missing
    class beats one holding much of a class already there, so few blocks cover many classes.
    """
    chosen: list = []
    got = dict.fromkeys(classes, 0.0)
    pool = dict(shares)

    def gain(b) -> float:
        return sum(min(pool[b].get(c, 0.0), cap) / (1 + 20 * got[c]) for c in classes)

    while pool and len(chosen) < n_blocks:
        blk = max(pool, key=gain)  # max keeps the first of equals: the sites' order
        if gain(blk) <= 0:
            break
        chosen.append(blk)
        for c in classes:
            got[c] += pool[blk].get(c, 0.0)
        del pool[blk]
    return chosen


def sample_pixels(codes: np.ndarray, classes: list[int], max_pixels: int, seed: int = 0) -> dict[int, np.ndarray]:
    """Per class, up to ``max_pixels`` flat indices of its pixels (a fixed random subset)."""
    rng = np.random.default_rng(seed)
    flat = codes.ravel()
    out = {}
    for c in classes:
        idx = np.flatnonzero(flat == c)
        if idx.size:
            out[c] = np.sort(rng.choice(idx, min(max_pixels, idx.size), replace=False))
    return out


def monthly_composite(s: Series) -> Series:
    """Monthly medians of the clear observations (bands) and of S1 dB, as the point data sets are made."""
    n = s.clear.shape[1]
    refl = {b: np.full((12, n), np.nan, np.float32) for b in s.refl}
    db = {p: np.full((12, n), np.nan, np.float32) for p in s.s1}
    for m in range(1, 13):  # 12 vectorised reductions, not a per-pixel loop
        sel = s.months == m
        for b, a in s.refl.items():
            if sel.any():
                refl[b][m - 1] = _per_pixel_median(np.where(s.clear[sel], a[sel], np.nan))
        sel1 = s.s1_months == m
        for p, a in s.s1.items():
            if sel1.any():
                db[p][m - 1] = _per_pixel_median(a[sel1])
    clear = np.all([np.isfinite(a) for a in refl.values()], axis=0)
    months = np.arange(1, 13)
    return Series(months, refl, clear, months, db, None, math.ceil(YEAR_SHARE * 12))


def simulated_series(block, year: int, classes: list[int], max_pixels: int = 1500, seed: int = 0,
                     **options) -> dict[int, Series]:
    """Per class, the simulated S2/S1 series of up to ``max_pixels`` truth pixels of one block-year.

    Straight from the simulator's in-memory scenes (no files): 10 m bands at the pixel,
    20 m bands and SCL at the pixel's 20 m cell, S1 linear gamma0 -> dB.
    """
    world = BlockWorld(block, year, seed, SimOptions.from_kwargs(**options))
    codes = np.asarray(world.surface.code)
    pix = sample_pixels(codes, classes, max_pixels, seed)
    if not pix:
        return {}
    w = codes.shape[1]
    allidx = np.concatenate(list(pix.values()))
    r, c = np.divmod(allidx, w)
    acqs = world.s2_acquisitions
    refl = {b: np.empty((len(acqs), allidx.size), np.float32) for b in BANDS}
    scl = np.empty((len(acqs), allidx.size), np.uint8)
    for t, acq in enumerate(acqs):
        scene = world.s2(acq)
        for b in BANDS:  # DN -> reflectance in numpy (xarray per band costs more than the lookup)
            dn = scene.bands[b].values
            a = np.where(dn > 0, (dn.astype(np.float32) + np.float32(scene.offset_dn)) / np.float32(1e4), np.nan)
            f = codes.shape[0] // a.shape[0]  # 1 at 10 m, 2 at 20 m
            refl[b][t] = a[np.minimum(r // f, a.shape[0] - 1), np.minimum(c // f, a.shape[1] - 1)]
        sv = scene.scl.values
        f = codes.shape[0] // sv.shape[0]
        scl[t] = sv[np.minimum(r // f, sv.shape[0] - 1), np.minimum(c // f, sv.shape[1] - 1)]
    s1acq = world.s1_acquisitions
    db = {p: np.empty((len(s1acq), allidx.size), np.float32) for p in ("vv", "vh")}
    for t, one_s1 in enumerate(s1acq):
        s1scene = world.s1(one_s1)
        for p in db:
            with np.errstate(all="ignore"):
                db[p][t] = 10 * np.log10(s1scene[p].values[r, c])
    months = np.array([a.day.month for a in acqs], np.int64)
    months1 = np.array([a.day.month for a in s1acq], np.int64)
    valid = np.all([np.isfinite(a) for a in refl.values()], axis=0)
    clear = np.isin(scl, CLEAR_SCL) & valid
    out, start = {}, 0
    for cls, idx in pix.items():
        sl = slice(start, start + idx.size)
        start += idx.size
        out[cls] = Series(months, {b: a[:, sl] for b, a in refl.items()}, clear[:, sl], months1,
                          {p: a[:, sl] for p, a in db.items()}, scl[:, sl], MIN_CLEAR_OBS)
    return out


def region_blocks(doc: dict, region: str, n_blocks: int, block_size: int, seed: int = 0) -> list:
    """The simulated blocks standing for a region: those at its sites that best cover its real classes."""
    r = doc["regions"][region]
    classes = [int(c) for c in r["classes"]]
    cands: dict = {}
    for lon, lat in r["sites"]:
        b = block_at(lon, lat, block_size)
        cands.setdefault(b.id, b)
    shares = {bid: class_shares(b, seed) for bid, b in cands.items()}
    return [cands[bid] for bid in pick_blocks(shares, classes, n_blocks)]


def simulated_samples(doc: dict, region: str, blocks: list, max_pixels: int = 1500, seed: int = 0,
                      **options) -> dict[int, dict[str, np.ndarray]]:
    """Per class of the region's targets, every feature's simulated sample over ``blocks``."""
    r = doc["regions"][region]
    classes = [int(c) for c in r["classes"]]
    parts: dict[int, list] = {c: [] for c in classes}
    share = r.get("month_share") if r.get("thin_months") else None
    for b in blocks:
        for cls, s in simulated_series(b, r["sim_year"], classes, max_pixels, seed, **options).items():
            if r["kind"] == "monthly":
                s = monthly_composite(s)
                if share is not None:  # the real calendar is partial by design (us-west)
                    s = thin_months(s, share, seed)
            parts[cls].append(series_features(s))
    return {c: merge_samples(p) for c, p in parts.items() if p}


# --- distances ---------------------------------------------------------------------------


def wasserstein(q_real, q_sim) -> float:
    """1-D Wasserstein distance between two distributions given by equally spaced quantiles."""
    from scipy.stats import wasserstein_distance

    return float(wasserstein_distance(np.asarray(q_real, float), np.asarray(q_sim, float)))


def distance_table(targets: pd.DataFrame, sim: dict[str, dict[int, dict[str, np.ndarray]]]) -> pd.DataFrame:
    """One row per target (region x class x feature): real and simulated p10/p50/p90, the median shift
    (sim - real) and the Wasserstein distance; NaN where the simulation has no sample."""
    rows = []
    for t in targets.to_dict("records"):
        q_real = np.array([t[c] for c in QCOLS])
        sample = sim.get(t["region"], {}).get(int(t["class"]), {}).get(t["feature"])
        row = {k: t[k] for k in ("region", "class", "class_name", "feature", "group")}
        row.update(n_real=t["n"], real_p10=q_real[1], real_p50=q_real[9], real_p90=q_real[17])
        if sample is not None and sample.size >= MIN_SAMPLES:
            q_sim = np.quantile(sample, QUANTILES)
            row.update(n_sim=int(sample.size), sim_p10=q_sim[1], sim_p50=q_sim[9], sim_p90=q_sim[17],
                       median_shift=q_sim[9] - q_real[9], wasserstein=wasserstein(q_real, q_sim))
        else:
            row.update(n_sim=0, sim_p10=np.nan, sim_p50=np.nan, sim_p90=np.nan, median_shift=np.nan,
                       wasserstein=np.nan)
        rows.append(row)
    return pd.DataFrame(rows)


def region_summary(table: pd.DataFrame) -> pd.DataFrame:
    """Per region and feature group: mean Wasserstein distance, rows compared and rows without simulation."""
    g = table.groupby(["region", "group"], sort=False)
    return pd.DataFrame({"mean_wasserstein": g["wasserstein"].mean(), "compared": g["wasserstein"].count(),
                         "missing": g["wasserstein"].apply(lambda s: int(s.isna().sum()))}).reset_index()


if __name__ == "__main__":  # regenerate the shipped targets: python -m worldcover.sim.calibration
    print(write_real_targets())
