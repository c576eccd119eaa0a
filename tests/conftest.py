"""Shared fixtures: paths to the shared samples, a loopback STAC API over an archive."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from tests.helpers import DEFAULT_MODEL, SHARED

PC_SAMPLE = SHARED / "stac-samples" / "planetary-computer-sentinel-2-l2a-100-items.parquet"


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--live", action="store_true",
                     help="also run the tests marked live (internet endpoints or credentials; or WORLDCOVER_LIVE=1)")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Tests marked ``live`` are skipped unless asked for: offline is the default, whatever ``-m`` says
    (so ``-m "not slow"`` is the fast loop without also having to say ``not live``)."""
    if config.getoption("--live") or os.environ.get("WORLDCOVER_LIVE") == "1":
        return
    skip = pytest.mark.skip(reason="live: needs internet endpoints or credentials (run with --live)")
    for item in items:
        if "live" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def pc_sample_items() -> list[dict]:
    """The 100 real Planetary Computer S2 items (metadata only)."""
    if not PC_SAMPLE.exists():
        pytest.skip(f"shared sample {PC_SAMPLE} not present")
    import rustac

    return rustac.read_sync(str(PC_SAMPLE))["features"]


@pytest.fixture(scope="session")
def sample_archive(tmp_path_factory, pc_sample_items) -> Path:
    """An archive in the `worldcover sim` layout holding the real PC item metadata."""
    root = tmp_path_factory.mktemp("pc-archive")
    (root / "stac" / "items").mkdir(parents=True)
    fc = {"type": "FeatureCollection", "features": pc_sample_items}
    (root / "stac" / "items" / "sentinel-2-l2a.json").write_text(json.dumps(fc))
    return root


@pytest.fixture(scope="session")
def default_model() -> Path:
    """The default model's folder (``models/default``): committed, so a missing one fails rather than skips."""
    assert (DEFAULT_MODEL / "card.json").is_file(), f"{DEFAULT_MODEL}: the committed default model is missing"
    return DEFAULT_MODEL


@pytest.fixture(scope="session")
def s3_server():
    """moto's standalone S3 server on a free loopback port, for the whole session."""
    from tests.s3 import S3Server

    with S3Server() as server:
        yield server


@pytest.fixture
def s3_env(s3_server, monkeypatch):
    """The S3 server's endpoint and keys in this process's environment (as a pod gets them)."""
    env = s3_server.env()
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    return env


@pytest.fixture
def s3_bucket(s3_env, request) -> str:
    """A fresh bucket on the loopback S3 server; its ``s3://`` URL."""
    import re
    import uuid

    from tests.s3 import make_bucket

    name = (re.sub(r"[^a-z0-9-]", "-", request.node.name.lower())[:40].strip("-") or "wc") + "-" + uuid.uuid4().hex[:8]
    make_bucket(name)
    return f"s3://{name}"


@pytest.fixture(scope="session")
def small_archive(tmp_path_factory) -> Path:
    """The simulated archive of tests/small_campaign.py, generated once per session."""
    from tests.small_campaign import generate

    return generate(tmp_path_factory.mktemp("small") / "archive")


@pytest.fixture(scope="session")
def small_api(small_archive):
    """A STAC API on loopback over ``small_archive``."""
    from worldcover.sources.local_api import LocalStacApi

    with LocalStacApi(small_archive) as server:
        yield server
