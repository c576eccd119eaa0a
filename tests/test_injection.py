"""Names and ids that reach YAML, paths or a shell: traversal and template injection are refused.

Complements test_campaign.py / test_argo_render.py (names, out_root, model, source, labels,
reference, image at plan creation) with the gaps: values that end in a newline (a ``$`` regex
accepted them), NUL and other control characters, the stage and labels of a campaign file or of
a workflow's plan annotation, the step functions as an Argo runner calls them (parameters can be
edited when a workflow is resubmitted), the YAML emitter, and the CLI.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from worldcover.campaign import steps
from worldcover.campaign.plan import CampaignPlan
from worldcover.cli import app
from worldcover.engines.argo import parts
from worldcover.engines.argo.parts import RenderConfig
from worldcover.engines.argo.submit import check_server
from worldcover.errors import InputError

TRAVERSAL = ["../../etc", "/x/../../etc", "out/..", "..", "s3://bucket/../../etc", "out/./../x"]
TEMPLATES = ["{{workflow.parameters.x}}", "{{inputs.parameters.tile}}", "{{=sprig.env('ARGO_TOKEN')}}",
             "a{{x}}b", "$(id)", "`id`", "x;rm -rf /", "x|sh", "x&&id"]
CONTROL = ["\n", "\r", "\x00", "\t", "\u2028", " "]


def _plan(**overrides):
    kwargs = dict(tiles=["N45E003"], model="models/default", source="planetary-computer", out_root="out")
    name = overrides.pop("name", "ok")
    kwargs.update(overrides)
    return CampaignPlan.create(name, 2021, **kwargs)


@pytest.mark.parametrize("suffix", CONTROL)
@pytest.mark.parametrize("field, value", [
    ("name", "ok"), ("out_root", "out"), ("out_root", "s3://bucket/campaigns"), ("model", "models/default"),
    ("source", "planetary-computer"), ("source", "http://127.0.0.1:8080/stac"), ("blocks", "first:2"),
    ("reference", "sim:archive"),
])
def test_a_trailing_newline_or_control_character_is_refused(field, value, suffix):
    assert _plan(**{field: value})  # the clean value is fine
    with pytest.raises(InputError, match=field.replace("_", " ").replace("out root", "output root")):
        _plan(**{field: value + suffix})
    with pytest.raises(InputError):
        _plan(**{field: suffix + value})


@pytest.mark.parametrize("suffix", CONTROL)
def test_labels_namespace_workflow_image_and_server_with_control_characters(suffix):
    with pytest.raises(InputError, match="invalid label"):
        _plan(labels={"team" + suffix: "eo"})
    with pytest.raises(InputError, match="invalid label"):
        _plan(labels={"team": "eo" + suffix})
    with pytest.raises(InputError, match="namespace"):
        parts.check_dns_name("argo" + suffix, "namespace")
    with pytest.raises(InputError, match="workflow name"):
        parts.check_k8s_name("wc-1pct-2021" + suffix, "workflow name")
    with pytest.raises(InputError, match="image"):
        RenderConfig(image="ghcr.io/worldcover/worldcover:1.0" + suffix)
    with pytest.raises(InputError, match="Argo Server URL"):
        check_server("https://argo.example.org:2746" + suffix)


@pytest.mark.parametrize("value", TRAVERSAL + TEMPLATES)
@pytest.mark.parametrize("field", ["out_root", "model", "reference", "name", "source", "blocks"])
def test_traversal_and_templates_in_every_field(field, value):
    if field == "reference":
        value = "sim:" + value
    with pytest.raises(InputError):
        _plan(**{field: value})


@pytest.mark.parametrize("field, value", [
    ("stage", "{{workflow.parameters.x}}"), ("stage", "1pct\n"), ("stage", ["1pct"]), ("stage", "../../etc"),
    ("labels", {"team": "{{workflow.parameters.x}}"}), ("labels", ["team", "eo"]),
    ("out_root", "../../etc"), ("out_root", "s3://b/{{workflow.name}}"), ("tiles", ["../../etc"]),
    ("tiles", ["N45E003\n"]), ("tiles", "N45E003"), ("blocks", "r0c0\n"), ("name", "wc\n"),
    ("seed", "{{x}}"), ("reference", "sim:/a/../../etc"), ("max_cloud", "{{x}}"),
])
def test_campaign_files_and_plan_annotations_are_validated(tmp_path, field, value):
    """What a campaign.json or a workflow's worldcover.io/plan annotation says is checked like a new plan."""
    doc = _plan(stage="1pct", tiles=None, out_root="s3://worldcover/c").to_dict()
    doc[field] = value
    with pytest.raises(InputError):
        CampaignPlan.from_dict(doc)  # the Argo retry path
    path = tmp_path / "campaign.json"
    path.write_text(json.dumps(doc))
    with pytest.raises(InputError, match=str(path)):
        CampaignPlan.load(path)


