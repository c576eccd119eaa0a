"""Stratified random sampling design of a map's land for labelling, after Olofsson et al. 2014.

* the population is the land: ocean (water where the land mask is sea, see
  :mod:`worldcover.landmask`) and nodata are left out of the strata and their
  weights, and their areas are reported apart;
* the sampling unit is a 10 m pixel (strata = map classes) or, with ``unit="100m"``, a
  100 m primary sampling unit (PSU) of 10 x 10 pixels on the grid of the raster's origin,
  stratified by its majority land class (ties to the lower code) and listed as its land
  sub-pixels, each to be labelled (WorldCover's validation design; estimated as stratified
  cluster sampling, :func:`worldcover.validation.estimators.stehman` with ``clusters``);
* total sample size from a target standard error of overall accuracy and conjectured
  user's accuracies (Olofsson et al. 2014, eq. 13; Cochran 1977, eq. 5.25);
* allocation: proportional to mapped area, adjusted so every class gets at least
  ``min_per_class`` units (or all its pixels when it has fewer) -- the paper's advice for
  rare classes, with the total kept at n;
* sample units are drawn at random inside each stratum in one streaming pass
  over the map (window by window, never the whole COG in memory): every pixel gets an
  Efraimidis-Spirakis key log(u)/a weighted by its geodesic area a (a PSU: its 100 pixels),
  and each stratum keeps its largest keys. A unit is thus drawn with probability
  proportional to its area, so a sample of a lat/lon map is an equal-probability sample
  of the ground.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from worldcover import storage
from worldcover.area import (
    DEFAULT_WINDOW,
    M2_PER_HA,
    _is_geographic,
    check_class_map,
    data_windows,
    row_areas_m2,
    weighted_sum,
    window_class_area_m2,
)
from worldcover.errors import DataError, InputError
from worldcover.landmask import DEFAULT_MASK, LandMask, ocean_in_window, parse_land_mask
from worldcover.legend import BY_CODE, NODATA

DEFAULT_CONJECTURED_UA = 0.75  # the WorldCover accuracy bar; a neutral prior for every class
DEFAULT_MIN_PER_CLASS = 50
DEFAULT_TARGET_SE = 0.01
SAMPLE_COLUMNS = (
    "id", "lon", "lat", "map_class", "map_name", "stratum_weight", "stratum_n",
    "inclusion_probability", "reference_class",
)
# 100 m primary sampling units (PSUs): one row per 10 m sub-pixel to label, grouped by ``psu``
PSU_SAMPLE_COLUMNS = (
    "id", "psu", "sub", "lon", "lat", "map_class", "map_name", "stratum", "stratum_weight", "stratum_n",
    "inclusion_probability", "reference_class",
)
PSU_SIDE = 10  # a 100 m PSU is 10 x 10 map pixels of 10 m
UNITS = ("pixel", "100m")


# ----------------------------------------------------------------------------------------------
# sample size and allocation
# ----------------------------------------------------------------------------------------------


def sample_size(
    weights: np.ndarray, users_accuracy: np.ndarray, target_se: float, population: float | None = None
) -> int:
    """Total n for a target SE of overall accuracy (Olofsson et al. 2014, eq. 13).

    n = (sum W_i S_i)^2 / (S(O)^2 + (1/N) sum W_i S_i^2), S_i = sqrt(U_i (1 - U_i)).
    """
    if not 0 < target_se < 0.5:
        raise InputError(f"target standard error {target_se}: expected a value in (0, 0.5)")
    w = np.asarray(weights, dtype=float)
    u = np.asarray(users_accuracy, dtype=float)
    s = np.sqrt(u * (1 - u))
    fpc_term = 0.0 if not population else float(np.sum(w * s**2)) / population
    return max(1, math.ceil(float(np.sum(w * s)) ** 2 / (target_se**2 + fpc_term)))


def allocate(weights: np.ndarray, n: int, min_per_class: int, caps: np.ndarray) -> np.ndarray:
    """Proportional allocation of n units with a floor of ``min_per_class`` (or the stratum size).

    n_h = clip(lambda W_h, floor_h, N_h) with lambda chosen so that the n_h sum to n: classes
    below the floor are lifted to it, the others stay proportional to their weights, none
    exceeds its stratum; then rounded by largest remainder within those bounds.
    """
    w = np.asarray(weights, dtype=float)
    cap = np.asarray(caps, dtype=np.int64)
    floor = np.minimum(min_per_class, cap)
    if n > cap.sum():
        raise InputError(f"sample size {n}: the map has only {int(cap.sum())} classified pixels")
    if n < floor.sum():
        raise InputError(
            f"sample size {n} is too small for {min(min_per_class, int(cap.max()))} units in each of "
            f"{len(w)} classes: expected n >= {int(floor.sum())} (or lower --min-per-class)"
        )
    lo, hi = 0.0, float(np.max(cap / np.maximum(w, 1e-300)))
    for _ in range(200):  # bisection on lambda: sum(clip(lambda W, floor, cap)) is monotone
        mid = (lo + hi) / 2
        if np.clip(mid * w, floor, cap).sum() < n:
            lo = mid
        else:
            hi = mid
    share = np.clip(hi * w, floor, cap)
    out = np.floor(share).astype(np.int64)
    while (rest := int(n - out.sum())) > 0:  # largest remainders first, never above the cap
        room = np.flatnonzero(out < cap)
        order = room[np.argsort(-(share[room] - out[room]), kind="stable")]
        out[order[:rest]] += 1
    while (excess := int(out.sum() - n)) > 0:  # float slack of the bisection, if any
        spare = np.flatnonzero(out > floor)
        order = spare[np.argsort(share[spare] - out[spare], kind="stable")]
        out[order[:excess]] -= 1
    return out


def parse_conjectured_ua(text: str | None) -> dict[int | None, float]:
    """Parse ``0.8`` (every class) or ``10=0.9,50=0.6`` (per class code; others keep the default)."""
    out: dict[int | None, float] = {None: DEFAULT_CONJECTURED_UA}
    if not text:
        return out
    for part in (p.strip() for p in text.split(",") if p.strip()):
        key, _, value = part.rpartition("=")
        try:
            ua = float(value)
            code = int(key) if key else None
        except ValueError:
            raise InputError(
                f"conjectured user's accuracy {part!r}: expected 0.8 or CODE=UA pairs such as 10=0.9,50=0.6"
            ) from None
        if not 0 < ua < 1:
            raise InputError(f"conjectured user's accuracy {part!r}: expected a value strictly between 0 and 1")
        if code is not None and code not in BY_CODE:
            raise InputError(f"conjectured user's accuracy {part!r}: {code} is not a WorldCover class code")
        out[code] = ua
    return out


# ----------------------------------------------------------------------------------------------
# streaming weighted reservoir over the map
# ----------------------------------------------------------------------------------------------


@dataclass
class _Reservoir:
    """For each class, the ``capacity`` pixels with the largest keys seen so far."""

    capacity: int
    keys: dict[int, np.ndarray] = field(default_factory=dict)
    rows: dict[int, np.ndarray] = field(default_factory=dict)
    cols: dict[int, np.ndarray] = field(default_factory=dict)

    def offer(self, code: int, keys: np.ndarray, rows: np.ndarray, cols: np.ndarray) -> None:
        if code in self.keys:
            keys = np.concatenate([self.keys[code], keys])
            rows = np.concatenate([self.rows[code], rows])
            cols = np.concatenate([self.cols[code], cols])
        if len(keys) > self.capacity:
            keep = np.argpartition(-keys, self.capacity - 1)[: self.capacity]
            keys, rows, cols = keys[keep], rows[keep], cols[keep]
        self.keys[code], self.rows[code], self.cols[code] = keys, rows, cols

    def thresholds(self) -> np.ndarray:
        """Per code (256): the smallest key a full reservoir holds, -inf where it is not full."""
        out = np.full(256, -np.inf)
        for code, keys in self.keys.items():
            if len(keys) >= self.capacity:
                out[code] = keys.min()
        return out

    def best(self, code: int, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Rows and columns of the k largest keys of a class (the weighted sample of size k)."""
        order = np.argsort(-self.keys[code], kind="stable")[:k]
        return self.rows[code][order], self.cols[code][order]


