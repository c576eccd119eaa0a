"""Argo schema validation: vendored schemas, quirk patches, strict mode, the shape reduction, argo/ files."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest
import yaml

from worldcover.engines.argo import schema as S
from worldcover.engines.argo.schema import ArgoSchemaError, validate_object
from worldcover.errors import DataError, InputError

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared" / "argo"
ARGO = REPO / "argo"


def _hello(**spec_extra) -> dict:
    return {
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "Workflow",
        "metadata": {"generateName": "hello-"},
        "spec": {
            "entrypoint": "main",
            "templates": [{
                "name": "main",
                "retryStrategy": {"limit": 3, "backoff": {"duration": "1m", "factor": 2}},
                "container": {"image": "busybox", "command": ["echo", "hi"]},
            }],
            **spec_extra,
        },
    }


@pytest.mark.parametrize("version", S.VERSIONS)
def test_vendored_schemas_equal_shared_copies(version):
    ours = S.SCHEMA_DIR / version / "schema.json"
    assert ours.is_file()
    shared = SHARED / version / "schema.json"
    if not shared.exists():
        pytest.skip("../shared/argo not present")
    assert ours.read_bytes() == shared.read_bytes()
    assert (S.SCHEMA_DIR / "SOURCE.txt").is_file()


@pytest.mark.parametrize("version", S.VERSIONS)
def test_int_or_string_patch_accepts_integers(version):
    obj = _hello()
    validate_object(obj, version)  # limit: 3 and factor: 2 are integers
    raw = S._raw_schema(version)["definitions"]["io.k8s.apimachinery.pkg.util.intstr.IntOrString"]
    assert raw == {"type": "string"}, "the shipped schema still has the quirk; the patch is what makes this pass"


@pytest.mark.parametrize("version", S.VERSIONS)
def test_strict_mode_catches_typos_and_lax_mode_does_not(version):
    obj = _hello(entrypiont="main")
    with pytest.raises(ArgoSchemaError) as err:
        validate_object(obj, version)
    assert "$.spec" in str(err.value) and "entrypiont" in str(err.value)
    assert err.value.errors[0][0] == "$.spec"
    validate_object(obj, version, strict=False)


def test_errors_list_every_failing_path():
    obj = _hello()
    obj["spec"]["templates"][0]["container"]["imagee"] = "x"
    obj["spec"]["parallelism"] = "ten"
    with pytest.raises(ArgoSchemaError) as err:
        validate_object(obj)
    paths = [p for p, _ in err.value.errors]
    assert "$.spec.parallelism" in paths and "$.spec.templates[0].container" in paths
    assert isinstance(err.value, DataError)


def test_memoize_quirk_only_in_v3():
    obj = _hello()
    obj["spec"]["templates"][0]["memoize"] = {"key": "k", "maxAge": "1h", "cache": {"configMap": {"name": "cache"}}}
    validate_object(obj, "v4.1.2")
    validate_object(obj, "v3.7.18")  # patched: configMap needs no "key"
    with pytest.raises(ArgoSchemaError):  # the patch is needed: the raw v3 definition requires it
        S.validate_definition({"name": "cache"}, "io.k8s.api.core.v1.ConfigMapKeySelector", "v3.7.18")


def test_bad_version_kind_and_api_version_are_input_errors():
    with pytest.raises(InputError, match="schema version"):
        validate_object(_hello(), "v9")
    with pytest.raises(InputError, match="kind"):
        validate_object({**_hello(), "kind": "Pod"})
    with pytest.raises(InputError, match="apiVersion"):
        validate_object({**_hello(), "apiVersion": "v1"})


def test_validator_is_cached():
    """The schema is compiled once per (version, definition, strictness): later objects reuse the validator."""
    validate_object(_hello())
    before = S._validator.cache_info()
    for _ in range(50):
        validate_object(_hello())
    after = S._validator.cache_info()
    assert after.misses == before.misses and after.hits >= before.hits + 50


def test_shape_reduction_gives_the_same_answer():
    """A DAG of many same-shaped tasks validates like its reduction, valid or not."""
    obj = _hello()
    tasks = [{"name": f"t{i}", "template": "main", "arguments": {"parameters": [{"name": "x", "value": str(i)}]}}
             for i in range(40)]
    obj["spec"]["templates"].append({"name": "dag", "dag": {"tasks": tasks}})
    sensitive = S._reducible("v4.1.2", True)
    assert sensitive is not None and {"apiVersion", "kind"} <= sensitive
    reduced = S.reduce_lists(obj, sensitive)
    assert len(reduced["spec"]["templates"][1]["dag"]["tasks"]) == 1
    definition = S.KINDS["Workflow"]
    for mutate in (None, "typo", "type"):
        o = copy.deepcopy(obj)
        if mutate == "typo":
            o["spec"]["templates"][1]["dag"]["tasks"][37]["dependz"] = "t1"
        elif mutate == "type":
            o["spec"]["templates"][1]["dag"]["tasks"][12]["arguments"]["parameters"][0]["value"] = ["a"]
        full = not S.schema_errors(o, definition)
        assert S.is_valid(o, definition) == full == (mutate is None)
    with pytest.raises(ArgoSchemaError) as err:  # the real path is reported, not the reduced one
        o = copy.deepcopy(obj)
        o["spec"]["templates"][1]["dag"]["tasks"][37]["dependz"] = "t1"
        validate_object(o)
    assert "$.spec.templates[1].dag.tasks[37]" in str(err.value)


def _argo_files():
    return sorted(p for p in ARGO.rglob("*.yaml")) if ARGO.is_dir() else []


@pytest.fixture(scope="module")
def argo_objects():
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    return [(p, yaml.load(p.read_text(), Loader=loader)) for p in _argo_files()]


def test_argo_folder_is_populated():
    files = _argo_files()
    # install/ (8), templates/ (4 shared + the launch form), one campaign per stage, kustomization.yaml
    assert len(files) == 8 + 5 + 3 + 1, "run `make argo`"
    assert (ARGO / "kustomization.yaml").is_file()


@pytest.mark.parametrize("version", S.VERSIONS)
def test_every_argo_object_validates_strictly(version, argo_objects):
    from worldcover.engines.argo import install

    seen = 0
    for path, obj in argo_objects:
        if obj.get("apiVersion") == S.API_VERSION:
            validate_object(obj, version, strict=True)
            assert len(json.dumps(obj, separators=(",", ":"))) < 256 * 1024, path
            seen += 1
        else:
            install.check_manifest(obj)
            if obj["kind"] == "ConfigMap" and obj["metadata"]["name"] == "artifact-repositories":
                for text in obj["data"].values():
                    S.validate_definition(yaml.safe_load(text), "ArtifactRepository", version)
    assert seen == 5 + 3  # the templates and the three campaigns (1pct workflow, 10pct and 100pct parents)


def test_install_manifests_least_privilege_and_no_secret_values():
    objs = {p.name: yaml.safe_load(p.read_text()) for p in (ARGO / "install").glob("*.yaml")}
    rules = objs["role.yaml"]["rules"]
    granted = {(g, r, v) for rule in rules
               for g in rule["apiGroups"] for r in rule["resources"] for v in rule["verbs"]}
    assert granted == {("argoproj.io", "workflowtaskresults", "create"),
                       ("argoproj.io", "workflowtaskresults", "patch"),
                       ("argoproj.io", "workflows", "create"), ("argoproj.io", "workflows", "get"),
                       ("argoproj.io", "workflows", "list"), ("argoproj.io", "workflows", "watch"),
                       # the exit handler stops children (merge patch); apply patches an existing child
                       ("argoproj.io", "workflows", "patch"),
                       # owner references with blockOwnerDeletion (OwnerReferencesPermissionEnforcement)
                       ("argoproj.io", "workflows/finalizers", "update")}
    # the semaphore ConfigMap the process-tile template names, with a positive limit
    limits = objs["limits.yaml"]
    assert limits["metadata"]["name"] == "worldcover-limits" and int(limits["data"]["process-tile"]) >= 1
    binding = objs["rolebinding.yaml"]
    assert binding["roleRef"]["name"] == objs["role.yaml"]["metadata"]["name"]
    assert binding["subjects"][0]["name"] == objs["serviceaccount.yaml"]["metadata"]["name"]
    repo = yaml.safe_load(objs["artifact-repositories.yaml"]["data"]["worldcover-s3"])
    assert set(repo["s3"]["accessKeySecret"]) == {"name", "key"}
    assert set(repo["s3"]["secretKeySecret"]) == {"name", "key"}
    kust = yaml.safe_load((ARGO / "kustomization.yaml").read_text())
    listed = set(kust["resources"])
    assert {f"install/{n}" for n in objs} <= listed
    assert {f"templates/{p.name}" for p in (ARGO / "templates").glob("*.yaml")} <= listed
    assert all((ARGO / r).is_file() for r in listed)
