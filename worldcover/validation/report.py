"""Accuracy report of a map against labelled reference samples: HTML with plots, JSON and CSV.

Two steps, usable on their own (the notebooks call them):

* :func:`assess` -- inputs to an :class:`Assessment` (estimates, design table, what was
  excluded), pure: it reads the map and the samples and writes nothing;
* :func:`write_report` -- an assessment to report.html, metrics.json, error_matrix.csv and
  mapped_area.csv in a directory, each file written atomically, report.html last.

The population is the map's *land* (:mod:`worldcover.landmask`): ocean (mapped
water where the land mask is sea) and nodata are left out of the strata and their area is
reported apart. A pixel design (strata = map classes) is estimated with Olofsson et al.
(2014); a 100 m PSU design (samples with a ``psu`` column, one row per 10 m sub-pixel) with
the stratified cluster ratio estimators of Stehman (2014). Per-continent results and a
second map assessed with the same sample are domain / different-strata problems (Stehman
2014); the second map's OA difference is a paired estimate from the same sample units.
Proportions get Wilson score intervals by default (with the design's effective sample
size), which keep a positive width at 0 and 100 %; ``interval="normal"`` gives the papers'
estimate +- 1.96 SE.
"""

from __future__ import annotations

import base64
import datetime as _dt
import html
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from worldcover import __version__, storage
from worldcover.area import M2_PER_HA, check_class_map
from worldcover.errors import DataError, InputError
from worldcover.landmask import (
    CELLS_PER_DEGREE,
    DEFAULT_MASK,
    LandMask,
    describe,
    parse_land_mask,
)
from worldcover.legend import BY_CODE, CODES, NODATA, WATER
from worldcover.stages import CONTINENTS, continent
from worldcover.validation import plots
from worldcover.validation._io import write_text
from worldcover.validation.design import scan_map
from worldcover.validation.estimators import (
    INTERVALS,
    AccuracyResult,
    Estimate,
    _json_number,
    counts_matrix,
    oa_difference,
    olofsson,
    stehman,
)
from worldcover.validation.tables import read_labelled, write_counts, write_mapped_area

MIN_DOMAIN_SAMPLES = 30  # fewer sample units in a continent: no estimates, only a note
SSU_PER_PSU = 100  # 10 x 10 sub-pixels of 10 m in a 100 m PSU


def sample_raster(path: str | storage.Location, lon: np.ndarray, lat: np.ndarray) -> np.ndarray:
    """Band-1 values of a raster at lon/lat points (nodata 0 where a point falls outside it)."""
    import rasterio
    from rasterio.transform import rowcol

    try:
        src = rasterio.open(storage.gdal_path(path))
    except rasterio.errors.RasterioIOError as exc:
        raise InputError(f"map {path}: cannot be opened as a raster ({exc})") from None
    with src:
        xs, ys = np.asarray(lon, float), np.asarray(lat, float)
        if src.crs is not None and src.crs.to_epsg() != 4326:
            from rasterio.warp import transform as warp

            xs, ys = map(np.asarray, warp("EPSG:4326", src.crs, xs, ys))
        rows, cols = (np.asarray(a, dtype=np.int64) for a in rowcol(src.transform, xs, ys, op=np.floor))
        inside = (rows >= 0) & (rows < src.height) & (cols >= 0) & (cols < src.width)
        out = np.zeros(len(xs), dtype=np.int64)
        if inside.any():
            r0, r1 = rows[inside].min(), rows[inside].max() + 1
            c0, c1 = cols[inside].min(), cols[inside].max() + 1
            if (r1 - r0) * (c1 - c0) <= 64_000_000:  # one read of the samples' bounding window
                block = src.read(1, window=((r0, r1), (c0, c1)))
                out[inside] = block[rows[inside] - r0, cols[inside] - c0]
            else:  # scattered over a huge raster: GDAL's block cache per point
                out[inside] = [v[0] for v in src.sample(zip(xs[inside], ys[inside], strict=True), indexes=1)]
    return out


