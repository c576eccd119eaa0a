"""Accuracy report of a map against labelled reference samples: HTML with plots, JSON and CSV.

The sample is the stratified design of :mod:`worldcover.validation.design` (strata = map
classes), so the map's own estimates follow Olofsson et al. (2014). Mapped areas come from the
map itself (geodesic pixel areas). Per-continent results and a second map assessed with the
same sample are domain / different-strata problems, estimated with Stehman (2014).
"""

from __future__ import annotations

import base64
import datetime as _dt
import html
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from worldcover import storage
from worldcover.errors import DataError, InputError
from worldcover.legend import BY_CODE, CODES, NODATA
from worldcover.stages import CONTINENTS, continent
from worldcover.validation import plots
from worldcover.validation._io import write_text
from worldcover.validation.area import class_areas
from worldcover.validation.estimators import AccuracyResult, counts_matrix, olofsson, stehman
from worldcover.validation.tables import read_labelled, write_counts, write_mapped_area

MIN_DOMAIN_SAMPLES = 30  # fewer sample units in a continent: no estimates, only a note


def sample_raster(path: str | Path, lon: np.ndarray, lat: np.ndarray) -> np.ndarray:
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
                out[inside] = [v[0] for v in src.sample(zip(xs[inside], ys[inside]), indexes=1)]
    return out


def _check_map(path: Path) -> None:
    """Refuse a map that is not uint8 codes with nodata 0 in a usable CRS before anything is written."""
    import rasterio

    from worldcover.validation.area import check_class_map

    try:
        src = rasterio.open(storage.gdal_path(path))
    except rasterio.errors.RasterioIOError as exc:
        raise InputError(f"map {path}: cannot be opened as a raster ({exc})") from None
    with src:
        check_class_map(src, path)


@dataclass
class Report:
    """Paths written and the metrics they hold."""

    out_dir: Path
    html: Path
    metrics_json: Path
    error_matrix_csv: Path
    mapped_area_csv: Path
    metrics: dict[str, Any] = field(repr=False)


def _class_codes(*code_sets: np.ndarray) -> list[int]:
    present = set()
    for s in code_sets:
        present |= {int(c) for c in np.unique(s)}
    return [c for c in CODES if c in present]


def _continent_breakdown(samples: pd.DataFrame, areas_ha: dict[int, float], codes: list[int], min_n: int) -> dict:
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
            samples["map_class"], samples["map_class"], samples["ref_code"], areas_ha,
            classes=codes, domain=mask, names=names,
        )
        out[name] = {"status": "estimated", **res.to_dict()}
    return out


def _fmt(est: float | None, half: float | None, pct: bool = True, digits: int = 1) -> str:
    if est is None or not np.isfinite(est):
        return "–"
    scale = 100 if pct else 1
    text = f"{est * scale:,.{digits}f}"
    if half is not None and np.isfinite(half):
        text += f" ± {half * scale:,.{digits}f}"
    return text + (" %" if pct else "")


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


