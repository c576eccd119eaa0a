"""``worldcover model train --points``: reference points -> production-chain features -> spatial split -> model.

The slow tests simulate a small world (4 blocks of 48 px in two tiles, two
months), sample reference points from its truth rasters, write them as CSV
and GeoJSON (GeoParquet is checked to read identically), train through the
real CLI against a real STAC API on loopback, and check the card, the
held-out accuracy, and that ``tile run`` maps with the model exactly what
the model predicts from the training features.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import rasterio
import typer
from typer.testing import CliRunner

from tests.helpers import run_cli
from worldcover.cli import _FriendlyErrors
from worldcover.cli.model import app
from worldcover.errors import DataError, InputError
from worldcover.grid import Tile
from worldcover.tile.points import (
    GroupSplit,
    check_points,
    locate,
    read_points,
    spatial_groups,
    split_groups,
)

YEAR = 2021
BLOCK = 48
PERIOD = ("2021-05-01", "2021-06-30")
# Mixed blocks of the simulated world (seed 0): grass/crop/bare and tree/grass/crop at N51E003, tree/crop at N45E012.
BLOCKS = (("N51E003", 375, 375), ("N51E003", 376, 375), ("N51E003", 600, 600), ("N45E012", 375, 375))
PER_CLASS = 40  # reference points per class per block

root = typer.Typer(cls=_FriendlyErrors)
root.add_typer(app, name="model")


def invoke(*args):
    return CliRunner().invoke(root, ["model", *map(str, args)])


# --- writers for the three formats ---------------------------------------------------------


def write_geojson(frame: pd.DataFrame, path: Path) -> Path:
    feats = [{"type": "Feature", "geometry": {"type": "Point", "coordinates": [r.pop("lon"), r.pop("lat")]},
              "properties": r} for r in json.loads(frame.to_json(orient="records"))]
    path.write_text(json.dumps({"type": "FeatureCollection", "features": feats}))
    return path


def write_geoparquet(frame: pd.DataFrame, path: Path) -> Path:
    """GeoParquet 1.1 by hand: WKB points from shapely, the 'geo' metadata naming the column."""
    import pyarrow as pa
    import pyarrow.parquet as pq
    import shapely

    wkb = shapely.to_wkb(shapely.points(frame["lon"].to_numpy(), frame["lat"].to_numpy()))
    table = pa.Table.from_pandas(frame.drop(columns=["lon", "lat"]), preserve_index=False)
    table = table.append_column("geometry", pa.array(list(wkb), type=pa.binary()))
    geo = {"version": "1.1.0", "primary_column": "geometry",
           "columns": {"geometry": {"encoding": "WKB", "geometry_types": ["Point"]}}}
    table = table.replace_schema_metadata({**(table.schema.metadata or {}), b"geo": json.dumps(geo).encode()})
    pq.write_table(table, path)
    return path


def tiny_points() -> pd.DataFrame:
    return pd.DataFrame({"lon": [3.01, 3.02, -60.5], "lat": [50.8, 50.81, -2.5], "class": [40, 30, 10],
                         "year": [2021, 2021, 2021], "weight": [1.0, 2.5, 1.0], "group": ["a", "b", "c"]})


# --- fast tests: reading, validation, location, split --------------------------------------


def test_three_formats_read_the_same(tmp_path):
    frame = tiny_points()
    frame.to_csv(tmp_path / "p.csv", index=False)
    got = {fmt: read_points(p) for fmt, p in (
        ("csv", tmp_path / "p.csv"), ("geojson", write_geojson(frame, tmp_path / "p.geojson")),
        ("geoparquet", write_geoparquet(frame, tmp_path / "p.parquet")))}
    base = got["csv"][0]
    assert list(base.columns) == ["lon", "lat", "class", "year", "weight", "group"]
    assert base["class"].tolist() == [40, 30, 10] and base["weight"].tolist() == [1.0, 2.5, 1.0]
    for fmt, (points, prov) in got.items():
        pd.testing.assert_frame_equal(points, base)
        assert prov["format"] == fmt and prov["rows"] == 3
        assert prov["sha256"] == hashlib.sha256((tmp_path / prov["file"]).read_bytes()).hexdigest()


def test_weight_defaults_to_one_and_group_is_optional(tmp_path):
    tiny_points().drop(columns=["weight", "group"]).to_csv(tmp_path / "p.csv", index=False)
    points, _ = read_points(tmp_path / "p.csv")
    assert points["weight"].tolist() == [1.0, 1.0, 1.0] and "group" not in points


@pytest.mark.parametrize("change, expected", [
    (lambda f: f.drop(columns=["class"]), "missing column(s) ['class']"),
    (lambda f: f.assign(**{"class": [40, 12, 10]}), "column 'class' has [12] (first at row 2), not WorldCover codes"),
    (lambda f: f.assign(lon=[3.0, 200.0, 3.0]), "column 'lon' row 2 is 200: expected -180..180"),
    (lambda f: f.assign(lat=[3.0, 3.0, -91.0]), "column 'lat' row 3 is -91: expected -90..90"),
    (lambda f: f.assign(lon=["3.0", "east", "3.0"]), "column 'lon' row 2 has 'east', not a finite number"),
    (lambda f: f.assign(year=[2021, 2021.5, 2021]), "column 'year' row 2 is 2021.5: expected an integer"),
    (lambda f: f.assign(weight=[1.0, 0.0, 1.0]), "column 'weight' row 2 is 0: expected a weight > 0"),
    (lambda f: f.assign(group=["a", None, "c"]), "column 'group' row 2 is empty"),
])
def test_bad_points_are_one_line_errors_naming_file_and_column(tmp_path, change, expected):
    change(tiny_points()).to_csv(tmp_path / "bad.csv", index=False)
    with pytest.raises(InputError) as err:
        read_points(tmp_path / "bad.csv")
    assert "points file bad.csv" in str(err.value) and expected in str(err.value)
    # the same through the CLI: exit 2, one line, no traceback, before any loading
    r = invoke("train", "--points", tmp_path / "bad.csv", "--source", "http://127.0.0.1:9", "--out", tmp_path / "m")
    assert r.exit_code == 2, r.output
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: points file bad.csv") and expected in lines[0]
    assert "Traceback" not in r.output and not (tmp_path / "m").exists()


def test_bad_files_and_options_are_refused(tmp_path):
    frame = tiny_points()
    frame.to_csv(tmp_path / "p.csv", index=False)
    (tmp_path / "p.txt").write_text("lon,lat\n")
    (tmp_path / "empty.csv").write_text("")
    (tmp_path / "lines.geojson").write_text(json.dumps({"type": "FeatureCollection", "features": [
        {"type": "Feature", "geometry": {"type": "LineString", "coordinates": [[0, 0], [1, 1]]}, "properties": {}}]}))
    cases = [
        (["--points", tmp_path / "p.txt", "--source", "x", "--out", tmp_path / "m"], "unknown suffix '.txt'"),
        (["--points", tmp_path / "nope.csv", "--source", "x", "--out", tmp_path / "m"], "does not exist"),
        (["--points", tmp_path / "empty.csv", "--source", "x", "--out", tmp_path / "m"], "is empty"),
        (["--points", tmp_path / "lines.geojson", "--source", "x", "--out", tmp_path / "m"],
         "feature 0 has geometry LineString: expected a Point"),
        (["--points", tmp_path / "p.csv", "--out", tmp_path / "m"], "--points needs --source"),
        (["--points", tmp_path / "p.csv", "--source", "x"], "--points needs --out"),
        (["--points", tmp_path / "p.csv", "--source", "x", "--out", tmp_path / "m", "--year", "2019"],
         "no points of year 2019: its years are [2021]"),
        (["--points", tmp_path / "p.csv", "--source", "x", "--out", tmp_path / "m", "--group-by", "field"],
         "invalid group-by 'field'"),
        (["--points", tmp_path / "p.csv", "--source", "x", "--out", tmp_path / "m", "--features", "all"],
         "invalid feature set 'all'"),
        (["--source", "http://127.0.0.1:9"], "--source is for training from --points"),
    ]
    for args, expected in cases:
        r = invoke("train", *args)
        assert r.exit_code == 2, (args, r.output)
        lines = r.stderr.strip().splitlines()
        assert len(lines) == 1 and expected in lines[0], (args, r.stderr)
    frame.iloc[:2].to_csv(tmp_path / "onetile.csv", index=False)
    r = invoke("train", "--points", tmp_path / "onetile.csv", "--source", "http://127.0.0.1:9", "--out", tmp_path / "m")
    assert r.exit_code == 2 and "all points fall in one tile (N48E003)" in r.stderr and "--group-by cell" in r.stderr
    frame.drop(columns=["group"]).to_csv(tmp_path / "nogroup.csv", index=False)
    r = invoke("train", "--points", tmp_path / "nogroup.csv", "--source", "x", "--out", tmp_path / "m",
               "--group-by", "column")
    assert r.exit_code == 2 and "needs a 'group' column" in r.stderr


def test_geoparquet_in_another_crs_is_refused(tmp_path):
    import pyarrow.parquet as pq

    path = write_geoparquet(tiny_points(), tmp_path / "p.parquet")
    table = pq.read_table(path)
    geo = json.loads(table.schema.metadata[b"geo"])
    geo["columns"]["geometry"]["crs"] = {"id": {"authority": "EPSG", "code": 32631}, "name": "WGS 84 / UTM zone 31N"}
    pq.write_table(table.replace_schema_metadata({b"geo": json.dumps(geo).encode()}), path)
    with pytest.raises(InputError, match="is not longitude/latitude"):
        read_points(path)


def test_points_land_on_the_pixel_tile_run_maps():
    """A point at a block pixel's centre is located at that block (chip) row and column."""
    tile = Tile.parse("N51E003")
    block = tile.block(375, 376, 48)
    rows, cols = np.array([0, 5, 47, 20]), np.array([0, 47, 3, 20])
    xs, ys = rasterio.transform.xy(block.geobox.affine, rows, cols, offset="center")
    pts = check_points(pd.DataFrame({"lon": xs, "lat": ys, "class": 40, "year": 2021}), "t")
    located = locate(pts, 48)
    assert set(located["chip"]) == {block.id} and set(located["tile"]) == {"N51E003"}
    assert located["row"].tolist() == rows.tolist() and located["col"].tolist() == cols.tolist()
    assert set(located["cell"]) == {f"N{int(np.floor(ys[0])):02d}E{int(np.floor(xs[0])):03d}"}
    # a tile corner is in the pixel whose north-west corner it is (rasterio's rowcol does the same)
    corner = locate(check_points(pd.DataFrame({"lon": [-60.0], "lat": [-3.0], "class": [10], "year": [2021]}), "t"), 64)
    assert corner["tile"].tolist() == ["S06W060"] and corner["chip"].tolist() == ["S06W060_r00c00"]
    assert corner["row"].tolist() == [0] and corner["col"].tolist() == [0]