def _check_map(path: storage.Location) -> None:
    """Refuse a map that is not uint8 codes with nodata 0 in a usable CRS before anything is written."""
    import rasterio

    try:
        src = rasterio.open(storage.gdal_path(path))
    except rasterio.errors.RasterioIOError as exc:
        raise InputError(f"map {path}: cannot be opened as a raster ({exc})") from None
    with src:
        check_class_map(src, path)


@dataclass
class Report:
    """Paths written and the metrics they hold."""

    out_dir: storage.Location
    html: storage.Location
    metrics_json: storage.Location
    error_matrix_csv: storage.Location
    mapped_area_csv: storage.Location
    metrics: dict[str, Any] = field(repr=False)


@dataclass(eq=False)
class Assessment:
    """Everything a report shows, computed from the map and the labelled samples (see :func:`assess`)."""

    title: str
    map_path: storage.Location
    reference_path: str
    compare_path: storage.Location | None
    unit: str  # "pixel" or "100m"
    interval: str  # "wilson" or "normal"
    land_mask: str
    samples: pd.DataFrame  # the labelled sample units in the population (ocean ones dropped), with continent
    codes: list[int]  # classes of the matrix (mapped on land or labelled)
    result: AccuracyResult
    mapped_ha: np.ndarray  # land area mapped as each of ``codes``
    design: list[dict]  # the design table: one row per stratum
    excluded: dict[str, Any]  # land, ocean and nodata areas; sample units dropped as ocean
    per_continent: dict[str, Any]
    comparison: dict | None
    metrics: dict[str, Any] = field(repr=False)

    @property
    def names(self) -> list[str]:
        return [BY_CODE[c].name for c in self.codes]


def _class_codes(*code_sets: np.ndarray) -> list[int]:
    present = set()
    for s in code_sets:
        present |= {int(c) for c in np.unique(s)}
    return [c for c in CODES if c in present]


def _cluster_args(samples: pd.DataFrame) -> dict:
    """Keyword arguments that make :func:`stehman` a cluster estimator for a PSU sample."""
    if "psu" not in samples:
        return {}
    return {"clusters": samples["psu"].to_numpy(), "elements_per_cluster": SSU_PER_PSU}


def _strata(samples: pd.DataFrame) -> np.ndarray:
    """Stratum of every sample row: the PSU's stratum, or the pixel's map class."""
    return samples["stratum"].to_numpy() if "psu" in samples else samples["map_class"].to_numpy()


def _continent_breakdown(
    samples: pd.DataFrame, sizes: dict[int, float], codes: list[int], min_n: int, interval: str,
) -> dict:
    """Per-continent domain estimates (Stehman 2014 with a domain indicator), or why not."""
    names = [BY_CODE[c].name for c in codes]
    out: dict[str, Any] = {}
    cont = samples["continent"].to_numpy()
    for name in CONTINENTS:
        mask = cont == name
        n_d = int(mask.sum())
        if n_d == 0:
            continue
        if n_d < min_n:
            out[name] = {"n": n_d, "status": "too few samples", "note": f"too few samples (n = {n_d} < {min_n})"}
            continue
        res = stehman(
            _strata(samples), samples["map_class"], samples["ref_code"], sizes,
            classes=codes, domain=mask, names=names, **_cluster_args(samples),
        )
        out[name] = {"status": "estimated", **_with_intervals(res, interval)}
    return out


def _with_intervals(result: AccuracyResult, interval: str) -> dict:
    """``result.to_dict()`` with a ``ci95`` [low, high] on every proportion (``interval`` method)."""
    d = result.to_dict()

    def ci(e: Estimate) -> list[float | None]:
        return [v if math.isfinite(v) else None for v in e.ci95(interval)]

    d["overall_accuracy"]["ci95"] = ci(result.overall_accuracy)
    for name, ce in zip(result.classes, result.per_class, strict=True):
        for key in ("users_accuracy", "producers_accuracy", "area_proportion"):
            d["classes"][name][key]["ci95"] = ci(getattr(ce, key))
    return d


