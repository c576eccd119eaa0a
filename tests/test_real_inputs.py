"""Real-format inputs (issue 14, point 1): only the bands the model needs, DN offsets checked on the
data, geocoded Sentinel-1 only.

On the real Planetary Computer item metadata of ../shared/stac-samples/ rewritten to every
preset's asset keys, and on simulated archives edited into real-world shapes (no B01/B09, a
wrong offset declaration, a sigma0 or GRD S1 collection, mixed orbit directions) served by a
real STAC API on loopback and loaded with odc-stac.
"""

from __future__ import annotations

import copy
import json
import logging
import shutil
from pathlib import Path

import numpy as np
import pystac
import pytest

from tests.helpers import DEFAULT_MODEL as MODEL
from tests.helpers import run_cli
from worldcover import sim
from worldcover.bands import S2_ASSET_KEYS, S2_BANDS, s2_asset_keys
from worldcover.errors import DataError, InputError
from worldcover.features import FeatureConfig, required_s2_bands
from worldcover.grid import Tile
from worldcover.sources.catalogues import PRESETS, check_s1_geocoded, resolve
from worldcover.sources.harmonise import (
    OFFSET_SAMPLE_MIN,
    Harmonisation,
    fraction_below_offset,
    harmonisation,
    offset_already_removed,
)
from worldcover.sources.local_api import LocalStacApi
from worldcover.sources.stac import StacSource, dominant_orbit, split_by_assets

TILE, BLOCK, SPEC = "N45E003", 60, "r300c300"
NEEDED = required_s2_bands(FeatureConfig())


def _block():
    return Tile.parse(TILE).block(300, 300, BLOCK)


# --- which bands ------------------------------------------------------------------------------


def test_required_bands_follow_the_feature_config():
    assert "B01" not in NEEDED and "B09" not in NEEDED
    assert set(NEEDED) == set(FeatureConfig().bands)  # every index of the default uses its bands
    # s2cloudless' inputs only when that mask is on
    assert {"B01", "B09"} <= set(required_s2_bands(FeatureConfig(), cloud_probability=True))
    # an index brings its bands (spyndex: NDVI = N, R; NDREI = N, RE1), monthly NDVI brings NDVI's
    small = FeatureConfig(bands=("B11",), indices=("NDREI",), monthly_ndvi=False)
    assert required_s2_bands(small) == ("B05", "B08", "B11")
    assert required_s2_bands(FeatureConfig(bands=("B11",), indices=())) == ("B04", "B08", "B11")
    assert required_s2_bands(None) == tuple(S2_BANDS)


def _as_layout(feature: dict, layout: str, drop: tuple[str, ...] = ()) -> dict:
    """A real PC item with its band assets renamed to ``layout``'s keys, ``drop`` bands removed."""
    out = copy.deepcopy(feature)
    pc, keys = S2_ASSET_KEYS["planetary-computer"], S2_ASSET_KEYS[layout]
    assets = {k: v for k, v in out["assets"].items() if k not in pc.values()}
    for band, key in pc.items():
        if band not in drop:
            assets[keys[band]] = out["assets"][key]
    out["assets"] = assets
    return out


@pytest.mark.parametrize("layout", sorted(S2_ASSET_KEYS))
def test_real_items_in_every_preset_layout_resolve_only_the_needed_assets(pc_sample_items, layout):
    items = [pystac.Item.from_dict(_as_layout(f, layout, drop=("B01", "B09"))) for f in pc_sample_items]
    keys = s2_asset_keys(layout, NEEDED)
    assert set(keys) == {*NEEDED, "SCL"} and set(keys.values()) <= set(items[0].assets)
    kept, skipped = split_by_assets(items, keys)
    assert len(kept) == 100 and skipped == {}
    # the old contract (every band) would have refused all of them, naming B01 and B09
    kept_all, skipped_all = split_by_assets(items, s2_asset_keys(layout, S2_BANDS))
    assert kept_all == [] and set(map(tuple, skipped_all.values())) == {("B01", "B09")}
    # the offset is read from this layout's red asset: the real baselines 05.10/05.11 carry it
    decisions = [harmonisation(i, keys["B04"]) for i in items]
    assert {d.offset_dn for d in decisions} == {-1000}


