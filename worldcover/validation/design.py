"""Stratified random sampling design for labelling (strata = map classes), after Olofsson et al. 2014.

* total sample size from a target standard error of overall accuracy and conjectured
  user's accuracies (Olofsson et al. 2014, eq. 13; Cochran 1977, eq. 5.25);
* allocation: proportional to mapped area, adjusted so every class gets at least
  ``min_per_class`` units (or all its pixels when it has fewer) -- the paper's advice for
  rare classes, with the total kept at n;
* sample units are pixel centres drawn at random inside each stratum in one streaming pass
  over the map (window by window, never the whole COG in memory): every pixel gets an
  Efraimidis-Spirakis key log(u)/a weighted by its geodesic area a, and each class keeps
  its largest keys. A pixel is thus drawn with probability proportional to its area, so a
  sample of a lat/lon map is an equal-probability sample of the ground.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping

import numpy as np
import pandas as pd

from worldcover import storage
from worldcover.errors import DataError, InputError
from worldcover.legend import BY_CODE, NODATA
from worldcover.validation.area import (
    DEFAULT_WINDOW, M2_PER_HA, _is_geographic, check_class_map, data_windows, row_areas_m2, window_class_area_m2,
)

DEFAULT_CONJECTURED_UA = 0.75  # the WorldCover accuracy bar; a neutral prior for every class
DEFAULT_MIN_PER_CLASS = 50
DEFAULT_TARGET_SE = 0.01
SAMPLE_COLUMNS = (
    "id", "lon", "lat", "map_class", "map_name", "stratum_weight", "stratum_n",
    "inclusion_probability", "reference_class",
)


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
    """What one pass over a map learnt: per-class pixels and area, and the per-class reservoir."""

    pixels: np.ndarray  # (256,) pixel count per code
    area_m2: np.ndarray  # (256,) geodesic area per code
    reservoir: _Reservoir
    transform: object
    crs: object


def scan_map(path: str | Path, capacity: int, seed: int, window: int = DEFAULT_WINDOW) -> MapScan:
    """One streaming pass: per-class areas and an area-weighted random reservoir of each class."""
    import rasterio

    try:
        src = rasterio.open(storage.gdal_path(path))
    except rasterio.errors.RasterioIOError as exc:
        raise InputError(f"map {path}: cannot be opened as a raster ({exc})") from None
    rng = np.random.default_rng(seed)
    reservoir = _Reservoir(capacity)
    pixels = np.zeros(256, dtype=np.int64)
    area = np.zeros(256)
    with src:
        geographic = check_class_map(src, path)
        for r, c, h, w in data_windows(src, window):
            data = src.read(1, window=((r, r + h), (c, c + w)))
            row_area = row_areas_m2(src.transform, r, h, geographic=geographic)
            n, a = window_class_area_m2(data, row_area)
            pixels += n
            area += a
            # key = log(u) / a beats a class's reservoir minimum k only if u > exp(k a): a cheap
            # superset test on u with the window's largest a, then exact keys for the few left
            u = rng.random((h, w))
            u_min = np.exp(reservoir.thresholds() * row_area.max())
            u_min[NODATA] = 1.0  # nodata is never drawn
            flat = np.flatnonzero(u > u_min[data])
            if flat.size == 0:
                continue
            codes, cand = data.ravel()[flat], np.log(u.ravel()[flat]) / row_area[flat // w]
            for code in np.unique(codes):
                sel = codes == code
                idx = flat[sel]
                reservoir.offer(int(code), cand[sel], r + idx // w, c + idx % w)
        transform, crs = src.transform, src.crs
    return MapScan(pixels=pixels, area_m2=area, reservoir=reservoir, transform=transform, crs=crs)


# ----------------------------------------------------------------------------------------------
# the design
# ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Stratum:
    """One map class as a stratum of the design."""

    code: int
    name: str
    pixels: int
    area_ha: float
    weight: float  # W_h: proportion of the mapped area
    conjectured_ua: float
    n: int


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

    def summary(self) -> dict:
        return {
            "n": self.n,
            "n_from_target_se": self.n_from_target_se,
            "target_se": self.target_se,
            "min_per_class": self.min_per_class,
            "seed": self.seed,
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
    map_path: str | Path,
    *,
    n: int | None = None,
    min_per_class: int = DEFAULT_MIN_PER_CLASS,
    target_se: float = DEFAULT_TARGET_SE,
    conjectured_ua: Mapping[int | None, float] | None = None,
    seed: int = 0,
    window: int = DEFAULT_WINDOW,
) -> SampleDesign:
    """Choose n and its allocation over the map classes and draw the sample in one pass over the map.

    The same map, seed and window size give the same sample on every machine.
    """
    if n is not None and n < 1:
        raise InputError(f"sample size --n {n}: expected a positive integer")
    if min_per_class < 0:
        raise InputError(f"--min-per-class {min_per_class}: expected a non-negative integer")
    ua = dict(conjectured_ua or {None: DEFAULT_CONJECTURED_UA})
    default_ua = ua.get(None, DEFAULT_CONJECTURED_UA)
    s_max = max(math.sqrt(u * (1 - u)) for u in ua.values())
    sample_size(np.ones(1), np.array([default_ua]), target_se)  # validates target_se before the scan
    # the reservoir must hold the largest n_h any allocation can ask for: eq. 13 gives at most
    # (max S_i / SE)^2, and the floors at most min_per_class for each of the legend classes
    capacity = n if n is not None else max(math.ceil((s_max / target_se) ** 2), min_per_class * len(BY_CODE), 1)
    scan = scan_map(map_path, capacity=capacity, seed=seed, window=window)

    codes = np.array([k for k in np.flatnonzero(scan.pixels) if k != NODATA], dtype=np.int64)
    if codes.size == 0:
        raise InputError(f"map {map_path}: no classified pixels (every pixel is nodata {NODATA})")
    unknown = [int(c) for c in codes if int(c) not in BY_CODE]
    if unknown:
        raise DataError(f"map {map_path}: codes {unknown} are not WorldCover classes (expected {sorted(BY_CODE)})")
    area = scan.area_m2[codes]
    weights = area / area.sum()
    u = np.array([ua.get(int(c), default_ua) for c in codes])
    n_computed = None
    if n is None:
        n_computed = sample_size(weights, u, target_se, population=float(scan.pixels[codes].sum()))
        floors = np.minimum(min_per_class, scan.pixels[codes]).sum()
        n_total = int(max(n_computed, floors))
    else:
        n_total = int(n)
    alloc = allocate(weights, n_total, min_per_class, scan.pixels[codes])

    parts = []
    for code, n_h, a_h in zip(codes, alloc, area):
        if n_h == 0:
            continue
        rows, cols = scan.reservoir.best(int(code), int(n_h))
        parts.append(pd.DataFrame({"code": int(code), "row": rows, "col": cols, "n_h": int(n_h), "area_h": a_h}))
    df = pd.concat(parts, ignore_index=True)
    geographic = _is_geographic(scan.crs)
    unit_area = _unit_areas(scan.transform, geographic, df["row"].to_numpy())
    lon, lat = _pixel_centres_lonlat(scan.transform, scan.crs, df["row"].to_numpy(), df["col"].to_numpy())
    weight_of = dict(zip(codes.tolist(), weights.tolist()))
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
    strata = tuple(
        Stratum(
            code=int(c), name=BY_CODE[int(c)].name, pixels=int(scan.pixels[c]),
            area_ha=float(scan.area_m2[c] / M2_PER_HA), weight=float(w), conjectured_ua=float(uu), n=int(k),
        )
        for c, w, uu, k in zip(codes, weights, u, alloc)
    )
    return SampleDesign(
        strata=strata, n=int(alloc.sum()), n_from_target_se=n_computed, target_se=target_se,
        min_per_class=min_per_class, seed=seed, samples=samples,
    )


def _unit_areas(transform, geographic: bool, rows: np.ndarray) -> np.ndarray:
    """Geodesic area (m^2) of the pixels in the given rows."""
    if rows.size == 0:
        return np.zeros(0)
    lo, hi = int(rows.min()), int(rows.max())
    return row_areas_m2(transform, lo, hi - lo + 1, geographic=geographic)[rows - lo]