def _fmt(est: float | None, half: float | None, pct: bool = True, digits: int = 1) -> str:
    if est is None or not np.isfinite(est):
        return "–"
    scale = 100 if pct else 1
    text = f"{est * scale:,.{digits}f}"
    if half is not None and np.isfinite(half):
        text += f" ± {half * scale:,.{digits}f}"
    return text + (" %" if pct else "")


def _fmt_ci(e: Estimate, interval: str) -> str:
    """A proportion with its 95 % interval, e.g. ``100.0 % (92.9–100.0)``."""
    if not np.isfinite(e.estimate):
        return "–"
    lo, hi = e.ci95(interval)
    if not (np.isfinite(lo) and np.isfinite(hi)):
        return f"{e.estimate * 100:.1f} %"
    return f"{e.estimate * 100:.1f} % ({lo * 100:.1f}–{hi * 100:.1f})"


def _interval_note(interval: str) -> str:
    if interval == "wilson":
        return ("95 % intervals of proportions: Wilson score interval with the design's effective sample size "
                "n* = p(1-p)/SE^2 (the number of units behind the estimate where p is 0 or 1 or the SE is 0), "
                "so a class without errors in the sample still has an interval below 100 %. Standard errors are "
                "Olofsson et al. (2014) / Stehman (2014); areas use estimate ± 1.96 SE.")
    return "95 % intervals: estimate ± 1.96 SE (Olofsson et al. 2014), clipped to 0–100 %."


def _img(png: bytes, alt: str) -> str:
    return f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{base64.b64encode(png).decode("ascii")}">'


def _table(header: list[str], rows: list[list[str]], cls: str = "") -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in row) + "</tr>" for row in rows)
    return f'<table class="{cls}"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


_CSS = """
body{font-family:system-ui,sans-serif;margin:2em auto;max-width:1100px;color:#222}
table{border-collapse:collapse;margin:0.5em 0 1.5em}td,th{border:1px solid #bbb;padding:3px 8px;text-align:right}
th{background:#eee}td:first-child{text-align:left}img{max-width:100%;display:block;margin:0.5em 0}
.ok{color:#060}.bad{color:#a00}.meta td{text-align:left}
"""


def _counts_with_totals(a: Assessment) -> list[list[str]]:
    """The count matrix with row totals, column totals and the grand total."""
    counts = a.result.counts
    rows = [[name] + [str(int(v)) for v in row] + [str(int(row.sum()))]
            for name, row in zip(a.names, counts, strict=True)]
    rows.append(["total"] + [str(int(v)) for v in counts.sum(axis=0)] + [str(int(counts.sum()))])
    return rows


def _design_rows(a: Assessment) -> list[list[str]]:
    unit = "PSUs" if a.unit == "100m" else "pixels"
    rows = [
        [d["name"], str(d["code"]), f"{d['units']:,}", f"{d['area_ha']:,.1f}", f"{d['weight']:.4f}",
         "–" if d["n_design"] is None else str(d["n_design"]), str(d["n_labelled"])]
        + ([str(d["sub_pixels"])] if a.unit == "100m" else [])
        for d in a.design
    ]
    ex = a.excluded
    pad = [""] * (1 if a.unit == "100m" else 0)
    rows.append(["land (population)", "", f"{sum(d['units'] for d in a.design):,} {unit}",
                 f"{ex['land_area_ha']:,.1f}", "1.0000", "", str(sum(d["n_labelled"] for d in a.design))] + pad)
    rows.append(["ocean (excluded)", str(WATER), f"{ex['ocean_pixels']:,} pixels", f"{ex['ocean_area_ha']:,.1f}",
                 "–", "", f"{ex['ocean_samples_dropped']} dropped"] + pad)
    rows.append(["nodata (excluded; the rest of the raster extent)", str(NODATA), "", f"{ex['nodata_area_ha']:,.1f}",
                 "–", "", ""] + pad)
    return rows