@pytest.mark.parametrize("call", [
    lambda root: steps.process_tile("N45E003", 2021, "planetary-computer", "models/default", "../../etc"),
    lambda root: steps.process_tile("../../etc", 2021, "planetary-computer", "models/default", root),
    lambda root: steps.process_tile("N45E003", 2021, "planetary-computer", "models/{{x}}", root),
    lambda root: steps.process_tile("N45E003", 2021, "http://x/`id`", "models/default", root),
    lambda root: steps.process_tile("N45E003", 2021, "planetary-computer", "models/default", root,
                                    blocks="../r0c0"),
    lambda root: steps.process_tile("N45E003", 2021, "planetary-computer", "models/default", root,
                                    campaign="{{workflow.name}}"),
    lambda root: steps.collect_failures(root + "/../..", "ok", 2021),
    lambda root: steps.merge(root, "{{workflow.parameters.x}}", 2021),
    lambda root: steps.merge("/etc/../..", "ok", 2021),
    lambda root: steps.validate(root, "ok", 2021, reference="sim:../../etc"),
    lambda root: steps.validate(root, "ok", 2021, reference="/etc/passwd\n"),
    lambda root: steps.validate(root + "\n", "ok", 2021),
])
def test_step_functions_check_their_parameters_before_touching_anything(tmp_path, call):
    root = tmp_path / "root"
    root.mkdir()
    before = sorted(os.listdir(tmp_path))
    cwd = os.getcwd()
    os.chdir(root)  # a relative traversal would land next to the root
    try:
        with pytest.raises(InputError):
            call(str(root))
    finally:
        os.chdir(cwd)
    assert sorted(os.listdir(tmp_path)) == before and os.listdir(root) == []


@pytest.mark.parametrize("text", ["abc\n", "a: b", "{{x}}", "- x", "x #y", "N45E003\n", "yes", "\u2028", "a\x00b",
                                  "key:\n  nested: 1"])
def test_yaml_emitter_quotes_what_would_not_round_trip(text):
    from worldcover.engines.argo.yamlio import dump

    doc = {"metadata": {"name": "x", "annotations": {"a": text, text: "b"}}}
    assert yaml.safe_load(dump(doc)) == doc


@pytest.mark.parametrize("args", [
    ["campaign", "render", "--out", "OUT", "--stage", "1pct", "--name", "wc\n"],
    ["campaign", "render", "--out", "OUT", "--stage", "1pct", "--name", "{{workflow.name}}"],
    ["campaign", "render", "--out", "OUT", "--stage", "1pct", "--out-root", "s3://bucket/../../etc"],
    ["campaign", "render", "--out", "OUT", "--stage", "1pct", "--model", "models/{{x}}"],
    ["campaign", "render", "--out", "OUT", "--stage", "1pct", "--image", "x:{{workflow.name}}"],
    ["campaign", "render", "--out", "OUT", "--tiles", "N45E003,../../etc"],
    ["campaign", "plan", "--tiles", "N45E003", "--blocks", "r0c0\n"],
    ["campaign", "run", "--tiles", "N45E003", "--out", "../../x", "--source", "http://127.0.0.1:9"],
    ["tile", "run", "../../etc", "--year", "2021", "--source", "planetary-computer", "--out", "OUT"],
    ["tile", "run", "N45E003", "--year", "2021", "--source", "planetary-computer", "--out", "OUT/../../x"],
    ["campaign", "status", "wf\n", "--argo-server", "http://127.0.0.1:9"],
    ["campaign", "status", "wf", "--argo-server", "http://127.0.0.1:9", "--namespace", "{{x}}"],
])
def test_cli_refuses_with_one_line_and_writes_nothing(tmp_path, args):
    out = tmp_path / "out"
    args = [str(out) if a == "OUT" else a.replace("OUT", str(out)) for a in args]
    cwd = os.getcwd()
    os.chdir(tmp_path)
    try:
        result = CliRunner().invoke(app, args)
    finally:
        os.chdir(cwd)
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: invalid"), result.stderr
    assert os.listdir(tmp_path) == [], f"a refused command wrote {os.listdir(tmp_path)}"
    assert not Path("/x").exists()
