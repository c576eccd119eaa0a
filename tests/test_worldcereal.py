"""The WorldCereal Flanders extraction as an archive: real NetCDF -> COGs + STAC, served and loaded.

Uses ``../shared/realdata/worldcereal-flanders-A`` (skipped when absent).
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import rasterio
import xarray as xr

from tests.helpers import SHARED, run_cli
from worldcover.grid import Tile
from worldcover.sources import worldcereal as wc
from worldcover.validation.points import blocks_for_points, blocks_spec, label_points, sample_map, score

SRC = SHARED / "realdata" / "worldcereal-flanders-A"
pytestmark = pytest.mark.skipif(not SRC.is_dir(), reason=f"shared real data {SRC} not present")


@pytest.fixture(scope="module")
def archive(tmp_path_factory):
    out = tmp_path_factory.mktemp("flanders")
    wc.import_extraction(SRC, out)
    return out


@pytest.fixture(scope="module")
def labels_only(tmp_path_factory):
    """Just the label raster (one small COG): enough for the point and block tests, in a second."""
    out = tmp_path_factory.mktemp("flanders-labels")
    wc.convert_labels(wc.open_netcdf(wc.find_files(SRC).labels), out, "flanders-A")
    return out


@pytest.fixture(scope="module")
def source():
    files = wc.find_files(SRC)
    return {"s2_10m": wc.open_netcdf(files.s2_10m), "s2_20m": wc.open_netcdf(files.s2_20m),
            "s1": wc.open_netcdf(files.s1[0])}


def _items(archive, cid: str) -> list[dict]:
    return json.loads((archive / "stac" / "items" / f"{cid}.json").read_text())["features"]


@pytest.mark.slow
def test_archive_has_every_acquisition_as_an_item_with_its_assets(archive):
    s2, s1 = _items(archive, "sentinel-2-l2a"), _items(archive, "sentinel-1-sigma0")
    assert (len(s2), len(s1)) == (118, 159)
    assert not (archive / "stac" / "items" / "sentinel-1-rtc.json").exists()  # sigma0 is not RTC gamma0
    for cid in ("sentinel-2-l2a", "sentinel-1-sigma0"):
        col = json.loads((archive / "stac" / "collections" / f"{cid}.json").read_text())
        assert col["id"] == cid and col["type"] == "Collection"
    for item in s2:
        assert set(item["assets"]) == {"B02", "B03", "B04", "B05", "B06", "B07", "B08", "B8A", "B11", "B12", "SCL"}
        p = item["properties"]
        assert p["s2:processing_baseline"] < "04.00" and p["proj:epsg"] == 32631
        assert 0 <= p["eo:cloud_cover"] <= 100
        for key, asset in item["assets"].items():
            assert asset["proj:epsg"] == 32631
            assert asset["proj:shape"] == ([64, 64] if key in ("B02", "B03", "B04", "B08") else [32, 32])
            if key != "SCL":
                assert asset["raster:bands"][0]["scale"] == 1e-4 and asset["raster:bands"][0]["offset"] == 0
            assert (archive / "data" / "sentinel-2-l2a" / item["id"] / f"{key}.tif").is_file()
    for item in s1:
        p = item["properties"]
        assert p["sat:orbit_state"] == "ascending" and p["sar:product_type"] == "GRD"
        assert p["sar:polarizations"] == ["VV", "VH"] and p["worldcover:backscatter"] == "sigma0"
        assert set(item["assets"]) == {"vv", "vh"}
    assert not list(archive.glob("data/cop-dem-glo-30"))  # no DEM exists for the patch: none is invented
    record = json.loads((archive / "realdata.json").read_text())
    assert record["source_commit"] == wc.SOURCE_COMMIT and record["collections"] == {
        "sentinel-2-l2a": 118, "sentinel-1-sigma0": 159}


@pytest.mark.slow
def test_s2_dn_and_grid_round_trip(archive, source):
    items = _items(archive, "sentinel-2-l2a")
    i = 57
    item = items[i]
    for band, ds in (("B04", source["s2_10m"]), ("B11", source["s2_20m"]), ("SCL", source["s2_20m"])):
        with rasterio.open(item["assets"][band]["href"]) as f:
            assert f.crs.to_epsg() == 32631 and f.nodata == 0
            got = f.read(1)
            # pixel centres of the COG's grid are the NetCDF's x/y coordinates
            assert f.xy(0, 0) == (float(ds["x"][0]), float(ds["y"][0]))
        np.testing.assert_array_equal(got, ds[band].isel(timestamp=i).values)
        assert got.dtype == ds[band].dtype
    scl = source["s2_20m"]["SCL"].isel(timestamp=i).values
    expected = 100 * np.isin(scl, (8, 9, 10)).sum() / (scl > 0).sum()
    assert item["properties"]["eo:cloud_cover"] == pytest.approx(expected, abs=1e-3)
    assert item["properties"]["datetime"].startswith(str(source["s2_10m"]["timestamp"].values[i])[:19])


def test_db_to_linear_keeps_fill_missing():
    coded = np.array([[-106313, 0], [0, -72941]], dtype=np.int32)
    out = wc.db_to_linear(coded)
    assert out.dtype == np.float32 and np.isnan(out[0, 1]) and np.isnan(out[1, 0])
    assert out[0, 0] == pytest.approx(10 ** (-10.6313 / 10), rel=1e-6)


@pytest.mark.slow
def test_s1_db_to_linear_round_trip(archive, source):
    item = _items(archive, "sentinel-1-sigma0")[100]
    raw = source["s1"]["VH"].isel(timestamp=100).values
    with rasterio.open(item["assets"]["vh"]["href"]) as f:
        lin = f.read(1)
        assert f.dtypes[0] == "float32" and np.isnan(f.nodata)
    np.testing.assert_allclose(10 * np.log10(lin.astype(np.float64)) * 1e4, raw, atol=1.0)


def test_labels_map_to_worldcover_codes(labels_only):
    pts = label_points(labels_only)
    assert len(pts) == 2343
    assert pts["class"].value_counts().to_dict() == {40: 1401, 30: 835, 50: 107}
    assert (pts["year"] == 2018).all()
    # the patch: centre 3.024E 50.816N, 10 m pixel centres inside the UTM bounds
    assert pts["x"].between(501360, 502000).all() and pts["y"].between(5629040, 5629680).all()
    assert abs(pts["lon"].mean() - 3.024) < 0.005 and abs(pts["lat"].mean() - 50.816) < 0.005
    np.testing.assert_array_equal(wc.map_labels(np.array([0, 99, 11, 12, 10, 13, 60, 41], dtype=np.uint16)),
                                  [0, 0, 40, 40, 40, 30, 50, 10])


@pytest.mark.slow
def test_reimport_is_kept(archive):
    before = (archive / "realdata.json").read_text()
    wc.import_extraction(SRC, archive)
    assert (archive / "realdata.json").read_text() == before  # cached: nothing rewritten


@pytest.mark.slow  # CLI subprocesses: ~6 s
def test_bad_sources_are_refused(tmp_path):
    code, out, err = run_cli("stac", "import-worldcereal", str(tmp_path / "nope"), "--out", str(tmp_path / "a"))
    assert code == 2 and "is not a directory" in err and "Traceback" not in err and len(err.strip().splitlines()) == 1
    code, out, err = run_cli("stac", "import-worldcereal", str(tmp_path), "--out", str(tmp_path / "a"))
    assert code == 2 and "no S2_L2A_10m_*.nc" in err


def test_blocks_and_map_sampling(labels_only, tmp_path):
    from worldcover.cog import write_cog

    pts = label_points(labels_only)
    tile, blocks = blocks_for_points(pts["lon"], pts["lat"], 256)
    assert tile.id == "N48E003" and blocks_spec(blocks) == "r8c0,r8c1"
    assert blocks_spec(blocks_for_points(pts["lon"], pts["lat"], 512)[1]) == "r4c0"
    # a map whose value encodes the pixel, sampled at the points, against rasterio's own sampler
    block = Tile.parse("N48E003").block(4, 0, 512)
    values = (np.arange(512 * 512) % 251 + 1).astype(np.uint8).reshape(512, 512)
    path = write_cog(tmp_path / "map.tif", values, block.geobox, nodata=0)
    got = sample_map(path, pts["lon"].to_numpy(), pts["lat"].to_numpy())
    with rasterio.open(path) as f:
        ref = np.array([v[0] for v in f.sample(zip(pts["lon"], pts["lat"], strict=True))])
    np.testing.assert_array_equal(got, ref)
    m = score(pts["class"].to_numpy(), np.where(pts["class"] == 40, 40, 10))
    assert m.n == 2343 and m.overall_accuracy == pytest.approx(1401 / 2343)


@pytest.mark.slow
def test_served_archive_loads_one_block(archive, source):
    from worldcover.sources.local_api import LocalStacApi
    from worldcover.sources.stac import StacSource

    block = Tile.parse("N48E003").block(8, 0, 256)
    bands = ("B02", "B03", "B04", "B05", "B06", "B07", "B08", "B8A", "B11", "B12")
    with LocalStacApi(archive) as api:
        inputs = StacSource(api.url, s2_bands=bands).load_block(block, 2018)
        s2 = inputs.s2.sel(time=slice("2018-06-01", "2018-09-30"))
        red = s2["B04"].compute()
        vv = inputs.s1["vv"].compute()
    assert inputs.s2.sizes["time"] == 91 and inputs.s1.sizes["time"] == 109
    assert "B01" not in inputs.s2 and "B09" not in inputs.s2
    # the block holds the patch's western 25 x 69 px (of 256 x 256): reflectance there, NaN elsewhere
    assert 0.015 < np.isfinite(red.values).mean() < 0.04
    east = block.bbox[2]
    src_red = _west_of(source["s2_10m"]["B04"].sel(timestamp=slice("2018-06-01", "2018-09-30")), east)
    assert np.nanmedian(red.values) == pytest.approx(np.nanmedian(np.where(src_red > 0, src_red / 1e4, np.nan)),
                                                     rel=0.05)
    src_vv = _west_of(source["s1"]["VV"].sel(timestamp=slice("2018-01-01", "2018-12-31")), east)
    vv_db = 10 * np.log10(np.nanmedian(vv.values))
    assert vv_db == pytest.approx(np.nanmedian(np.where(src_vv != 0, src_vv / 1e4, np.nan)), abs=0.5)


def _west_of(da: xr.DataArray, lon_max: float) -> np.ndarray:
    """The source values (time, pixel) whose pixel centres lie west of ``lon_max``: the part inside a block."""
    from pyproj import Transformer

    x, y = np.meshgrid(da["x"].values, da["y"].values)
    lon, _ = Transformer.from_crs("EPSG:32631", "EPSG:4326", always_xy=True).transform(x, y)
    return da.values[:, lon < lon_max].astype(np.float64)