def _html(a: Assessment, figures: dict[str, bytes]) -> str:
    result, codes, interval, metrics = a.result, a.codes, a.interval, a.metrics
    oa = result.overall_accuracy
    lo, hi = oa.ci95(interval)
    meets = oa.estimate >= 0.75
    verdict = (
        f'<p class="{"ok" if meets else "bad"}">Overall accuracy {_fmt(oa.estimate, oa.ci95_halfwidth)} '
        f'(95 % CI; {interval}: {lo * 100:.1f}–{hi * 100:.1f} %) {"meets" if meets else "is below"} the 75 % '
        "requirement. WorldCover reached 74.4 % (v100, 2020) and 76.7 % (v200, 2021).</p>"
    )
    n_col = "samples (sub-pixels)" if a.unit == "100m" else "samples"
    class_rows = [
        [
            BY_CODE[c].name, str(c), str(int(result.counts[k].sum())),
            _fmt_ci(ce.users_accuracy, interval), _fmt_ci(ce.producers_accuracy, interval),
            f"{a.mapped_ha[k]:,.1f}", _fmt(ce.area_ha.estimate, ce.area_ha.ci95_halfwidth, pct=False),
        ]
        for k, (c, ce) in enumerate(zip(codes, result.per_class, strict=True))
    ]
    cont_rows = []
    for name, d in a.per_continent.items():
        if d["status"] == "estimated":
            o = d["overall_accuracy"]
            cont_rows.append([name, str(d["n"]), _fmt(o["estimate"], o["ci95_halfwidth"]),
                              "estimated (domain estimator)"])
        else:
            cont_rows.append([name, str(d["n"]), "–", d["note"]])
    meta = metrics["metadata"]
    meta_rows = [[k, str(v)] for k, v in meta.items() if k != "reference_levels"]
    unit_text = (
        "100 m primary sampling units (10 × 10 sub-pixels of 10 m, each labelled), stratified by the majority "
        "land class of the PSU; estimated as one-stage stratified cluster sampling (Stehman 2014: combined ratio "
        "estimators of PSU totals, variances with the PSU as the unit)" if a.unit == "100m" else
        "10 m pixels, stratified by map class; estimated with Olofsson et al. (2014)"
    )
    design_head = ["stratum", "code", "units", "area (ha)", "weight W_h", "n_h (design)", "n_h (labelled)"] + (
        ["sub-pixels labelled"] if a.unit == "100m" else [])
    parts = [
        f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{html.escape(a.title)}</title>",
        f"<style>{_CSS}</style></head><body><h1>{html.escape(a.title)}</h1>",
        verdict,
        "<h2>Sampling design</h2>",
        f"<p>Sampling unit: {html.escape(unit_text)}. Population: land only. Land mask: "
        f"{html.escape(describe(a.land_mask))}. Strata and weights W_h are computed on land; ocean and "
        "nodata are reported below and take no part in the estimates.</p>",
        _table(design_head, _design_rows(a), "design"),
        f"<p>{html.escape(_interval_note(interval))}</p>",
        "<h2>Overall accuracy</h2>",
        "<p>Reference levels: WorldCover v100 2020 = 74.4 %, WorldCover v200 2021 = 76.7 %, requirement = 75 %.</p>",
        _img(figures["overall"], "overall accuracy with reference levels"),
        "<h2>Per class</h2>",
        _table(["class", "code", n_col, f"user's accuracy (95 % CI, {interval})",
                f"producer's accuracy (95 % CI, {interval})", "mapped land area (ha)",
                "estimated area (ha, 95 % CI)"], class_rows),
        _img(figures["ua_pa"], "user's and producer's accuracy"),
        _img(figures["areas"], "mapped vs estimated area"),
        "<h2>Error matrix</h2>",
        _img(figures["error_matrix"], "error matrix heat map"),
        f"<p>Sample counts{' of sub-pixels' if a.unit == '100m' else ''} (map class rows, reference class "
        "columns, with totals):</p>",
        _table(["map \\ reference"] + a.names + ["total"], _counts_with_totals(a), "counts"),
        "<h2>Per continent</h2>",
        f"<p>Domain estimates from the same stratified sample (Stehman 2014); continents with fewer than "
        f"{MIN_DOMAIN_SAMPLES} samples are not estimated.</p>",
        _table(["continent", "samples", "overall accuracy", "status"], cont_rows, "continents"),
        "<h2>Sample locations</h2>",
        _img(figures["samples"], "sample locations"),
    ]
    comparison = a.comparison
    if comparison is not None:
        name_a, name_b = comparison["labels"]
        rows = [["overall accuracy", _fmt_ci(comparison["results"][0].overall_accuracy, interval),
                 _fmt_ci(comparison["results"][1].overall_accuracy, interval)]]
        for name, ra, rb in zip(a.names, comparison["results"][0].per_class, comparison["results"][1].per_class,
                                strict=True):
            rows.append([f"{name}: user's", _fmt_ci(ra.users_accuracy, interval), _fmt_ci(rb.users_accuracy, interval)])
            rows.append([f"{name}: producer's", _fmt_ci(ra.producers_accuracy, interval),
                         _fmt_ci(rb.producers_accuracy, interval)])
        parts += [
            "<h2>Comparison</h2>",
            f"<p>Both maps assessed with the same reference sample over the {comparison['n']} sample units "
            "where both have data (Stehman 2014: the strata are the first map's).</p>",
            f'<p class="compare-line">{html.escape(comparison["line"])}</p>',
            _table(["", name_a, name_b], rows, "comparison"),
        ]
    parts += ["<h2>Metadata</h2>", _table(["key", "value"], meta_rows, "meta"), "</body></html>"]
    return "\n".join(parts)


