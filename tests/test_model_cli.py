"""``worldcover model info``."""

from __future__ import annotations

import json

import pytest
import typer
from typer.testing import CliRunner

from tests.test_model_data import NAMES, labelled_blocks
from worldcover.cli import _FriendlyErrors
from worldcover.cli.model import app
from worldcover.model import MODEL_FILE, build_training_table, train

# The lead registers `app` as `worldcover model`; mount it the same way here.
root = typer.Typer(cls=_FriendlyErrors)
root.add_typer(app, name="model")


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    table = build_training_table(labelled_blocks(size=24)[:3], max_per_class=20)
    model = train(table, list(NAMES), {"num_iterations": 10, "num_leaves": 7}, num_threads=1,
                  name="tiny", provenance={"simulator": {"seed": 1}})
    return model.save(tmp_path_factory.mktemp("models") / "tiny"), model


def invoke(*args):
    return CliRunner().invoke(root, ["model", *map(str, args)])


def test_info_summarises_the_card(model_dir):
    path, model = model_dir
    r = invoke("info", path)
    assert r.exit_code == 0, r.output
    out = r.stdout
    assert "tiny" in out and model.version in out
    assert f"{len(NAMES)}: s2_B04_p50" in out
    assert "Tree cover" in out and "Moss and lichen" in out
    assert "no metrics" in out
    assert '"simulator": {"seed": 1}' in out


def test_info_json_is_the_card(model_dir):
    path, model = model_dir
    r = invoke("info", path, "--json")
    assert r.exit_code == 0
    assert json.loads(r.stdout) == model.card.to_dict()


def test_info_refuses_a_tampered_model(model_dir, tmp_path):
    path, model = model_dir
    bad = model.save(tmp_path / "bad")
    (bad / MODEL_FILE).write_text(model.model_text.replace("leaf_value=", "leaf_value=1", 1))
    r = invoke("info", bad)
    assert r.exit_code == 2
    assert "does not match" in r.stderr and "Traceback" not in r.output
    r = invoke("info", tmp_path / "missing")
    assert r.exit_code == 2 and "does not exist" in r.stderr


def test_no_args_shows_help():
    r = invoke()
    assert "info" in r.output
