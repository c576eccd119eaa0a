"""Property / fuzz suite over what users hand us (hypothesis).

Tile ids, bboxes, block specs, campaign files (JSON, YAML, garbage), reference
CSVs, counts and mapped-area tables, STAC items (the real Planetary Computer
samples in ../shared/stac-samples, mutated), and class-map GeoTIFFs with the
wrong CRS, dtype or nodata. For every input, the library either accepts it and
gives a correct result, or raises :class:`InputError` / :class:`DataError` with
a one-line message naming the input; through the CLI: exit code 0, or exit code 2
with one ``error:`` line on stderr, never a traceback, never exit code 1, and no
output file written for a refused input.

Examples are derandomised (the same inputs on every run) and bounded; the count
of bad inputs tried goes to ``$WORLDCOVER_FUZZ_LOG`` (default: the pytest base
temp dir, ``fuzz_counts.json``) and is printed at the end of the module.
"""

from __future__ import annotations

import copy
import json
import math
import os
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import rasterio
from affine import Affine
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from tests.helpers import DEFAULT_MODEL as REPO_MODEL
from worldcover.campaign.plan import CampaignPlan
from worldcover.cli import app
from worldcover.errors import DataError, InputError
from worldcover.grid import Tile, check_block_size, parse_bbox, parse_blocks
from worldcover.layout import tile_paths

SAMPLES = Path(__file__).resolve().parents[2] / "shared" / "stac-samples" / \
    "planetary-computer-sentinel-2-l2a-100-items.parquet"

BAD: Counter = Counter()  # bad inputs tried, per kind
GOOD: Counter = Counter()  # generated inputs that turned out valid (and were checked for correctness)
RUNNER = CliRunner()


def fuzz(n: int):
    return settings(max_examples=n, deadline=None, derandomize=True, database=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture,
                                           HealthCheck.data_too_large, HealthCheck.filter_too_much])


@pytest.fixture(scope="module", autouse=True)
def _report_counts(tmp_path_factory):
    yield
    figures = {"bad_inputs_total": sum(BAD.values()), "bad_inputs": dict(sorted(BAD.items())),
               "valid_inputs_total": sum(GOOD.values()), "valid_inputs": dict(sorted(GOOD.items()))}
    path = Path(os.environ.get("WORLDCOVER_FUZZ_LOG") or tmp_path_factory.getbasetemp() / "fuzz_counts.json")
    path.write_text(json.dumps(figures, indent=1))
    print(f"\nfuzz: {figures['bad_inputs_total']} bad inputs refused, {figures['valid_inputs_total']} valid "
          f"inputs accepted -> {path}")


def refused(kind: str, fn, *args, names: str | None = None, **kwargs):
    """Call ``fn``: either it returns (-> (True, value)) or raises a clear, one-line error naming the input."""
    try:
        value = fn(*args, **kwargs)
    except (InputError, DataError) as exc:
        message = str(exc)
        assert message and "\n" not in message, f"{kind}: not a one-line message: {message!r}"
        if names is not None:
            alternatives = (names,) if isinstance(names, str) else tuple(names)
            assert any(n in message for n in alternatives), \
                f"{kind}: the message does not name the input {names!r}: {message}"
        BAD[kind] += 1
        return False, exc
    GOOD[kind] += 1
    return True, value


def cli(kind: str, args: list[str], *, ok_output=None):
    """Run the real CLI in-process: exit 0, or exit 2 with exactly one 'error:' line and no traceback."""
    result = RUNNER.invoke(app, args)
    out = result.output
    assert "Traceback" not in out, out
    assert result.exit_code in (0, 2), f"{kind}: exit {result.exit_code} for {args!r}: {out[-800:]}"
    if result.exit_code == 2:
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: "), f"{kind}: {result.stderr!r}"
        BAD[f"cli:{kind}"] += 1
    else:
        GOOD[f"cli:{kind}"] += 1
    return result


# ------------------------------------------------------------------------------------------------
# tile ids, bboxes, blocks
# ------------------------------------------------------------------------------------------------

