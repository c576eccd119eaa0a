"""``make bench``'s summary: every key of the previous results kept, the new floors and the agreement computed."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import rasterio
from affine import Affine

from benchmarks.run import RESULTS, best_of, map_agreement, summarise

MACHINE = {"python": "3.11", "machine": "x86_64", "cpus": 2, "cpu_model": "x", "memory_gb": 23.5, "system": "Linux"}


def _tile(size: int, seconds: float) -> dict:
    mpx = size * size / 1e6
    return {"block_size": size, "end_to_end_s": seconds, "end_to_end_mpx_per_s_per_core": round(mpx / seconds / 2, 5),
            "peak_rss_gb": size / 1000, "machine": MACHINE}


def _stages(size: int) -> dict:
    return {"stages_s": {"load": 1.0, "predict": 2.0}, "predict_floor_s": 2.0, "predict_floor_mpx_per_s": 0.5,
            "io_floor": {"seconds": 1.5, "files": 900, "gb": 0.9}, "floor_s": 3.5, "predictor": "lleaves",
            "speedup_vs_naive": 90.0 if size == 512 else None, "block_size": size}


def test_summary_keeps_every_earlier_key_and_adds_the_floors():
    tile = {s: _tile(s, t) for s, t in ((512, 7.0), (1024, 28.0), (2048, 112.0))}
    stages = {s: _stages(s) for s in tile}
    engine = [{"tiles": n, "wall_s": 10.0 * n, "peak_rss_gb_tree": 1.0} for n in (1, 2, 4)]
    reference = {"block_size": 1024, "end_to_end_s": 87.0, "map": {"agreement": 0.993}}
    summary = summarise(tile, stages, stages[512], engine, 1.2, 1024, reference)
    before = json.loads((RESULTS / "20261122T064326Z.json").read_text())["summary"]
    assert set(before) <= set(summary)  # nothing the earlier results had is dropped
    assert summary["end_to_end_over_io_floor"] == round(28.0 / 3.5, 2)
    assert summary["peak_rss_gb_block"] == {"512": 0.512, "1024": 1.024, "2048": 2.048}
    assert summary["stages_s"].keys() == {"512", "1024", "2048"} and summary["predictor"] == "lleaves"
    assert summary["product_grid"]["map"]["agreement"] == 0.993
    # core-hours follow the 2048 px rate: four times the pixels per second, a quarter of the hours
    slower = summarise({**tile, 2048: _tile(2048, 448.0)}, stages, None, engine, 1.2, 1024)
    assert abs(slower["core_hours_100pct"] / summary["core_hours_100pct"] - 4) < 0.01


def _map(path: Path, codes: np.ndarray) -> Path:
    with rasterio.open(path, "w", driver="GTiff", width=codes.shape[1], height=codes.shape[0], count=1,
                       dtype="uint8", crs="EPSG:4326", transform=Affine(1e-4, 0, 3, 0, -1e-4, 46)) as f:
        f.write(codes[None])
    return path


def test_map_agreement_counts_pixels_mapped_in_either(tmp_path):
    a = np.full((10, 10), 30, np.uint8)
    a[0] = 0  # nodata in both: not counted
    b = a.copy()
    b[1, :4] = 40
    b[2, :1] = 10
    res = map_agreement(_map(tmp_path / "a.tif", a), _map(tmp_path / "b.tif", b))
    assert res["pixels"] == 90 and res["agreement"] == round(1 - 5 / 90, 5)
    assert res["most_common_differences"][0] == {"product_grid": 30, "native_grid": 40, "pixels": 4}


def test_best_of_keeps_the_fastest_run_and_every_runs_time():
    times = iter([30.0, 24.0, 27.0])
    best = best_of(3, lambda: {"end_to_end_s": next(times), "peak_rss_gb": 1.0})
    assert best["end_to_end_s"] == 24.0
    assert [r["end_to_end_s"] for r in best["runs"]] == [30.0, 24.0, 27.0]
    assert all(r["steal_s"] is None or r["steal_s"] >= 0 for r in best["runs"])
    tile = {s: {**_tile(s, 10.0), "runs": [{"end_to_end_s": 10.0, "steal_s": 0.0}]} for s in (512, 1024, 2048)}
    summary = summarise(tile, {s: _stages(s) for s in tile}, None, [], 1.0, 1024)
    assert summary["growth_block_size"]["2048"]["runs"] == [{"end_to_end_s": 10.0, "steal_s": 0.0}]


def test_agreement_sources_puts_every_feature_of_the_default_model_in_one_group():
    """The diagnostic swaps groups of features between two chains: each feature belongs to exactly the group of
    the input it is computed from."""
    from benchmarks.agreement_sources import GROUPS, feature_group
    from worldcover.features import FeatureConfig, feature_names
    from worldcover.model import Model
    from worldcover.model.location import DEFAULT_MODEL_DIR

    names = Model.load(DEFAULT_MODEL_DIR).card.feature_names
    groups = [feature_group(n) for n in names]
    assert set(groups) <= set(GROUPS)
    assert [n for n, g in zip(names, groups, strict=True) if g == "terrain"] == ["dem", "slope"]
    assert [n for n, g in zip(names, groups, strict=True) if g == "location"] == ["lat_sin", "lat_cos"]
    assert all(n.startswith("s1_") for n, g in zip(names, groups, strict=True) if g == "s1")
    s2_only = feature_names(FeatureConfig(s1=False, terrain=False, location=False))
    assert [n for n, g in zip(names, groups, strict=True) if g == "s2"] == s2_only
