"""The simulated archive on disk: layout, COGs, STAC items, merging, re-runs (worldcover.sim.generate)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import rasterio

from worldcover.errors import InputError
from worldcover.grid import Tile
from worldcover.legend import CODES, colormap
from worldcover.sim import generate
from worldcover.sim.stac import COLLECTIONS, DEM_COLLECTION, S1_COLLECTION, S2_COLLECTION

TILE = Tile.parse("S36W063")
BLOCK_A = TILE.block(243, 183, 96)
BLOCK_B = TILE.block(243, 184, 96)
PERIOD = ("2022-01-12", "2022-02-12")  # spans the baseline-04.00 switch of 25 January 2022


@pytest.fixture(scope="module")
def archive(tmp_path_factory):
    out = tmp_path_factory.mktemp("sim-archive")
    first = generate([BLOCK_A], 2022, out, seed=3, period=PERIOD)
    second = generate([BLOCK_B], 2022, out, seed=3, period=PERIOD)
    return out, first, second


def _items(out: Path, cid: str) -> list[dict]:
    fc = json.loads((out / "stac" / "items" / f"{cid}.json").read_text())
    assert fc["type"] == "FeatureCollection"
    return fc["features"]


def test_layout_and_manifest(archive):
    out, first, second = archive
    for cid in COLLECTIONS:
        assert (out / "stac" / "collections" / f"{cid}.json").is_file()
        assert (out / "stac" / "items" / f"{cid}.json").is_file()
    for b in (BLOCK_A, BLOCK_B):
        assert (out / "truth" / b.tile.id / f"{b.tile.id}_{b.key}_truth.tif").is_file()
    man = json.loads((out / "sim.json").read_text())
    assert man["seed"] == 3 and man["years"] == [2022] and man["looks"] == 4.4
    assert man["tiles"][TILE.id]["block_size"] == 96
    assert man["tiles"][TILE.id]["blocks"] == sorted([BLOCK_A.key, BLOCK_B.key])
    assert first["items_written"][S2_COLLECTION] > 3 and first["items_written"][DEM_COLLECTION] == 1
    assert first["bytes"] > 0 and first["elapsed_s"] > 0
    # The second block was merged, not substituted.
    n2 = len(_items(out, S2_COLLECTION))
    assert n2 == first["items_written"][S2_COLLECTION] + second["items_written"][S2_COLLECTION]
    assert second["items_in_archive"][S2_COLLECTION] == n2
    # No temporary file is left behind.
    assert not [p for p in out.rglob("*") if p.name.startswith(".") and p.suffix in (".tmp", ".tif")]


def test_rerun_skips_what_is_complete_and_refuses_another_world(archive):
    out, first, _ = archive
    again = generate([BLOCK_A], 2022, out, seed=3, period=PERIOD)
    assert sum(again["items_written"].values()) == 0
    assert again["items_in_archive"] == {c: len(_items(out, c)) for c in COLLECTIONS}
    with pytest.raises(InputError, match="seed"):
        generate([BLOCK_A], 2022, out, seed=4, period=PERIOD)


def _core_validator(kind: str):
    import jsonschema
    import referencing
    from pystac.validation.local_validator import get_local_schema_cache

    cache = get_local_schema_cache()
    registry = referencing.Registry().with_resources(
        [(uri, referencing.Resource.from_contents(s, default_specification=referencing.jsonschema.DRAFT7))
         for uri, s in cache.items()])
    uri = f"https://schemas.stacspec.org/v1.1.0/{kind}-spec/json-schema/{kind}.json"
    return jsonschema.Draft7Validator(cache[uri], registry=registry)


def test_items_and_collections_validate_offline(archive):
    """The STAC core schemas shipped with pystac (no network); extension fields checked by hand."""
    out, _, _ = archive
    item_v, col_v = _core_validator("item"), _core_validator("collection")
    for cid in COLLECTIONS:
        col = json.loads((out / "stac" / "collections" / f"{cid}.json").read_text())
        assert not list(col_v.iter_errors(col))
        items = _items(out, cid)
        assert items
        (w, s, e, n), = col["extent"]["spatial"]["bbox"]
        t0, t1 = col["extent"]["temporal"]["interval"][0]
        for it in items:
            errors = [e.message for e in item_v.iter_errors(it)]
            assert not errors, errors
            assert it["collection"] == cid
            assert w <= it["bbox"][0] and it["bbox"][2] <= e and s <= it["bbox"][1] and it["bbox"][3] <= n
            assert t0[:19] <= it["properties"]["datetime"][:19] <= t1[:19]
            props = it["properties"]
            assert props["proj:code"] == f"EPSG:{props['proj:epsg']}"
            for a in it["assets"].values():
                assert a["type"] == "image/tiff; application=geotiff; profile=cloud-optimized"
                assert a["roles"] == ["data"] and Path(a["href"]).is_absolute()
                assert len(a["proj:shape"]) == 2 and len(a["proj:transform"]) == 6 and len(a["proj:bbox"]) == 4
                assert "raster:bands" in a
    # A bad item is caught by the same validator (the check can fail).
    bad = dict(_items(out, S2_COLLECTION)[0])
    bad["properties"] = {**bad["properties"], "datetime": "yesterday"}
    assert list(item_v.iter_errors(bad))


def test_s2_items_look_like_planetary_computer(archive, pc_sample_items):
    out, _, _ = archive
    items = _items(out, S2_COLLECTION)
    real = pc_sample_items[0]
    for it in items:
        assert it["id"].endswith(f"_{TILE.id}_{BLOCK_A.key}_b96") or it["id"].endswith(f"_{TILE.id}_{BLOCK_B.key}_b96")
        assert it["id"].startswith(("S2A_MSIL2A_", "S2B_MSIL2A_"))
        p = it["properties"]
        # The properties the real items have (and loaders read) are all there.
        for key in ("datetime", "platform", "constellation", "instruments", "s2:mgrs_tile", "s2:processing_baseline",
                    "s2:product_uri", "eo:cloud_cover", "s2:nodata_pixel_percentage", "sat:relative_orbit",
                    "sat:orbit_state", "proj:epsg", "s2:granule_id", "s2:datatake_id", "s2:mean_solar_zenith"):
            assert key in p and key in real["properties"], key
        assert set(real["properties"]["instruments"]) == set(p["instruments"])
        assert p["constellation"] == real["properties"]["constellation"]
        assert f"_N{p['s2:processing_baseline'].replace('.', '')}_" in p["s2:product_uri"]
        assert p["s2:mgrs_tile"] in it["id"] and len(p["s2:mgrs_tile"]) == 5
        assert 0 <= p["eo:cloud_cover"] <= 100 and 0 <= p["s2:nodata_pixel_percentage"] <= 100
        assert set(it["assets"]) == {"B01", "B02", "B03", "B04", "B05", "B06", "B07", "B08", "B8A", "B09", "B11",
                                     "B12", "SCL"}
        new = p["s2:processing_baseline"] >= "04.00"
        assert new == (p["datetime"][:10] >= "2022-01-25")
        for key, a in it["assets"].items():
            rb = a["raster:bands"][0]
            assert rb["nodata"] == 0
            if key != "SCL":
                assert rb["data_type"] == "uint16" and rb["scale"] == 0.0001
                assert rb["offset"] == (-0.1 if new else 0.0)
                assert a["eo:bands"][0]["name"] == key
                assert a["gsd"] == real["assets"][key]["gsd"]
                assert a["eo:bands"][0]["center_wavelength"] == real["assets"][key]["eo:bands"][0]["center_wavelength"]
    baselines = {it["properties"]["s2:processing_baseline"] for it in items}
    assert any(b >= "04.00" for b in baselines) and any(b < "04.00" for b in baselines)


def test_s1_and_dem_items(archive):
    out, _, _ = archive
    for it in _items(out, S1_COLLECTION):
        p = it["properties"]
        assert p["sar:instrument_mode"] == "IW" and p["sar:frequency_band"] == "C"
        assert p["sar:polarizations"] == ["VV", "VH"] and p["sar:product_type"] == "GRD"
        assert p["platform"] == "SENTINEL-1A"  # 2022: S1B is gone
        assert p["sat:orbit_state"] in ("ascending", "descending")
        assert p["sar:looks_equivalent_number"] == 4.4
        assert set(it["assets"]) == {"vv", "vh"}
        assert it["assets"]["vv"]["raster:bands"][0]["data_type"] == "float32"
    dems = _items(out, DEM_COLLECTION)
    assert len(dems) == 2 and all(set(d["assets"]) == {"data"} for d in dems)
    assert dems[0]["properties"]["datetime"].startswith("2021-04-22")
    assert dems[0]["id"].startswith("Copernicus_DSM_COG_10_S")


def test_cogs_are_valid_and_match_their_items(archive):
    from rio_cogeo.cogeo import cog_validate

    out, _, _ = archive
    checked = 0
    for cid in COLLECTIONS:
        for it in _items(out, cid)[:4]:
            crs = it["properties"]["proj:code"]
            for a in it["assets"].values():
                ok, errors, _ = cog_validate(a["href"], quiet=True)
                assert ok, errors
                with rasterio.open(a["href"]) as src:
                    assert list(src.shape) == a["proj:shape"]
                    assert list(src.transform)[:6] == pytest.approx(a["proj:transform"])
                    assert src.crs.to_string() == crs
                    bh, bw = src.block_shapes[0]
                    assert bh == bw, f"{a['href']}: blocks {bh}x{bw}, expected square tiles (not strips)"
                    if max(src.shape) > 256:
                        assert src.overviews(1)
                    nodata = a["raster:bands"][0].get("nodata")
                    if nodata == 0:
                        assert src.nodata == 0
                    elif nodata == "nan":
                        assert np.isnan(src.nodata)
                    assert src.dtypes[0] == a["raster:bands"][0]["data_type"]
                checked += 1
    assert checked > 30


def test_truth_cog_is_on_the_block_grid_with_the_legend(archive):
    from rio_cogeo.cogeo import cog_validate

    out, _, _ = archive
    path = out / "truth" / TILE.id / f"{TILE.id}_{BLOCK_A.key}_truth.tif"
    assert cog_validate(str(path), quiet=True)[0]
    with rasterio.open(path) as src:
        assert src.dtypes[0] == "uint8" and src.nodata == 0
        assert src.crs.to_epsg() == 4326
        assert src.shape == BLOCK_A.shape
        assert list(src.transform)[:6] == pytest.approx(list(BLOCK_A.geobox.transform)[:6])
        data = src.read(1)
        cmap = src.colormap(1)
    assert set(np.unique(data)) <= set(CODES)
    for code, rgba in colormap().items():
        if code in CODES:
            assert cmap[code] == rgba


def test_written_dn_harmonise_per_item_to_the_same_surface(archive):
    """Read back with rasterio and harmonise with the pipeline's own per-item rule."""
    from worldcover.sources.harmonise import harmonisation

    out, _, _ = archive
    items = [it for it in _items(out, S2_COLLECTION) if BLOCK_A.key in it["id"]]
    means = {}
    for it in items:
        h = harmonisation(it, "B08")
        assert not h.metadata_disagrees
        with rasterio.open(it["assets"]["B08"]["href"]) as src:
            dn = src.read(1).astype(np.float64)
        with rasterio.open(it["assets"]["SCL"]["href"]) as src:
            scl = src.read(1)
        clear = np.repeat(np.repeat(np.isin(scl, [4, 5]), 2, 0), 2, 1)
        if clear.mean() < 0.5:
            continue
        raw = dn[clear] / 10000.0
        refl = (dn[clear] + h.offset_dn) / 10000.0
        means[it["properties"]["s2:processing_baseline"] >= "04.00"] = (raw.mean(), refl.mean())
    assert set(means) == {True, False}, "need a clear scene before and after 25 January 2022"
    (raw_new, refl_new), (raw_old, refl_old) = means[True], means[False]
    assert raw_new - raw_old > 0.07  # un-harmonised new DN look ~0.1 brighter
    assert abs(refl_new - refl_old) < 0.04  # harmonised, the same summer surface