HOSTILE = ["../../etc", "/etc/passwd", "N00E006/../../x", "N00E006\x00", "{{workflow.parameters.x}}",
           "$(id)", "`id`", "N00E006;rm -rf /", "N00E006\n", " N00E006 ", "n00e006", "N00E006 ",
           "N٠٠E٠٠٦", "Ｎ00E006", "S00E006", "N00W000", "N90E000", "N00E180", "N01E006", "N00E007", ""]

tile_like = st.builds(lambda ns, lat, ew, lon, pad: f"{ns}{lat:0{pad}d}{ew}{lon:03d}",
                      st.sampled_from("NSns"), st.integers(0, 99), st.sampled_from("EWew"),
                      st.integers(0, 999), st.sampled_from([1, 2, 3]))
valid_tile = st.builds(lambda lat, lon: Tile(lat * 3, lon * 3).id, st.integers(-30, 29), st.integers(-60, 59))
tile_text = st.one_of(st.sampled_from(HOSTILE), tile_like, st.text(max_size=10), valid_tile,
                      st.tuples(valid_tile, st.sampled_from([" ", "\t", "\n", "/", ".", "x", "0"]),
                                st.booleans()).map(lambda t: t[0] + t[1] if t[2] else t[1] + t[0]))


@fuzz(300)
@given(tile_text)
def test_tile_ids(text):
    ok, tile = refused("tile id", Tile.parse, text, names=repr(text))
    if ok:  # accepted ids are canonical, on the lattice, and their folder stays under the root
        assert tile.id == text.strip() and tile.lat % 3 == 0 and tile.lon % 3 == 0
        p = tile_paths("/tmp/root", text, 2021)
        assert p.dir == Path("/tmp/root/tiles") / tile.id


@fuzz(40)
@given(tile_text.filter(lambda t: "\x00" not in t and not t.startswith("-")))
def test_tile_ids_cli(text):
    r = cli("grid info", ["grid", "info", text, "--json"])
    if r.exit_code == 0:
        assert json.loads(r.stdout)["tile"] == Tile.parse(text).id
    else:
        assert "tile id" in r.stderr


finite = st.floats(-400, 400, allow_nan=False)
odd_float = st.one_of(finite, st.sampled_from([math.nan, math.inf, -math.inf, 1e308, -0.0, 180.0, -180.0, 90.0]))
bbox_text = st.one_of(
    st.lists(odd_float, min_size=0, max_size=6).map(lambda v: ",".join(repr(x) for x in v)),
    st.tuples(st.floats(-180, 180), st.floats(-90, 90), st.floats(-180, 180), st.floats(-90, 90))
      .map(lambda v: ",".join(f"{x:.4f}" for x in v)),  # in range, often in the wrong order
    st.tuples(st.floats(-180, 170), st.floats(-90, 80), st.floats(0.01, 10), st.floats(0.01, 10))
      .map(lambda v: f"{v[0]:.3f}, {v[1]:.3f}, {min(180, v[0] + v[2]):.3f}, {min(90, v[1] + v[3]):.3f}"),
    st.lists(st.integers(-200, 200), min_size=4, max_size=4).map(lambda v: ",".join(map(str, v))),
    st.text(max_size=30),
    st.sampled_from(["1,2,3", "0,0,0,0", "10,10,0,0", "a,b,c,d", "1;2;3;4", "-180,-90,180,90", "nan,0,1,1",
                     "0,0,1e999,1", "0x10,0,20,10", "1_0,0,20,10"]),
)


@fuzz(300)
@given(bbox_text)
def test_bboxes(text):
    ok, box = refused("bbox", parse_bbox, text, names="bbox")
    if ok:
        w, s, e, n = box
        assert all(math.isfinite(v) for v in box) and -180 <= w < e <= 180 and -90 <= s < n <= 90


@fuzz(40)
@given(bbox_text.filter(lambda t: "\x00" not in t and not t.startswith("-")))
def test_bboxes_cli(text):
    r = cli("grid tiles --bbox", ["grid", "tiles", "--bbox", text, "--json"])
    if r.exit_code == 0:
        w, s, e, n = parse_bbox(text)
        for tid in json.loads(r.stdout):  # every tile listed overlaps the box
            t = Tile.parse(tid)
            assert t.lon < e and t.lon + 3 > w and t.lat < n and t.lat + 3 > s


