"""A real STAC API (rustac serve) on loopback, searched by the real pystac-client."""

from __future__ import annotations

import pytest
from pystac_client import Client

from worldcover.errors import InputError
from worldcover.sources.catalogues import open_client, resolve, search_items
from worldcover.sources.local_api import LocalStacApi


@pytest.fixture(scope="module")
def api(sample_archive):
    with LocalStacApi(sample_archive) as server:
        yield server


def test_serves_real_item_metadata(api, pc_sample_items):
    client = Client.open(api.url)
    assert api.url.startswith("http://127.0.0.1:")
    ids = {c.id for c in client.get_collections()}
    assert "sentinel-2-l2a" in ids
    items = search_items(client, ["sentinel-2-l2a"], [-106.5, 39, -104, 41], "2024-01-01/2024-12-31")
    assert len(items) == len(pc_sample_items) == 100  # paging through all of them


def test_datetime_and_bbox_narrow_the_search(api):
    client = open_client(api.url)
    summer = search_items(client, ["sentinel-2-l2a"], [-105.3, 39.7, -105.2, 39.8], "2024-06-01/2024-08-31")
    assert summer and all(i.datetime.month in (6, 7, 8) for i in summer)
    assert len(summer) < 100
    far = search_items(client, ["sentinel-2-l2a"], [10, 10, 11, 11], "2024-01-01/2024-12-31")
    assert far == []


def test_cloud_filter_client_side(api, pc_sample_items):
    client = open_client(api.url)
    items = search_items(client, ["sentinel-2-l2a"], [-106.5, 39, -104, 41], "2024", max_cloud=10)
    expected = sum(1 for f in pc_sample_items if f["properties"]["eo:cloud_cover"] <= 10)
    assert len(items) == expected and 0 < expected < 100
    assert all(i.properties["eo:cloud_cover"] <= 10 for i in items)


def test_bad_archive_and_host(tmp_path):
    with pytest.raises(InputError, match="no stac/items"):
        LocalStacApi(tmp_path).start()
    with pytest.raises(InputError, match="loopback"):
        LocalStacApi(tmp_path, host="0.0.0.0")


def test_presets_and_urls():
    assert resolve("planetary-computer").s1_collection == "sentinel-1-rtc"
    assert resolve("http://127.0.0.1:9/").url == "http://127.0.0.1:9"
    with pytest.raises(InputError, match="unknown source"):
        resolve("ftp://nope")