def test_split_keeps_groups_whole_and_classes_on_both_sides():
    rng = np.random.default_rng(1)
    groups = pd.Series(np.repeat([f"g{i}" for i in range(12)], 10))
    codes = pd.Series(np.repeat([10, 10, 10, 10, 30, 30, 30, 30, 40, 40, 50, 60], 10))
    codes[rng.random(codes.size) < 0.1] = 80  # a minority class never decides a group's stratum
    split = split_groups(groups, codes, "column", test_fraction=0.25, seed=3)
    assert not set(split.train) & set(split.test) and set(split.train) | set(split.test) == set(groups)
    majority = {f"g{i}": c for i, c in enumerate([10, 10, 10, 10, 30, 30, 30, 30, 40, 40, 50, 60])}
    test_classes = [majority[g] for g in split.test]
    assert sorted(test_classes) == [10, 30, 40]  # one of 4 -> 1, one of 2 -> 1 (at least one), single groups train
    assert split == split_groups(groups, codes, "column", test_fraction=0.25, seed=3)  # seeded
    with pytest.raises(DataError, match="all points fall in one tile"):
        split_groups(pd.Series(["N51E003"] * 5), pd.Series([10, 30, 10, 30, 10]), "tile")


def test_group_by_picks_the_column():
    located = locate(check_points(tiny_points(), "t"), 64)
    assert spatial_groups(located, "tile").tolist() == ["N48E003", "N48E003", "S03W063"]
    assert spatial_groups(located, "cell").tolist() == ["N50E003", "N50E003", "S03W061"]
    assert spatial_groups(located, "column").tolist() == ["a", "b", "c"]
    assert isinstance(split_groups(spatial_groups(located, "column"), located["class"], "column"), GroupSplit)


