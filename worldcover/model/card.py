"""The model card: what a model is, what it was trained on, and how well it did.

A card travels beside LightGBM's ``model.txt`` as ``card.json``. It records
the ordered feature names (so a model refuses features it was not trained
on), the class codes (all 11 WorldCover codes, and which were trained, in
the order of the model's outputs), training and test blocks, samples per
class, hyper-parameters, held-out metrics, free-form provenance and the
software versions.

A card is *sealed* to one model text: ``model_sha256`` is the sha256 of the
model file's bytes and ``version`` is the sha256 of the model text plus the
card's content fields (everything but ``created`` and ``version``), so two
trainings that produce the same model with the same card content get the
same version, and editing either file is detected on load.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from worldcover import __version__
from worldcover.errors import DataError, InputError
from worldcover.legend import BY_CODE, CODES
from worldcover.model.schema import check_feature_names

CARD_SCHEMA = "worldcover.model-card/1"
MODEL_FILE = "model.txt"
CARD_FILE = "card.json"
# Fields left out of the version hash: when, and the hash itself.
_UNHASHED = ("created", "version")


def sha256_hex(data: bytes | str) -> str:
    if isinstance(data, str):
        data = data.encode("utf-8")
    return hashlib.sha256(data).hexdigest()


def _utc_now() -> str:
    return datetime.now(UTC).replace(microsecond=0).isoformat().replace("+00:00", "Z")


def _lightgbm_version() -> str:
    """The installed LightGBM's version, read from its metadata: importing it costs a second per process."""
    from importlib.metadata import version

    return version("lightgbm")


def check_json(value: Any, what: str) -> Any:
    """``value`` if it is plain JSON (dicts, lists, str, numbers, bool, None); else InputError."""
    try:
        return json.loads(json.dumps(value, allow_nan=False))
    except (TypeError, ValueError) as exc:
        raise InputError(f"{what} must be plain JSON data (dict/list/str/number/bool/None): {exc}") from None


def _pretty(value: Any, indent: int = 0) -> str:
    """JSON like ``indent=2`` but with lists of numbers (confusion-matrix rows) on one line."""
    pad, inner = "  " * indent, "  " * (indent + 1)
    if isinstance(value, Mapping) and value:
        items = [f"{inner}{json.dumps(str(k))}: {_pretty(v, indent + 1)}" for k, v in value.items()]
        return "{\n" + ",\n".join(items) + "\n" + pad + "}"
    if isinstance(value, (list, tuple)) and value:
        if all(isinstance(v, (int, float)) and not isinstance(v, bool) or v is None for v in value):
            return json.dumps(list(value), allow_nan=False)
        return "[\n" + ",\n".join(inner + _pretty(v, indent + 1) for v in value) + "\n" + pad + "]"
    return json.dumps(value, allow_nan=False)


def _canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), allow_nan=False)