def _distinct_labels(map_path: str | storage.Location, compare_path: storage.Location) -> tuple[str, str]:
    """Short names for two maps: file names, or as many trailing folders as tell them apart."""
    a, b = Path(str(map_path)).parts, Path(str(compare_path)).parts
    for k in range(1, max(len(a), len(b)) + 1):
        la, lb = "/".join(a[-k:]), "/".join(b[-k:])
        if la != lb:
            return la, lb
    return str(map_path), f"{compare_path} (the same file)"


def _comparison(a_samples: pd.DataFrame, compare_path: storage.Location, map_label: storage.Location,
                sizes: dict[int, float], codes_main: list[int]) -> dict:
    """Both maps on the common domain of the sample where the second map has data, and OA(a) - OA(b)."""
    samples = a_samples
    other = sample_raster(compare_path, samples["lon"].to_numpy(), samples["lat"].to_numpy())
    unknown = sorted({int(v) for v in other if v != NODATA and int(v) not in BY_CODE})
    if unknown:
        raise DataError(f"compare map {compare_path}: codes {unknown} are not WorldCover classes")
    domain = other != NODATA
    if not domain.any():
        raise InputError(f"compare map {compare_path}: no sample point falls on its data")
    codes = _class_codes(samples["map_class"], samples["ref_code"], other[domain])
    names = [BY_CODE[c].name for c in codes]
    args = dict(classes=codes, domain=domain, names=names, **_cluster_args(samples))
    strata = _strata(samples)
    res_a = stehman(strata, samples["map_class"], samples["ref_code"], sizes, **args)
    res_b = stehman(strata, other, samples["ref_code"], sizes, **args)
    diff = oa_difference(strata, samples["map_class"], other, samples["ref_code"], sizes, domain=domain,
                         **_cluster_args(samples))
    lo, hi = diff.estimate - diff.ci95_halfwidth, diff.estimate + diff.ci95_halfwidth
    significant = bool(np.isfinite(lo) and (lo > 0 or hi < 0))
    label_a, label_b = _distinct_labels(map_label, compare_path)
    line = (f"OA({label_a}) − OA({label_b}) = {diff.estimate * 100:+.2f} percentage points "
            f"(95 % CI {lo * 100:+.2f} to {hi * 100:+.2f}; paired, same {int(domain.sum())} sample units): "
            + ("the difference is significant at the 5 % level" if significant
               else "no significant difference at the 5 % level"))

    def pair(e):
        return (e.estimate, e.ci95_halfwidth)

    return {
        "labels": (label_a, label_b),
        "n": int(domain.sum()),
        "line": line,
        "oa": (pair(res_a.overall_accuracy), pair(res_b.overall_accuracy)),
        "metrics": {
            "map": res_a.to_dict(), "compare": res_b.to_dict(), "n_common": int(domain.sum()),
            "oa_difference": {**diff.to_dict(), "ci95": [_json_number(lo), _json_number(hi)],
                              "significant": significant,
                              "method": "paired ratio estimator of per-unit agreement differences (Stehman 2014)"},
        },
        "results": (res_a, res_b),
        "difference": diff,
    }