def _html(
    title: str, metrics: dict, result: AccuracyResult, codes: list[int], mapped_ha: np.ndarray,
    figures: dict[str, bytes], comparison: dict | None,
) -> str:
    oa = result.overall_accuracy
    meets = oa.estimate >= 0.75
    verdict = (
        f'<p class="{"ok" if meets else "bad"}">Overall accuracy {_fmt(oa.estimate, oa.ci95_halfwidth)} '
        f'(95 % CI) {"meets" if meets else "is below"} the 75 % requirement. WorldCover reached 74.4 % '
        "(v100, 2020) and 76.7 % (v200, 2021).</p>"
    )
    class_rows = [
        [
            BY_CODE[c].name, str(c), str(int(result.counts[k].sum())),
            _fmt(ce.users_accuracy.estimate, ce.users_accuracy.ci95_halfwidth),
            _fmt(ce.producers_accuracy.estimate, ce.producers_accuracy.ci95_halfwidth),
            f"{mapped_ha[k]:,.1f}", _fmt(ce.area_ha.estimate, ce.area_ha.ci95_halfwidth, pct=False),
        ]
        for k, (c, ce) in enumerate(zip(codes, result.per_class))
    ]
    cont_rows = []
    for name, d in metrics["per_continent"].items():
        if d["status"] == "estimated":
            o = d["overall_accuracy"]
            cont_rows.append([name, str(d["n"]), _fmt(o["estimate"], o["ci95_halfwidth"]), "estimated (domain estimator)"])
        else:
            cont_rows.append([name, str(d["n"]), "–", d["note"]])
    meta = metrics["metadata"]
    meta_rows = [[k, str(v)] for k, v in meta.items() if k != "reference_levels"]
    parts = [
        f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>",
        f"<style>{_CSS}</style></head><body><h1>{html.escape(title)}</h1>",
        verdict,
        "<h2>Overall accuracy</h2>",
        "<p>Reference levels: WorldCover v100 2020 = 74.4 %, WorldCover v200 2021 = 76.7 %, requirement = 75 %.</p>",
        _img(figures["overall"], "overall accuracy with reference levels"),
        "<h2>Per class</h2>",
        _table(["class", "code", "samples", "user's accuracy", "producer's accuracy", "mapped area (ha)",
                "estimated area (ha, 95 % CI)"], class_rows),
        _img(figures["ua_pa"], "user's and producer's accuracy"),
        _img(figures["areas"], "mapped vs estimated area"),
        "<h2>Error matrix</h2>",
        _img(figures["error_matrix"], "error matrix heat map"),
        "<p>Sample counts (map class rows, reference class columns):</p>",
        _table(["map \\ reference"] + [BY_CODE[c].name for c in codes],
               [[BY_CODE[c].name] + [str(int(v)) for v in row] for c, row in zip(codes, result.counts)], "counts"),
        "<h2>Per continent</h2>",
        f"<p>Domain estimates from the same stratified sample (Stehman 2014); continents with fewer than "
        f"{MIN_DOMAIN_SAMPLES} samples are not estimated.</p>",
        _table(["continent", "samples", "overall accuracy", "status"], cont_rows, "continents"),
        "<h2>Sample locations</h2>",
        _img(figures["samples"], "sample locations"),
    ]
    if comparison is not None:
        a, b = comparison["labels"]
        rows = [["overall accuracy", _fmt(*comparison["oa"][0]), _fmt(*comparison["oa"][1])]]
        for name, (ua_a, ua_b, pa_a, pa_b) in comparison["classes"].items():
            rows.append([f"{name}: user's", _fmt(*ua_a), _fmt(*ua_b)])
            rows.append([f"{name}: producer's", _fmt(*pa_a), _fmt(*pa_b)])
        parts += [
            "<h2>Comparison</h2>",
            f"<p>Both maps assessed with the same reference sample over the {comparison['n']} sample units "
            "where both have data (Stehman 2014: the strata are the first map's classes).</p>",
            _table(["", a, b], rows, "comparison"),
        ]
    parts += ["<h2>Metadata</h2>", _table(["key", "value"], meta_rows, "meta"), "</body></html>"]
    return "\n".join(parts)


def _comparison(samples: pd.DataFrame, compare_path: Path, map_label: str, areas_ha: dict[int, float]) -> dict:
    """Both maps on the common domain of the sample where the second map has data."""
    other = sample_raster(compare_path, samples["lon"].to_numpy(), samples["lat"].to_numpy())
    unknown = sorted({int(v) for v in other if v != NODATA and int(v) not in BY_CODE})
    if unknown:
        raise DataError(f"compare map {compare_path}: codes {unknown} are not WorldCover classes")
    domain = other != NODATA
    if not domain.any():
        raise InputError(f"compare map {compare_path}: no sample point falls on its data")
    codes = _class_codes(samples["map_class"], samples["ref_code"], other[domain])
    names = [BY_CODE[c].name for c in codes]
    args = dict(classes=codes, domain=domain, names=names)
    res_a = stehman(samples["map_class"], samples["map_class"], samples["ref_code"], areas_ha, **args)
    res_b = stehman(samples["map_class"], other, samples["ref_code"], areas_ha, **args)

    def pair(e):
        return (e.estimate, e.ci95_halfwidth)

    return {
        "labels": (map_label, compare_path.name),
        "n": int(domain.sum()),
        "oa": (pair(res_a.overall_accuracy), pair(res_b.overall_accuracy)),
        "classes": {
            n: (pair(a.users_accuracy), pair(b.users_accuracy), pair(a.producers_accuracy), pair(b.producers_accuracy))
            for n, a, b in zip(names, res_a.per_class, res_b.per_class)
        },
        "metrics": {"map": res_a.to_dict(), "compare": res_b.to_dict(), "n_common": int(domain.sum())},
        "results": (res_a, res_b),
    }


