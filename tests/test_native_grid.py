"""The native-grid chain: a block's UTM grid, the 20 m -> 10 m split, and the one resampling to the product grid."""

from __future__ import annotations

import dask.array as dsa
import numpy as np
import pytest
import rasterio.warp
from odc.geo.geobox import GeoBox
from pyproj import Transformer
from rasterio.enums import Resampling

from tests.blas_kernels import outputs_per_kernel, x86_only
from worldcover.grid import NATIVE_ALIGN_M, Tile, native_geobox, utm_crs
from worldcover.regrid import Regrid, all_of_2x2, upsample2

BLOCK = Tile.parse("N45E003").block(18, 18, 512)


def test_native_grid_covers_the_block_with_a_margin_on_the_60_m_lattice():
    gb = native_geobox(BLOCK)
    assert str(gb.crs) == "EPSG:32631" == utm_crs(4.5, 46.5)
    left, bottom, right, top = gb.boundingbox
    assert all(v % NATIVE_ALIGN_M == 0 for v in (left, bottom, right, top))
    inner = BLOCK.geobox.extent.to_crs(gb.crs).boundingbox
    assert left <= inner.left - 80 and right >= inner.right + 80  # 8 px of 10 m on each side
    assert bottom <= inner.bottom - 80 and top >= inner.top + 80
    assert gb.shape[0] % 6 == 0 and gb.shape[1] % 6 == 0  # whole 20 m and 60 m pixels
    # at 46 N a 512 px block of 1/12000 degree is ~3.3 x 4.7 km: ~0.68 native pixels per product pixel
    assert 0.6 < gb.shape[0] * gb.shape[1] / 512**2 < 0.8


def test_utm_zones_north_and_south():
    assert utm_crs(-177.0, 10.0) == "EPSG:32601" and utm_crs(21.5, -24.0) == "EPSG:32734"
    assert utm_crs(180.0, 0.0) == "EPSG:32601"  # 180 E is 180 W, where zone 1 starts
    assert utm_crs(5.0, 60.0) == "EPSG:32632"  # the Norway exception, as the Sentinel-2 tiles there


def _smooth(shape, seed=0):
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0 : shape[0], 0 : shape[1]].astype(np.float32)
    field = np.sin(yy / 17.0) * np.cos(xx / 23.0) + 0.01 * xx
    return (field + 0.01 * rng.standard_normal(shape)).astype(np.float32)


@pytest.fixture(scope="module")
def regrid():
    return Regrid(native_geobox(BLOCK), BLOCK.geobox)


def _gdal(a, src: GeoBox, dst: GeoBox, resampling):
    out = np.full(dst.shape, np.nan, np.float32)
    rasterio.warp.reproject(a, out, src_transform=src.affine, src_crs=str(src.crs), dst_transform=dst.affine,
                            dst_crs=str(dst.crs), resampling=resampling, src_nodata=np.nan, dst_nodata=np.nan,
                            error_threshold=0)
    return out


def test_bilinear_matches_gdal_on_a_smooth_field(regrid):
    a = _smooth(regrid.src.shape)
    ours = regrid.bilinear(a)
    ref = _gdal(a, regrid.src, regrid.dst, Resampling.bilinear)
    assert ours.shape == tuple(BLOCK.shape) and ours.dtype == np.float32
    diff = np.abs(ours - ref)
    assert np.nanmax(diff) < 5e-3 and np.nanmedian(diff) < 1e-3  # values span -1..4: the same interpolation