def _on_ocean(samples: pd.DataFrame, mask: LandMask | None) -> np.ndarray:
    """Sample rows mapped as water where the mask is sea (outside the population, e.g. from an older design)."""
    water = samples["map_class"].to_numpy() == WATER
    if mask is None or not water.any():
        return np.zeros(len(samples), dtype=bool)
    lon, lat = samples["lon"].to_numpy(float), samples["lat"].to_numpy(float)
    clon = (np.floor((lon + 180.0) * CELLS_PER_DEGREE) + 0.5) / CELLS_PER_DEGREE - 180.0  # the mask's cell centres
    clat = 90.0 - (np.floor((90.0 - lat) * CELLS_PER_DEGREE) + 0.5) / CELLS_PER_DEGREE
    out = np.zeros(len(samples), dtype=bool)
    out[water] = ~mask.is_land(clon[water], clat[water])
    return out


def _check_maps(
    map_path: str | storage.Location, compare_path: str | storage.Location | None
) -> tuple[storage.Location, storage.Location | None]:
    """Both maps exist and are class maps, before anything is read at length."""
    map_path = storage.path(map_path)
    if not map_path.exists():
        raise InputError(f"map {map_path}: file not found")
    if compare_path is not None:
        compare_path = storage.path(compare_path)
        if not compare_path.exists():
            raise InputError(f"compare map {compare_path}: file not found")
    for path in [map_path] + ([compare_path] if compare_path is not None else []):
        _check_map(path)
    return map_path, compare_path


def _read_samples(reference_path: str | storage.Location, map_path: storage.Location) -> pd.DataFrame:
    """The labelled samples, checked against the map they were drawn on (and a PSU sample's columns)."""
    samples = read_labelled(reference_path)
    if "psu" in samples.columns:
        for col in ("psu", "stratum"):
            values = pd.to_numeric(samples[col], errors="coerce") if col in samples else None
            if values is None or values.isna().any():
                raise InputError(f"labelled samples {reference_path}: a PSU sample needs whole numbers in column "
                                 f"{col!r}; expected the `validate design --unit 100m` output")
            samples[col] = values.astype(int)
    on_map = sample_raster(map_path, samples["lon"].to_numpy(), samples["lat"].to_numpy())
    wrong = on_map != samples["map_class"].to_numpy()
    if wrong.any():
        ids = samples["id"].astype(str)[wrong] if "id" in samples else samples.index[wrong].astype(str)
        raise InputError(
            f"labelled samples {reference_path}: map_class differs from {map_path} at {int(wrong.sum())} point(s) "
            f"(id(s) {', '.join(list(ids)[:5])}); expected the design drawn on this map"
        )
    return samples


