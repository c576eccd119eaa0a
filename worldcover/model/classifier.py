"""A trained classifier: LightGBM's text model plus its sealed card.

:class:`Model` classifies blocks of features into WorldCover codes with a
probability, evaluates tables, and saves/loads itself as a directory of two
files: ``model.txt`` (LightGBM's own text format: diffable, portable across
platforms and LightGBM 4.x) and ``card.json`` (:class:`ModelCard`).
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import threading
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr

from worldcover import storage
from worldcover.errors import DataError, InputError
from worldcover.legend import NODATA
from worldcover.model.card import CARD_FILE, MODEL_FILE, ModelCard
from worldcover.model.compiled import COMPILED_DIR, CompiledPredictor, CompileError, find_cached, load_or_compile
from worldcover.model.location import resolve_model
from worldcover.model.metrics import ClassificationMetrics
from worldcover.model.sampling import CODE_COLUMN
from worldcover.model.schema import FEATURE_DIM, FeatureSchema
from worldcover.storage import Location

# Pixels per predict call: bounds the (pixels, features) float32 copy and the
# (pixels, classes) float64 probabilities, e.g. 262144 px x 100 features = 100 MB.
DEFAULT_CHUNK_PIXELS = 262_144
# pixels per dask task of scores_block: ~1 s of compiled predict on one core, so the last task of a block,
# which runs alone while the other cores wait, is short
TASK_PIXELS = 65_536

log = logging.getLogger(__name__)

#: how a model predicts when the caller does not say (:data:`PREDICTORS`); default "auto"
PREDICTOR_ENV = "WORLDCOVER_PREDICTOR"
#: "auto": the compiled code if cached, else LightGBM; "compile": compile it if not cached (once: it is cached);
#: "lightgbm": LightGBM's own predictor only
PREDICTORS = ("auto", "compile", "lightgbm")
_UNRESOLVED = object()  # the compiled predictor has not been looked for yet


def check_predictor(predictor: str | None) -> str:
    """``predictor``, or $WORLDCOVER_PREDICTOR, or "auto"; :class:`InputError` unless one of :data:`PREDICTORS`."""
    value = predictor if predictor is not None else (os.environ.get(PREDICTOR_ENV) or "auto")
    if value not in PREDICTORS:
        raise InputError(f"invalid predictor {value!r}" + ("" if predictor is not None else f" (${PREDICTOR_ENV})")
                         + f": expected one of {', '.join(PREDICTORS)}")
    return value


def check_num_threads(num_threads: int | None) -> int | None:
    """``num_threads`` if it is None or an integer >= 1; else :class:`InputError`."""
    if num_threads is None:
        return None
    if isinstance(num_threads, bool) or not isinstance(num_threads, (int, np.integer)) or num_threads < 1:
        raise InputError(f"invalid num_threads {num_threads!r}: expected an integer >= 1 (or None for all cores)")
    return int(num_threads)


@contextlib.contextmanager
def thread_limit(num_threads: int | None) -> Iterator[None]:
    """Limit LightGBM's OpenMP threads for the block (``None``: leave the default).

    Threads are limited from outside (threadpoolctl) rather than with
    LightGBM's ``num_threads`` parameter, because LightGBM writes that
    parameter into model.txt: the same model trained on 2 or 16 cores would
    then differ by one line, and its hash with it.
    """
    n = check_num_threads(num_threads)
    if n is None:
        yield
        return
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=int(n), user_api="openmp"):
        yield


class Model:
    """A LightGBM multiclass model bound to its card.

    Construct with :func:`worldcover.model.train` or :meth:`Model.load`. The
    constructor verifies that the card is sealed to exactly this model text
    and that the model's feature names and class count match the card.
    ``num_threads`` is a run-time setting (not part of the model); ``source``
    (e.g. the directory loaded from) only goes into error messages.

    ``predictor`` (:data:`PREDICTORS`; None: $WORLDCOVER_PREDICTOR or "auto")
    chooses between LightGBM and the same trees compiled by lleaves
    (:mod:`worldcover.model.compiled`: equal probabilities to ~1e-16, several
    times faster), looked for on the first prediction in ``model_dir``'s
    ``compiled/`` folder and the user cache. Compiled code that is missing
    (in "auto"), or that lleaves cannot make, means LightGBM, with one warning.
    """

    def __init__(
        self, model_text: str, card: ModelCard, *, num_threads: int | None = None, source: str | None = None,
        predictor: str | None = None, model_dir: str | os.PathLike | Location | None = None,
    ) -> None:
        where = f"model {card.name!r}" + (f" in {source}" if source else "")
        card.verify(model_text, where=where)
        header = _text_header(model_text, where)
        if header.get("feature_names", "").split() != list(card.feature_names):
            raise DataError(f"{where}: model.txt features {header.get('feature_names', '').split()[:5]}... "
                            "differ from its card")
        if header.get("num_tree_per_iteration") != str(len(card.trained_classes)):
            raise DataError(
                f"{where}: model.txt has {header.get('num_tree_per_iteration')} classes, "
                f"its card lists {len(card.trained_classes)} trained classes"
            )
        self._where = where
        self._text = model_text
        self._card = card
        self._lgb_booster = None  # parsed on first use: the compiled trees need no LightGBM (1.8 s per process)
        self._booster_lock = threading.Lock()
        self._schema = FeatureSchema(card.feature_names)
        self._codes = np.asarray(card.trained_classes, dtype=np.uint8)
        self.num_threads = check_num_threads(num_threads)
        self._predictor_mode = check_predictor(predictor)
        self._model_dir = model_dir
        self._compiled: CompiledPredictor | None | object = _UNRESOLVED
        self._compiled_lock = threading.Lock()

    def __getstate__(self) -> dict:
        """Pickled without the compiled code (native, process-bound) or the parsed booster: the copy makes them
        again when it predicts."""
        skip = ("_compiled", "_compiled_lock", "_lgb_booster", "_booster_lock")
        return {k: v for k, v in self.__dict__.items() if k not in skip}

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state, _compiled=_UNRESOLVED, _compiled_lock=threading.Lock(), _lgb_booster=None,
                             _booster_lock=threading.Lock())

    @property
    def _booster(self):
        """LightGBM's Booster of the model text, parsed on first use; :class:`DataError` if LightGBM cannot read it."""
        with self._booster_lock:
            if self._lgb_booster is None:
                import lightgbm

                try:
                    self._lgb_booster = lightgbm.Booster(model_str=self._text)
                except lightgbm.basic.LightGBMError as exc:
                    raise DataError(f"{self._where}: LightGBM cannot read its model text: {exc}") from None
            return self._lgb_booster

    # --- identity ----------------------------------------------------------------

    @property
    def card(self) -> ModelCard:
        return self._card

    @property
    def model_text(self) -> str:
        return self._text

    @property
    def name(self) -> str:
        return self._card.name

    @property
    def version(self) -> str:
        return self._card.version

    @property
    def feature_names(self) -> tuple[str, ...]:
        return self._card.feature_names

    @property
    def trained_classes(self) -> tuple[int, ...]:
        return self._card.trained_classes

    def __repr__(self) -> str:
        return (f"Model({self.name!r}, version={self.version[:12]}, features={len(self.feature_names)}, "
                f"classes={list(self.trained_classes)})")

    def with_card(self, card: ModelCard) -> Model:
        """The same model text under a new card (sealed here); compiled code is keyed by the text, so it still fits."""
        return Model(self._text, card.sealed(self._text), num_threads=self.num_threads,
                     predictor=self._predictor_mode, model_dir=self._model_dir)

    # --- predictor -------------------------------------------------------------------

    @property
    def predictor(self) -> str:
        """What predicts: "lleaves" (the compiled trees) or "lightgbm"."""
        return "lightgbm" if self._compiled_predictor() is None else "lleaves"

    @property
    def compiled(self) -> CompiledPredictor | None:
        """The compiled predictor in use (its ``path``: the cached artefact), or None when LightGBM predicts."""
        return self._compiled_predictor()

    def compile(self) -> CompiledPredictor:
        """Compile the trees with lleaves unless cached (an intact cached copy is reused), and predict with them.

        :class:`~worldcover.model.compiled.CompileError` if lleaves is missing or fails.
        """
        with self._compiled_lock:
            self._compiled = load_or_compile(self._text, self._card.model_sha256, self._model_dir)
            return self._compiled

    def _compiled_predictor(self) -> CompiledPredictor | None:
        """The compiled predictor, looked for (or, in "compile" mode, made) once; None means LightGBM."""
        if self._compiled is _UNRESOLVED:
            with self._compiled_lock:
                if self._compiled is _UNRESOLVED:
                    self._compiled = self._resolve_compiled()
        return self._compiled  # type: ignore[return-value]

    def _resolve_compiled(self) -> CompiledPredictor | None:
        if self._predictor_mode == "lightgbm":
            return None
        find = load_or_compile if self._predictor_mode == "compile" else find_cached
        try:
            return find(self._text, self._card.model_sha256, self._model_dir)
        except CompileError as exc:
            log.warning("model %s predicts with LightGBM: %s", self.name, exc)
            return None

    # --- prediction ----------------------------------------------------------------

    def predict_proba(self, matrix: np.ndarray) -> np.ndarray:
        """Class probabilities (pixels, trained classes) for a (pixels, features) matrix in card order."""
        matrix = np.ascontiguousarray(matrix, dtype=np.float32)
        if matrix.ndim != 2 or matrix.shape[1] != len(self.feature_names):
            raise DataError(f"expected a (pixels, {len(self.feature_names)}) matrix, got shape {matrix.shape}")
        if matrix.shape[0] == 0:
            return np.zeros((0, len(self.trained_classes)), dtype=np.float64)
        temperature = float(self._card.calibration.get("temperature", 1.0))
        # temperature scaling of the softmax: same argmax, calibrated confidence; the compiled trees give logits only
        if temperature != 1.0 or self._compiled_predictor() is not None:
            return softmax(self.raw_scores(matrix) / temperature)
        with thread_limit(self.num_threads):
            proba = self._booster.predict(matrix)
        return np.asarray(proba, dtype=np.float64).reshape(matrix.shape[0], -1)

    def raw_scores(self, matrix: np.ndarray) -> np.ndarray:
        """LightGBM's raw multiclass scores (pixels, trained classes): the softmax logits."""
        return self._raw_scores(np.ascontiguousarray(matrix, dtype=np.float32), self.num_threads)

    def _raw_scores(self, matrix: np.ndarray, num_threads: int | None) -> np.ndarray:
        """:meth:`raw_scores` of a C-contiguous float32 or float64 matrix (float64: what the compiled code reads,
        no copy), on ``num_threads`` threads."""
        if matrix.shape[0] == 0:  # LightGBM's output of zero rows cannot be reshaped
            return np.zeros((0, len(self.trained_classes)), dtype=np.float64)
        compiled = self._compiled_predictor()
        if compiled is not None:
            return compiled.raw_scores(matrix, num_threads)
        with thread_limit(num_threads):
            raw = self._booster.predict(matrix, raw_score=True)
        return np.asarray(raw, dtype=np.float64).reshape(matrix.shape[0], -1)

    def decide(self, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(codes, probability) uint8 ``(...)`` from raw scores ``(class, ...)``: the most probable trained class
        and round(100 x its calibrated probability); nodata (0, 0) where the scores are NaN.

        The step after :meth:`scores_block`, wherever the scores were resampled to."""
        scores = np.asarray(scores)
        shape = scores.shape[1:]
        flat = scores.reshape(scores.shape[0], -1).T  # (pixels, classes)
        valid = ~np.isnan(flat).any(axis=1)
        codes = np.full(flat.shape[0], NODATA, dtype=np.uint8)
        prob = np.zeros(flat.shape[0], dtype=np.uint8)
        if valid.any():
            temperature = float(self._card.calibration.get("temperature", 1.0))
            codes[valid], prob[valid] = self._winners(softmax(flat[valid].astype(np.float64) / temperature))
        return codes.reshape(shape), prob.reshape(shape)

    def _winners(self, proba: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(codes, probability uint8 0..100) of the most probable trained class of each row of ``proba``."""
        win = proba.argmax(axis=1)
        return self._codes[win], np.clip(np.rint(100.0 * proba[np.arange(win.size), win]), 0, 100).astype(np.uint8)

    def predict_matrix(self, matrix: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(codes uint8, probability uint8 0..100) for a (pixels, features) matrix in card order.

        Rows whose features are all NaN get code 0 (nodata) and probability 0:
        no observation, no guess. Other rows get the most probable trained
        class and ``round(100 * its probability)``.
        """
        matrix = np.ascontiguousarray(matrix, dtype=np.float32)
        if matrix.ndim != 2 or matrix.shape[1] != len(self.feature_names):
            raise DataError(f"expected a (pixels, {len(self.feature_names)}) matrix, got shape {matrix.shape}")
        n = matrix.shape[0]
        codes = np.full(n, NODATA, dtype=np.uint8)
        prob = np.zeros(n, dtype=np.uint8)
        valid = ~np.isnan(matrix).all(axis=1)
        if not valid.any():
            return codes, prob
        codes[valid], prob[valid] = self._winners(self.predict_proba(matrix if valid.all() else matrix[valid]))
        return codes, prob

    def _predict_cube(self, cube: np.ndarray, chunk_pixels: int) -> np.ndarray:
        """(2, y, x) uint8 [codes, probability] for a (feature, y, x) numpy cube, in row chunks."""
        cube = np.asarray(cube)  # cast to float32 per chunk in predict_matrix, not for the whole block
        nf, height, width = cube.shape
        out = np.zeros((2, height, width), dtype=np.uint8)
        rows = max(1, chunk_pixels // max(width, 1))
        for r0 in range(0, height, rows):
            r1 = min(height, r0 + rows)
            matrix = cube[:, r0:r1, :].reshape(nf, -1).T  # (pixels, features), copied below
            codes, prob = self.predict_matrix(matrix)
            out[0, r0:r1] = codes.reshape(r1 - r0, width)
            out[1, r0:r1] = prob.reshape(r1 - r0, width)
        return out

    def _scores_cube(self, cube: np.ndarray, where: np.ndarray | None = None, *, chunk_pixels: int,
                     num_threads: int | None) -> np.ndarray:
        """(class, y, x) float32 raw scores of a (feature, y, x) numpy cube in row chunks; NaN where every
        feature is NaN or ``where`` (y, x) is False. One copy per chunk: the transpose straight into the
        float64 rows the compiled code reads."""
        nf, height, width = cube.shape
        out = np.full((len(self.trained_classes), height, width), np.nan, dtype=np.float32)
        rows = max(1, chunk_pixels // max(width, 1))
        for r0 in range(0, height, rows):
            r1 = min(height, r0 + rows)
            rows_of = cube[:, r0:r1, :].reshape(nf, -1)
            valid = ~np.isnan(rows_of).all(axis=0)
            if where is not None:
                valid &= where[r0:r1].ravel()
            matrix = np.empty((int(valid.sum()), nf), dtype=np.float64)  # only the pixels to score are copied
            matrix[...] = (rows_of if valid.all() else rows_of[:, valid]).T
            raw = self._raw_scores(matrix, num_threads)
            part = out[:, r0:r1, :].reshape(out.shape[0], -1)  # a view: each class's rows are contiguous
            part[:, valid] = raw.T
        return out

    def scores_block(self, features: xr.DataArray, *, chunk_pixels: int = DEFAULT_CHUNK_PIXELS,
                     num_threads: int | None = None, where: np.ndarray | None = None) -> xr.DataArray:
        """Raw multiclass scores (class, y, x) float32 of a block's features: the logits :meth:`decide` turns
        into codes; NaN where every feature is NaN, and where ``where`` (a (y, x) bool array) is False: pixels
        nobody will read are not scored.

        Scores, unlike codes, can be resampled: the tile chain scores a block on the inputs' own grid and
        resamples the scores to the product grid. ``features`` as in :meth:`predict_block`; dask input gives
        a lazy result, one task per spatial chunk on ``num_threads`` threads (None: the model's setting;
        1 under a dask scheduler that runs chunks side by side)."""
        threads = self.num_threads if num_threads is None else check_num_threads(num_threads)
        aligned = self._schema.align(features)
        data = aligned.data
        nclass = len(self.trained_classes)
        if where is not None and np.shape(where) != data.shape[1:]:
            raise ValueError(f"where of shape {np.shape(where)} does not match the features' grid {data.shape[1:]}")
        if hasattr(data, "dask"):
            import dask.array as da
            from dask.base import tokenize

            # tasks of TASK_PIXELS (each chunk's rows cut up, never merged): a block whose native grid is one
            # dask chunk still scores on every worker thread, and the task that runs alone at the end is short
            rows = max(1, min(chunk_pixels, TASK_PIXELS) // max(data.chunks[2]))
            data = data.rechunk({0: -1, 1: tuple(p for c in data.chunks[1] for p in _parts(c, rows))})
            args = [data] if where is None else [data, da.from_array(np.asarray(where, bool), chunks=data.chunks[1:])]
            scores = da.map_blocks(
                functools.partial(self._scores_cube, chunk_pixels=chunk_pixels, num_threads=threads),
                *args, dtype=np.float32, chunks=((nclass,), *data.chunks[1:]),
                meta=np.empty((0, 0, 0), dtype=np.float32),
                name=f"worldcover-scores-{tokenize(self.version, chunk_pixels, data.name, where)}",  # no model pickle
            )
        else:
            scores = self._scores_cube(np.asarray(data), where, chunk_pixels=chunk_pixels, num_threads=threads)
        template = aligned.isel({FEATURE_DIM: 0}, drop=True)
        return xr.DataArray(scores, dims=("class", *aligned.dims[1:]),
                            coords={**template.coords, "class": list(self.trained_classes)}, name="scores",
                            attrs={"model": self.name, "model_version": self.version})

    def predict_block(
        self, features: xr.DataArray, *, chunk_pixels: int = DEFAULT_CHUNK_PIXELS, lazy: bool = False
    ) -> tuple[xr.DataArray, xr.DataArray]:
        """Classify one block: ``(codes, probability)``, both uint8 DataArrays (y, x).

        Spatial dims may be named y/x, latitude/longitude or lat/lon; the
        outputs keep the input's names.

        ``features`` (feature, y, x) must carry exactly the card's feature
        names; another order is reordered by name, any other set is refused
        (:class:`DataError` naming the missing/unexpected/duplicated names).
        ``codes`` are WorldCover codes, 0 (nodata) where every feature is NaN;
        ``probability`` is round(100 x the winning class's probability), 0
        where the code is nodata. Coordinates other than ``feature`` (y, x,
        spatial_ref) are kept.

        numpy input is classified ``chunk_pixels`` at a time. dask input is
        classified chunk by chunk with ``map_blocks`` (features rechunked to
        one chunk along ``feature``) and computed once for both outputs;
        with dask input, ``lazy=True`` returns dask-backed outputs instead,
        which share one graph: compute them together (``dask.compute(codes,
        prob)`` or as one Dataset), or the features are computed twice.
        Under a dask scheduler running several chunks at once, set the
        model's ``num_threads`` (e.g. 1) so LightGBM does not oversubscribe.
        """
        if isinstance(chunk_pixels, bool) or not isinstance(chunk_pixels, (int, np.integer)) or chunk_pixels < 1:
            raise InputError(f"invalid chunk_pixels {chunk_pixels!r}: expected an integer >= 1")
        aligned = self._schema.align(features)
        data = aligned.data
        if hasattr(data, "dask"):
            import dask.array as da
            from dask.base import tokenize

            data = data.rechunk({0: -1})
            stacked = da.map_blocks(
                functools.partial(self._predict_cube, chunk_pixels=chunk_pixels),
                data,
                dtype=np.uint8,
                chunks=((2,), *data.chunks[1:]),
                meta=np.empty((0, 0, 0), dtype=np.uint8),
                # named here so dask never tokenizes (pickles) the model to name the tasks
                name=f"worldcover-predict-{tokenize(self.version, chunk_pixels, data.name)}",
            )
            if not lazy:
                stacked = stacked.compute()
        else:
            stacked = self._predict_cube(np.asarray(data), chunk_pixels)
        template = aligned.isel({FEATURE_DIM: 0}, drop=True)
        ident = {"model": self.name, "model_version": self.version}
        dims = aligned.dims[1:]  # the input's own spatial dim names
        codes = xr.DataArray(
            stacked[0], dims=dims, coords=template.coords, name="code",
            attrs={"nodata": NODATA, "long_name": "WorldCover class code", **ident},
        )
        prob = xr.DataArray(
            stacked[1], dims=dims, coords=template.coords, name="probability",
            attrs={"nodata": 0, "units": "percent",
                   "long_name": "probability of the predicted class (0 where the code is nodata)", **ident},
        )
        return codes, prob

    def predict_table(self, table: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
        """(codes, probability) for the rows of a training-style table (extra columns ignored)."""
        return self.predict_matrix(table_matrix(table, self.feature_names))

    def evaluate(self, table: pd.DataFrame) -> ClassificationMetrics:
        """Held-out metrics of this model on a labelled table (``code`` column)."""
        reference = table_codes(table)
        predicted, _ = self.predict_table(table)
        return ClassificationMetrics.from_codes(reference, predicted)

    # --- persistence ---------------------------------------------------------------

    def save(self, directory: str | os.PathLike, *, overwrite: bool = False) -> Path:
        """Write ``model.txt`` and ``card.json`` into ``directory``, atomically as a pair.

        Both files are written and fsynced in a fresh sibling directory that
        is then renamed into place, so a crash leaves either the old pair,
        nothing, or the new pair, never a model beside a card that does not
        match it. An existing model directory is replaced only with
        ``overwrite=True``, and only if it holds nothing but those two files
        (and the ``compiled/`` cache, dropped with the old model).
        """
        target = Path(directory)
        if target.exists():
            if not target.is_dir():
                raise InputError(f"cannot save a model to {target}: it is a file, expected a directory")
            present = sorted(os.listdir(target))
            if present and not overwrite:
                raise InputError(f"{target} already holds files {present}: pass overwrite=True to replace the model")
            others = sorted(set(present) - {MODEL_FILE, CARD_FILE, COMPILED_DIR})
            if others:
                raise InputError(f"refusing to replace {target}: it holds files other than {MODEL_FILE} and "
                                 f"{CARD_FILE}: {others}")
        with storage.durable_dir(target) as staging:
            storage.fsync_write(staging / MODEL_FILE, self._text.encode("utf-8"))
            storage.fsync_write(staging / CARD_FILE, self._card.to_json().encode("utf-8"))
        return target

    @classmethod
    def load(cls, directory: str | os.PathLike, *, num_threads: int | None = None,
             predictor: str | None = None) -> Model:
        """Read a model directory (a local folder or an object-store prefix, or ``"default"`` for the packaged
        model); :class:`DataError` if its files are missing, unreadable or do not match.

        ``predictor``: see :class:`Model` (None: $WORLDCOVER_PREDICTOR or "auto": compiled code if cached)."""
        d = storage.path(resolve_model(directory) if isinstance(directory, str) else directory)
        if not d.is_dir():
            raise InputError(f"model directory {d} does not exist (expected a directory with {MODEL_FILE} and "
                             f"{CARD_FILE})")
        card_path, model_path = d / CARD_FILE, d / MODEL_FILE
        missing = [p.name for p in (card_path, model_path) if not p.is_file()]
        if missing:
            raise DataError(f"model directory {d} has no {' or '.join(missing)}: not a complete model")
        try:
            card_text = card_path.read_text(encoding="utf-8")
            model_text = model_path.read_bytes().decode("utf-8")  # strict: hashing text == hashing bytes
        except (OSError, UnicodeDecodeError) as exc:
            raise DataError(f"cannot read model directory {d}: {exc}") from None
        card = ModelCard.from_json(card_text, where=str(card_path))
        return cls(model_text, card, num_threads=num_threads, source=str(d), predictor=predictor, model_dir=d)


def _text_header(model_text: str, where: str) -> dict[str, str]:
    """The ``key=value`` lines before the first tree of a LightGBM text model; :class:`DataError` if there are none."""
    head = model_text.split("\nTree=", 1)[0]
    fields = dict(line.split("=", 1) for line in head.splitlines() if "=" in line)
    if not model_text.startswith("tree") or "feature_names" not in fields:
        raise DataError(f"{where}: model.txt is not a LightGBM text model (no 'tree' header with feature_names)")
    return fields


def _parts(n: int, size: int) -> list[int]:
    """``n`` cut into pieces of ``size`` (the last one shorter)."""
    return [size] * (n // size) + ([n % size] if n % size else [])


def softmax(logits: np.ndarray) -> np.ndarray:
    """Row-wise softmax, stable for large logits."""
    z = logits - logits.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def table_matrix(table: pd.DataFrame, feature_names: tuple[str, ...] | list[str]) -> np.ndarray:
    """The (rows, features) float32 matrix of ``table`` in ``feature_names`` order.

    :class:`DataError` naming the columns that are missing.
    """
    if not isinstance(table, pd.DataFrame):
        raise InputError(f"expected a pandas DataFrame, got {type(table).__name__}")
    missing = [n for n in feature_names if n not in table.columns]
    if missing:
        shown = ", ".join(repr(m) for m in missing[:12]) + (" ..." if len(missing) > 12 else "")
        raise DataError(f"table has no column for {len(missing)} model features: {shown}")
    try:
        return np.ascontiguousarray(table[list(feature_names)].to_numpy(dtype=np.float32))
    except (TypeError, ValueError) as exc:
        raise DataError(f"table feature columns are not numeric: {exc}") from None


def table_codes(table: pd.DataFrame) -> np.ndarray:
    """The ``code`` column as uint8; :class:`DataError` if absent."""
    if CODE_COLUMN not in table.columns:
        raise DataError(f"table has no {CODE_COLUMN!r} column with the reference WorldCover codes")
    return table[CODE_COLUMN].to_numpy().astype(np.int64)