def test_nearest_picks_the_pixel_holding_each_centre(regrid):
    codes = np.arange(regrid.src.shape[0] * regrid.src.shape[1], dtype=np.int64).reshape(regrid.src.shape)
    ours = regrid.nearest(codes)
    rng = np.random.default_rng(2)
    rows, cols = rng.integers(0, BLOCK.shape[0], 500), rng.integers(0, BLOCK.shape[1], 500)
    lon, lat = regrid.dst.affine @ (cols + 0.5, rows + 0.5)
    x, y = Transformer.from_crs("EPSG:4326", str(regrid.src.crs), always_xy=True).transform(lon, lat)
    c, r = ~regrid.src.affine @ (x, y)
    np.testing.assert_array_equal(ours[rows, cols], np.floor(r).astype(int) * regrid.src.shape[1] + np.floor(c))
    ref = np.zeros(BLOCK.shape, np.uint8)  # GDAL rounds some centres differently, but rarely
    rasterio.warp.reproject((codes % 200).astype(np.uint8), ref, src_transform=regrid.src.affine,
                            src_crs=str(regrid.src.crs), dst_transform=regrid.dst.affine, dst_crs=str(regrid.dst.crs),
                            resampling=Resampling.nearest, error_threshold=0)
    assert (ours % 200 == ref).mean() > 0.97