def test_real_items_lacking_a_needed_band_are_skipped_and_named(pc_sample_items):
    layout = "earth-search"
    feats = [_as_layout(f, layout) for f in pc_sample_items[:10]]
    del feats[3]["assets"]["red"], feats[7]["assets"]["scl"]
    kept, skipped = split_by_assets([pystac.Item.from_dict(f) for f in feats], s2_asset_keys(layout, NEEDED))
    assert len(kept) == 8
    assert skipped == {feats[3]["id"]: ["B04"], feats[7]["id"]: ["SCL"]}


# --- archives in real shapes ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def pristine(tmp_path_factory) -> Path:
    """One 60 px block of May-June 2021 (baseline 03.01, no offset): 10 S2 items, S1 of one direction, a DEM."""
    root = tmp_path_factory.mktemp("real-inputs") / "archive"
    sim.generate([_block()], 2021, root, seed=1, period=("2021-05-01", "2021-06-20"))
    return root


@pytest.fixture
def archive(pristine, tmp_path) -> Path:
    """A private copy that a test reshapes (hrefs pointed at the copy)."""
    out = tmp_path / "archive"
    shutil.copytree(pristine, out)
    for path in (out / "stac").rglob("*.json"):
        path.write_text(path.read_text().replace(str(pristine), str(out)))
    return out


def _edit_items(archive: Path, collection: str, edit) -> None:
    path = archive / "stac" / "items" / f"{collection}.json"
    fc = json.loads(path.read_text())
    for f in fc["features"]:
        edit(f)
    path.write_text(json.dumps(fc))


def _drop_b01_b09(f: dict) -> None:
    for band in ("B01", "B09"):
        f["assets"].pop(band)


def test_archive_without_b01_b09_loads_through_the_stac_api(archive):
    _edit_items(archive, "sentinel-2-l2a", _drop_b01_b09)
    with LocalStacApi(archive) as api:
        inputs = StacSource(api.url, s2_bands=NEEDED).load_block(_block(), 2021)
        with pytest.raises(DataError, match=r"block N45E003_r300c300: none of the 10 Sentinel-2 items .* "
                                            r"missing: B01 \(10 items\), B09 \(10 items\)"):
            StacSource(api.url).load_block(_block(), 2021)  # all bands: nothing left to load
    assert set(inputs.s2.data_vars) == {*NEEDED, "SCL"} and inputs.s2.sizes["time"] == 10
    assert inputs.s2_skipped == {} and len(inputs.items["s2"]) == 10
    b04 = inputs.s2["B04"].values
    assert np.isfinite(b04).mean() > 0.9 and np.nanmin(b04) >= 0


def test_items_lacking_a_needed_band_are_skipped_and_recorded(archive):
    victim = {}

    def drop_one(f):
        if not victim:
            victim["id"] = f["id"]
            f["assets"].pop("B8A")

    _edit_items(archive, "sentinel-2-l2a", drop_one)
    with LocalStacApi(archive) as api:
        inputs = StacSource(api.url, s2_bands=NEEDED).load_block(_block(), 2021)
    assert inputs.s2_skipped == {victim["id"]: ["B8A"]}
    assert victim["id"] not in inputs.items["s2"] and len(inputs.items["s2"]) == 9


