"""Per-item DN offset decisions, on real Planetary Computer item metadata and edge cases."""

from __future__ import annotations

import numpy as np
import pytest

from worldcover.errors import DataError
from worldcover.sources.harmonise import harmonisation, item_baseline


def test_real_pc_items_have_the_offset(pc_sample_items):
    baselines = {item_baseline(f) for f in pc_sample_items}
    assert baselines <= {"05.10", "05.11"} and baselines
    decisions = [harmonisation(f, "B04") for f in pc_sample_items]
    assert {d.offset_dn for d in decisions} == {-1000}
    assert all(d.source == "s2:processing_baseline" and not d.metadata_disagrees for d in decisions)


def _item(props, raster_offset=None):
    asset = {"href": "x.tif"}
    if raster_offset is not None:
        asset["raster:bands"] = [{"nodata": 0, "scale": 0.0001, "offset": raster_offset}]
    return {"id": "it", "properties": props, "assets": {"B04": asset}}


def test_old_baseline_has_no_offset():
    assert harmonisation(_item({"s2:processing_baseline": "03.01"})).offset_dn == 0
    assert harmonisation(_item({"s2:processing_baseline": "04.00"})).offset_dn == -1000


def test_baseline_from_product_uri_when_property_missing():
    it = _item({"s2:product_uri": "S2B_MSIL2A_20220203T101029_N0400_R022_T32TQM_20220203T121713.SAFE"})
    d = harmonisation(it)
    assert (d.baseline, d.offset_dn, d.source) == ("04.00", -1000, "s2:processing_baseline")


def test_wrong_offset_metadata_is_flagged_not_trusted():
    # An old-baseline item that (wrongly) declares the -0.1 offset: the baseline decides.
    d = harmonisation(_item({"s2:processing_baseline": "02.14"}, raster_offset=-0.1))
    assert d.offset_dn == 0 and d.metadata_disagrees


def test_catalogue_already_applied_offset():
    it = _item({"s2:processing_baseline": "05.09", "earthsearch:boa_offset_applied": True}, raster_offset=-0.1)
    d = harmonisation(it)
    assert d.offset_dn == 0 and d.metadata_disagrees


def test_raster_bands_alone():
    assert harmonisation(_item({}, raster_offset=-0.1)).offset_dn == -1000


def test_undecidable_item_is_an_error():
    with pytest.raises(DataError, match="cannot tell"):
        harmonisation(_item({}))
    with pytest.raises(DataError, match="'it'.*processing_baseline"):
        harmonisation(_item({"s2:processing_baseline": "four"}))


@pytest.mark.parametrize("offset", [0, -1000])
def test_dn_to_reflectance_equals_the_xarray_expression_bit_for_bit(offset):
    """The fused loader kernel gives the same float32 bits as the obvious xarray expression."""
    import xarray as xr

    from worldcover.bands import S2_QUANTIFICATION
    from worldcover.sources.stac import dn_to_reflectance

    dn = np.random.default_rng(-offset).integers(0, 20000, (5, 40, 30)).astype("uint16")
    dn[:, :3] = 0
    a = xr.DataArray(dn)
    clipped = a.astype("float32").clip(min=-offset)  # DN below the offset: reflectance 0, not negative
    expected = ((clipped + np.float32(offset)) / np.float32(S2_QUANTIFICATION)).where(a > 0)
    got = dn_to_reflectance(dn, offset)
    assert got.dtype == np.float32 and np.isnan(got[:, :3]).all()
    np.testing.assert_array_equal(got, expected.astype("float32").values)
    valid = dn > 0
    assert np.nanmin(got) == 0.0 if offset else np.nanmin(got) > 0  # never negative
    if offset:  # DN 1..999 under the offset are clipped to 0, DN 1000 is 0 too, DN 1001 is 0.0001
        assert (got[valid & (dn <= 1000)] == 0).all() and (dn[valid] < 1000).any()
        np.testing.assert_allclose(dn_to_reflectance(np.array([999, 1000, 1001, 0], "uint16"), offset)[:3],
                                   [0.0, 0.0, 0.0001], atol=1e-8)
