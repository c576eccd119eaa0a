"""The lleaves-compiled predictor: same probabilities and codes as LightGBM, cached by model hash, safe fallbacks."""

from __future__ import annotations

import logging
import pickle
import sys

import numpy as np
import pytest
import typer
from typer.testing import CliRunner

from tests.test_model_data import NAMES, labelled_blocks
from worldcover.cli import _FriendlyErrors
from worldcover.cli.model import app
from worldcover.errors import InputError
from worldcover.model import Model, build_training_table, train
from worldcover.model import compiled as compiled_mod
from worldcover.model.compiled import COMPILED_DIR, CompileError, artefact_name, cache_dirs

root = typer.Typer(cls=_FriendlyErrors)
root.add_typer(app, name="model")


@pytest.fixture(scope="module")
def tiny() -> Model:
    """A small multiclass model (60 trees): compiles in well under a second."""
    table = build_training_table(labelled_blocks(size=24)[:3], max_per_class=20)
    return train(table, list(NAMES), {"num_iterations": 10, "num_leaves": 7}, num_threads=1, name="tiny")


@pytest.fixture(autouse=True)
def user_cache(tmp_path, monkeypatch):
    """Every test gets its own empty user cache, and the predictor is chosen by the test, not the environment."""
    monkeypatch.setenv("WORLDCOVER_CACHE", str(tmp_path / "user-cache"))
    monkeypatch.delenv("WORLDCOVER_PREDICTOR", raising=False)
    return tmp_path / "user-cache" / COMPILED_DIR


@pytest.fixture
def model_dir(tiny, tmp_path):
    return tiny.save(tmp_path / "tiny")


def features(n: int = 3000, seed: int = 0) -> np.ndarray:
    """Rows spread over the features' ranges, with NaN gaps and all-NaN rows (nodata)."""
    rng = np.random.default_rng(seed)
    x = (rng.normal(size=(n, len(NAMES))) * [1500, 2500, 0.4, 6, 1500, 1] + [1500, 2500, 0.4, -18, 1500, 0])
    x[rng.random(x.shape) < 0.1] = np.nan
    x[::17] = np.nan
    return x.astype(np.float32)


def artefact(model_dir, model: Model):
    return model_dir / COMPILED_DIR / artefact_name(model.card.model_sha256)


def test_compiled_probabilities_raw_scores_and_codes_match_lightgbm(model_dir):
    lgb = Model.load(model_dir, predictor="lightgbm")
    fast = Model.load(model_dir, predictor="compile")
    assert (lgb.predictor, fast.predictor) == ("lightgbm", "lleaves")
    x = features()
    for threads in (1, 3, None):
        lgb.num_threads = fast.num_threads = threads
        p, q = lgb.predict_proba(x), fast.predict_proba(x)
        assert q.dtype == np.float64 and q.shape == p.shape == (len(x), len(lgb.trained_classes))
        assert np.abs(p - q).max() <= 1e-12
        assert np.abs(lgb.raw_scores(x) - fast.raw_scores(x)).max() <= 1e-12
        (c1, pr1), (c2, pr2) = lgb.predict_matrix(x), fast.predict_matrix(x)
        np.testing.assert_array_equal(c1, c2)
        np.testing.assert_array_equal(pr1, pr2)
    assert (c1 == 0).sum() >= len(x) // 17 and len(np.unique(c1)) > 2  # nodata rows and several classes predicted
    assert fast.raw_scores(x[:0]).shape == lgb.raw_scores(x[:0]).shape == (0, len(lgb.trained_classes))


def test_temperature_scaled_probabilities_match_lightgbm(tiny, tmp_path):
    calibrated = tiny.with_card(tiny.card.replace(calibration={"method": "temperature", "temperature": 1.7}))
    d = calibrated.save(tmp_path / "calibrated")
    lgb, fast = Model.load(d, predictor="lightgbm"), Model.load(d, predictor="compile")
    x = features()
    p, q = lgb.predict_proba(x), fast.predict_proba(x)
    assert fast.predictor == "lleaves"
    assert np.abs(p - q).max() <= 1e-12
    assert np.abs(q - tiny.predict_proba(x)).max() > 0.01  # the temperature is applied on the compiled path too