block_spec = st.one_of(
    st.sampled_from(["all", "first:0", "first:-1", "first:x", "first:", "r0c0", "r-1c0", "r0c0,", "r0c0,,r1c1",
                     "r99999c0", "r0c99999", "R0C0", "r0c0;r1c1", "../r0c0", "{{x}}", "first:999999999999"]),
    st.lists(st.tuples(st.integers(-2, 20), st.integers(-2, 20)), min_size=1, max_size=3)
      .map(lambda v: ",".join(f"r{a}c{b}" for a, b in v)),
    st.text(max_size=12),
)


@fuzz(200)
@given(block_spec, st.one_of(st.integers(-10, 40000), st.sampled_from([0, 15, 16, 3000, 36000, 36001])))
def test_block_specs(spec, size):
    assume(not (spec.strip() in ("", "all") and 0 < size < 3000))  # millions of blocks: valid, just slow
    def parse():
        check_block_size(size)
        return parse_blocks(Tile.parse("N45E003"), spec, size)

    ok, blocks = refused("block spec / size", parse)
    if ok:
        assert blocks and all(b.tile.id == "N45E003" and b.size == size for b in blocks)
        for b in blocks:
            ys, xs = b.window
            assert 0 <= ys.start < ys.stop <= 36000 and 0 <= xs.start < xs.stop <= 36000


# ------------------------------------------------------------------------------------------------
# campaign files
# ------------------------------------------------------------------------------------------------

BASE_PLAN = CampaignPlan.create("wc-fuzz", 2021, tiles=["N45E003", "S24E021"], out_root="out", block_size=300,
                                blocks="first:2", labels={"team": "eo"}).to_dict()
json_values = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(-10**6, 10**6), st.floats(allow_nan=False, allow_infinity=False),
              st.text(max_size=12), st.sampled_from(HOSTILE)),
    lambda inner: st.one_of(st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=6), inner, max_size=3)),
    max_leaves=6,
)


@st.composite
def campaign_documents(draw):
    doc = copy.deepcopy(BASE_PLAN)
    for _ in range(draw(st.integers(1, 3))):
        op = draw(st.sampled_from(["set", "drop", "add", "hostile"]))
        key = draw(st.sampled_from(sorted(doc) or ["name"]))
        if op == "set":
            doc[key] = draw(json_values)
        elif op == "drop":
            doc.pop(key, None)
        elif op == "add":
            doc[draw(st.text(min_size=1, max_size=8))] = draw(json_values)
        else:
            doc[key] = draw(st.sampled_from(HOSTILE + [[".."], {"a": "{{x}}"}]))
    return doc