@dataclass(frozen=True)
class ModelCard:
    """Metadata of one trained model; serialised as ``card.json``."""

    name: str
    feature_names: tuple[str, ...]
    trained_classes: tuple[int, ...]  # codes, in the order of the model's outputs
    samples_per_class: Mapping[int, int] = field(hash=False)  # all 11 codes; 0 for classes not trained
    hyperparameters: Mapping[str, Any] = field(hash=False)
    seed: int
    training_blocks: tuple[str, ...] = ()
    test_blocks: tuple[str, ...] = ()
    metrics: Mapping[str, Any] | None = field(default=None, hash=False)  # ClassificationMetrics.to_dict()
    provenance: Mapping[str, Any] = field(default_factory=dict, hash=False)
    # probability calibration applied at prediction ({"method": "temperature", "temperature": T, ...})
    calibration: Mapping[str, Any] = field(default_factory=dict, hash=False)
    classes: tuple[int, ...] = CODES
    worldcover_version: str = ""
    lightgbm_version: str = ""
    created: str = ""
    model_file: str = MODEL_FILE
    model_sha256: str = ""
    version: str = ""

    def __post_init__(self) -> None:
        set_ = lambda k, v: object.__setattr__(self, k, v)  # noqa: E731  (frozen dataclass)
        if not isinstance(self.name, str) or not self.name.strip():
            raise InputError(f"invalid model name {self.name!r}: expected a non-empty string")
        set_("feature_names", check_feature_names(self.feature_names))
        trained = tuple(int(c) for c in self.trained_classes)
        unknown = sorted(set(trained) - set(CODES))
        if unknown:
            raise DataError(f"trained classes {unknown} are not WorldCover codes {list(CODES)}")
        if list(trained) != sorted(set(trained)) or len(trained) < 2:
            raise DataError(f"trained classes {list(trained)} must be at least two distinct codes in ascending order")
        set_("trained_classes", trained)
        set_("classes", tuple(int(c) for c in self.classes))
        counts = {int(k): int(v) for k, v in dict(self.samples_per_class).items()}
        set_("samples_per_class", {c: counts.get(c, 0) for c in self.classes})
        set_("training_blocks", tuple(str(b) for b in self.training_blocks))
        set_("test_blocks", tuple(str(b) for b in self.test_blocks))
        set_("hyperparameters", check_json(dict(self.hyperparameters), "hyperparameters"))
        set_("provenance", check_json(dict(self.provenance), "provenance"))
        set_("calibration", check_json(dict(self.calibration), "calibration"))
        t = self.calibration.get("temperature", 1.0)
        if not (isinstance(t, (int, float)) and 0.05 <= t <= 20):
            raise DataError(f"calibration temperature {t!r}: expected a number 0.05..20")
        if self.metrics is not None:
            set_("metrics", check_json(dict(self.metrics), "metrics"))
        if not self.worldcover_version:
            set_("worldcover_version", __version__)
        if not self.lightgbm_version:
            set_("lightgbm_version", _lightgbm_version())
        if not self.created:
            set_("created", _utc_now())

    # --- sealing to a model text ----------------------------------------------------

    def content(self) -> dict:
        """The hashed fields: the card as JSON minus ``created`` and ``version``."""
        d = self.to_dict()
        for k in _UNHASHED:
            d.pop(k, None)
        return d

    def compute_version(self, model_text: str) -> str:
        return sha256_hex(model_text.encode("utf-8") + b"\n" + _canonical(self.content()).encode("utf-8"))

    def sealed(self, model_text: str) -> ModelCard:
        """This card bound to ``model_text``: ``model_sha256`` and ``version`` filled in."""
        card = dataclasses.replace(self, model_sha256=sha256_hex(model_text), version="")
        return dataclasses.replace(card, version=card.compute_version(model_text))

    def replace(self, **changes: Any) -> ModelCard:
        """A copy with ``changes``; its seal is cleared (call :meth:`sealed` again)."""
        return dataclasses.replace(self, **changes, model_sha256="", version="")

    def verify(self, model_text: str, where: str = "model") -> None:
        """Raise :class:`DataError` unless this card is sealed to exactly ``model_text``."""
        actual = sha256_hex(model_text)
        if actual != self.model_sha256:
            raise DataError(
                f"{where}: {self.model_file} (sha256 {actual[:16]}...) does not match the sha256 "
                f"{self.model_sha256[:16] or '(none)'}... recorded in its card: the model file was changed "
                "or a save was interrupted; refusing to use it"
            )
        expected = self.compute_version(model_text)
        if expected != self.version:
            raise DataError(
                f"{where}: card version {self.version[:16] or '(none)'}... does not match its content "
                f"(expected {expected[:16]}...): the card was edited after the model was saved; refusing to use it"
            )

    # --- JSON ----------------------------------------------------------------------

    def to_dict(self) -> dict:
        return {
            "schema": CARD_SCHEMA,
            "name": self.name,
            "version": self.version,
            "created": self.created,
            "worldcover_version": self.worldcover_version,
            "lightgbm_version": self.lightgbm_version,
            "model_file": self.model_file,
            "model_sha256": self.model_sha256,
            "feature_names": list(self.feature_names),
            "classes": list(self.classes),
            "class_names": {str(c): BY_CODE[c].name for c in self.classes if c in BY_CODE},
            "trained_classes": list(self.trained_classes),
            "samples_per_class": {str(c): n for c, n in self.samples_per_class.items()},
            "training_blocks": list(self.training_blocks),
            "test_blocks": list(self.test_blocks),
            "seed": self.seed,
            "hyperparameters": dict(self.hyperparameters),
            "metrics": None if self.metrics is None else dict(self.metrics),
            "provenance": dict(self.provenance),
            # only when set, so cards written before calibration keep their version hash
            **({"calibration": dict(self.calibration)} if self.calibration else {}),
        }

    def to_json(self) -> str:
        """Readable, diff-friendly JSON: one key or string per line, number lists on one line."""
        return _pretty(self.to_dict()) + "\n"

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], where: str = "card") -> ModelCard:
        if not isinstance(d, Mapping):
            raise DataError(f"{where}: expected a JSON object, got {type(d).__name__}")
        if d.get("schema") != CARD_SCHEMA:
            raise DataError(f"{where}: schema {d.get('schema')!r} is not {CARD_SCHEMA!r}")
        required = ("name", "version", "created", "feature_names", "trained_classes", "samples_per_class",
                    "hyperparameters", "seed", "model_sha256")
        missing = [k for k in required if k not in d]
        if missing:
            raise DataError(f"{where}: missing fields {missing}")
        try:
            return cls(
                name=d["name"],
                feature_names=tuple(d["feature_names"]),
                trained_classes=tuple(d["trained_classes"]),
                samples_per_class={int(k): int(v) for k, v in d["samples_per_class"].items()},
                hyperparameters=d["hyperparameters"],
                seed=int(d["seed"]),
                training_blocks=tuple(d.get("training_blocks", ())),
                test_blocks=tuple(d.get("test_blocks", ())),
                metrics=d.get("metrics"),
                provenance=d.get("provenance") or {},
                calibration=d.get("calibration") or {},
                classes=tuple(d.get("classes", CODES)),
                worldcover_version=d.get("worldcover_version", "") or "?",
                lightgbm_version=d.get("lightgbm_version", "") or "?",
                created=d["created"],
                model_file=d.get("model_file", MODEL_FILE),
                model_sha256=d["model_sha256"],
                version=d["version"],
            )
        except (InputError, TypeError, ValueError, AttributeError) as exc:
            raise DataError(f"{where}: {exc}") from None

    @classmethod
    def from_json(cls, text: str, where: str = "card") -> ModelCard:
        try:
            d = json.loads(text)
        except json.JSONDecodeError as exc:
            raise DataError(f"{where}: not valid JSON ({exc})") from None
        return cls.from_dict(d, where)