def test_bilinear_leaves_nan_taps_out(regrid):
    a = np.full(regrid.src.shape, 2.0, np.float32)
    a[:, : a.shape[1] // 2] = np.nan  # the western half missing
    out = regrid.bilinear(np.stack([a, np.full_like(a, np.nan)]))
    assert np.isnan(out[1]).all()  # all four taps missing: missing
    west, east = out[0][:, :50], out[0][:, -50:]
    assert np.isnan(west).all() and np.allclose(east, 2.0)
    assert np.nanmax(out[0]) == pytest.approx(2.0) and np.nanmin(out[0]) == pytest.approx(2.0)  # renormalised


def test_pixels_the_resampling_does_not_read_change_nothing(regrid):
    reads = regrid.reads()
    assert reads.shape == tuple(regrid.src.shape) and reads.dtype == bool
    assert 0.85 < reads.mean() < 0.99  # the margin and the corners of the skewed footprint are left out
    assert not reads[0].any() and not reads[:, 0].any()  # 8 px of margin on every side
    a = _smooth(regrid.src.shape)
    cut = np.where(reads, a, np.nan)
    np.testing.assert_array_equal(regrid.bilinear(cut), regrid.bilinear(a))
    np.testing.assert_array_equal(regrid.nearest(cut), regrid.nearest(a))


def test_regrid_refuses_an_array_on_another_grid(regrid):
    with pytest.raises(ValueError, match="not on the source grid"):
        regrid.bilinear(np.zeros((3, 10, 10), np.float32))


@x86_only
def test_the_pixel_mapping_has_the_same_bits_whatever_blas_kernel():
    """Taps and weights of a 2048 px block at 57 N (where a product with the weight matrix differed under
    two BLAS kernels in 17 float32 weights): the same bits, so a pod and the host resample alike."""
    script = (
        "import hashlib; from worldcover.grid import Tile, native_geobox; from worldcover.regrid import Regrid\n"
        "b = Tile(57, -3).block(2, 1, 2048); rg = Regrid(native_geobox(b), b.geobox)\n"
        "print(hashlib.sha256(b''.join(a.tobytes() for a in (*rg._taps, *rg._weights, rg._nearest))).hexdigest())"
    )
    outs = outputs_per_kernel(script)
    assert outs[0] == outs[1] and len(outs[0].strip()) == 64


def test_upsample2_is_exact_on_a_ramp_and_the_same_on_dask():
    yy, xx = np.mgrid[0:6, 0:8].astype(np.float32)
    ramp = (3 * yy + xx)[None]  # values at 20 m pixel centres
    up = upsample2(ramp)
    assert up.shape == (1, 12, 16)
    # 10 m centres sit a quarter of a 20 m pixel from the 20 m centres: the ramp continues exactly inside
    fy, fx = np.mgrid[0:12, 0:16].astype(np.float32)
    expected = 3 * (fy / 2 - 0.25) + (fx / 2 - 0.25)
    assert np.allclose(up[0, 1:-1, 1:-1], expected[1:-1, 1:-1])
    assert up[0, 0, 0] == pytest.approx(0.0)  # the edge is clamped, not extrapolated
    rng = np.random.default_rng(3)
    a = rng.random((4, 40, 30), dtype=np.float32)
    a[a > 0.9] = np.nan
    lazy = upsample2(dsa.from_array(a, chunks=(4, 16, 12))).compute()
    np.testing.assert_array_equal(lazy, upsample2(a))  # chunk borders see the same neighbours


def test_upsample2_nan_neighbours_and_nearest():
    a = np.array([[[1.0, np.nan], [3.0, 5.0]]], np.float32)
    up = upsample2(a)
    assert np.isnan(up[0, :2, 2:]).all()  # a missing pixel stays missing
    assert np.isfinite(up[0, :2, :2]).all()  # its neighbours do not turn missing
    scl = np.array([[[4, 9], [8, 0]]], np.uint8)
    np.testing.assert_array_equal(upsample2(scl, nearest=True)[0], np.kron(scl[0], np.ones((2, 2), np.uint8)))


def test_all_of_2x2_needs_every_pixel_and_is_the_same_on_dask():
    rng = np.random.default_rng(5)
    m = rng.random((3, 12, 16)) > 0.1
    half = all_of_2x2(m)
    assert half.shape == (3, 6, 8)
    np.testing.assert_array_equal(half, m[:, 0::2, 0::2] & m[:, 1::2, 0::2] & m[:, 0::2, 1::2] & m[:, 1::2, 1::2])
    # odd 10 m chunks (a chunk edge inside a 20 m pixel) are rechunked onto the 20 m chunks asked for
    lazy = all_of_2x2(dsa.from_array(m, chunks=(3, 5, 7)), chunks=((3,), (4, 2), (3, 5)))
    assert lazy.chunks == ((3,), (4, 2), (3, 5))
    np.testing.assert_array_equal(lazy.compute(), half)


def _s2_pair(n_t=9, h=10, w=12, seed=0, lazy=False):
    """A 10 m S2 Dataset (B04 at 10 m, B11 doubled from 20 m, SCL doubled) and the 20 m Dataset it doubles.

    B11 is a per-date level plus a fixed field: doubling (weights summing to 1) and a per-pixel median over
    dates then commute, so compositing at 20 m and at 10 m must give the same values."""
    import pandas as pd
    import xarray as xr

    rng = np.random.default_rng(seed)
    times = pd.date_range("2021-01-03", periods=n_t, freq="5D")
    level = rng.random(n_t).astype(np.float32)[:, None, None]
    b11 = (0.2 * level + 0.05 * _smooth((h, w), seed)[None]).astype(np.float32)
    clear = rng.random(n_t) > 0.3  # whole scenes clear or cloudy: the mask is the same at 10 and 20 m
    scl = np.where(clear[:, None, None], 4, 9).astype(np.uint8) * np.ones((1, h, w), np.uint8)
    yy, xx = np.arange(2 * h) * -10.0, np.arange(2 * w) * 10.0
    y20, x20 = np.arange(h) * -20.0 - 5, np.arange(w) * 20.0 + 5

    def arr(a, y, x):
        a = dsa.from_array(a, chunks=(n_t, max(1, a.shape[1] // 2), max(1, a.shape[2] // 2))) if lazy else a
        return xr.DataArray(a, dims=("time", "y", "x"), coords={"time": times, "y": y, "x": x})

    fine = xr.Dataset({"B04": arr(rng.random((n_t, 2 * h, 2 * w), dtype=np.float32), yy, xx),
                       "B11": arr(upsample2(b11), yy, xx), "SCL": arr(upsample2(scl, nearest=True), yy, xx)})
    coarse = xr.Dataset({"B11": arr(b11, y20, x20), "SCL": arr(scl, y20, x20)})
    return fine, coarse


@pytest.mark.parametrize("lazy", [False, True])
def test_20m_bands_composited_at_20m_give_the_10m_composites(lazy):
    from worldcover.preprocess.s2 import S2MaskConfig, preprocess_s2

    fine, coarse = _s2_pair(lazy=lazy)
    config = S2MaskConfig(dilation_radius=0)
    at_10m = preprocess_s2(fine, 2021, config)
    at_20m = preprocess_s2(fine, 2021, config, coarse=coarse)
    assert list(at_20m.composites.data_vars) == ["B04", "B11"]
    assert at_20m.composites["B11"].shape == at_10m.composites["B11"].shape == (36, 20, 24)
    np.testing.assert_array_equal(at_20m.composites["B04"].values, at_10m.composites["B04"].values)
    np.testing.assert_allclose(at_20m.composites["B11"].values, at_10m.composites["B11"].values, atol=2e-6)
    np.testing.assert_array_equal(at_20m.quality["s2_valid"].values, at_10m.quality["s2_valid"].values)


def test_a_20m_observation_is_left_out_where_any_of_its_10m_pixels_is_cloudy():
    from worldcover.preprocess.s2 import S2MaskConfig, preprocess_s2

    fine, coarse = _s2_pair(n_t=1, h=2, w=2)
    fine["SCL"][:] = 4
    fine["SCL"][0, 0, 0] = 9  # one cloudy 10 m pixel of the top-left 20 m pixel, the only date
    comps = preprocess_s2(fine, 2021, S2MaskConfig(dilation_radius=0), coarse=coarse).composites
    b11 = comps["B11"].values[0]
    assert np.isnan(b11[:2, :2]).all()  # that 20 m observation is not used: no value all year
    assert np.isfinite(b11[2:, 2:]).all()
    assert np.isnan(comps["B04"].values[0, 0, 0]) and np.isfinite(comps["B04"].values[0, 0, 1])  # 10 m: per pixel


def test_20m_bands_of_another_grid_are_refused():
    from worldcover.errors import InputError
    from worldcover.preprocess.s2 import preprocess_s2

    fine, coarse = _s2_pair()
    with pytest.raises(InputError, match="not half the 10 m grid"):
        preprocess_s2(fine, 2021, coarse=coarse.isel(y=slice(1, None)))


@pytest.mark.slow  # the session archive (~20 s) and two block runs
def test_native_and_product_grids_map_the_same_block_alike(small_api, tmp_path):
    """The tile chain on both grids: the same products, and the same class on most pixels."""
    import rasterio

    from tests.small_campaign import ONE_BLOCK, YEAR
    from worldcover.chain import ChainParams
    from worldcover.tile.run import run_tile

    maps = {}
    for grid in ("native", "product"):
        run = run_tile("N45E003", YEAR, small_api.url, "default", tmp_path / grid, block_size=60, blocks=ONE_BLOCK,
                       params=ChainParams(grid=grid))
        assert run.status == "done"
        with rasterio.open(run.outputs["map"]) as src:
            maps[grid] = src.read(1)
    native, product = maps["native"], maps["product"]
    assert native.shape == product.shape == (60, 60)
    assert (native > 0).mean() > 0.95  # mapped, not nodata
    assert (native == product).mean() > 0.9  # a 60 px block is mostly edges: the 1024 px figure is in benchmarks/


@pytest.mark.slow  # the session archive (~20 s) and one block through the chain twice
def test_the_default_model_learns_from_the_pixels_tile_run_scores(small_api):
    """The default model's training features come from tile run's chain: on the block's native UTM grid, each
    pixel labelled with the class simulated there; the held-out map it reports is the Map classify_block makes."""
    from tests.helpers import DEFAULT_MODEL
    from tests.small_campaign import SEED, YEAR, blocks
    from worldcover.chain import ChainParams, load_block
    from worldcover.model import Model
    from worldcover.model.default import block_features, grid_of, product_map
    from worldcover.sim.world import truth_on
    from worldcover.sources.stac import StacSource
    from worldcover.tile.run import classify_block, feature_config_of

    block = blocks("N45E003")[0]
    source = StacSource(small_api.url)
    model = Model.load(DEFAULT_MODEL)
    feats = block_features(source, block, YEAR, {"default": feature_config_of(model)})["default"]
    grid = grid_of(feats, block)
    assert grid == native_geobox(block, "EPSG:32631") and feats.shape[1:] == grid.shape
    labels = truth_on(grid, SEED)
    assert labels.shape == grid.shape and (labels.values > 0).all()

    result = classify_block(block, YEAR, load_block(source, block, YEAR, ChainParams()), model, ChainParams())
    mapped = result.codes != 0
    assert mapped.mean() > 0.95
    np.testing.assert_array_equal(product_map(model, feats, block)[mapped], result.codes[mapped])


def test_chain_params_refuse_an_unknown_grid():
    from worldcover.chain import ChainParams
    from worldcover.errors import InputError

    with pytest.raises(InputError, match="invalid grid 'utm'"):
        ChainParams(grid="utm")


def test_prefetch_loads_one_block_ahead_in_order_and_defers_errors():
    import threading
    import time

    from worldcover.tile.run import prefetched

    started: list[str] = []
    gate = threading.Event()

    def load(block):
        started.append(block)
        if block == "c":
            raise RuntimeError("c failed")
        return block.upper()

    it = prefetched(["a", "b", "c"], load)
    assert next(it) == ("a", "A")
    deadline = time.monotonic() + 5
    while "b" not in started and time.monotonic() < deadline:  # b is loaded while "a" is being computed
        gate.wait(0.01)
    assert started == ["a", "b"]
    assert next(it) == ("b", "B")  # c's failure is only raised at c's turn
    with pytest.raises(RuntimeError, match="c failed"):
        next(it)
    assert list(prefetched([], load)) == []


@pytest.mark.slow  # a CLI subprocess: ~5 s
def test_tile_run_refuses_an_unknown_grid_in_one_line(tmp_path):
    from tests.helpers import run_cli

    code, out, err = run_cli("tile", "run", "N45E003", "--year", "2021", "--source", "http://127.0.0.1:9",
                             "--out", str(tmp_path), "--grid", "utm")
    assert code == 2 and "Traceback" not in err
    assert err.strip() == "error: invalid grid 'utm': expected one of native, product"


def test_chunks_lie_on_the_cogs_internal_tiles(tmp_path):
    import rasterio
    from affine import Affine

    from worldcover.sources.stac import tile_aligned

    path = tmp_path / "b04.tif"
    transform = Affine(10, 0, 600000, 0, -10, 5000000)
    with rasterio.open(path, "w", driver="GTiff", width=200, height=160, count=1, dtype="uint16", crs="EPSG:32631",
                       transform=transform, tiled=True, blockxsize=64, blockysize=32) as f:
        f.write(np.ones((1, 160, 200), np.uint16))
    inner = GeoBox((100, 120), transform @ Affine.translation(70, 40), "EPSG:32631")  # 70 px in, 40 px down
    ext, window, chunks = tile_aligned(inner, str(path), chunk=100)
    assert ext.affine == transform @ Affine.translation(64, 32)  # back to the tile corner (64, 32)
    assert window == (slice(8, 108), slice(6, 126)) and ext.shape == (108, 126)
    assert chunks == {"time": -1, "y": 96, "x": 64}  # whole tiles, as near the asked 100 px as they go
    shifted = GeoBox((100, 120), transform @ Affine.translation(70.5, 40), "EPSG:32631")  # not on the file's grid
    assert tile_aligned(shifted, str(path), chunk=100)[1] is None
    coarser = GeoBox((50, 60), Affine(20, 0, 600000, 0, -20, 5000000), "EPSG:32631")
    assert tile_aligned(coarser, str(path), chunk=100)[1] is None


def test_read_windows_are_whole_rows_of_chunks_across_the_full_width():
    from affine import Affine

    from worldcover.sources.stac import read_chunks

    utm = Affine(10, 0, 600000, 0, -10, 5000000)
    ten = GeoBox((1700, 1660), utm, "EPSG:32631")  # a 2048 px block's native 10 m grid, about
    assert read_chunks(ten, {"time": -1, "y": 1024, "x": 1024}, max_px=2_000_000) == {"time": -1, "y": 1024, "x": 1660}
    twenty = GeoBox((850, 830), utm * Affine.scale(2), "EPSG:32631")
    assert read_chunks(twenty, {"time": -1, "y": 512, "x": 512}, max_px=2_000_000) == {"time": -1, "y": 850, "x": 830}
    assert read_chunks(ten, {"time": -1, "y": 256, "x": 256}, max_px=1_000_000) == {"time": -1, "y": 512, "x": 1660}
    assert read_chunks(ten, None) is None
    assert read_chunks(ten, {"time": -1, "y": "auto", "x": "auto"}) == {"time": -1, "y": "auto", "x": "auto"}


def _s1_items(tmp_path, n=3, size=(70, 90), block=16):
    """``n`` S1 items of VV/VH float32 COGs (tiled ``block`` px) on one UTM 10 m grid."""
    import datetime as dt

    import pystac
    import rasterio
    from affine import Affine

    transform = Affine(10, 0, 600000, 0, -10, 5000000)
    rng = np.random.default_rng(4)
    bbox = [3.0, 45.0, 3.1, 45.1]
    geometry = {"type": "Polygon", "coordinates": [[[3.0, 45.0], [3.1, 45.0], [3.1, 45.1], [3.0, 45.1], [3.0, 45.0]]]}
    items = []
    for k in range(n):
        item = pystac.Item(f"s1-{k}", geometry, bbox, dt.datetime(2021, 1, 1 + 6 * k, tzinfo=dt.UTC), {})
        for pol in ("vv", "vh"):
            path = tmp_path / f"{k}-{pol}.tif"
            with rasterio.open(path, "w", driver="GTiff", width=size[1], height=size[0], count=1, dtype="float32",
                               crs="EPSG:32631", transform=transform, tiled=True, blockxsize=block,
                               blockysize=block) as f:
                f.write(rng.uniform(0.01, 0.3, (1, *size)).astype(np.float32))
            item.add_asset(pol, pystac.Asset(str(path), media_type=pystac.MediaType.COG, roles=["data"]))
        items.append(item)
    return items, GeoBox(size, transform, "EPSG:32631")


def test_a_file_read_in_wide_windows_gives_the_same_values_in_the_same_chunks(tmp_path, monkeypatch):
    """Aligned loads read each file in a few full-width windows (fewer odc-stac reads) and cut them into the
    tile-aligned chunks: the values are those of one read per chunk."""
    import odc.stac

    import worldcover.sources.stac as stac

    items, grid = _s1_items(tmp_path)
    inner = grid[5:65, 7:87]  # off the tile corners: the aligned grid starts up and left of it
    asked: list = []
    load = odc.stac.load
    monkeypatch.setattr(odc.stac, "load", lambda *a, **k: asked.append(k["chunks"]) or load(*a, **k))
    wide = stac.load_s1(items, inner, chunk=32, align=True)
    plain = stac.load_s1(items, inner, chunk=32, align=False)
    assert asked[0] == {"time": -1, "y": 65, "x": 87}  # the grid extended to the tile corner, one window per file
    assert asked[1] == {"time": -1, "y": 32, "x": 32}
    assert wide.vv.chunks == ((3,), (27, 32, 1), (25, 32, 23))  # cut on the tile-aligned edges 32 and 64
    for pol in ("vv", "vh"):
        np.testing.assert_array_equal(wide[pol].values, plain[pol].values)
