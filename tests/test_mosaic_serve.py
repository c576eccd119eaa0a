"""`worldcover mosaic serve`: the web map in a real headless Chromium, its JSON, an s3:// root, refusals.

The mosaic is two fabricated tiles (worldcover.mosaic.synthetic) built by the real `build_mosaic`; the
server is the real CLI in a subprocess (titiler + uvicorn on loopback); the browser is Debian's
/usr/bin/chromium driven by playwright (scripts/setup-chromium.sh installs it; playwright never
downloads one). Expected values come from reading the mosaic directly with rasterio.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import pytest
import rasterio
from typer.testing import CliRunner

from worldcover.grid import PIXELS_PER_DEGREE, Tile
from worldcover.legend import BY_CODE, CLASSES, NODATA
from worldcover.mosaic import MosaicPaths, build_mosaic
from worldcover.mosaic import serve as web
from worldcover.mosaic.synthetic import synthetic_codes, write_tile

YEAR = 2021
TILES = {"N42E009": 21, "N42E012": 22}  # tile -> seed
ROW, COL, SHAPE = 600, 1200, (360, 480)  # where the data sit in each tile (10 m pixels)
CHROMIUM = Path("/usr/bin/chromium")
# the flags the project runs Chromium with (headless comes from playwright's headless=True)
CHROMIUM_FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def patch_centre(tile: str, r: int, c: int) -> tuple[float, float]:
    """(lon, lat) of the centre of data pixel (r, c) of a tile: with 40 px patches and no speckle, a patch centre
    is 20 px from any other class, so a click a few metres off still lands on the same class."""
    t = Tile.parse(tile)
    return t.lon + (COL + c + 0.5) / PIXELS_PER_DEGREE, t.lat + 3 - (ROW + r + 0.5) / PIXELS_PER_DEGREE


def vrt_class(root: Path, lon: float, lat: float) -> int:
    """The class at a point read straight from the mosaic VRT with rasterio (the expected answer)."""
    with rasterio.open(MosaicPaths(root, YEAR).vrt) as src:
        r, c = src.index(lon, lat)
        return int(src.read(1, window=((r, r + 1), (c, c + 1)))[0, 0])


@pytest.fixture(scope="module")
def mosaic_root(tmp_path_factory) -> Path:
    """Two fabricated tiles (uniform 40 px patches, a nodata corner), their mosaic, and a labelled sample."""
    root = tmp_path_factory.mktemp("serve")
    for tile, seed in TILES.items():
        write_tile(root, tile, YEAR, synthetic_codes(SHAPE, seed, speckle=0.0), ROW, COL)
    build_mosaic(root, YEAR, validate=False)
    vdir = root / "validation"
    vdir.mkdir()
    rows = ["id,lon,lat,map_class,reference_class"]
    for i, (r, c) in enumerate([(60, 20), (300, 460), (340, 20)], 1):
        lon, lat = patch_centre("N42E009", r, c)
        code = vrt_class(root, lon, lat)
        rows.append(f"{i},{lon:.9f},{lat:.9f},{code},{code if i != 2 else 10}")
    (vdir / "reference.csv").write_text("\n".join(rows) + "\n")
    return root


def start_server(root, *extra: str, env: dict | None = None) -> tuple[subprocess.Popen, str]:
    """`worldcover mosaic serve ROOT --port 0` in a subprocess; the process and its URL (from its first line)."""
    proc = subprocess.Popen([sys.executable, "-m", "worldcover", "mosaic", "serve", str(root), "--port", "0", *extra],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    line = proc.stderr.readline()
    m = re.search(r"at (http://\S+/) ", line)
    if not m:
        proc.kill()
        raise AssertionError(f"no URL in the server's first line: {line!r} {proc.communicate()[1]!r}")
    return proc, m.group(1)


def stop(proc: subprocess.Popen) -> None:
    proc.terminate()
    proc.wait(timeout=20)


def png_rgba(url: str) -> np.ndarray:
    """A PNG from the server as an RGBA array."""
    import io

    from PIL import Image

    with urllib.request.urlopen(url, timeout=60) as r:
        assert r.headers["content-type"] == "image/png", url
        return np.asarray(Image.open(io.BytesIO(r.read())).convert("RGBA"))


def get_json(url: str):
    with urllib.request.urlopen(url, timeout=60) as r:
        return json.loads(r.read())


@pytest.fixture(scope="module")
def server(mosaic_root):
    if not (web.LEAFLET_DIR / "leaflet.js").is_file():
        pytest.fail(f"Leaflet is not vendored in {web.LEAFLET_DIR}: run `make web`")
    proc, url = start_server(mosaic_root)
    yield url
    stop(proc)


# --- the page in Chromium ------------------------------------------------------------------------


@pytest.mark.slow
def test_the_page_renders_tiles_and_a_click_gives_the_class_read_with_rasterio(mosaic_root, server, tmp_path):
    playwright = pytest.importorskip("playwright.sync_api")
    if not CHROMIUM.is_file():
        pytest.fail(f"{CHROMIUM} is missing: run scripts/setup-chromium.sh")
    lon, lat = patch_centre("N42E009", 180, 260)
    expected = vrt_class(mosaic_root, lon, lat)
    assert expected in BY_CODE
    requests: list[str] = []
    with playwright.sync_playwright() as p:
        ctx = p.chromium.launch_persistent_context(
            str(tmp_path / "profile"), executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_FLAGS,
            viewport={"width": 1000, "height": 700})
        try:
            page = ctx.new_page()
            page.on("request", lambda req: requests.append(req.url))
            page.goto(f"{server}?lat={lat}&lon={lon}&z=14")
            page.wait_for_function("document.body.dataset.ready === '1' && document.body.dataset.tilesLoaded === 'Map'",
                                   timeout=60_000)
            assert page.locator("#legend-items li").count() == len(CLASSES)
            for c in CLASSES:
                assert page.locator(f"#legend-items li[data-code='{c.code}']").inner_text().endswith(c.name)
            shot = tmp_path / "map.png"
            page.locator("#map").screenshot(path=str(shot))
            shutil.copy(shot, os.environ.get("WC_WEBMAP_SCREENSHOT", tmp_path / "kept.png"))
            box = page.locator("#map").bounding_box()

            from PIL import Image

            pixels = np.asarray(Image.open(shot).convert("RGB"))
            h, w, _ = pixels.shape
            colours = {c.code: np.array(c.rgb) for c in CLASSES}
            shares = {code: float(np.all(pixels == rgb, axis=-1).mean()) for code, rgb in colours.items()}
            assert sum(s > 0.01 for s in shares.values()) >= 4, shares  # the map is drawn in legend colours
            assert sum(shares.values()) > 0.3, shares  # not a blank page with a few specks
            # the pixel under the view's centre has the colour of the class rasterio reads there
            assert tuple(pixels[h // 2, w // 2]) == BY_CODE[expected].rgb

            page.mouse.click(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
            page.wait_for_selector("#query-result table", timeout=30_000)
            assert page.locator("#query-result").get_attribute("data-class") == str(expected)
            assert BY_CODE[expected].name in page.locator("#query-result [data-field='class']").inner_text()
            assert page.locator(".leaflet-popup-content").count() == 1
            assert page.locator("path.leaflet-interactive").count() >= 2  # validation sample markers
            assert page.evaluate("document.body.dataset.error") is None
        finally:
            ctx.close()
    assert requests and all(u.startswith(server) for u in requests), [u for u in requests if not u.startswith(server)]


# --- the JSON the page uses ----------------------------------------------------------------------


def test_query_outlines_samples_and_layers(mosaic_root, server):
    lon, lat = patch_centre("N42E012", 100, 100)
    q = get_json(f"{server}query?lon={lon}&lat={lat}")
    code = vrt_class(mosaic_root, lon, lat)
    assert q["class"] == code and q["class_name"] == BY_CODE[code].name and q["tile"] == "N42E012"
    assert q["probability"] == 40 + (code * 7) % 60  # synthetic.write_tile's probability rule
    assert q["input_quality"] == {"s1_obs": 30, "s2_obs": 60, "s2_invalid_pct": 25}
    nodata = get_json(f"{server}query?lon={patch_centre('N42E009', 5, 5)[0]}&lat={patch_centre('N42E009', 5, 5)[1]}")
    assert vrt_class(mosaic_root, nodata["lon"], nodata["lat"]) == NODATA and nodata["class"] is None
    outside = get_json(f"{server}query?lon=0.5&lat=0.5")
    assert outside["tile"] is None and outside["class"] is None and outside["probability"] is None
    with pytest.raises(urllib.error.HTTPError) as bad:
        urllib.request.urlopen(f"{server}query?lon=200&lat=0", timeout=30)
    assert bad.value.code == 400 and "lon 200" in json.loads(bad.value.read())["detail"]

    features = get_json(f"{server}outlines.geojson")["features"]
    kinds = sorted((f["properties"]["tile"], f["properties"]["kind"]) for f in features)
    assert kinds == [(t, k) for t in sorted(TILES) for k in ("data", "tile")]
    samples = get_json(f"{server}samples.geojson")["features"]
    assert [f["properties"]["agree"] for f in samples] == [True, False, True]
    config = get_json(f"{server}config.json")
    assert config["samples"] and [c["code"] for c in config["legend"]] == [c.code for c in CLASSES]

    from morecantile import tms

    t = tms.get("WebMercatorQuad").tile(lon, lat, 14)
    for path in (f"map/tiles/WebMercatorQuad/{t.z}/{t.x}/{t.y}.png", f"layers/probability/tiles/{t.z}/{t.x}/{t.y}.png",
                 f"layers/input_quality/tiles/{t.z}/{t.x}/{t.y}.png"):
        with urllib.request.urlopen(server + path, timeout=60) as r:
            assert r.headers["content-type"] == "image/png" and r.read()[:4] == b"\x89PNG", path
    # the land background (GLOBE): a Saharan tile is all land, one of the open South Pacific all sea (transparent)
    for (lon_, lat_), land_share in (((8.0, 24.0), 1.0), ((-138.0, -29.0), 0.0)):
        t = tms.get("WebMercatorQuad").tile(lon_, lat_, 6)
        assert (png_rgba(f"{server}land/tiles/6/{t.x}/{t.y}.png")[..., 3] > 0).mean() == land_share, (lon_, lat_)
    for path in ("layers/probability/tiles/3/4/2.png", "layers/nope/tiles/14/1/1.png"):  # too far out; no such layer
        with pytest.raises(urllib.error.HTTPError) as err:
            urllib.request.urlopen(server + path, timeout=30)
        assert err.value.code == 404, path


# --- an s3:// root -------------------------------------------------------------------------------


@pytest.mark.slow
def test_an_s3_root_is_served_through_vsis3(mosaic_root, s3_bucket, s3_env):
    import s3fs

    fs = s3fs.S3FileSystem(endpoint_url=s3_env["AWS_ENDPOINT_URL"])
    bucket = s3_bucket.removeprefix("s3://")
    for f in mosaic_root.rglob("*"):
        if f.is_file() and "cache" not in f.parts:
            fs.put_file(str(f), f"{bucket}/run/{f.relative_to(mosaic_root).as_posix()}")
    site = web.load_site(f"{s3_bucket}/run", YEAR)
    assert site.vrt.startswith("/vsis3/")
    assert all(p.startswith("/vsis3/") for t in site.tiles for p in t.products.values())
    lon, lat = patch_centre("N42E012", 100, 100)
    q = web.query(site, lon, lat)
    assert q["class"] == vrt_class(mosaic_root, lon, lat) and q["input_quality"]["s2_obs"] == 60
    assert site.samples is not None and len(site.samples["features"]) == 3
    # the Map tiles through titiler, served from the bucket
    import uvicorn

    sock = web.bind("127.0.0.1", 0)
    server = uvicorn.Server(uvicorn.Config(web.create_app(site), log_level="warning"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        from morecantile import tms

        t = tms.get("WebMercatorQuad").tile(lon, lat, 14)
        base = f"http://127.0.0.1:{sock.getsockname()[1]}/"
        deadline = time.monotonic() + 20
        while not server.started and time.monotonic() < deadline:
            time.sleep(0.05)
        rgba = png_rgba(f"{base}map/tiles/WebMercatorQuad/{t.z}/{t.x}/{t.y}.png")
        assert (rgba[..., 3] > 0).mean() > 0.5  # the tile is mostly drawn, from the bucket's COGs
    finally:
        server.should_exit = True
        thread.join(timeout=10)


# --- refusals ------------------------------------------------------------------------------------


def test_refusals_are_one_line_with_exit_2(mosaic_root, tmp_path, monkeypatch):
    from worldcover.cli import app

    runner = CliRunner()
    res = runner.invoke(app, ["mosaic", "serve", str(tmp_path / "nowhere")])
    assert res.exit_code == 2 and "does not exist" in res.output and "Traceback" not in res.output
    (tmp_path / "empty").mkdir()
    res = runner.invoke(app, ["mosaic", "serve", str(tmp_path / "empty")])
    assert res.exit_code == 2 and "mosaic build" in res.output
    res = runner.invoke(app, ["mosaic", "serve", str(mosaic_root), "--year", "2020"])
    assert res.exit_code == 2 and "no mosaic for 2020" in res.output

    taken = web.bind("127.0.0.1", 0)
    try:
        res = runner.invoke(app, ["mosaic", "serve", str(mosaic_root), "--port", str(taken.getsockname()[1])])
        assert res.exit_code == 2 and "cannot listen on 127.0.0.1" in res.output and "Traceback" not in res.output
    finally:
        taken.close()

    monkeypatch.setattr(web, "LEAFLET_DIR", tmp_path / "no-leaflet")
    res = runner.invoke(app, ["mosaic", "serve", str(mosaic_root)])
    assert res.exit_code == 2 and "make web" in res.output and "Traceback" not in res.output