def assess(
    map_path: str | storage.Location,
    reference_path: str | storage.Location,
    *,
    compare_path: str | storage.Location | None = None,
    title: str | None = None,
    min_domain_samples: int = MIN_DOMAIN_SAMPLES,
    land_mask: LandMask | str | None = DEFAULT_MASK,
    interval: str = "wilson",
) -> Assessment:
    """Estimate accuracy and area of a map's land from labelled samples; reads, never writes."""
    if interval not in INTERVALS:
        raise InputError(f"interval {interval!r}: expected one of {', '.join(INTERVALS)}")
    mask = parse_land_mask(land_mask) if isinstance(land_mask, str) else land_mask
    map_path, compare_path = _check_maps(map_path, compare_path)
    samples = _read_samples(reference_path, map_path)
    unit = "100m" if "psu" in samples.columns else "pixel"
    ocean = _on_ocean(samples, mask)
    samples = samples.loc[~ocean].reset_index(drop=True)
    if samples.empty:
        raise InputError(f"labelled samples {reference_path}: every sample is on the ocean of land mask "
                         f"{mask.name if mask else 'none'}; expected samples of the map's land")
    scan = scan_map(map_path, capacity=0, seed=0, land_mask=mask, unit=unit)
    mapped = {int(c): float(scan.area_m2[c] / M2_PER_HA) for c in np.flatnonzero(scan.pixels) if c != NODATA}
    codes = _class_codes(np.array(list(mapped)), samples["ref_code"], samples["map_class"])
    names = [BY_CODE[c].name for c in codes]
    mapped_ha = np.array([mapped.get(c, 0.0) for c in codes])
    counts = counts_matrix(samples["map_class"], samples["ref_code"], codes)
    if unit == "pixel":
        sizes = dict(mapped)
        try:
            result = olofsson(counts, mapped_ha, names)
        except InputError as exc:  # e.g. a stratum of the map without sample units: the samples do not fit the map
            raise InputError(f"labelled samples {reference_path} on map {map_path}: {exc}") from None
    else:
        sizes = {int(c): float(scan.unit_area_m2[c] / M2_PER_HA) for c in np.flatnonzero(scan.units) if c != NODATA}
        try:
            result = stehman(samples["stratum"], samples["map_class"], samples["ref_code"], sizes, classes=codes,
                             names=names, **_cluster_args(samples))
        except InputError as exc:
            raise InputError(f"labelled samples {reference_path} on map {map_path}: {exc}") from None

    # per sample unit
    samples["continent"] = [continent(x, y) for x, y in zip(samples["lon"], samples["lat"], strict=True)]
    per_continent = _continent_breakdown(samples, sizes, codes, min_domain_samples, interval)
    comparison = None
    if compare_path is not None:
        comparison = _comparison(samples, compare_path, map_path, sizes, codes)

    design = _design_table(samples, scan, unit)
    excluded = {
        "land_area_ha": float(scan.area_m2.sum() / M2_PER_HA),
        "ocean_area_ha": scan.ocean_area_m2 / M2_PER_HA,
        "ocean_pixels": int(scan.ocean_pixels),
        "nodata_area_ha": scan.nodata_area_m2 / M2_PER_HA,
        "ocean_samples_dropped": int(ocean.sum()),
        "land_mask": scan.land_mask,
        "definition": describe(scan.land_mask),
    }
    title = title or f"Accuracy report: {map_path.name}"
    metadata = {
        "title": title,
        "map": str(map_path),
        "reference": str(reference_path),
        "compare": str(compare_path) if compare_path else None,
        "created_utc": _dt.datetime.now(_dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "worldcover_version": __version__,
        "sampling_unit": unit,
        "estimator": (
            "Olofsson et al. 2014 (strata = map classes)" if unit == "pixel" else
            "Stehman 2014 stratified one-stage cluster sampling (100 m PSUs, 10 m sub-pixels; ratio estimators)"
        ) + "; per continent and comparison: Stehman 2014",
        "interval": interval,
        "interval_method": _interval_note(interval),
        "population": f"land only: {excluded['definition']}",
        "mapped_area": "geodesic pixel areas on the WGS84 ellipsoid (authalic latitude), summed per class on land",
        "total_mapped_area_ha": float(mapped_ha.sum()),
        "n_samples": int(len(samples)),
        "min_continent_samples": min_domain_samples,
        "reference_levels": {label: level for label, level in plots.REFERENCE_LEVELS},
    }
    if unit == "100m":
        metadata["n_psu"] = int(samples["psu"].nunique())
    metrics: dict[str, Any] = {
        **_with_intervals(result, interval), "per_continent": per_continent, "design": design, "excluded": excluded,
        "metadata": metadata,
    }
    if comparison is not None:
        metrics["comparison"] = comparison["metrics"]
    return Assessment(
        title=title, map_path=map_path, reference_path=str(reference_path), compare_path=compare_path, unit=unit,
        interval=interval, land_mask=scan.land_mask, samples=samples, codes=codes, result=result,
        mapped_ha=mapped_ha, design=design, excluded=excluded, per_continent=per_continent, comparison=comparison,
        metrics=metrics,
    )


def _design_table(samples: pd.DataFrame, scan, unit: str) -> list[dict]:
    """One row per land stratum: units, area, weight W_h, n_h of the design and n_h labelled."""
    strata = _strata(samples)
    codes = [int(c) for c in np.flatnonzero(scan.units) if c != NODATA]
    total = float(scan.unit_area_m2[codes].sum()) or 1.0
    rows = []
    for c in codes:
        sel = strata == c
        n_design = None
        if "stratum_n" in samples and sel.any():
            n_design = int(pd.to_numeric(samples.loc[sel, "stratum_n"], errors="coerce").max())
        row = {
            "code": c, "name": BY_CODE[c].name if c in BY_CODE else str(c), "units": int(scan.units[c]),
            "area_ha": float(scan.unit_area_m2[c] / M2_PER_HA), "weight": float(scan.unit_area_m2[c] / total),
            "n_design": n_design,
            "n_labelled": int(samples.loc[sel, "psu"].nunique()) if unit == "100m" else int(sel.sum()),
        }
        if unit == "100m":
            row["sub_pixels"] = int(sel.sum())
        rows.append(row)
    return rows


def write_report(assessment: Assessment, out_dir: str | storage.Location) -> Report:
    """Write report.html (with plots), metrics.json, error_matrix.csv, mapped_area.csv; html last."""
    a = assessment
    out_dir = storage.path(out_dir)
    oa = a.result.overall_accuracy
    oa_entries = [(a.map_path.name, oa.estimate, *oa.ci95(a.interval))]
    if a.comparison is not None:
        for label, res in zip(["common domain: " + name for name in a.comparison["labels"]],
                              a.comparison["results"], strict=True):
            o = res.overall_accuracy
            oa_entries.append((label, o.estimate, *o.ci95(a.interval)))
    figures = {
        "overall": plots.overall_accuracy(oa_entries),
        "ua_pa": plots.users_producers(a.result, a.codes, a.interval),
        "areas": plots.areas(a.result, a.codes, a.mapped_ha),
        "error_matrix": plots.error_matrix(a.result, a.codes),
        "samples": plots.sample_locations(a.samples["lon"].to_numpy(), a.samples["lat"].to_numpy(),
                                          a.samples["map_class"].to_numpy()),
    }
    page = _html(a, figures)
    storage.makedirs(out_dir)
    report = Report(
        out_dir=out_dir,
        html=out_dir / "report.html",
        metrics_json=out_dir / "metrics.json",
        error_matrix_csv=out_dir / "error_matrix.csv",
        mapped_area_csv=out_dir / "mapped_area.csv",
        metrics=a.metrics,
    )
    write_counts(report.error_matrix_csv, a.names, a.result.counts)
    write_mapped_area(report.mapped_area_csv, a.names, a.mapped_ha)
    write_text(report.metrics_json, json.dumps(a.metrics, indent=2, allow_nan=False))
    write_text(report.html, page)  # last: its presence means the report is complete
    return report


def build_report(
    map_path: str | storage.Location,
    reference_path: str | storage.Location,
    out_dir: str | storage.Location,
    *,
    compare_path: str | storage.Location | None = None,
    title: str | None = None,
    min_domain_samples: int = MIN_DOMAIN_SAMPLES,
    land_mask: LandMask | str | None = DEFAULT_MASK,
    interval: str = "wilson",
) -> Report:
    """Estimate accuracy and area of a map from labelled samples and write report.html, metrics.json, CSVs."""
    return write_report(
        assess(map_path, reference_path, compare_path=compare_path, title=title,
               min_domain_samples=min_domain_samples, land_mask=land_mask, interval=interval),
        out_dir,
    )
