"""The mosaic build as a whole: incremental caching, idempotence, atomicity, STAC offline, CLI errors."""

from __future__ import annotations

import json
import socket
from pathlib import Path

import numpy as np
import pytest
import rasterio
from typer.testing import CliRunner

from worldcover.errors import DataError, InputError
from worldcover.layout import multihash_sha256, tile_paths
from worldcover.legend import CLASSES
from worldcover.mosaic import MosaicPaths, build_mosaic, validate_offline
from worldcover.mosaic import stac as mstac
from worldcover.mosaic.synthetic import synthetic_codes, write_tile
from worldcover.storage import sha256 as sha256_file

YEAR = 2021
TILES = {"N42E009": 11, "N42E012": 12, "N45E009": 13}  # tile -> seed


def add_tile(root: Path, tile: str, seed: int | None = None) -> None:
    seed = TILES[tile] if seed is None else seed
    write_tile(root, tile, YEAR, synthetic_codes((360, 480), seed), 600, 1200)


def mtimes(folder: Path) -> dict[str, int]:
    return {str(p.relative_to(folder)): p.stat().st_mtime_ns for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture
def no_network(monkeypatch):
    """Any attempt to open a network connection fails the test."""
    def refuse(*args, **kwargs):
        raise AssertionError("network access attempted")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)


# --- incremental and idempotent ----------------------------------------------------------


@pytest.mark.slow  # two mosaic builds: ~5 s
def test_adding_a_tile_computes_only_its_pieces(tmp_path):
    add_tile(tmp_path, "N42E009")
    add_tile(tmp_path, "N42E012")
    first = build_mosaic(tmp_path, YEAR)
    assert first["status"] == "built" and first["computed"] == ["N42E009", "N42E012"] and first["reused"] == []
    paths = MosaicPaths(tmp_path, YEAR)
    cached = {t: mtimes(paths.cache / t) for t in ("N42E009", "N42E012")}

    add_tile(tmp_path, "N45E009")
    second = build_mosaic(tmp_path, YEAR)
    assert second["computed"] == ["N45E009"] and second["reused"] == ["N42E009", "N42E012"]
    for t, before in cached.items():
        assert mtimes(paths.cache / t) == before  # untouched: not recomputed, not rewritten
    assert second["extent"] == [9, 42, 15, 48]
    with rasterio.open(paths.vrt) as src:  # the new tile is in the mosaic
        row, col = src.index(9 + 1200.5 / 12000, 48 - 600.5 / 12000)
        new = src.read(1, window=((row, row + 360), (col, col + 480)))
    with rasterio.open(tile_paths(tmp_path, "N45E009", YEAR).map) as tsrc:
        np.testing.assert_array_equal(new, tsrc.read(1))
    assert sorted(p.stem for p in paths.items.glob("*.json")) == sorted(TILES)

    # a tile re-run with new content: only that tile is recomputed
    add_tile(tmp_path, "N42E012", seed=99)
    third = build_mosaic(tmp_path, YEAR)
    assert third["computed"] == ["N42E012"]
    assert third["area_km2"] != second["area_km2"]


def test_unchanged_rebuild_recomputes_and_rewrites_nothing(tmp_path):
    for t in TILES:
        add_tile(tmp_path, t)
    build_mosaic(tmp_path, YEAR)
    paths = MosaicPaths(tmp_path, YEAR)
    before = mtimes(paths.dir)
    again = build_mosaic(tmp_path, YEAR)
    assert again["status"] == "up-to-date" and again["computed"] == [] and again["reused"] == sorted(TILES)
    assert mtimes(paths.dir) == before
    # an output removed behind our back is noticed: the products are rebuilt, the tile pieces reused
    paths.level("1km").unlink()
    rebuilt = build_mosaic(tmp_path, YEAR)
    assert rebuilt["status"] == "built" and rebuilt["computed"] == [] and paths.level("1km").is_file()
    # force recomputes everything
    assert build_mosaic(tmp_path, YEAR, force=True)["computed"] == sorted(TILES)


def test_a_corrupt_cache_entry_is_recomputed(tmp_path):
    add_tile(tmp_path, "N42E009")
    build_mosaic(tmp_path, YEAR)
    piece = MosaicPaths(tmp_path, YEAR).cache / "N42E009" / "100m.tif"
    piece.write_bytes(piece.read_bytes()[:100])  # truncated: size no longer the recorded one
    assert build_mosaic(tmp_path, YEAR)["status"] == "up-to-date"  # the outputs are intact: nothing to do
    MosaicPaths(tmp_path, YEAR).manifest.unlink()
    assert build_mosaic(tmp_path, YEAR)["computed"] == ["N42E009"]