# --- slow: the whole recipe on a simulated world --------------------------------------------


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """A small simulated archive, reference points sampled from its truth (CSV, GeoJSON), and its API."""
    from worldcover import sim
    from worldcover.model.default import read_truth
    from worldcover.sources.local_api import LocalStacApi

    root = tmp_path_factory.mktemp("points-world")
    blocks = [Tile.parse(t).block(r, c, BLOCK) for t, r, c in BLOCKS]
    sim.generate(blocks, YEAR, root / "archive", seed=0, period=PERIOD)
    rng = np.random.default_rng(0)
    parts = []
    for block in blocks:
        truth = read_truth(root / "archive", block).values
        rows, cols = np.nonzero(truth > 0)
        order = rng.permutation(rows.size)
        rows, cols = rows[order], cols[order]
        codes = truth[rows, cols]
        rank = pd.Series(codes).groupby(codes).cumcount().to_numpy()
        keep = rank < PER_CLASS
        rows, cols, codes = rows[keep], cols[keep], codes[keep]
        xs, ys = rasterio.transform.xy(block.geobox.affine, rows, cols, offset="center")
        parts.append(pd.DataFrame({
            "lon": xs, "lat": ys, "class": codes.astype(int), "year": YEAR,
            "weight": np.where(rng.random(rows.size) < 0.2, 2.0, 1.0),
            # a "field": the 24 px quadrant of the block, so groups are smaller than the loaded chips
            "group": [f"{block.id}_q{r // 24}{c // 24}" for r, c in zip(rows, cols, strict=True)]}))
    points = pd.concat(parts, ignore_index=True)
    assert points["class"].nunique() >= 3, f"the simulated blocks changed: classes {points['class'].unique()}"
    points.to_csv(root / "reference.csv", index=False)
    write_geojson(points, root / "reference.geojson")
    with LocalStacApi(root / "archive") as api:
        yield {"root": root, "points": points, "url": api.url, "blocks": blocks}