def build_report(
    map_path: str | Path,
    reference_path: str | Path,
    out_dir: str | Path,
    *,
    compare_path: str | Path | None = None,
    title: str | None = None,
    min_domain_samples: int = MIN_DOMAIN_SAMPLES,
) -> Report:
    """Estimate accuracy and area of a map from labelled samples and write report.html, metrics.json, CSVs."""
    map_path, out_dir = storage.path(map_path), storage.path(out_dir)
    if not map_path.exists():
        raise InputError(f"map {map_path}: file not found")
    if compare_path is not None:
        compare_path = storage.path(compare_path)
    if compare_path is not None and not compare_path.exists():
        raise InputError(f"compare map {compare_path}: file not found")
    for path in [map_path] + ([compare_path] if compare_path is not None else []):
        _check_map(path)
    samples = read_labelled(reference_path)
    lon, lat = samples["lon"].to_numpy(), samples["lat"].to_numpy()
    on_map = sample_raster(map_path, lon, lat)
    wrong = on_map != samples["map_class"].to_numpy()
    if wrong.any():
        ids = samples["id"].astype(str)[wrong] if "id" in samples else samples.index[wrong].astype(str)
        raise InputError(
            f"labelled samples {reference_path}: map_class differs from {map_path} at {int(wrong.sum())} point(s) "
            f"(id(s) {', '.join(list(ids)[:5])}); expected the design drawn on this map"
        )
    mapped = class_areas(map_path)
    codes = _class_codes(np.array(list(mapped)), samples["ref_code"])
    names = [BY_CODE[c].name for c in codes]
    mapped_ha = np.array([mapped.get(c, (0, 0.0))[1] for c in codes])
    counts = counts_matrix(samples["map_class"], samples["ref_code"], codes)
    try:
        result = olofsson(counts, mapped_ha, names)
    except InputError as exc:  # e.g. a stratum of the map without sample units: the samples do not fit the map
        raise InputError(f"labelled samples {reference_path} on map {map_path}: {exc}") from None

    samples["continent"] = [continent(x, y) for x, y in zip(lon, lat)]  # per sample unit, not per pixel
    areas_ha = {c: a for c, (_, a) in mapped.items()}
    per_continent = _continent_breakdown(samples, areas_ha, codes, min_domain_samples)
    comparison = None
    if compare_path is not None:
        comparison = _comparison(samples, compare_path, map_path.name, areas_ha)

    from worldcover import __version__

    title = title or f"Accuracy report: {map_path.name}"
    metadata = {
        "title": title,
        "map": str(map_path),
        "reference": str(reference_path),
        "compare": str(compare_path) if compare_path else None,
        "created_utc": _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "worldcover_version": __version__,
        "estimator": "Olofsson et al. 2014 (strata = map classes); per continent and comparison: Stehman 2014",
        "mapped_area": "geodesic pixel areas on the WGS84 ellipsoid (authalic latitude), summed per class",
        "total_mapped_area_ha": float(mapped_ha.sum()),
        "n_samples": int(len(samples)),
        "min_continent_samples": min_domain_samples,
        "reference_levels": {label: level for label, level in plots.REFERENCE_LEVELS},
    }
    metrics: dict[str, Any] = {**result.to_dict(), "per_continent": per_continent, "metadata": metadata}
    if comparison is not None:
        metrics["comparison"] = comparison["metrics"]

    oa_entries = [(map_path.name, result.overall_accuracy.estimate, result.overall_accuracy.ci95_halfwidth)]
    if comparison is not None:
        for label, res in zip(("common domain: " + map_path.name, "common domain: " + compare_path.name),
                              comparison["results"]):
            oa_entries.append((label, res.overall_accuracy.estimate, res.overall_accuracy.ci95_halfwidth))
    figures = {
        "overall": plots.overall_accuracy(oa_entries),
        "ua_pa": plots.users_producers(result, codes),
        "areas": plots.areas(result, codes, mapped_ha),
        "error_matrix": plots.error_matrix(result, codes),
        "samples": plots.sample_locations(lon, lat, samples["map_class"].to_numpy()),
    }
    page = _html(title, metrics, result, codes, mapped_ha, figures, comparison)

    storage.makedirs(out_dir)
    report = Report(
        out_dir=out_dir,
        html=out_dir / "report.html",
        metrics_json=out_dir / "metrics.json",
        error_matrix_csv=out_dir / "error_matrix.csv",
        mapped_area_csv=out_dir / "mapped_area.csv",
        metrics=metrics,
    )
    write_counts(report.error_matrix_csv, names, counts)
    write_mapped_area(report.mapped_area_csv, names, mapped_ha)
    write_text(report.metrics_json, json.dumps(metrics, indent=2, allow_nan=False))
    write_text(report.html, page)  # last: its presence means the report is complete
    return report
