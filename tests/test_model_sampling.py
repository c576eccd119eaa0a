"""Training-point sampling from labelled blocks and the spatial train/test split."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.test_model_data import CLASSES, NAMES, make_block
from worldcover.errors import DataError, InputError
from worldcover.grid import Tile
from worldcover.model import (
    META_COLUMNS,
    build_training_table,
    feature_columns,
    sample_training_points,
    split_blocks,
)


@pytest.fixture(scope="module")
def block():
    return make_block("N00E006_r00c01", size=48, seed=7)


def _available(features, truth) -> dict[int, int]:
    valid = (truth.values != 0) & ~np.isnan(features.values).all(axis=0)
    codes, counts = np.unique(truth.values[valid], return_counts=True)
    return dict(zip(codes.tolist(), counts.tolist(), strict=True))


@pytest.mark.parametrize("n", [1, 17, 10_000])
def test_at_most_n_per_class_and_all_when_fewer(block, n):
    features, truth = block
    table = sample_training_points(features, truth, "N00E006_r00c01", max_per_class=n, seed=0)
    counts = table["code"].value_counts().to_dict()
    assert counts == {c: min(n, k) for c, k in _available(features, truth).items()}


def test_empty_pixel_mask_is_the_same_in_row_chunks(block):
    from worldcover.model.sampling import _all_nan

    features, _ = block
    expected = np.isnan(features.values).all(axis=0)
    for chunk in (1, 47, 10**6):
        np.testing.assert_array_equal(_all_nan(features.values, chunk_pixels=chunk), expected)


def test_none_keeps_every_labelled_pixel(block):
    features, truth = block
    table = sample_training_points(features, truth, "N00E006_r00c01", max_per_class=None)
    assert len(table) == sum(_available(features, truth).values())


def test_skips_nodata_truth_and_empty_pixels(block):
    features, truth = block
    table = sample_training_points(features, truth, "N00E006_r00c01", max_per_class=None)
    rows, cols = table["row"].to_numpy(), table["col"].to_numpy()
    assert (truth.values[rows, cols] != 0).all() and (table["code"] != 0).all()
    assert not np.isnan(features.values[:, rows, cols]).all(axis=0).any()
    assert not table[list(NAMES)].isna().all(axis=1).any()
    # partially-NaN pixels are kept: LightGBM handles missing single features
    assert table[list(NAMES)].isna().any(axis=1).any()


def test_columns_values_and_coordinates_are_those_of_the_pixels(block):
    features, truth = block
    table = sample_training_points(features, truth, "N00E006_r00c01", max_per_class=30, seed=5)
    assert list(table.columns) == [*META_COLUMNS, *NAMES]
    assert feature_columns(table) == list(NAMES)
    assert (table["block_id"] == "N00E006_r00c01").all()
    rows, cols = table["row"].to_numpy(), table["col"].to_numpy()
    np.testing.assert_array_equal(table[list(NAMES)].to_numpy(), features.values[:, rows, cols].T)
    np.testing.assert_array_equal(table["code"].to_numpy(), truth.values[rows, cols])
    np.testing.assert_allclose(table["lon"], features["x"].values[cols])
    np.testing.assert_allclose(table["lat"], features["y"].values[rows])
    tile = Tile.parse("N00E006")
    assert (tile.bbox[0] < table["lon"]).all() and (table["lat"] < tile.bbox[3]).all()
    assert table["code"].dtype == np.uint8 and table[NAMES[0]].dtype == np.float32
    flat = rows * features.sizes["x"] + cols
    assert (np.diff(flat) > 0).all()  # raster order, no duplicates


def test_seeded_and_independent_between_blocks(block):
    features, truth = block
    pick = lambda bid, seed: sample_training_points(features, truth, bid, max_per_class=10, seed=seed)  # noqa: E731
    a, b = pick("N00E006_r00c01", 0), pick("N00E006_r00c01", 0)
    pd.testing.assert_frame_equal(a, b)
    assert not a[["row", "col"]].equals(pick("N00E006_r00c01", 1)[["row", "col"]])
    assert not a[["row", "col"]].equals(pick("N03E006_r00c01", 0)[["row", "col"]])


def test_block_object_is_accepted_as_id(block):
    features, truth = block
    b = Tile.parse("N00E006").block(0, 1)
    table = sample_training_points(features, truth, b, max_per_class=5)
    assert (table["block_id"] == "N00E006_r00c01").all()


def test_dask_features_give_the_same_table(block):
    features, truth = block
    a = sample_training_points(features, truth, "N00E006_r00c01", max_per_class=25, seed=2)
    b = sample_training_points(features.chunk({"feature": 2, "y": 16, "x": 20}), truth.chunk({"y": 16}),
                               "N00E006_r00c01", max_per_class=25, seed=2)
    pd.testing.assert_frame_equal(a, b)


def test_without_coordinates_there_is_no_lon_lat():
    features, truth = make_block(coords=False)
    table = sample_training_points(features, truth, "N00E006_r00c00", max_per_class=3)
    assert "lon" not in table and "lat" not in table
    assert feature_columns(table) == list(NAMES)


def test_features_in_yx_order_other_than_feature_first_are_accepted(block):
    features, truth = block
    a = sample_training_points(features, truth, "b", max_per_class=4)
    b = sample_training_points(features.transpose("y", "x", "feature"), truth.transpose("x", "y"), "b", max_per_class=4)
    pd.testing.assert_frame_equal(a, b)


def test_latitude_longitude_dims_as_odc_geo_names_them(block):
    features, truth = block
    a = sample_training_points(features, truth, "b", max_per_class=6)
    geo = features.rename(y="latitude", x="longitude")
    b = sample_training_points(geo, truth, "b", max_per_class=6)  # truth may keep y/x
    pd.testing.assert_frame_equal(a, b)
    c = sample_training_points(geo, truth.rename(y="latitude", x="longitude"), "b", max_per_class=6)
    pd.testing.assert_frame_equal(a, c)


def test_bad_inputs_are_refused_clearly(block):
    features, truth = block
    with pytest.raises(DataError, match="shape"):
        sample_training_points(features, truth[:-1], "b")
    shifted = truth.assign_coords(x=truth["x"] + 0.01)
    with pytest.raises(DataError, match="same grid"):
        sample_training_points(features, shifted, "b")
    bad = truth.copy()
    bad.values[0, 0] = 15
    with pytest.raises(DataError, match=r"\[15\]"):
        sample_training_points(features, bad, "b")
    with pytest.raises(DataError, match="dtype"):
        sample_training_points(features, truth.astype("float32"), "b")
    with pytest.raises(DataError, match=r"expected \(feature, y, x\)"):
        sample_training_points(features.rename(y="lat"), truth, "b")
    with pytest.raises(DataError, match="clash"):
        sample_training_points(features.assign_coords(feature=["code", *NAMES[1:]]), truth, "b")
    for n in (0, -1, 2.5, True):
        with pytest.raises(InputError, match="max_per_class"):
            sample_training_points(features, truth, "b", max_per_class=n)
    with pytest.raises(InputError, match="block_id"):
        sample_training_points(features, truth, "  ")


def test_build_training_table_concatenates_and_checks_features():
    items = [(f"N00E006_r00c0{i}", *make_block(seed=i)) for i in range(3)]
    table = build_training_table(items, max_per_class=5, seed=1)
    assert sorted(table["block_id"].unique()) == [b for b, _, _ in items]
    assert table.groupby(["block_id", "code"]).size().max() <= 5
    f, t = make_block(seed=9)
    items.append(("N00E006_r00c09", f.isel(feature=slice(0, 3)), t))
    with pytest.raises(DataError, match="N00E006_r00c09"):
        build_training_table(items, max_per_class=5)
    with pytest.raises(InputError, match="no blocks"):
        build_training_table([])


# --- spatial split -----------------------------------------------------------------

IDS = [f"{t}_r{r:02d}c{c:02d}" for t in ("N00E006", "N03E006", "S03W063", "N45E009", "N60E024")
       for r in range(2) for c in range(3)]


def tile_of(block_id: str) -> str:
    return block_id.split("_")[0]


def test_split_never_puts_one_tile_on_both_sides():
    s = split_blocks(IDS, test_fraction=0.4, seed=3)
    assert {tile_of(b) for b in s.train}.isdisjoint({tile_of(b) for b in s.test})
    assert sorted(s.train + s.test) == sorted(IDS)
    assert len({tile_of(b) for b in s.test}) == 2  # round(0.4 * 5 tiles)
    assert s.rule == "tile" and s.to_dict()["test"] == list(s.test)


def test_split_is_seeded_and_independent_of_order():
    a = split_blocks(IDS, 0.2, seed=1)
    assert a == split_blocks(list(reversed(IDS)), 0.2, seed=1)
    assert any(split_blocks(IDS, 0.2, seed=s).test != a.test for s in range(2, 8))


def test_single_tile_needs_the_row_rule():
    one = [b for b in IDS if b.startswith("N00E006")]
    with pytest.raises(InputError, match="by='row'"):
        split_blocks(one, 0.5)
    s = split_blocks(one, 0.5, by="row")
    rows = lambda ids: {b.split("_")[1][:3] for b in ids}  # noqa: E731
    assert rows(s.train).isdisjoint(rows(s.test)) and s.train and s.test


def test_split_keeps_at_least_one_region_each_side():
    two = ["N00E006_r00c00", "N03E006_r00c00"]
    for f in (0.01, 0.99):
        s = split_blocks(two, f)
        assert len(s.train) == 1 and len(s.test) == 1


@pytest.mark.parametrize(
    "ids, kw, match",
    [(["N00E006_r0c0", "nonsense"], {}, "invalid block id"),
     (["N00E007_r0c0", "N00E006_r0c0"], {}, "3-degree lattice"),
     (IDS, {"test_fraction": 0}, "test_fraction"),
     (IDS, {"test_fraction": 1.0}, "test_fraction"),
     (IDS, {"by": "continent"}, "split rule"),
     (IDS + IDS[:1], {}, "duplicated")],
)
def test_split_refuses_bad_input(ids, kw, match):
    with pytest.raises(InputError, match=match):
        split_blocks(ids, **{"test_fraction": 0.25, **kw})


@settings(max_examples=40, deadline=None)
@given(
    tiles=st.lists(st.sampled_from(["N00E006", "N03E006", "S03W063", "N45E009", "S30E018", "N81W042"]),
                   min_size=2, unique=True),
    per_tile=st.integers(1, 4),
    fraction=st.floats(0.05, 0.95),
    seed=st.integers(0, 2**31),
)
def test_split_properties(tiles, per_tile, fraction, seed):
    ids = [f"{t}_r00c{c:02d}" for t in tiles for c in range(per_tile)]
    s = split_blocks(ids, fraction, seed)
    assert set(s.train) | set(s.test) == set(ids) and not set(s.train) & set(s.test)
    assert {tile_of(b) for b in s.train}.isdisjoint({tile_of(b) for b in s.test})
    assert s.train and s.test


def test_sampled_classes_are_the_block_classes(block):
    features, truth = block
    table = sample_training_points(features, truth, "b", max_per_class=3)
    assert set(table["code"]) <= set(CLASSES)


@pytest.mark.parametrize("bad", ["N00E006_r0c1\n", "N00E006_r0c1 ", "../N00E006_r0c1"])
def test_block_ids_with_trailing_or_leading_junk_are_refused(bad):
    from worldcover.model.sampling import split_blocks

    with pytest.raises(InputError, match="invalid block id"):
        split_blocks(["N00E006_r0c0", bad], test_fraction=0.5)


@pytest.mark.parametrize("bad", ["s2_B04_p50\n", "ndvi\x00", "a b"])
def test_feature_names_with_control_characters_are_refused(bad):
    from worldcover.model.schema import check_feature_names

    with pytest.raises(InputError, match="invalid feature names"):
        check_feature_names(["s2_B02_p50", bad])