def train_cli(world, name: str, *extra: str) -> tuple[dict, Path]:
    out = world["root"] / f"model-{name}"
    code, stdout, stderr = run_cli("model", "train", "--points", str(world["root"] / name), "--source", world["url"],
                                   "--out", str(out), "--chip-size", str(BLOCK), "--group-by", "column",
                                   "--features", "no-dem", "--json", *extra)
    assert code == 0, stderr
    return json.loads(stdout), out


@pytest.fixture(scope="module")
def trained(world):
    return train_cli(world, "reference.csv")


@pytest.mark.slow
def test_card_records_the_reference_and_a_disjoint_split(world, trained):
    from worldcover.model import Model

    result, out = trained
    card = Model.load(out).card
    prov = dict(card.provenance)
    ref = prov["reference"]
    points = world["points"]
    assert ref["file"] == "reference.csv" and ref["format"] == "csv"
    assert ref["sha256"] == hashlib.sha256((world["root"] / "reference.csv").read_bytes()).hexdigest()
    expected = {str(k): int(v) for k, v in points["class"].value_counts().sort_index().items()}
    assert ref["rows"] == len(points) == ref["points_used"] + ref["points_without_clear_observation"]
    assert ref["points_per_class"] == expected if ref["points_without_clear_observation"] == 0 else True
    assert ref["weights"]["max"] == 2.0 and ref["weights"]["sum"] == pytest.approx(points["weight"].sum())
    assert prov["source"] == world["url"] and prov["year"] == YEAR
    assert prov["chips"] == {"size": BLOCK, "loaded": len(BLOCKS), "failed": {}}  # one load per chip
    split = prov["split"]
    assert split["by"] == "column"
    assert not set(split["train_groups"]) & set(split["test_groups"])
    assert set(split["train_groups"]) | set(split["test_groups"]) == set(points["group"])
    assert list(card.training_blocks) == split["train_groups"] and list(card.test_blocks) == split["test_groups"]
    assert split["train_points"] + split["test_points"] == ref["points_used"]
    assert sum(card.samples_per_class.values()) == split["train_points"]
    assert prov["feature_config"]["terrain"] is False and "dem" not in card.feature_names
    assert card.metrics["n"] == split["test_points"]
    assert result["metrics"] == dict(card.metrics)
    r = invoke("info", out)  # the card summary reads the points model
    assert r.exit_code == 0 and "reference.csv" in r.stdout