def test_predict_block_is_identical(model_dir):
    feats = labelled_blocks(size=48)[0][1]
    lgb, fast = Model.load(model_dir, predictor="lightgbm"), Model.load(model_dir, predictor="compile")
    chunked = fast.predict_block(feats.chunk({"y": 24}))
    for a, b in zip(lgb.predict_block(feats, chunk_pixels=500), chunked, strict=True):
        np.testing.assert_array_equal(a.values, b.values)
    assert fast.predictor == "lleaves"


def test_scores_block_is_identical(model_dir):
    feats = labelled_blocks(size=48)[0][1]
    lgb, fast = Model.load(model_dir, predictor="lightgbm"), Model.load(model_dir, predictor="compile")
    a, b = lgb.scores_block(feats, chunk_pixels=500), fast.scores_block(feats.chunk({"y": 24}), num_threads=1)
    np.testing.assert_allclose(b.values, a.values, rtol=1e-6, atol=1e-6)  # float32 logits of the same trees
    for x, y in zip(lgb.decide(a.values), fast.decide(b.values), strict=True):
        np.testing.assert_array_equal(x, y)
    assert fast.predictor == "lleaves"


def test_cache_is_reused_not_recompiled(model_dir, monkeypatch):
    first = Model.load(model_dir).compile()
    path = artefact(model_dir, Model.load(model_dir))
    assert first.path == path and first.compile_seconds > 0 and path.is_file()
    stamp = path.stat().st_mtime_ns

    def no_compile(*a, **kw):
        raise AssertionError("compiled again although cached")

    monkeypatch.setattr(compiled_mod, "compile_model", no_compile)
    for mode in ("auto", "compile"):
        again = Model.load(model_dir, predictor=mode)
        assert again.predictor == "lleaves" and again.compiled.compile_seconds == 0 and again.compiled.path == path
    assert Model.load(model_dir).compile().path == path
    assert path.stat().st_mtime_ns == stamp


def test_auto_mode_never_compiles(model_dir, monkeypatch):
    monkeypatch.setenv("WORLDCOVER_PREDICTOR", "auto")
    m = Model.load(model_dir)
    assert m.predictor == "lightgbm" and m.compiled is None
    assert not (model_dir / COMPILED_DIR).exists()
    monkeypatch.setenv("WORLDCOVER_PREDICTOR", "compile")  # the tile chain's switch: compile lazily, once
    assert Model.load(model_dir).predictor == "lleaves" and (model_dir / COMPILED_DIR).is_dir()


