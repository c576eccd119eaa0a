"""The container image every Argo pod runs (Containerfile, ``make image``), checked by running it with podman.

Each container runs like a restricted pod (``--read-only`` root, ``/tmp`` a
tmpfs) and sees no source tree: the package, its default model and its DAG
modules come from the install inside the image. On a machine where podman
cannot build or run the image these tests fail with one line saying why.
"""

from __future__ import annotations

import json

import pytest

from tests.image import package_version, run_in_image
from worldcover.model import Model
from worldcover.model.location import DEFAULT_MODEL_DIR

pytestmark = pytest.mark.slow
DIGEST = "sha256:" + "0123456789abcdef" * 4


@pytest.fixture(scope="module")
def image() -> str:
    from tests.image import ensure_image

    return ensure_image()


def run(image: str, *cmd: str, **kw):
    proc = run_in_image(image, *cmd, **kw)
    assert proc.returncode == 0, f"{' '.join(cmd)} exited {proc.returncode}: {proc.stderr.strip()[-2000:]}"
    return proc


def test_version(image):
    assert run(image, "worldcover", "--version").stdout.strip() == package_version()


def test_runs_as_non_root_user_1000_in_tmp(image):
    from worldcover.engines.argo.parts import RenderConfig

    out = run(image, "sh", "-c", "id -u; id -g; pwd").stdout.split()
    assert out == [str(RenderConfig().run_as_user)] * 2 + ["/tmp"]  # the pods' runAsUser, WORKDIR /tmp


def test_packaged_model_loads_and_nothing_comes_from_a_source_tree(image):
    script = """
import json, worldcover, worldcover.dags
from worldcover.model import Model
from worldcover.model.location import DEFAULT_MODEL_DIR
from worldcover.campaign.estimate import measured_throughput
m = Model.load(DEFAULT_MODEL_DIR)
assert Model.load("default").card.version == m.card.version  # the keyword plans and pods use
print(json.dumps({"package": worldcover.__file__, "dags": worldcover.dags.__file__, "model": str(DEFAULT_MODEL_DIR),
                  "name": m.card.name, "features": len(m.card.feature_names), "throughput": measured_throughput()[1]}))
"""
    doc = json.loads(run(image, "python", "-c", script).stdout.strip().splitlines()[-1])
    site = "/opt/venv/lib/python3.11/site-packages/worldcover/"
    assert doc["package"] == site + "__init__.py"
    assert doc["dags"] == site + "dags/__init__.py"
    assert doc["model"] == site + "model/default_model"
    # the packaged model is the one in the working tree
    assert doc["name"] == "worldcover-default-sim"
    assert doc["features"] == len(Model.load(DEFAULT_MODEL_DIR).card.feature_names)
    assert doc["throughput"].startswith("make bench")  # the packaged figure, not the fallback


def test_campaign_render_inside_the_image(image):
    out = run(image, "sh", "-c", "worldcover campaign render --stage 1pct --year 2021 --out /tmp/argo "
              "&& find /tmp/argo -name '*.yaml' | sort").stdout
    assert "valid against Argo" in out
    files = [ln for ln in out.splitlines() if ln.endswith(".yaml")]
    # the four shared templates (process-tile, batch, merge, validate) and the campaign's one workflow
    assert files == ["/tmp/argo/campaigns/wc-1pct-2021/workflow.yaml"] + [
        f"/tmp/argo/templates/worldcover-{n}.yaml" for n in ("batch", "merge", "process-tile", "validate")]


def test_only_runtime_dependencies(image):
    script = """
import importlib.util, json
print(json.dumps({m: importlib.util.find_spec(m) is not None
                  for m in ("pytest", "hypothesis", "moto", "lightgbm", "hera", "s3fs", "upath")}))
"""
    found = json.loads(run(image, "python", "-c", script).stdout.strip().splitlines()[-1])
    assert found == {"pytest": False, "hypothesis": False, "moto": False,
                     "lightgbm": True, "hera": True, "s3fs": True, "upath": True}
    # every installed distribution satisfies the others, at the versions of constraints.txt
    out = run(image, "sh", "-c", "pip check && pip freeze").stdout
    assert "No broken requirements" in out
    frozen = set(out.split())
    from tests.image import REPO

    pinned = {ln.strip() for ln in (REPO / "constraints.txt").read_text().splitlines()
              if ln.strip() and not ln.startswith("#")}
    assert pinned <= frozen, f"not at the pinned version in the image: {sorted(pinned - frozen)[:5]}"


# -- the image the rendered YAML names (no podman needed) ------------------------------------------

def test_rendered_image_reference_comes_from_one_setting(monkeypatch):
    from worldcover.engines.argo import parts
    from worldcover.engines.argo.render import render_templates
    from worldcover.errors import InputError

    monkeypatch.delenv(parts.IMAGE_REPOSITORY_ENV, raising=False)
    monkeypatch.delenv(parts.IMAGE_DIGEST_ENV, raising=False)
    version = package_version()
    assert parts.default_image() == f"ghcr.io/worldcover/worldcover:{version}"
    monkeypatch.setenv(parts.IMAGE_REPOSITORY_ENV, "registry.example.org:5000/eo/worldcover")
    monkeypatch.setenv(parts.IMAGE_DIGEST_ENV, DIGEST)
    pinned = f"registry.example.org:5000/eo/worldcover:{version}@{DIGEST}"
    assert parts.RenderConfig().image == pinned
    images = {c["image"] for o in render_templates(parts.RenderConfig())
              for t in o.obj["spec"]["templates"] for c in [t.get("script") or t.get("container")] if c}
    assert images == {pinned}
    assert parts.RenderConfig(image="localhost/worldcover:dev").image == "localhost/worldcover:dev"  # --image
    for repo, digest in (("ghcr.io/x/y:1.0", None), ("Upper/case", None), ("ok/name", "sha256:abc"),
                         ("ok/name\n", None)):
        with pytest.raises(InputError):
            parts.image_reference(repo, digest)