def test_real_format_archive_without_b01_b09_is_mapped(archive, tmp_path):
    """Acceptance: a real-format archive without B01/B09 processed by `tile run`'s chain to a map."""
    from worldcover.layout import is_finished, tile_paths
    from worldcover.tile.run import run_tile

    _edit_items(archive, "sentinel-2-l2a", _drop_b01_b09)
    with LocalStacApi(archive) as api:
        run = run_tile(TILE, 2021, api.url, MODEL, tmp_path / "out", block_size=BLOCK, blocks=SPEC)
    paths = tile_paths(tmp_path / "out", TILE, 2021)
    assert run.status == "done" and is_finished(paths)
    record = json.loads(paths.block_record(_block().key).read_text())["provenance"]
    assert record["s2_skipped"] == {} and len(record["items"]["s2"]) == 10
    assert record["s1"]["backscatter"] == "gamma0-rtc"
    import rasterio

    with rasterio.open(paths.map) as src:
        codes = src.read(1)
    assert (codes > 0).mean() > 0.5  # mapped, not nodata


# --- DN offset --------------------------------------------------------------------------------


def test_fraction_below_offset_is_per_item_and_needs_enough_valid_pixels():
    dn = np.full((3, 10, 10), 1500, "uint16")
    dn[0, :5] = 600  # half below 1000
    dn[1] = 0
    dn[1, 0, : OFFSET_SAMPLE_MIN // 10] = 500  # too few valid pixels to decide
    clear = np.ones(dn.shape, bool)
    clear[2, :2] = False
    dn[2, :2] = 300  # below 1000 but cloudy-flagged: not counted
    frac = fraction_below_offset(dn, clear)
    assert frac[0] == 0.5 and np.isnan(frac[1]) and frac[2] == 0.0


def test_offset_correction_only_for_items_that_declare_it(caplog):
    declared = Harmonisation("S2X_item", "05.10", -1000, "s2:processing_baseline")
    with caplog.at_level(logging.WARNING):
        fixed = offset_already_removed(declared, 0.8)
    assert fixed.offset_dn == 0 and fixed.metadata_disagrees and fixed.dn_below_offset == 0.8
    assert fixed.source.startswith("dn-sample") and "S2X_item" in caplog.text
    assert offset_already_removed(declared, 0.01).offset_dn == -1000  # shadow and dark water: kept
    assert offset_already_removed(declared, float("nan")) == declared  # undecided: the metadata stand
    old = Harmonisation("S2X_old", "03.01", 0, "s2:processing_baseline")
    assert offset_already_removed(old, 0.9) == old


def test_offset_already_removed_is_detected_in_the_data_and_corrected(archive, caplog):
    """Items declaring 04.00 (Earth Search's boa_offset_applied: false) whose DN hold no offset."""

    def declare_offset(f):
        f["properties"]["s2:processing_baseline"] = "04.00"
        f["properties"]["earthsearch:boa_offset_applied"] = False

    _edit_items(archive, "sentinel-2-l2a", declare_offset)
    with LocalStacApi(archive) as api, caplog.at_level(logging.WARNING):
        inputs = StacSource(api.url, s2_bands=NEEDED).load_block(_block(), 2021)
    by_id = {d.item_id: d for d in inputs.harmonisation}
    fixed = [d for d in by_id.values() if d.offset_dn == 0]
    # the clear scenes are caught; a scene all cloud (or all haze) cannot tell and keeps its metadata
    assert len(fixed) >= 2 and all(d.dn_below_offset > 0.5 and d.metadata_disagrees for d in fixed)
    for d in fixed:
        assert d.item_id in caplog.text
    # the corrected items read as reflectance of vegetation (~0.02-0.1 in the blue), not clipped to 0
    for d in fixed:
        k = inputs.items["s2"].index(d.item_id)
        blue = inputs.s2["B02"].isel(time=k).values
        assert np.nanmedian(blue) > 0.02


def test_a_real_offset_is_not_taken_for_a_removed_one(tmp_path):
    root = tmp_path / "archive-2022"
    sim.generate([_block()], 2022, root, seed=1, period=("2022-05-01", "2022-05-20"))  # baseline 04.00
    with LocalStacApi(root) as api:
        inputs = StacSource(api.url, s2_bands=NEEDED).load_block(_block(), 2022)
    assert {d.offset_dn for d in inputs.harmonisation} == {-1000}
    sampled = [d.dn_below_offset for d in inputs.harmonisation if d.dn_below_offset is not None]
    assert sampled and max(sampled) < 0.05
    assert float(inputs.s2["B04"].min()) >= 0  # clipped at the offset: never negative


# --- Sentinel-1 --------------------------------------------------------------------------------


@pytest.mark.parametrize("preset", ["earth-search", "copernicus-dataspace"])
def test_grd_presets_are_refused_naming_what_to_use(preset):
    with pytest.raises(InputError, match=r"sentinel-1-grd.*radar geometry.*planetary-computer.*sentinelhub"):
        StacSource(preset)
    with pytest.raises(InputError, match="radar geometry"):
        check_s1_geocoded(PRESETS[preset])
    src = StacSource(preset, need_s1=False)  # an S2-only model: S1 is just not loaded
    assert src.s1_collection() == (None, None)
    assert StacSource("planetary-computer").s1_collection() == ("sentinel-1-rtc", "gamma0-rtc")


@pytest.mark.slow  # a CLI subprocess: ~5 s
def test_grd_source_refused_by_the_cli_in_one_line(tmp_path):
    """Acceptance: `tile run --source earth-search` exits 2 with one line, before any network access."""
    code, out, err = run_cli("tile", "run", TILE, "--year", "2021", "--source", "earth-search",
                             "--out", str(tmp_path / "out"), "--blocks", SPEC, "--block-size", str(BLOCK))
    assert code == 2, (out, err)
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in err
    assert "sentinel-1-grd" in lines[0] and "planetary-computer" in lines[0] and "sentinelhub" in lines[0]
    assert not (tmp_path / "out").exists()
    code, _, err = run_cli("campaign", "plan", "--stage", "1pct", "--year", "2021", "--source", "copernicus-dataspace")
    assert code == 2 and len(err.strip().splitlines()) == 1 and "radar geometry" in err


def _rename_s1(archive: Path, collection: str, backscatter: str | None = None) -> None:
    """Serve the archive's S1 items as ``collection`` (optionally declaring their backscatter)."""
    items = archive / "stac" / "items"
    fc = json.loads((items / "sentinel-1-rtc.json").read_text())
    for f in fc["features"]:
        f["collection"] = collection
        if backscatter:
            f["properties"]["worldcover:backscatter"] = backscatter
    (items / "sentinel-1-rtc.json").unlink()
    (items / f"{collection}.json").write_text(json.dumps(fc))
    coll = archive / "stac" / "collections" / "sentinel-1-rtc.json"
    data = json.loads(coll.read_text())
    data["id"] = collection
    coll.unlink()
    (coll.parent / f"{collection}.json").write_text(json.dumps(data))


def test_custom_api_s1_is_rtc_when_offered(archive):
    with LocalStacApi(archive) as api:
        inputs = StacSource(api.url, s2_bands=NEEDED).load_block(_block(), 2021)
    assert inputs.s1 is not None and inputs.s1_info["collection"] == "sentinel-1-rtc"
    assert inputs.s1_info["backscatter"] == "gamma0-rtc" and len(inputs.items["s1"]) >= 3


def test_custom_api_geocoded_sigma0_is_accepted_and_recorded(archive):
    _rename_s1(archive, "sentinel-1-sigma0", backscatter="sigma0")
    with LocalStacApi(archive) as api:
        inputs = StacSource(api.url, s2_bands=NEEDED).load_block(_block(), 2021)
    assert inputs.s1 is not None and inputs.s1.sizes["time"] >= 1
    assert inputs.s1_info["collection"] == "sentinel-1-sigma0" and inputs.s1_info["backscatter"] == "sigma0"


def test_custom_api_with_only_grd_has_no_s1(archive):
    _rename_s1(archive, "sentinel-1-grd")
    with LocalStacApi(archive) as api:
        inputs = StacSource(api.url, s2_bands=NEEDED).load_block(_block(), 2021)
    assert inputs.s1 is None and inputs.items["s1"] == [] and inputs.s1_info["collection"] is None


def test_the_dominant_orbit_direction_is_composited_alone(archive):
    with LocalStacApi(archive) as api:
        found = StacSource(api.url, s2_bands=NEEDED).load_block(_block(), 2021).items["s1"]
    assert len(found) >= 3
    state = json.loads((archive / "stac" / "items" / "sentinel-1-rtc.json").read_text())["features"][0]
    main = state["properties"]["sat:orbit_state"]
    other = {"ascending": "descending", "descending": "ascending"}[main]
    flipped = found[0]

    def flip(f):
        if f["id"] == flipped:
            f["properties"]["sat:orbit_state"] = other

    _edit_items(archive, "sentinel-1-rtc", flip)
    with LocalStacApi(archive) as api:
        inputs = StacSource(api.url, s2_bands=NEEDED).load_block(_block(), 2021)
    info = inputs.s1_info
    assert info["orbit_states"] == {main: len(found) - 1, other: 1} and info["orbit_state_used"] == main
    assert flipped not in inputs.items["s1"] and len(inputs.items["s1"]) == len(found) - 1
    assert inputs.s1.sizes["time"] == len(found) - 1


def test_dominant_orbit_ties_and_unknowns():
    def item(n, state):
        props = {"sat:orbit_state": state} if state else {}
        return pystac.Item(f"i{n}", None, None, "2021-01-01T00:00:00Z", props)

    kept, counts, used = dominant_orbit([item(0, "descending"), item(1, "ascending")])
    assert used == "ascending" and [i.id for i in kept] == ["i1"]
    kept, counts, used = dominant_orbit([item(0, None), item(1, None), item(2, "descending")])
    assert used == "descending" and counts == {"descending": 1, "unknown": 2} and len(kept) == 1
    kept, counts, used = dominant_orbit([item(0, None)])
    assert used == "unknown" and len(kept) == 1
    assert dominant_orbit([]) == ([], {}, None)


def test_presets_spell_their_s1():
    assert resolve("planetary-computer").s1_backscatter == "gamma0-rtc"
    assert {resolve(p).s1_backscatter for p in ("earth-search", "copernicus-dataspace")} == {"grd"}
    assert resolve("http://127.0.0.1:9/").s1_collection == "auto"


def test_tile_item_summarises_what_the_loader_decided():
    """Skipped S2 items, the S1 kind and orbit, and harmonisation decisions reach the tile's STAC item."""
    from worldcover.tile.products import input_summary

    records = [
        {"s2_skipped": {"S2A_1": ["B05"]}, "s1": {"collection": "sentinel-1-sigma0", "backscatter": "sigma0",
                                                  "orbit_state_used": "ascending"},
         "harmonisation": [{"item_id": "S2A_1", "offset_dn": 0}, {"item_id": "S2B_2", "offset_dn": -1000}]},
        {"s2_skipped": {}, "s1": {}, "harmonisation": [{"item_id": "S2B_3", "offset_dn": 0,
                                                         "metadata_disagrees": True}]},
    ]
    out = input_summary(records)
    assert out["worldcover:s2_items_skipped"] == {"count": 1, "items": {"S2A_1": ["B05"]}}
    assert out["worldcover:s1"] == {"collections": ["sentinel-1-sigma0"], "backscatter": ["sigma0"],
                                    "orbit_states_used": ["ascending"]}
    assert out["worldcover:harmonisation"] == {"items_by_offset_dn": {"-1000": 1, "0": 2},
                                               "metadata_disagrees": ["S2B_3"]}