def _write_campaign(path: Path, doc, form: str) -> None:
    if form == "json":
        path.write_text(json.dumps(doc))
    elif form == "yaml":
        import yaml

        path.write_text(yaml.safe_dump(doc))
    elif form == "truncated":
        text = json.dumps(doc)
        path.write_text(text[: len(text) // 2])
    else:  # bytes that are not UTF-8 text
        path.write_bytes(b"\xff\xfe{\x00\x81" + json.dumps(doc).encode("utf-16"))


@fuzz(250)
@given(campaign_documents(), st.sampled_from(["json", "json", "json", "yaml", "truncated", "binary"]))
def test_campaign_files(tmp_path_factory, doc, form):
    path = tmp_path_factory.mktemp("plan") / "campaign.json"
    _write_campaign(path, doc, form)
    ok, plan = refused("campaign file", CampaignPlan.load, path, names=str(path))
    if ok:  # what loads is valid and safe to render: no traversal, no template braces anywhere
        assert plan.validate() is plan
        text = json.dumps(plan.to_dict())
        assert "{{" not in text and "/../" not in f"/{plan.out_root}/" and "\x00" not in text


@fuzz(25)
@given(campaign_documents(), st.sampled_from(["json", "yaml", "truncated"]))
def test_campaign_files_cli(tmp_path_factory, doc, form):
    root = tmp_path_factory.mktemp("root")
    _write_campaign(root / "campaign.json", doc, form)
    r = cli("mosaic build (campaign.json)", ["mosaic", "build", "--campaign", str(root), "--year", "2021"])
    assert r.exit_code == 2  # a valid plan still has no finished tile here
    assert not (root / "mosaic").exists()


# ------------------------------------------------------------------------------------------------
# counts and mapped-area tables
# ------------------------------------------------------------------------------------------------

COUNTS = ("map\\ref,Tree cover,Grassland,Cropland\nTree cover,66,3,5\nGrassland,4,55,8\nCropland,1,9,153\n")
AREA = "class,mapped_pixels\nTree cover,200000\nGrassland,150000\nCropland,3200000\n"
CELLS = st.one_of(st.sampled_from(["", "-1", "1.5", "nan", "inf", "1e400", "0x10", "ten", "1,000", "\"3\"", " 7 ",
                                   "Tree cover", "0", "18446744073709551617", "\x00", "１２"]),
                  st.text(max_size=5), st.integers(-5, 10**12).map(str))


@st.composite
def mutated_table(draw, text):
    rows = [r.split(",") for r in text.strip().split("\n")]
    for _ in range(draw(st.integers(1, 3))):
        op = draw(st.sampled_from(["cell", "cell", "count", "count", "space", "drop_row", "drop_col", "dup_row",
                                   "extra_col", "truncate"]))
        i = draw(st.integers(0, len(rows) - 1))
        if op == "cell" and rows[i]:
            rows[i][draw(st.integers(0, len(rows[i]) - 1))] = draw(CELLS)
        elif op in ("count", "space") and i > 0 and len(rows[i]) > 1:  # changes that keep the table valid
            j = draw(st.integers(1, len(rows[i]) - 1))
            rows[i][j] = str(draw(st.integers(1, 500))) if op == "count" else f" {rows[i][j]} "
        elif op == "drop_row" and len(rows) > 1:
            rows.pop(i)
        elif op == "drop_col":
            j = draw(st.integers(0, 3))
            rows = [r[:j] + r[j + 1:] for r in rows]
        elif op == "dup_row":
            rows.insert(i, list(rows[i]))
        elif op == "extra_col":
            rows[i].append(draw(CELLS))
        elif op == "truncate":
            out = "\n".join(",".join(r) for r in rows)
            return out[: draw(st.integers(0, len(out)))]
    return "\n".join(",".join(r) for r in rows) + "\n"


@fuzz(250)
@given(mutated_table(COUNTS), mutated_table(AREA), st.sampled_from([None, 0.01, 0.0, -1.0, math.nan]))
def test_counts_and_area_tables(tmp_path_factory, counts, area, pixel_area):
    from worldcover.validation.tables import estimate_from_tables

    d = tmp_path_factory.mktemp("tables")
    c, a = d / "counts.csv", d / "area.csv"
    c.write_text(counts)
    a.write_text(area)
    ok, result = refused("counts / area table", estimate_from_tables, c, a, pixel_area,
                         names=(str(c), str(a), "pixel-area-ha"))
    if ok:
        oa = result.overall_accuracy
        assert 0.0 <= oa.estimate <= 1.0 and math.isfinite(oa.ci95_halfwidth)
        for k in result.per_class:
            assert 0.0 <= k.users_accuracy.estimate <= 1.0 or math.isnan(k.users_accuracy.estimate)
            assert k.area_ha.estimate >= 0


@fuzz(30)
@given(mutated_table(COUNTS), mutated_table(AREA))
def test_counts_tables_cli(tmp_path_factory, counts, area):
    d = tmp_path_factory.mktemp("tables")
    c, a = d / "counts.csv", d / "area.csv"
    c.write_text(counts)
    a.write_text(area)
    r = cli("validate estimate", ["validate", "estimate", "--counts", str(c), "--mapped-area", str(a),
                                  "--pixel-area-ha", "0.01", "--json"])
    if r.exit_code == 0:
        assert 0 <= json.loads(r.stdout)["overall_accuracy"]["estimate"] <= 1
    else:
        assert str(c) in r.stderr or str(a) in r.stderr or "--pixel-area-ha" in r.stderr


# ------------------------------------------------------------------------------------------------
# class maps (wrong CRS, dtype, nodata) and reference CSVs
# ------------------------------------------------------------------------------------------------

def _write_map(path: Path, data: np.ndarray, *, dtype="uint8", crs="EPSG:4326", nodata=0) -> Path:
    geographic = crs in ("EPSG:4326", "OGC:CRS84") or crs is None
    transform = Affine(1 / 12000, 0, 3.0, 0, -1 / 12000, 46.0) if geographic else Affine(10, 0, 5e5, 0, -10, 5.1e6)
    with rasterio.open(path, "w", driver="GTiff", width=data.shape[1], height=data.shape[0], count=1, dtype=dtype,
                       crs=crs, transform=transform, nodata=nodata) as dst:
        dst.write(data.astype(dtype), 1)
    return path


@pytest.fixture(scope="module")
def labelled(tmp_path_factory):
    """A class map, its design and the design labelled (reference = map, with a few disagreements)."""
    from worldcover.validation.design import design_sample
    from worldcover.validation.synthetic import banded_map
    from worldcover.validation.tables import write_samples

    d = tmp_path_factory.mktemp("labelled")
    data = banded_map((120, 120), [(10, 0.4), (30, 0.3), (80, 0.3)], nodata_rows=10)
    m = _write_map(d / "map.tif", data)
    design = design_sample(m, n=90, min_per_class=20, seed=1)
    samples = design.samples.copy()
    samples["reference_class"] = samples["map_class"].astype(str)
    samples.loc[samples.index[::7], "reference_class"] = "Grassland"
    write_samples(samples, d / "labelled.csv")
    return m, d / "labelled.csv", data


@fuzz(30)
@given(st.sampled_from(["uint8", "uint8", "int16", "uint16", "float32", "int8"]),
       st.sampled_from(["EPSG:4326", "EPSG:3857", "EPSG:32631", None, "ENGCRS"]),
       st.sampled_from([0, None, 255, 10, 1, -1, math.nan]),
       st.sampled_from(["classes", "odd codes", "all nodata"]))
def test_class_maps_with_wrong_crs_dtype_nodata(tmp_path_factory, labelled, dtype, crs, nodata, content):
    _, _, base = labelled
    if nodata is not None:
        try:
            if np.isnan(np.array(nodata, dtype=dtype)) != np.isnan(nodata) or (
                    not np.isnan(nodata) and np.array(nodata).astype(dtype) != nodata):
                assume(False)
        except (ValueError, OverflowError):
            assume(False)
    data = base.copy()
    if content == "odd codes":
        data[:5, :5] = 7
    elif content == "all nodata":
        data[:] = 0
    d = tmp_path_factory.mktemp("maps")
    if crs == "ENGCRS":  # a local engineering CRS: neither geographic nor metres on the Earth
        crs = 'LOCAL_CS["arbitrary",UNIT["foot",0.3048]]'
    m = _write_map(d / "map.tif", data, dtype=dtype, crs=crs, nodata=nodata)
    out = d / "samples.csv"
    r = cli("validate design (map)", ["validate", "design", "--map", str(m), "--out", str(out), "--n", "60",
                                      "--min-per-class", "5", "--json"])
    valid = dtype == "uint8" and crs in ("EPSG:4326", "EPSG:3857", "EPSG:32631") and nodata in (0, None) \
        and content == "classes"
    if valid:
        assert r.exit_code == 0, r.output
        assert out.exists()
    else:
        assert r.exit_code == 2, f"accepted a map with dtype {dtype}, crs {crs}, nodata {nodata}, {content}"
        assert str(m) in r.stderr, r.stderr
        assert not out.exists(), "a samples file was written for a refused map"


CSV_CELLS = st.one_of(st.sampled_from(["", "nan", "abc", "1e999", "-200", "95", "100", "Tree Cover", "tree  cover",
                                       "Snow and ice", "0", "255", "10.5", "\x00", "=cmd|' /C calc'!A0", "NA"]),
                      st.text(max_size=6))


@st.composite
def mutated_labelled(draw, text: str):
    lines = text.splitlines()
    header, rows = lines[0].split(","), [ln.split(",") for ln in lines[1:]]
    for _ in range(draw(st.integers(1, 3))):
        op = draw(st.sampled_from(["cell", "cell", "cell", "drop_col", "drop_rows", "dup_header", "truncate", "bom"]))
        if op == "cell" and rows:
            r = draw(st.integers(0, len(rows) - 1))
            col = draw(st.sampled_from(["lon", "lat", "map_class", "reference_class"]))
            if col in header and len(rows[r]) == len(header):
                rows[r][header.index(col)] = draw(CSV_CELLS)
        elif op == "drop_col" and header:
            j = draw(st.integers(0, len(header) - 1))
            header = header[:j] + header[j + 1:]
            rows = [r[:j] + r[j + 1:] for r in rows]
        elif op == "drop_rows":
            rows = rows[: draw(st.integers(0, 2))]
        elif op == "dup_header":
            rows.insert(0, list(header))
        elif op == "truncate":
            out = "\n".join(",".join(x) for x in [header, *rows])
            return out[: draw(st.integers(0, len(out)))]
        elif op == "bom":
            return "\ufeff" + "\n".join(",".join(x) for x in [header, *rows])
    return "\n".join(",".join(x) for x in [header, *rows]) + "\n"


@fuzz(150)
@given(st.data())
def test_reference_csvs(tmp_path_factory, labelled, data):
    from worldcover.validation.report import sample_raster
    from worldcover.validation.tables import read_labelled

    m, good, _ = labelled
    text = data.draw(mutated_labelled(good.read_text()))
    path = tmp_path_factory.mktemp("ref") / "labelled.csv"
    path.write_text(text)

    def read_and_match():
        df = read_labelled(path)
        on_map = sample_raster(m, df["lon"].to_numpy(), df["lat"].to_numpy())
        if (on_map != df["map_class"].to_numpy()).any():
            raise InputError(f"labelled samples {path}: map_class differs from the map")
        return df

    ok, df = refused("reference CSV", read_and_match, names=str(path))
    if ok:
        assert set(df["ref_code"]) <= {10, 20, 30, 40, 50, 60, 70, 80, 90, 95, 100}


@pytest.mark.slow  # 12 CLI runs: ~6 s
@fuzz(12)
@given(st.data())
def test_reference_csvs_cli(tmp_path_factory, labelled, data):
    m, good, _ = labelled
    text = data.draw(mutated_labelled(good.read_text()))
    d = tmp_path_factory.mktemp("ref")
    (d / "labelled.csv").write_text(text)
    r = cli("validate report", ["validate", "report", "--map", str(m), "--reference", str(d / "labelled.csv"),
                                "--out", str(d / "report")])
    if r.exit_code == 2:
        assert str(d / "labelled.csv") in r.stderr
        assert not (d / "report" / "report.html").exists() and not (d / "report" / "metrics.json").exists()
    else:
        assert json.loads((d / "report" / "metrics.json").read_text())["n"] > 0


# ------------------------------------------------------------------------------------------------
# STAC items (real Planetary Computer samples, mutated)
# ------------------------------------------------------------------------------------------------

ODD = st.one_of(st.sampled_from([None, "", "04.00", "4.00", "04.0", "99.99", "N0400", "xx", "05.10", 4, 4.0, -1,
                                 True, [], {}, ["04.00"], "04.00\n", "{{x}}", "../x"]), json_values)
PROPS = ["s2:processing_baseline", "s2:product_uri", "s2:granule_id", "s2:datatake_id",
         "earthsearch:boa_offset_applied", "datetime", "eo:cloud_cover"]


_ITEMS: list[dict] = []  # trimmed real items, filled by the pc_items fixture (kept out of hypothesis' reprs)
KEEP_ASSETS = ("B02", "B04", "B8A", "SCL")


@pytest.fixture(scope="module")
def pc_items():
    if not SAMPLES.exists():
        pytest.skip(f"shared sample {SAMPLES} not present")
    import rustac

    if not _ITEMS:
        for f in rustac.read_sync(str(SAMPLES))["features"]:
            f = {k: f[k] for k in ("type", "stac_version", "id", "geometry", "bbox", "properties", "assets",
                                   "collection") if k in f}
            f["links"] = []
            f["assets"] = {k: v for k, v in f["assets"].items() if k in KEEP_ASSETS}
            _ITEMS.append(f)
    return _ITEMS


@st.composite
def mutated_item(draw):
    item = copy.deepcopy(_ITEMS[draw(st.integers(0, len(_ITEMS) - 1))])
    for _ in range(draw(st.integers(1, 4))):
        op = draw(st.sampled_from(["prop", "prop", "drop_prop", "asset_offset", "drop_asset", "props_odd", "id"]))
        props = item.get("properties")
        if op == "prop" and isinstance(props, dict):
            props[draw(st.sampled_from(PROPS))] = draw(ODD)
        elif op == "drop_prop" and isinstance(props, dict):
            props.pop(draw(st.sampled_from(PROPS)), None)
        elif op == "asset_offset":
            key = draw(st.sampled_from(["B04", "B02", "SCL"]))
            if key in item.get("assets", {}):
                item["assets"][key]["raster:bands"] = draw(st.one_of(
                    st.just([{"offset": draw(ODD)}]), st.just(draw(ODD)), st.just([draw(ODD)]),
                    st.just([{"offset": draw(st.sampled_from([0, -0.1, 0.1, -1000, 1e-12]))}])))
        elif op == "drop_asset":
            item.get("assets", {}).pop(draw(st.sampled_from(list(KEEP_ASSETS))), None)
        elif op == "props_odd":
            item["properties"] = draw(st.sampled_from([{}, None, []]))
        elif op == "id":
            item["id"] = draw(st.sampled_from(["../../etc", "{{x}}", "", "x" * 300, "é\x00"]))
    return item


@fuzz(300)
@given(st.data())
def test_stac_items(pc_items, data):
    import pystac

    from worldcover.sources.harmonise import harmonisation
    from worldcover.sources.stac import _check_assets

    raw = data.draw(mutated_item())
    item_id = raw.get("id")
    # as a dict (how catalogue JSON arrives) and as a pystac Item (how pystac-client hands it over)
    ok, h = refused("STAC item (dict)", harmonisation, raw, "B04", names=repr(item_id))
    if ok:  # only the two offsets Sentinel-2 L2A ever had
        assert h.offset_dn in (0, -1000) and isinstance(h.offset_dn, int)
    try:
        item = pystac.Item.from_dict(copy.deepcopy(raw))
    except Exception:  # pystac refuses it before it can reach us (pystac-client would too)
        return
    ok2, h2 = refused("STAC item", harmonisation, item, "B04", names=repr(item.id))
    assert ok2 == ok and (not ok or h2.offset_dn == h.offset_dn)
    ok3, _ = refused("STAC item assets", _check_assets, [item], list(KEEP_ASSETS), names=repr(item.id))
    assert ok3 == all(k in item.assets for k in KEEP_ASSETS)


# ------------------------------------------------------------------------------------------------
# other CLI inputs: nothing is written for a refused run
# ------------------------------------------------------------------------------------------------

@fuzz(60)
@given(st.sampled_from(["tile", "year", "blocks", "block-size", "source", "out", "model", "stage", "name"]),
       st.one_of(st.sampled_from(HOSTILE), st.text(max_size=12)))
@pytest.mark.slow  # CLI runs: ~5 s
def test_campaign_and_tile_options_cli(tmp_path_factory, option, value):
    assume("\x00" not in value and not value.startswith("-"))
    d = tmp_path_factory.mktemp("opts")
    out = d / "out"
    args = {"tiles": "N45E003", "year": "2021", "blocks": "first:1", "block-size": "300",
            "source": "http://127.0.0.1:9/", "out": str(out), "model": "models/default", "name": "wc-fuzz"}
    if option == "tile":
        args["tiles"] = value
    elif option == "out":
        args["out"] = value
    else:
        args[option] = value
    argv = ["campaign", "plan", "--json"] + [x for k, v in args.items() for x in (f"--{k}", v)]
    r = cli("campaign plan (options)", argv)
    if r.exit_code == 0:  # accepted: the plan it shows is valid and keeps everything under the output root
        plan = json.loads(r.stdout)["plan"]
        assert ".." not in Path(plan["out_root"]).parts and "{{" not in json.dumps(plan)
    shared = {"tile": "tiles", "year": "year", "blocks": "blocks", "block-size": "block-size", "source": "source",
              "out": "out"}
    if r.exit_code == 2 and option in shared:  # `tile run` validates the same option the same way
        tile_argv = ["tile", "run", args["tiles"], "--year", args["year"], "--source", args["source"], "--out",
                     args["out"], "--blocks", args["blocks"], "--block-size", args["block-size"], "--model",
                     args["model"]]
        r2 = cli("tile run (options)", tile_argv)
        assert r2.exit_code == 2, r2.output
        assert not out.exists() or not any(out.rglob("*.tif")), "a refused tile run wrote a product"


# ------------------------------------------------------------------------------------------------
# source COGs (a simulated archive) with the wrong dtype, CRS or nodata: the tile fails, no map
# ------------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def small_archive(tmp_path_factory):
    from worldcover import sim

    root = tmp_path_factory.mktemp("src") / "archive"
    sim.generate([Tile.parse("N45E003").block(300, 300, 60)], 2021, root, seed=3,
                 period=("2021-05-01", "2021-06-30"))
    return root


def _rewrite_band(archive: Path, band: str, **change) -> int:
    """Rewrite ``band`` of every S2 item: dtype float32 reflectance, another dtype, no CRS, or nodata."""
    items = json.loads((archive / "stac" / "items" / "sentinel-2-l2a.json").read_text())["features"]
    for it in items:
        path = Path(it["assets"][band]["href"].removeprefix("file://"))
        with rasterio.open(path) as src:
            profile, data = src.profile, src.read()
        for k in ("blockxsize", "blockysize", "tiled", "compress", "interleave"):
            profile.pop(k, None)
        if change.get("dtype") == "float32":
            data = data / 10000.0  # reflectance instead of DN
        profile.update(change)
        with rasterio.open(path, "w", **profile) as dst:
            dst.write(data.astype(profile["dtype"]))
    return len(items)


@pytest.mark.parametrize("change", [{"dtype": "float32"}, {"dtype": "int16"}, {"crs": None}, {"nodata": 10}])
def test_source_cogs_with_wrong_dtype_crs_or_nodata_fail_the_tile(tmp_path, small_archive, change):
    import shutil

    from worldcover.sources.local_api import LocalStacApi
    from worldcover.tile.run import run_tile

    archive = tmp_path / "archive"
    shutil.copytree(small_archive, archive)
    # the archive's manifest and items name absolute paths: point them at the copy
    for f in (archive / "stac" / "items").glob("*.json"):
        f.write_text(f.read_text().replace(str(small_archive), str(archive)))
    _rewrite_band(archive, "B04", **change)
    out = tmp_path / "out"
    with LocalStacApi(archive) as api:
        ok, exc = refused("source COG", run_tile, "N45E003", 2021, api.url, str(REPO_MODEL), out,
                          block_size=60, blocks="r300c300", names="'B04'")
    assert not ok, f"a tile was produced from B04 COGs with {change}"
    paths = tile_paths(out, "N45E003", 2021)
    assert not paths.item.exists() and not paths.map.exists() and paths.failure.exists()
    assert not list(paths.blocks_dir.glob("*.json")) if paths.blocks_dir.exists() else True


def test_clean_source_cogs_pass_the_header_check(small_archive):
    from worldcover.bands import S2_ASSET_KEYS
    from worldcover.sources.local_api import LocalStacApi
    from worldcover.sources.stac import StacSource, check_s2_headers

    block = Tile.parse("N45E003").block(300, 300, 60)
    with LocalStacApi(small_archive) as api:
        src = StacSource(api.url)
        items = src.search(src.preset.s2_collection, block, "2021-01-01T00:00:00Z/2021-12-31T23:59:59Z")
    assert len(items) > 5
    check_s2_headers(items, S2_ASSET_KEYS["planetary-computer"], sample=len(items))