def test_odc_stac_loads_the_items_onto_the_block_grid(archive):
    import odc.stac
    import pystac

    out, _, _ = archive
    items = [pystac.Item.from_dict(d) for d in _items(out, S2_COLLECTION) if BLOCK_A.key in d["id"]][:2]
    ds = odc.stac.load(items, bands=["B04", "B11", "SCL"], geobox=BLOCK_A.geobox, groupby="solar_day",
                       resampling={"*": "bilinear", "SCL": "nearest"})
    assert ds.B04.shape[1:] == BLOCK_A.shape
    assert (ds.B04.values > 0).mean() > 0.95  # the chip covers the whole block


def test_generate_rejects_bad_input(tmp_path):
    with pytest.raises(InputError, match="year"):
        generate([BLOCK_A], 2014, tmp_path)
    with pytest.raises(InputError, match="layout"):
        generate([BLOCK_A], 2021, tmp_path, layout="nope")
    with pytest.raises(InputError, match="option"):
        generate([BLOCK_A], 2021, tmp_path, cloudyness=2)
    with pytest.raises(InputError, match="block"):
        generate([], 2021, tmp_path)


def test_earth_search_layout_renames_assets(tmp_path):
    from worldcover.bands import S2_ASSET_KEYS

    res = generate([BLOCK_A], 2021, tmp_path, layout="earth-search", period=("2021-03-01", "2021-03-06"),
                   s1=False, dem=False)
    assert res["items_written"][S2_COLLECTION] >= 1
    it = _items(tmp_path, S2_COLLECTION)[0]
    assert set(it["assets"]) == set(S2_ASSET_KEYS["earth-search"].values())
    assert it["properties"]["earthsearch:boa_offset_applied"] is False
    assert "_L2A_" in it["id"]