@pytest.mark.parametrize("damage", ["truncated", "flipped", "empty", "no checksum"])
def test_damaged_artefact_is_ignored_then_replaced(model_dir, damage, caplog):
    path = Model.load(model_dir).compile().path
    good = path.read_bytes()
    if damage == "truncated":
        path.write_bytes(good[: len(good) // 2])
    elif damage == "flipped":  # LLVM would die of SIGILL or abort on these bytes: the checksum must stop them
        path.write_bytes(good[:3000] + bytes(b ^ 0xFF for b in good[3000:3100]) + good[3100:])
    elif damage == "empty":
        path.write_bytes(b"")
    else:
        path.with_name(path.name + ".sha256").unlink()
    with caplog.at_level(logging.WARNING):
        assert Model.load(model_dir, predictor="auto").predictor == "lightgbm"  # not loaded, not compiled
    replaced = Model.load(model_dir, predictor="compile")
    assert replaced.predictor == "lleaves" and replaced.compiled.compile_seconds > 0
    assert path.read_bytes() == good  # the same code again, and its checksum with it
    assert Model.load(model_dir, predictor="auto").predictor == "lleaves"


@pytest.mark.parametrize("how", ["not importable", "not installed"])
def test_falls_back_to_lightgbm_without_lleaves(model_dir, monkeypatch, caplog, how):
    Model.load(model_dir).compile()  # even with compiled code cached
    if how == "not importable":
        monkeypatch.setitem(sys.modules, "lleaves", None)  # import lleaves -> ImportError
        message = "lleaves is not usable"
    else:
        import importlib.metadata

        def version(name):
            raise importlib.metadata.PackageNotFoundError(name)

        monkeypatch.setattr(importlib.metadata, "version", version)
        message = "lleaves is not installed"
    m = Model.load(model_dir, predictor="compile")
    x = features()
    with caplog.at_level(logging.WARNING):
        p = m.predict_proba(x)
        m.predict_matrix(x)
    assert m.predictor == "lightgbm"
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and message in warnings[0]
    np.testing.assert_array_equal(p, Model.load(model_dir, predictor="lightgbm").predict_proba(x))
    with pytest.raises(CompileError, match=message):
        m.compile()


def test_failed_compile_falls_back_with_one_warning(model_dir, monkeypatch, caplog):
    def broken(*a, **kw):
        raise CompileError("lleaves could not compile the model: boom")

    monkeypatch.setattr(compiled_mod, "_compile", broken)
    m = Model.load(model_dir, predictor="compile")
    with caplog.at_level(logging.WARNING):
        assert m.predictor == "lightgbm"
        m.predict_proba(features(10))
    assert [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING] == [
        "model tiny predicts with LightGBM: lleaves could not compile the model: boom"]


def test_unwritable_model_dir_uses_the_user_cache(model_dir, user_cache):
    # a file where the compiled/ folder would go: the folder cannot be made, as in a read-only model
    # directory (root, which runs these tests here, ignores permission bits)
    (model_dir / COMPILED_DIR).write_text("not a folder")
    c = Model.load(model_dir).compile()
    assert c.path == user_cache / artefact_name(Model.load(model_dir).card.model_sha256) and c.path.is_file()
    again = Model.load(model_dir, predictor="auto")
    assert again.predictor == "lleaves" and again.compiled.path == c.path


def test_cache_places():
    assert [p.parts[-2:] for p in cache_dirs("/models/m")] == [("m", COMPILED_DIR), ("user-cache", COMPILED_DIR)]
    assert [p.parts[-2:] for p in cache_dirs("s3://bucket/models/m")] == [("user-cache", COMPILED_DIR)]
    assert [p.parts[-2:] for p in cache_dirs(None)] == [("user-cache", COMPILED_DIR)]


def test_trained_model_without_a_directory_caches_in_the_user_cache(tiny, user_cache):
    m = Model(tiny.model_text, tiny.card, predictor="compile")
    assert m.predictor == "lleaves" and m.compiled.path.parent == user_cache


def test_pickled_model_finds_its_compiled_code_again(model_dir):
    fast = Model.load(model_dir, predictor="compile")
    x = features(200)
    expected = fast.predict_proba(x)
    copy = pickle.loads(pickle.dumps(fast))
    assert copy.predictor == "lleaves" and copy.compiled is not fast.compiled
    np.testing.assert_array_equal(copy.predict_proba(x), expected)


def test_save_over_a_model_with_compiled_code(model_dir, tiny):
    Model.load(model_dir).compile()
    tiny.save(model_dir, overwrite=True)  # the compiled/ cache does not block replacing the model
    assert sorted(p.name for p in model_dir.iterdir()) == ["card.json", "model.txt"]


def test_invalid_predictor_is_refused(model_dir, monkeypatch):
    with pytest.raises(InputError, match="invalid predictor 'fast'"):
        Model.load(model_dir, predictor="fast")
    monkeypatch.setenv("WORLDCOVER_PREDICTOR", "llvm")
    with pytest.raises(InputError, match=r"invalid predictor 'llvm' \(\$WORLDCOVER_PREDICTOR\)"):
        Model.load(model_dir)


def invoke(*args):
    return CliRunner().invoke(root, ["model", *map(str, args)])


def test_cli_compile(model_dir, monkeypatch):
    r = invoke("compile", model_dir)
    path = artefact(model_dir, Model.load(model_dir))
    assert r.exit_code == 0, r.output
    assert r.stdout.startswith(f"{path}: compiled in ") and path.is_file()
    r = invoke("compile", model_dir)
    assert r.exit_code == 0 and r.stdout.strip() == f"{path}: already compiled (cached)"
    r = invoke("compile", model_dir / "missing")
    assert r.exit_code == 2 and "does not exist" in r.stderr and "Traceback" not in r.output
    monkeypatch.setitem(sys.modules, "lleaves", None)
    r = invoke("compile", model_dir)
    assert r.exit_code == 2 and r.stderr.startswith("error: lleaves is not usable")


@pytest.mark.slow
def test_image_ships_the_default_model_compiled():
    """In the image (read-only, like a pod) the packaged model predicts with its precompiled code."""
    from tests.image import ensure_image, run_in_image

    script = ("from worldcover.model import Model; m = Model.load('default'); "
              "print(m.predictor, m.compiled.path.parent, m.compiled.compile_seconds)")
    proc = run_in_image(ensure_image(), "python", "-c", script)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.split() == ["lleaves", "/opt/venv/lib/python3.11/site-packages/worldcover/model/default_model/"
                                   "compiled", "0.0"]