@pytest.mark.slow  # a process pool: ~8 s
def test_parallel_workers_give_the_same_mosaic(tmp_path):
    for t in TILES:
        add_tile(tmp_path, t)
    serial = build_mosaic(tmp_path, YEAR)
    with rasterio.open(MosaicPaths(tmp_path, YEAR).level("100m")) as src:
        expected = src.read(1)
    parallel = build_mosaic(tmp_path, YEAR, force=True, workers=2)
    assert parallel["computed"] == sorted(TILES) and parallel["area_km2"] == serial["area_km2"]
    with rasterio.open(MosaicPaths(tmp_path, YEAR).level("100m")) as src:
        np.testing.assert_array_equal(src.read(1), expected)


def test_a_failed_build_leaves_the_previous_products_whole(tmp_path, monkeypatch):
    add_tile(tmp_path, "N42E009")
    build_mosaic(tmp_path, YEAR)
    paths = MosaicPaths(tmp_path, YEAR)
    before = {p: p.read_bytes() for p in paths.outputs().values()}
    add_tile(tmp_path, "N42E012")

    def broken(*args, **kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr("worldcover.mosaic.build.render_quicklook", broken)
    with pytest.raises(RuntimeError, match="disk full"):
        build_mosaic(tmp_path, YEAR)
    assert paths.collection.read_bytes() == before[paths.collection]  # written after the failure point: old
    assert paths.manifest.is_file() and json.loads(paths.manifest.read_text())["summary"]["tiles"] == 1
    assert not [p for p in paths.dir.rglob(".*") if p.is_file()]  # no temporary files left behind
    monkeypatch.undo()
    assert build_mosaic(tmp_path, YEAR)["tiles"] == 2  # the next run completes it


# --- STAC --------------------------------------------------------------------------------


def test_stac_collection_and_items_validate_offline(tmp_path, no_network):
    for t in TILES:
        add_tile(tmp_path, t)
    summary = build_mosaic(tmp_path, YEAR)
    paths = MosaicPaths(tmp_path, YEAR)
    coll = json.loads(paths.collection.read_text())
    schemas = set()
    validator = mstac.OfflineValidator()
    for d in [coll, *(json.loads(p.read_text()) for p in paths.items.glob("*.json"))]:
        report = validate_offline(d, validator)
        assert report.not_vendored == []
        schemas.update(report.validated)
    assert schemas == {mstac.PROJECTION, mstac.RASTER, mstac.CLASSIFICATION, mstac.FILE,
                       "https://schemas.stacspec.org/v1.1.0/collection-spec/json-schema/collection.json",
                       "https://schemas.stacspec.org/v1.1.0/item-spec/json-schema/item.json"}
    assert set(summary["stac"]["validated_against"]) == schemas

    # extents, legend, assets
    assert coll["extent"]["spatial"]["bbox"] == [[9.0, 42.0, 15.0, 48.0]]
    assert coll["extent"]["temporal"]["interval"] == [["2021-01-01T00:00:00Z", "2021-12-31T23:59:59Z"]]
    assert set(coll["assets"]) == {"map", "map_100m", "map_1km", "map_10km", "quicklook", "areas_csv", "areas_json"}
    classes = coll["assets"]["map"]["classification:classes"]
    assert [(c["value"], c.get("color_hint")) for c in classes[1:]] == [(c.code, c.colour) for c in CLASSES]
    assert [c["description"] for c in classes[1:]] == [c.name for c in CLASSES] and classes[0]["nodata"] is True
    for key, asset in coll["assets"].items():
        target = paths.collection.parent / asset["href"]
        assert target.is_file() and asset["file:checksum"] == multihash_sha256(sha256_file(target)), key
    lv = coll["assets"]["map_1km"]
    assert lv["proj:code"] == "EPSG:4326" and lv["raster:bands"][0] == {"data_type": "uint8", "nodata": 0,
                                                                          "spatial_resolution": 1000}
    assert lv["proj:shape"] == [720, 720]
    item_links = sorted(link["href"] for link in coll["links"] if link["rel"] == "item")
    assert item_links == [f"./items/{t}.json" for t in sorted(TILES)]

    item = json.loads((paths.items / "N42E009.json").read_text())
    assert item["collection"] == coll["id"]
    for key, asset in item["assets"].items():
        target = (paths.items / asset["href"]).resolve()
        assert target.parent == tile_paths(tmp_path, "N42E009", YEAR).dir.resolve()
        assert asset["file:checksum"] == multihash_sha256(sha256_file(target)), key
    assert item["assets"]["map"]["proj:transform"][2] == pytest.approx(9 + 1200 / 12000)
    assert "classification:classes" in item["assets"]["map"] and "classification:classes" not in item["assets"]["prob"]


def test_invalid_stac_is_caught_offline(no_network):
    good = {
        "type": "Feature", "stac_version": "1.1.0", "id": "x", "stac_extensions": [mstac.CLASSIFICATION],
        "geometry": {"type": "Point", "coordinates": [0, 0]}, "bbox": [0, 0, 0, 0],
        "properties": {"datetime": "2021-01-01T00:00:00Z"}, "links": [],
        "assets": {"map": {"href": "./m.tif", **mstac.classification_fields()}},
    }
    assert mstac.CLASSIFICATION in validate_offline(good).validated
    bad = json.loads(json.dumps(good))
    bad["assets"]["map"]["classification:classes"][1]["color_hint"] = "green"
    with pytest.raises(DataError, match="'green' does not match .* at assets/map/classification:classes/1/color_hint"):
        validate_offline(bad)
    unknown = dict(good, stac_extensions=[mstac.CLASSIFICATION, "https://example.org/ext/v1.0.0/schema.json"])
    assert validate_offline(unknown).not_vendored == ["https://example.org/ext/v1.0.0/schema.json"]


# --- bad input ---------------------------------------------------------------------------


def test_library_input_errors(tmp_path):
    with pytest.raises(InputError, match="does not exist"):
        build_mosaic(tmp_path / "missing", YEAR)
    with pytest.raises(InputError, match="no finished tiles for year 2021"):
        build_mosaic(tmp_path, YEAR)
    with pytest.raises(InputError, match="no year given"):
        build_mosaic(tmp_path)
    add_tile(tmp_path, "N42E009")
    with pytest.raises(InputError, match=r"no finished tiles for year 2020 .*found for 2021"):
        build_mosaic(tmp_path, 2020)
    with pytest.raises(InputError, match="invalid year"):
        build_mosaic(tmp_path, 1999)
    from worldcover.campaign.plan import CampaignPlan

    CampaignPlan.create("c", YEAR, tiles=["N42E009"]).save(tmp_path / "campaign.json")
    with pytest.raises(InputError, match="campaign 'c' .* is for year 2021, not 2022"):
        build_mosaic(tmp_path, 2022)
    assert build_mosaic(tmp_path)["year"] == YEAR  # the year comes from campaign.json
    (tmp_path / "campaign.json").write_text("{not json")
    with pytest.raises(InputError, match="not valid JSON"):
        build_mosaic(tmp_path, YEAR)


def test_cli_build_and_bad_input(tmp_path):
    from worldcover.cli.mosaic import app

    runner = CliRunner()
    cases = [
        (["build", "--campaign", str(tmp_path / "missing"), "--year", "2021"], "does not exist"),
        (["build", "--campaign", str(tmp_path), "--year", "2021"], "no finished tiles"),
    ]
    add_tile(tmp_path / "c", "N42E009")
    cases.append((["build", "--campaign", str(tmp_path / "c"), "--year", "2020"], "found for 2021"))
    for args, message in cases:
        result = runner.invoke(app, args)
        assert result.exit_code == 2, result.output
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0]
        assert "Traceback" not in result.output
    ok = runner.invoke(app, ["build", "--campaign", str(tmp_path / "c"), "--year", "2021", "--quiet", "--json"])
    assert ok.exit_code == 0, ok.output
    assert json.loads(ok.stdout)["computed"] == ["N42E009"]
    # without --json: a short summary for people, not the JSON
    again = runner.invoke(app, ["build", "--campaign", str(tmp_path / "c"), "--year", "2021", "--quiet"])
    assert again.exit_code == 0, again.output
    text = again.stderr
    assert "Mosaic 2021" in text and "up-to-date" in text and "1 finished" in text and "km² mapped" in text
    assert "{" not in text and len(text.splitlines()) < 40