@pytest.mark.slow
def test_held_out_groups_are_classified(trained):
    result, _ = trained
    m = result["metrics"]
    # measured: OA 0.911, kappa 0.844 on 79 held-out points (4 of 16 groups); the bar leaves room for simulator changes
    assert m["overall_accuracy"] >= 0.80, m
    assert m["n"] >= 50 and len([c for c, v in m["per_class"].items() if v["support"]]) >= 2


@pytest.mark.slow
def test_geojson_gives_the_same_model(world, trained):
    result, out = trained
    other, _ = train_cli(world, "reference.geojson")
    assert other["reference"]["format"] == "geojson" and other["reference"]["sha256"] != result["reference"]["sha256"]
    assert other["split"] == result["split"] and other["metrics"] == result["metrics"]
    from worldcover.model import Model

    a, b = Model.load(out), Model.load(other["model_dir"])
    assert a.model_text == b.model_text  # same points, same chain, same seed: the same trees


@pytest.mark.slow
def test_tile_run_maps_what_the_model_predicts_at_the_points(world, trained, tmp_path):
    """The model runs in ``tile run``, and its map at the points equals its prediction from the training features."""
    from worldcover.model import Model
    from worldcover.tile.points import chip_samples, feature_config, source_needs
    from worldcover.tile.run import open_source
    from worldcover.validation.points import sample_map

    _, out = trained
    block = world["blocks"][0]
    code, _, stderr = run_cli("tile", "run", block.tile.id, "--year", str(YEAR), "--source", world["url"],
                              "--model", str(out), "--out", str(tmp_path), "--blocks", block.key,
                              "--block-size", str(BLOCK))
    assert code == 0, stderr
    mapped = next(tmp_path.rglob("*Map*.tif"))
    pts = locate(check_points(world["points"], "t"), BLOCK)
    pts = pts[pts["chip"] == block.id]
    model = Model.load(out)
    values, clear, names = chip_samples(block, YEAR, pts["row"].to_numpy(), pts["col"].to_numpy(),
                                        open_source(world["url"], **source_needs(feature_config("no-dem"))),
                                        feature_config("no-dem"))
    assert names == model.feature_names
    predicted, _ = model.predict_matrix(values)
    on_map = sample_map(mapped, pts["lon"].to_numpy(), pts["lat"].to_numpy())
    assert (on_map == predicted).mean() >= 0.99, (on_map, predicted)
