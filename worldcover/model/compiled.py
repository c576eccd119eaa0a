"""A model's trees compiled to native code by lleaves (LLVM): the same scores as LightGBM, several times faster.

Compiling a large model takes a while (about 45 s for the default model's 1100
trees), so the object code is compiled once and cached, keyed by the sha256 of
the model text (the card's ``model_sha256``: the code depends on the trees
only): beside the model as ``<model dir>/compiled/<sha>-<machine>-lleaves<ver>.so``
when that directory is local and writable, else in the user cache
(``$WORLDCOVER_CACHE/compiled``, default ``~/.cache/worldcover/compiled``).

The code is compiled for a portable CPU (x86-64-v2 on x86_64: any x86 server
since ~2009), so an artefact built in the image runs on every node. LLVM
aborts the process on a damaged object file, so every artefact has a
``.sha256`` file beside it and is loaded only when its bytes match: a damaged
or half-copied artefact counts as missing and is compiled again, never loaded.
"""

from __future__ import annotations

import hashlib
import logging
import os
import platform
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from worldcover import storage
from worldcover.errors import WorldCoverError

log = logging.getLogger(__name__)

#: the folder beside model.txt / card.json that holds a model's compiled code
COMPILED_DIR = "compiled"
#: the user cache root (compiled code in ``$WORLDCOVER_CACHE/compiled``); default ``~/.cache/worldcover``
CACHE_ENV = "WORLDCOVER_CACHE"
#: LLVM CPU the code is compiled for, per machine: portable, so a cached artefact runs on any node of the arch
PORTABLE_CPU = {"x86_64": "x86-64-v2", "AMD64": "x86-64-v2", "aarch64": "generic", "arm64": "generic"}


class CompileError(WorldCoverError):
    """lleaves is missing or could not compile or load a model (predicting falls back to LightGBM)."""


@dataclass
class CompiledPredictor:
    """Raw multiclass scores from a model's lleaves-compiled code.

    ``path`` is its cached artefact (None: not cached).
    """

    forest: Any = field(repr=False)  # a compiled lleaves.Model (lleaves is untyped and imported lazily)
    path: Path | None
    compile_seconds: float = 0.0  # 0 when loaded from the cache

    def raw_scores(self, matrix: np.ndarray, num_threads: int | None = None) -> np.ndarray:
        """(rows, classes) float64 logits of a (rows, features) matrix, on ``num_threads`` threads (None: all)."""
        data = np.ascontiguousarray(matrix, dtype=np.float64)  # lleaves reads float64 rows; float32 -> 64 is exact
        if data.shape[0] == 0:  # lleaves' thread batching cannot split zero rows
            return np.zeros((0, self.forest.num_model_per_iteration()), dtype=np.float64)
        raw = self.forest.predict(data, n_jobs=num_threads or default_jobs())
        return np.asarray(raw, dtype=np.float64).reshape(data.shape[0], -1)