def test_cli_group_mounts_under_the_main_command(tmp_path):
    """Registered as ``worldcover mosaic`` (add_typer), errors still give one line and exit 2."""
    import typer

    from worldcover.cli import _FriendlyErrors
    from worldcover.cli.mosaic import app

    main = typer.Typer(cls=_FriendlyErrors, no_args_is_help=True)
    main.add_typer(app, name="mosaic")

    @main.command("noop")
    def _noop() -> None:  # a second command, as in the real CLI
        pass

    result = CliRunner().invoke(main, ["mosaic", "build", "--campaign", str(tmp_path / "none"), "--year", "2021"])
    assert result.exit_code == 2 and result.stderr.strip().startswith("error: campaign root")


def test_tile_item_extensions_without_a_schema_are_reported_not_fetched(tmp_path, no_network):
    add_tile(tmp_path, "N42E009")
    item_path = tile_paths(tmp_path, "N42E009", YEAR).item
    item = json.loads(item_path.read_text())
    item["stac_extensions"].append("https://example.org/processing/v9.9.9/schema.json")
    item["properties"]["processing:software"] = {"worldcover": "0.1.0"}
    item_path.write_text(json.dumps(item))
    summary = build_mosaic(tmp_path, YEAR)
    assert summary["stac"]["not_vendored"] == ["https://example.org/processing/v9.9.9/schema.json"]
    copied = json.loads((MosaicPaths(tmp_path, YEAR).items / "N42E009.json").read_text())
    assert copied["properties"]["processing:software"] == {"worldcover": "0.1.0"}  # provenance kept