@dataclass(frozen=True)
class MapScan:
    """What one pass over a map learnt: land areas per class, strata of sampling units, a reservoir.

    ``pixels``/``area_m2`` are the land pixels of each map class (ocean and nodata out);
    ``units``/``unit_area_m2`` are the sampling units of each stratum (pixels, or 100 m
    PSUs by majority class) and their ground area -- the same as the former for pixels.
    """

    pixels: np.ndarray  # (256,) land pixel count per map class
    area_m2: np.ndarray  # (256,) geodesic land area per map class
    units: np.ndarray  # (256,) sampling units per stratum
    unit_area_m2: np.ndarray  # (256,) ground area of the sampling units per stratum
    reservoir: _Reservoir
    transform: object
    crs: object
    ocean_pixels: int = 0
    ocean_area_m2: float = 0.0
    extent_area_m2: float = 0.0  # the raster's whole extent (nodata = extent - land - ocean)
    unit: str = "pixel"
    land_mask: str = "none"

    @property
    def nodata_area_m2(self) -> float:
        return max(0.0, self.extent_area_m2 - float(self.area_m2.sum()) - self.ocean_area_m2)


def _extent_area_m2(src, geographic: bool) -> float:
    """Ground area of a raster's whole extent (rows differ on a lat/lon grid, columns do not)."""
    return float(row_areas_m2(src.transform, 0, src.height, geographic=geographic).sum()) * src.width