def default_jobs() -> int:
    """Threads when none are asked for: as OpenMP (LightGBM) would take, OMP_NUM_THREADS or the usable cores."""
    try:
        return max(1, int(os.environ.get("OMP_NUM_THREADS", "")))
    except ValueError:
        return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def lleaves_version() -> str:
    """The installed lleaves version, read without importing it; :class:`CompileError` if it is not installed."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("lleaves")
    except PackageNotFoundError:
        raise CompileError("lleaves is not installed") from None


def _import_lleaves():
    """The lleaves module; :class:`CompileError` if it cannot be imported (e.g. llvmlite's LLVM does not load)."""
    try:
        import lleaves
    except Exception as exc:  # ImportError, or llvmlite failing to load its library
        raise CompileError(f"lleaves is not usable: {type(exc).__name__}: {exc}") from None
    return lleaves


def artefact_name(model_sha256: str) -> str:
    """``<model sha256>-<machine>-lleaves<version>.so``: what the compiled code depends on."""
    return f"{model_sha256}-{platform.machine()}-lleaves{lleaves_version()}.so"


def user_cache_dir() -> Path:
    """``$WORLDCOVER_CACHE/compiled``, or ``~/.cache/worldcover/compiled``."""
    root = os.environ.get(CACHE_ENV) or Path.home() / ".cache" / "worldcover"
    return Path(root).expanduser() / COMPILED_DIR


def cache_dirs(model_dir: str | os.PathLike | None) -> list[Path]:
    """Where a model's compiled code is looked for and written, in order: beside a local model, then the user cache."""
    dirs = [Path(model_dir) / COMPILED_DIR] if model_dir is not None and not storage.is_remote(model_dir) else []
    return dirs + [user_cache_dir()]


def find_cached(model_text: str, model_sha256: str, model_dir=None) -> CompiledPredictor | None:
    """The model's compiled code from the first cache that holds an intact copy; None if none does."""
    name = artefact_name(model_sha256)
    for folder in cache_dirs(model_dir):
        blob = _intact_bytes(folder / name)
        if blob is None:
            continue
        _import_lleaves()  # unusable lleaves is the caller's to report, not a reason to compile again
        try:
            return CompiledPredictor(_load(model_text, blob), folder / name)
        except Exception as exc:  # lleaves refusing the file: compile again rather than fail
            log.warning("compiled model %s could not be loaded (%s): ignored", folder / name, exc)
    return None


def load_or_compile(model_text: str, model_sha256: str, model_dir=None) -> CompiledPredictor:
    """The cached compiled code, or compile it now and cache it; :class:`CompileError` if lleaves cannot."""
    return find_cached(model_text, model_sha256, model_dir) or compile_model(model_text, model_sha256, model_dir)


def compile_model(model_text: str, model_sha256: str, model_dir=None) -> CompiledPredictor:
    """Compile the model now and store the code in the first writable cache (none writable: kept in memory only)."""
    name = artefact_name(model_sha256)
    with tempfile.TemporaryDirectory(prefix="worldcover-compile-") as tmp:
        obj = Path(tmp) / name
        t0 = time.perf_counter()
        forest = _compile(model_text, Path(tmp), cache=obj)
        seconds = time.perf_counter() - t0
        path = _store(obj, name, model_dir)
    return CompiledPredictor(forest, path, seconds)


def _store(obj: Path, name: str, model_dir) -> Path | None:
    """Copy a freshly compiled object into the first cache folder that takes it, then its checksum beside it."""
    digest = storage.sha256(obj)
    for folder in cache_dirs(model_dir):
        try:
            folder.mkdir(parents=True, exist_ok=True)
            storage.put_copy(obj, folder / name)
            storage.atomic_write_text(folder / f"{name}.sha256", digest + "\n")
            return folder / name
        except OSError as exc:
            log.info("cannot cache compiled model in %s (%s): trying the next place", folder, exc)
    log.warning(
        "compiled model could not be cached in %s: it will be compiled again next time",
        " or ".join(map(str, cache_dirs(model_dir))),
    )
    return None


def _intact_bytes(path: Path) -> bytes | None:
    """The artefact's bytes if they match the checksum written beside it, else None (missing, damaged, partial)."""
    try:
        expected = Path(f"{path}.sha256").read_text(encoding="ascii").strip()
        blob = path.read_bytes()
    except (OSError, UnicodeDecodeError):
        return None
    if hashlib.sha256(blob).hexdigest() != expected:
        log.warning("compiled model %s does not match its checksum: ignored (compile again to replace it)", path)
        return None
    return blob


def _load(model_text: str, blob: bytes):
    """A compiled lleaves.Model from verified object bytes (copied privately, so nothing can swap them meanwhile)."""
    with tempfile.TemporaryDirectory(prefix="worldcover-compiled-") as tmp:
        obj = Path(tmp) / "forest.so"
        obj.write_bytes(blob)
        return _compile(model_text, Path(tmp), cache=obj)


def _compile(model_text: str, work: Path, cache: Path):
    """lleaves' compile of the model's raw scores (loads ``cache`` if it exists, else writes the object there)."""
    lleaves = _import_lleaves()
    model_file = work / "model.txt"
    model_file.write_text(model_text, encoding="utf-8")
    cpu = PORTABLE_CPU.get(platform.machine())
    try:
        forest = lleaves.Model(model_file=str(model_file))
        forest.compile(cache=str(cache), raw_score=True, target_cpu=cpu, target_cpu_features="" if cpu else None)
    except Exception as exc:
        raise CompileError(f"lleaves could not compile the model: {type(exc).__name__}: {exc}") from None
    return forest