def test_finished_check_hashes_each_product_once_and_sees_a_rewrite(tmp_path, monkeypatch):
    """The checksum memo: a second check reads no product; a product rewritten in place is caught."""
    import os
    import time

    import worldcover.storage as storage
    from worldcover.layout import is_finished

    paths = write_tile(tmp_path, "N00E006", 2021, synthetic_codes((96, 96), seed=1), 0, 0)
    an_hour_ago = time.time() - 3600
    for f in paths.dir.glob("*.tif"):
        os.utime(f, (an_hour_ago, an_hour_ago))  # products written earlier (fresh files are never memoised)
    hashed: list[str] = []
    real = storage.sha256
    monkeypatch.setattr(storage, "sha256", lambda p: hashed.append(Path(p).name) or real(p))
    assert is_finished(paths) and len(hashed) >= 2
    first = len(hashed)
    assert is_finished(paths) and len(hashed) == first  # remembered by size, mtime and inode
    data = bytearray(paths.map.read_bytes())
    data[-100] ^= 0xFF  # same size, new content (and a new mtime)
    paths.map.write_bytes(bytes(data))
    assert not is_finished(paths)
    assert hashed[first:] == [paths.map.name]
    assert not is_finished(paths)  # a fresh file is hashed on every check until it settles
    assert hashed[first:] == [paths.map.name] * 2


def test_atomic_workdir_keeps_a_writers_own_temp_files_hidden_and_swept(tmp_path):
    """A writer that drops its own temp file beside its output (rio-cogeo on disk) leaves nothing visible."""
    from worldcover.storage import atomic_workdir, is_temp_name, remove_temps

    dest = tmp_path / "Map.tif"
    with pytest.raises(RuntimeError), atomic_workdir(dest) as out:
        (out.parent / "tmpabc123.tif").write_bytes(b"half")  # the writer's own temp file
        out.write_bytes(b"partial")
        raise RuntimeError("killed")
    assert list(tmp_path.iterdir()) == []  # a failed write cleans up after itself
    with atomic_workdir(dest) as out:
        out.write_bytes(b"whole")
        scratch = out.parent
        assert is_temp_name(scratch.name) and scratch.parent == tmp_path
    assert dest.read_bytes() == b"whole" and not scratch.exists()
    scratch.mkdir()  # what a SIGKILL would leave behind
    (scratch / "tmpabc123.tif").write_bytes(b"half")
    assert remove_temps(tmp_path) == 1 and [p.name for p in tmp_path.iterdir()] == ["Map.tif"]


def test_a_level_cog_is_written_in_a_scratch_folder_that_a_killed_run_leaves_swept(tmp_path, monkeypatch):
    """GDAL's COG driver computes overviews into its own ``<file>.ovr.tmp`` beside the file it writes; a merge
    killed then left it beside the mosaic, under no name the sweep knew (seen in test_kill_resume). The level
    COG is written inside a marked scratch folder, which remove_temps removes whole."""
    from worldcover.legend import CODES, NODATA, colormap
    from worldcover.mosaic import overviews
    from worldcover.storage import is_temp_name

    src = tmp_path / "level-source.tif"
    codes = np.repeat(np.array(CODES, dtype=np.uint8), 1024 * 1024 // len(CODES) + 1)[: 1024 * 1024]
    with rasterio.open(src, "w", driver="GTiff", width=1024, height=1024, count=1, dtype="uint8", nodata=NODATA,
                       crs="EPSG:4326", transform=rasterio.transform.from_origin(6, 3, 1 / 12000, 1 / 12000)) as f:
        f.write(codes.reshape(1024, 1024), 1)
        f.write_colormap(1, colormap())
    written = []

    def spy(source, dst, **options):
        written.append(Path(dst))
        return real(source, dst, **options)

    real = overviews.rio_copy
    monkeypatch.setattr(overviews, "rio_copy", spy)
    dest = tmp_path / "mosaic" / "worldcover_2021_Map_10km.tif"
    overviews.write_level_cog(src, dest)
    assert len(written) == 1 and written[0].parent.parent == dest.parent and is_temp_name(written[0].parent.name)
    with rasterio.open(dest) as f:
        assert f.overviews(1) == [2]  # computed by GDAL: the case where it writes its .ovr.tmp
    assert [p.name for p in dest.parent.iterdir()] == [dest.name]