def _psu_strata(data: np.ndarray, row_area: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per 10 x 10 block of a window: majority land class (0 = no land), land share, ground area (m^2).

    The window's top-left corner sits on the PSU grid; ragged edges are padded with nodata.
    Ties between classes go to the lower code (np.unique order).
    """
    h, w = data.shape
    H, W = -(-h // PSU_SIDE), -(-w // PSU_SIDE)
    pad = np.zeros((H * PSU_SIDE, W * PSU_SIDE), dtype=data.dtype)
    pad[:h, :w] = data
    blocks = pad.reshape(H, PSU_SIDE, W, PSU_SIDE)
    codes = np.array([c for c in np.unique(data) if c != NODATA], dtype=np.int64)
    if codes.size:
        counts = np.stack([(blocks == c).sum(axis=(1, 3)) for c in codes])  # (k, H, W)
        major = np.where(counts.sum(axis=0) > 0, codes[np.argmax(counts, axis=0)], NODATA)
        share = counts.sum(axis=0) / PSU_SIDE**2
    else:
        major, share = np.zeros((H, W), dtype=np.int64), np.zeros((H, W))
    rows = np.zeros(H * PSU_SIDE)
    rows[:h] = row_area
    cols = np.zeros(W * PSU_SIDE)
    cols[:w] = 1.0
    area = rows.reshape(H, PSU_SIDE).sum(axis=1)[:, None] * cols.reshape(W, PSU_SIDE).sum(axis=1)[None, :]
    return major, share, area


def scan_map(
    path: str | storage.Location, capacity: int, seed: int, window: int = DEFAULT_WINDOW, *,
    land_mask: LandMask | None = None, unit: str = "pixel",
) -> MapScan:
    """One streaming pass: land areas, strata of sampling units and an area-weighted reservoir of each.

    Ocean (water where ``land_mask`` says sea) is counted apart and never drawn; ``unit``
    is ``pixel`` (10 m) or ``100m`` (10 x 10 pixel PSUs, stratified by majority land class).
    """
    import rasterio

    if unit not in UNITS:
        raise InputError(f"sampling unit {unit!r}: expected one of {', '.join(UNITS)}")
    try:
        src = rasterio.open(storage.gdal_path(path))
    except rasterio.errors.RasterioIOError as exc:
        raise InputError(f"map {path}: cannot be opened as a raster ({exc})") from None
    if unit != "pixel":
        window = max(PSU_SIDE, window - window % PSU_SIDE)  # windows start on the PSU grid
    rng = np.random.default_rng(seed)
    reservoir = _Reservoir(capacity)
    pixels, area = np.zeros(256, dtype=np.int64), np.zeros(256)
    units, unit_area = np.zeros(256, dtype=np.int64), np.zeros(256)
    ocean_px, ocean_m2 = 0, 0.0
    with src:
        geographic = check_class_map(src, path)
        for r, c, h, w in data_windows(src, window):
            data = src.read(1, window=((r, r + h), (c, c + w)))
            row_area = row_areas_m2(src.transform, r, h, geographic=geographic)
            ocean = ocean_in_window(data, src.transform, r, c, src.crs, land_mask)
            if ocean.any():
                ocean_px += int(ocean.sum())
                ocean_m2 += float(weighted_sum(row_area, ocean.sum(axis=1)))
                data = np.where(ocean, NODATA, data).astype(data.dtype)
            n, a = window_class_area_m2(data, row_area)
            pixels += n
            area += a
            if unit == "pixel":
                units += n
                unit_area += a
                if capacity > 0:
                    _offer_pixels(reservoir, rng, data, row_area, r, c)
                continue
            major, share, psu_area = _psu_strata(data, row_area)
            np.add.at(units, major.ravel(), 1)
            np.add.at(unit_area, major.ravel(), psu_area.ravel())
            u = rng.random(major.shape)
            if capacity <= 0:
                continue
            keep = (major != NODATA) & (psu_area > 0)
            pr, pc = np.nonzero(keep)
            keys = np.log(u[keep]) / psu_area[keep]
            codes = major[keep]
            for code in np.unique(codes):
                sel = codes == code
                reservoir.offer(int(code), keys[sel], r // PSU_SIDE + pr[sel], c // PSU_SIDE + pc[sel])
        # nodata (and the ocean, set to nodata above) is no land class
        pixels[NODATA], area[NODATA], units[NODATA], unit_area[NODATA] = 0, 0.0, 0, 0.0
        transform, crs = src.transform, src.crs
        extent = _extent_area_m2(src, geographic)
    return MapScan(
        pixels=pixels, area_m2=area, units=units, unit_area_m2=unit_area, reservoir=reservoir, transform=transform,
        crs=crs, ocean_pixels=ocean_px, ocean_area_m2=ocean_m2, extent_area_m2=extent, unit=unit,
        land_mask=land_mask.name if land_mask is not None else "none",
    )


def _offer_pixels(reservoir: _Reservoir, rng, data: np.ndarray, row_area: np.ndarray, r: int, c: int) -> None:
    """Offer a window's pixels to the reservoir with Efraimidis-Spirakis keys log(u)/a."""
    h, w = data.shape
    # key = log(u) / a beats a class's reservoir minimum k only if u > exp(k a): a cheap
    # superset test on u with the window's largest a, then exact keys for the few left
    u = rng.random((h, w))
    u_min = np.exp(reservoir.thresholds() * row_area.max())
    u_min[NODATA] = 1.0  # nodata (and ocean) is never drawn
    flat = np.flatnonzero(u > u_min[data])
    if flat.size == 0:
        return
    codes, cand = data.ravel()[flat], np.log(u.ravel()[flat]) / row_area[flat // w]
    for code in np.unique(codes):
        sel = codes == code
        idx = flat[sel]
        reservoir.offer(int(code), cand[sel], r + idx // w, c + idx % w)


# ----------------------------------------------------------------------------------------------
# the design
# ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Stratum:
    """One stratum of the design: a map class (pixels), or the PSUs whose land majority is that class."""

    code: int
    name: str
    pixels: int  # land pixels mapped as this class
    area_ha: float  # ground area of the stratum's sampling units
    weight: float  # W_h: proportion of the land area in this stratum
    conjectured_ua: float
    n: int
    units: int = 0  # sampling units (pixels or PSUs) in the stratum


@dataclass(frozen=True, eq=False)
class SampleDesign:
    """A drawn stratified sample and how its size and allocation were chosen."""

    strata: tuple[Stratum, ...]
    n: int
    n_from_target_se: int | None  # eq. 13 result (None when n was given)
    target_se: float
    min_per_class: int
    seed: int
    samples: pd.DataFrame
    unit: str = "pixel"
    land_mask: str = "none"
    land_area_ha: float = 0.0
    ocean_area_ha: float = 0.0
    nodata_area_ha: float = 0.0

    def summary(self) -> dict:
        return {
            "n": self.n,
            "n_from_target_se": self.n_from_target_se,
            "target_se": self.target_se,
            "min_per_class": self.min_per_class,
            "seed": self.seed,
            "unit": self.unit,
            "land_mask": self.land_mask,
            "land_area_ha": self.land_area_ha,
            "excluded": {"ocean_area_ha": self.ocean_area_ha, "nodata_area_ha": self.nodata_area_ha},
            "strata": [s.__dict__ for s in self.strata],
        }


def _pixel_centres_lonlat(transform, crs, rows: np.ndarray, cols: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    c, r = cols + 0.5, rows + 0.5
    xs = transform.a * c + transform.b * r + transform.c
    ys = transform.d * c + transform.e * r + transform.f
    if not crs.is_geographic or crs.to_epsg() != 4326:
        from rasterio.warp import transform as warp

        xs, ys = map(np.asarray, warp(crs, "EPSG:4326", xs, ys))
    return xs, ys


def design_sample(
    map_path: str | storage.Location,
    *,
    n: int | None = None,
    min_per_class: int = DEFAULT_MIN_PER_CLASS,
    target_se: float = DEFAULT_TARGET_SE,
    conjectured_ua: Mapping[int | None, float] | None = None,
    seed: int = 0,
    window: int = DEFAULT_WINDOW,
    land_mask: LandMask | str | None = DEFAULT_MASK,
    unit: str = "pixel",
) -> SampleDesign:
    """Choose n and its allocation over the land strata and draw the sample in one pass over the map.

    Ocean (mapped water where ``land_mask`` is sea; a mask name as in :func:`parse_land_mask`,
    None for no mask) and nodata are outside the population.
    ``n`` counts sampling units: pixels, or 100 m PSUs (each then listed as its land sub-pixels).
    The same map, seed and window size give the same sample on every machine.
    """
    _check_design_options(n, min_per_class, unit)
    if isinstance(land_mask, str):
        land_mask = parse_land_mask(land_mask)
    ua: dict[int | None, float] = dict(conjectured_ua or {None: DEFAULT_CONJECTURED_UA})
    default_ua = ua.get(None, DEFAULT_CONJECTURED_UA)
    s_max = max(math.sqrt(u * (1 - u)) for u in ua.values())
    sample_size(np.ones(1), np.array([default_ua]), target_se)  # validates target_se before the scan
    # the reservoir must hold the largest n_h any allocation can ask for: eq. 13 gives at most
    # (max S_i / SE)^2, and the floors at most min_per_class for each of the legend classes
    capacity = n if n is not None else max(math.ceil((s_max / target_se) ** 2), min_per_class * len(BY_CODE), 1)
    scan = scan_map(map_path, capacity=capacity, seed=seed, window=window, land_mask=land_mask, unit=unit)

    codes = _land_codes(scan, map_path)
    area = scan.unit_area_m2[codes]
    weights = area / area.sum()
    u = np.array([ua.get(int(c), default_ua) for c in codes])
    n_computed = None
    if n is None:
        n_computed = sample_size(weights, u, target_se, population=float(scan.units[codes].sum()))
        floors = np.minimum(min_per_class, scan.units[codes]).sum()
        n_total = int(max(n_computed, floors))
    else:
        n_total = int(n)
    alloc = allocate(weights, n_total, min_per_class, scan.units[codes])

    df = _drawn_units(scan, codes, alloc, area)
    weight_of = dict(zip(codes.tolist(), weights.tolist(), strict=True))
    if unit == "pixel":
        samples = _pixel_samples(df, scan, weight_of, seed)
    else:
        samples = _psu_samples(df, scan, weight_of, seed, map_path, land_mask)
    strata = tuple(
        Stratum(
            code=int(c), name=BY_CODE[int(c)].name, pixels=int(scan.pixels[c]),
            area_ha=float(scan.unit_area_m2[c] / M2_PER_HA), weight=float(w), conjectured_ua=float(uu), n=int(k),
            units=int(scan.units[c]),
        )
        for c, w, uu, k in zip(codes, weights, u, alloc, strict=True)
    )
    return SampleDesign(
        strata=strata, n=int(alloc.sum()), n_from_target_se=n_computed, target_se=target_se,
        min_per_class=min_per_class, seed=seed, samples=samples, unit=unit, land_mask=scan.land_mask,
        land_area_ha=float(scan.area_m2.sum() / M2_PER_HA), ocean_area_ha=scan.ocean_area_m2 / M2_PER_HA,
        nodata_area_ha=scan.nodata_area_m2 / M2_PER_HA,
    )


def _check_design_options(n: int | None, min_per_class: int, unit: str) -> None:
    """The options' own bounds, checked before the map is opened."""
    if n is not None and n < 1:
        raise InputError(f"sample size --n {n}: expected a positive integer")
    if min_per_class < 0:
        raise InputError(f"--min-per-class {min_per_class}: expected a non-negative integer")
    if unit not in UNITS:
        raise InputError(f"sampling unit {unit!r}: expected one of {', '.join(UNITS)}")


def _land_codes(scan: MapScan, map_path: str | storage.Location) -> np.ndarray:
    """The class codes the scan found on land (the strata): at least one, each a WorldCover class."""
    codes = np.array([k for k in np.flatnonzero(scan.units) if k != NODATA], dtype=np.int64)
    if codes.size == 0:
        raise InputError(f"map {map_path}: no classified pixels on land (every pixel is nodata {NODATA} or ocean)")
    unknown = [int(c) for c in codes if int(c) not in BY_CODE]
    if unknown:
        raise DataError(f"map {map_path}: codes {unknown} are not WorldCover classes (expected {sorted(BY_CODE)})")
    return codes


def _drawn_units(scan: MapScan, codes: np.ndarray, alloc: np.ndarray, area: np.ndarray) -> pd.DataFrame:
    """The first n_h units of each stratum's reservoir (its random draw): code, row, col, n_h, area_h."""
    parts = []
    for code, n_h, a_h in zip(codes, alloc, area, strict=True):
        if n_h == 0:
            continue
        rows, cols = scan.reservoir.best(int(code), int(n_h))
        parts.append(pd.DataFrame({"code": int(code), "row": rows, "col": cols, "n_h": int(n_h), "area_h": a_h}))
    return pd.concat(parts, ignore_index=True)


def _pixel_samples(df: pd.DataFrame, scan: MapScan, weight_of: dict, seed: int) -> pd.DataFrame:
    """One row per drawn pixel, in a random labelling order that hides the strata."""
    geographic = _is_geographic(scan.crs)
    unit_area = _unit_areas(scan.transform, geographic, df["row"].to_numpy())
    lon, lat = _pixel_centres_lonlat(scan.transform, scan.crs, df["row"].to_numpy(), df["col"].to_numpy())
    samples = pd.DataFrame(
        {
            "lon": np.round(lon, 9),
            "lat": np.round(lat, 9),
            "map_class": df["code"].to_numpy(),
            "map_name": [BY_CODE[c].name for c in df["code"]],
            "stratum_weight": df["code"].map(weight_of).to_numpy(),
            "stratum_n": df["n_h"].to_numpy(),
            # pi ~= n_h a / A_h for area-weighted draws (exactly n_h / N_h on an equal-area grid)
            "inclusion_probability": np.minimum(1.0, df["n_h"].to_numpy() * unit_area / df["area_h"].to_numpy()),
            "reference_class": "",
        }
    )
    order = np.random.default_rng([seed, 1]).permutation(len(samples))  # labelling order hides the strata
    samples = samples.iloc[order].reset_index(drop=True)
    samples.insert(0, "id", np.arange(1, len(samples) + 1))
    return samples


def _psu_samples(
    df: pd.DataFrame, scan: MapScan, weight_of: dict, seed: int, map_path: str | storage.Location,
    land_mask: LandMask | None,
) -> pd.DataFrame:
    """One row per land sub-pixel of each drawn PSU (10 x 10 pixels), PSUs in a random order."""
    import rasterio

    geographic = _is_geographic(scan.crs)
    order = np.random.default_rng([seed, 1]).permutation(len(df))
    frames = []
    with rasterio.open(storage.gdal_path(map_path)) as src:
        for psu_id, k in enumerate(order, start=1):
            rec = df.iloc[int(k)]
            r0, c0 = int(rec["row"]) * PSU_SIDE, int(rec["col"]) * PSU_SIDE
            h, w = min(PSU_SIDE, src.height - r0), min(PSU_SIDE, src.width - c0)
            data = src.read(1, window=((r0, r0 + h), (c0, c0 + w)))
            data = np.where(ocean_in_window(data, src.transform, r0, c0, src.crs, land_mask), NODATA, data)
            psu_area = float(row_areas_m2(src.transform, r0, h, geographic=geographic).sum()) * w
            rr, cc = np.nonzero(data != NODATA)
            lon, lat = _pixel_centres_lonlat(scan.transform, scan.crs, r0 + rr, c0 + cc)
            frames.append(pd.DataFrame({
                "psu": psu_id, "sub": rr * PSU_SIDE + cc, "lon": np.round(lon, 9), "lat": np.round(lat, 9),
                "map_class": data[rr, cc].astype(np.int64), "stratum": int(rec["code"]),
                "stratum_weight": weight_of[int(rec["code"])], "stratum_n": int(rec["n_h"]),
                "inclusion_probability": min(1.0, int(rec["n_h"]) * psu_area / float(rec["area_h"])),
            }))
    samples = pd.concat(frames, ignore_index=True)
    samples.insert(0, "id", np.arange(1, len(samples) + 1))
    samples.insert(6, "map_name", [BY_CODE[int(c)].name for c in samples["map_class"]])
    samples["reference_class"] = ""
    return samples[list(PSU_SAMPLE_COLUMNS)]


def _unit_areas(transform, geographic: bool, rows: np.ndarray) -> np.ndarray:
    """Geodesic area (m^2) of the pixels in the given rows."""
    if rows.size == 0:
        return np.zeros(0)
    lo, hi = int(rows.min()), int(rows.max())
    return row_areas_m2(transform, lo, hi - lo + 1, geographic=geographic)[rows - lo]
