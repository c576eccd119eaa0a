"""The Sentinel Hub provider: the request it builds (offline) and a live round trip."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest

from worldcover.bands import S2_BANDS
from worldcover.errors import DataError, InputError
from worldcover.grid import Tile
from worldcover.sources.sentinelhub import Credentials, SentinelHubSource, _to_dataset, build_requests

BLOCK = Tile.parse("N45E003").block(5, 5, 300)


def test_s2_request_payload():
    s2, s1 = build_requests(BLOCK, 2021, Credentials("abcd1234", "sekret-value-42"), max_cloud=60)
    d = s2.download_list[0]
    body = d.post_values
    assert d.url.endswith("/api/v1/process")
    assert body["input"]["bounds"]["bbox"] == pytest.approx(list(BLOCK.bbox))
    data = body["input"]["data"][0]
    assert data["type"] == "sentinel-2-l2a"
    assert data["processing"]["harmonizeValues"] is True  # offset removed server-side
    assert data["dataFilter"]["timeRange"] == {"from": "2021-01-01T00:00:00Z", "to": "2021-12-31T23:59:59Z"}
    assert data["dataFilter"]["maxCloudCoverage"] == 60
    assert (body["output"]["width"], body["output"]["height"]) == (300, 300)
    script = body["evalscript"]
    assert all(f"s.{b}" in script for b in S2_BANDS) and "s.SCL" in script
    assert f"collection.scenes.length * {len(S2_BANDS) + 1}" in script
    s1_data = s1.download_list[0].post_values["input"]["data"][0]
    assert s1_data["type"] == "sentinel-1-grd" and s1_data["processing"]["backCoeff"] == "GAMMA0_TERRAIN"


def test_secret_never_in_payload_or_repr():
    creds = Credentials("abcd1234", "sekret-value-42")
    s2, _ = build_requests(BLOCK, 2021, creds)
    assert "sekret-value-42" not in json.dumps(s2.download_list[0].post_values)
    assert "sekret-value-42" not in repr(creds) and "sekret-value-42" not in repr(s2.download_list[0])


def test_missing_credentials_is_a_clear_error(monkeypatch):
    monkeypatch.delenv("SH_CLIENT_ID", raising=False)
    monkeypatch.delenv("SH_CLIENT_SECRET", raising=False)
    with pytest.raises(InputError, match="SH_CLIENT_ID and SH_CLIENT_SECRET"):
        SentinelHubSource().load_block(BLOCK, 2021)


def test_response_to_dataset():
    h, w = BLOCK.shape
    names = ["vv", "vh"]
    raw = np.arange(h * w * 3 * 2, dtype="float32").reshape(h, w, 6)
    ds = _to_dataset(raw, ["2021-01-01T10:00:00Z", "2021-01-13T10:00:00Z", "2021-01-25T10:00:00Z"], names, BLOCK)
    assert ds.vv.dims == ("time", "y", "x") and ds.sizes["time"] == 3
    assert float(ds.vh.isel(time=1, y=0, x=0)) == raw[0, 0, 3]  # time 1, band 1
    with pytest.raises(DataError, match="shape"):
        _to_dataset(raw[:, :, :5], ["2021-01-01"] * 3, names, BLOCK)


@pytest.mark.live
@pytest.mark.skipif(not os.environ.get("SH_CLIENT_SECRET"), reason="needs Sentinel Hub credentials")
def test_live_block():
    inputs = SentinelHubSource(max_cloud=80).load_block(Tile.parse("N45E003").block(60, 60, 120), 2021)
    assert inputs.s2.sizes["time"] > 10
    refl = inputs.s2["B04"].where(inputs.s2["SCL"] == 4)
    assert 0 < float(refl.median()) < 0.3
