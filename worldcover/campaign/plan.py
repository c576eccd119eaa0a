"""A campaign plan: stage or tiles, year, model, source, output root, batching.

One plan is rendered two ways (a dask graph for the local engine, hera
objects for Argo). Everything in it is validated here, before it can reach
YAML, a shell or a path.
"""

from __future__ import annotations

import json
import re
from dataclasses import MISSING, asdict, dataclass, field, replace
from datetime import UTC, datetime

from worldcover import storage
from worldcover.errors import InputError
from worldcover.grid import DEFAULT_BLOCK_SIZE, Tile, check_block_size, land_tiles
from worldcover.stages import DEFAULT_SEED, check_stage, stage_tiles

_NAME_RE = re.compile(r"^[a-z0-9]([a-z0-9-]{0,38}[a-z0-9])?$")
_BLOCKS_RE = re.compile(r"^(all|first:[1-9][0-9]{0,5}|r[0-9]{1,4}c[0-9]{1,4}(,r[0-9]{1,4}c[0-9]{1,4})*)$")
_URI_RE = re.compile(r"^((s3|gs|gcs|az|abfs|memory)://[a-z0-9][a-z0-9.-]{1,61}[a-z0-9](/[A-Za-z0-9._/-]*)?"
                     r"|[A-Za-z0-9._/-]+)$")
_SOURCE_RE = re.compile(r"^([a-z][a-z0-9-]*|https?://[A-Za-z0-9.:-]+(/[A-Za-z0-9._~/-]*)?)$")
_LABEL_RE = re.compile(r"^([a-z0-9.-]{1,253}/)?[A-Za-z0-9]([A-Za-z0-9_.-]{0,61}[A-Za-z0-9])?$")
_LABEL_VALUE_RE = re.compile(r"^([A-Za-z0-9]([A-Za-z0-9_.-]{0,61}[A-Za-z0-9])?)?$")
MIN_YEAR = 2015  # Sentinel-2A's first year
#: the keyword for the model shipped in the package (see :func:`worldcover.model.default.resolve_model`)
DEFAULT_MODEL = "default"
#: where an Argo campaign's outputs may live: object storage every pod reaches (memory:// is one process's)
CLUSTER_SCHEMES = ("s3", "gs", "gcs", "az", "abfs")


def check_name(name: str) -> str:
    """Campaign names become Kubernetes names and labels: DNS-1123, at most 40 characters."""
    if not isinstance(name, str) or not _NAME_RE.fullmatch(name):
        raise InputError(
            f"invalid campaign name {name!r}: expected 1-40 lowercase letters, digits or '-', "
            "starting and ending with a letter or digit"
        )
    return name


def check_uri(value: str, what: str) -> str:
    """Paths and object-store URLs: no '..', no template braces, no shell metacharacters."""
    if not isinstance(value, str) or not _URI_RE.fullmatch(value) or ".." in value.split("/"):
        raise InputError(
            f"invalid {what} {value!r}: expected a path or s3://bucket/prefix (or gs://, az://, memory://) "
            "of letters, digits and . _ - / without '..'"
        )
    return value


def source_presets() -> tuple[str, ...]:
    """The catalogue presets (``worldcover.sources.catalogues.PRESETS``) and ``sentinelhub``."""
    from worldcover.sources.catalogues import PRESETS  # lazy: pulls pystac_client (plan stays light)

    return (*PRESETS, "sentinelhub")


def check_source(value: str) -> str:
    """A catalogue preset, ``sentinelhub`` or an ``http(s)://`` STAC API URL; anything else is refused."""
    known = isinstance(value, str) and _SOURCE_RE.fullmatch(value) and (
        value.startswith(("http://", "https://")) or value in source_presets())
    if not known:
        raise InputError(f"invalid source {value!r}: expected a catalogue preset "
                         f"({', '.join(source_presets()[:-1])}), sentinelhub or an http(s):// STAC API URL")
    from worldcover.sources.catalogues import PRESETS, check_s1_geocoded  # lazy: pulls pystac_client

    if value in PRESETS:  # a preset whose S1 is radar-geometry GRD is refused before any network access
        check_s1_geocoded(PRESETS[value])
    return value


def check_model(value: str) -> str:
    """A model location that holds a model: ``default`` (the packaged model), a folder or an object prefix
    with ``model.txt`` and its card ``card.json`` (read through :mod:`worldcover.storage`, so s3:// works)."""
    check_uri(value, "model")
    from worldcover.model.card import CARD_FILE, MODEL_FILE  # lazy: worldcover.model pulls xarray, pandas
    from worldcover.model.location import resolve_model  # lazy: worldcover.model pulls xarray, pandas

    where = storage.path(resolve_model(value))
    expected = f"expected '{DEFAULT_MODEL}' or a model directory holding {MODEL_FILE} and {CARD_FILE}"
    try:
        missing = [f for f in (MODEL_FILE, CARD_FILE) if not (where / f).is_file()]
    except Exception as exc:  # noqa: BLE001 - unreachable store, no credentials: the plan cannot use it
        raise InputError(f"invalid model {value!r}: cannot be read ({type(exc).__name__}); {expected}") from None
    if len(missing) == 2:
        raise InputError(f"invalid model {value!r}: it does not exist; {expected}")
    if missing:
        raise InputError(f"invalid model {value!r}: it has no {missing[0]}; {expected}")
    return value


def check_blocks(spec: str) -> str:
    if not isinstance(spec, str) or not _BLOCKS_RE.fullmatch(spec):
        raise InputError(f"invalid blocks {spec!r}: expected 'all', 'first:N' or a list like r0c0,r0c1")
    return spec


def current_year() -> int:
    return datetime.now(UTC).year


def check_year(year: int) -> int:
    """2015 (Sentinel-2's first year) .. the current UTC year: a later year has no data yet."""
    last = current_year()
    if not isinstance(year, int) or isinstance(year, bool) or not MIN_YEAR <= year <= last:
        why = f"{year} is in the future; " if isinstance(year, int) and year > last else ""
        raise InputError(f"invalid year {year!r}: {why}expected {MIN_YEAR}..{last} "
                         "(Sentinel-2 data start in 2015)")
    return year


def check_cluster_locations(plan: CampaignPlan) -> CampaignPlan:
    """Argo pods share nothing but object storage: output root, model (but ``default``) and reference
    must be object-store URLs, never local paths."""
    reference = plan.reference.removeprefix("sim:")
    for what, value in (("output root", plan.out_root), ("model", plan.model), ("reference", reference)):
        if not value or (what == "model" and value == DEFAULT_MODEL):
            continue
        if storage.scheme(value) not in CLUSTER_SCHEMES:
            kind = "an in-memory URL" if storage.scheme(value) else "a local path"
            raise InputError(f"invalid {what} {value!r} for Argo: {kind}, but pods share nothing but object "
                             "storage; expected an s3://bucket/prefix URL (or gs://, az://)")
    return plan


@dataclass(frozen=True)
class CampaignPlan:
    """What one campaign produces. Immutable; build it with :meth:`create`."""

    name: str
    year: int
    tiles: tuple[str, ...]
    model: str
    source: str
    out_root: str
    stage: str | None = None
    block_size: int = DEFAULT_BLOCK_SIZE
    blocks: str = "all"
    batch_size: int = 50
    seed: int = DEFAULT_SEED
    max_cloud: float | None = None
    reference: str = ""  # labelled samples CSV, "sim:ARCHIVE" (simulated truth), or "" (design only)
    labels: dict[str, str] = field(default_factory=dict)

    @classmethod
    def create(cls, name: str, year: int, *, stage: str | None = None, tiles: list[str] | None = None,
               bbox: tuple[float, float, float, float] | None = None, model: str = DEFAULT_MODEL,
               source: str = "planetary-computer", out_root: str = "campaigns", engine: str | None = None,
               **options) -> CampaignPlan:
        """Validate everything and resolve the stage/tiles/bbox into a sorted tile list.

        The model must exist (:func:`check_model`). ``engine="local"`` makes local paths
        absolute (dask workers do not share our working directory); ``engine="argo"``
        refuses local paths (:func:`check_cluster_locations`).
        """
        if engine not in (None, "local", "argo"):
            raise InputError(f"unknown engine {engine!r}: expected local or argo")
        check_name(name)
        check_year(year)
        check_source(source)
        seed = options.get("seed", DEFAULT_SEED)
        if stage is not None:
            check_stage(stage)
            selected = stage_tiles(stage, seed)
            if tiles:  # a few tiles of a stage (e.g. a demo or a pilot)
                wanted = {Tile.parse(t).id for t in tiles}
                outside = sorted(wanted - {t.id for t in selected})
                if outside:
                    raise InputError(f"tile(s) {', '.join(outside)} are not in stage {stage}")
                selected = [t for t in selected if t.id in wanted]
        elif tiles:
            selected = [Tile.parse(t) for t in tiles]
        elif bbox is not None:
            selected = land_tiles(bbox)
        else:
            raise InputError("a campaign needs --stage, --tiles or --bbox")
        if bbox is not None and (stage is not None or tiles):  # the box narrows the selection
            keep = {t.id for t in land_tiles(bbox)}
            selected = [t for t in selected if t.id in keep]
        if not selected:
            raise InputError("the campaign selects no tile: check --stage/--tiles/--bbox")
        plan = cls(
            name=name, year=year, tiles=tuple(sorted({t.id for t in selected})), model=check_uri(model, "model"),
            source=check_source(source), out_root=check_uri(out_root, "output root"), stage=stage, **options,
        )
        plan.validate()
        if engine == "local":
            plan = plan.absolute()
        elif engine == "argo":
            check_cluster_locations(plan)
        check_model(plan.model)
        return plan

    def absolute(self) -> CampaignPlan:
        """The plan with its local paths (output root, model, reference) absolute; URLs and ``default`` kept."""
        ref = self.reference
        if ref:
            sim = ref.startswith("sim:")
            ref = ("sim:" if sim else "") + storage.absolute(ref.removeprefix("sim:"))
        model = self.model if self.model == DEFAULT_MODEL else storage.absolute(self.model)
        return replace(self, out_root=storage.absolute(self.out_root), model=model, reference=ref).validate()

    def validate(self) -> CampaignPlan:
        """This plan, after checking every field (an InputError names the first bad one)."""
        self._check_identity()
        check_uri(self.model, "model")
        check_uri(self.out_root, "output root")
        check_source(self.source)
        check_block_size(self.block_size)
        check_blocks(self.blocks)
        if not isinstance(self.batch_size, int) or isinstance(self.batch_size, bool) or not 1 <= self.batch_size <= 500:
            raise InputError(f"invalid batch size {self.batch_size!r}: expected 1..500 tiles per batch")
        self._check_labels()
        self._check_reference_and_cloud()
        return self

    def _check_identity(self) -> None:
        """Name, year, tiles, stage and seed: what the campaign is."""
        check_name(self.name)
        check_year(self.year)
        if not isinstance(self.tiles, (tuple, list)):
            raise InputError(f"invalid tiles {self.tiles!r}: expected a list of tile ids")
        for t in self.tiles:
            if Tile.parse(t).id != t:  # exactly the id: it becomes parameters, task names and paths
                raise InputError(f"invalid tile id {t!r}: expected exactly {Tile.parse(t).id!r}")
        if self.stage is not None:
            if not isinstance(self.stage, str):
                raise InputError(f"invalid stage {self.stage!r}: expected 1pct, 10pct or 100pct (or none)")
            check_stage(self.stage)
        if not isinstance(self.seed, int) or isinstance(self.seed, bool) or not 0 <= self.seed < 2**32:
            raise InputError(f"invalid seed {self.seed!r}: expected an integer 0..2^32-1")

    def _check_labels(self) -> None:
        """Kubernetes labels: they go onto every workflow and pod."""
        if not isinstance(self.labels, dict):
            raise InputError(f"invalid labels {self.labels!r}: expected a mapping of Kubernetes label keys to values")
        for key, value in self.labels.items():
            if not isinstance(key, str) or not _LABEL_RE.fullmatch(key) or not isinstance(value, str) \
                    or not _LABEL_VALUE_RE.fullmatch(value):
                raise InputError(f"invalid label {key!r}={value!r}: expected Kubernetes label syntax")

    def _check_reference_and_cloud(self) -> None:
        """The validation reference and the cloud-cover limit."""
        if not isinstance(self.reference, str):
            raise InputError(f"invalid reference {self.reference!r}: expected a labelled CSV path or sim:ARCHIVE")
        if self.reference:
            check_uri(self.reference.removeprefix("sim:"), "reference")
        if self.max_cloud is not None and (
            not isinstance(self.max_cloud, (int, float)) or isinstance(self.max_cloud, bool)
            or not 0 <= self.max_cloud <= 100
        ):
            raise InputError(f"invalid max cloud {self.max_cloud!r}: expected a percentage 0..100")

    def batches(self) -> list[tuple[str, ...]]:
        """Tiles in batches of ``batch_size`` (one Argo child workflow each)."""
        n = self.batch_size
        return [self.tiles[i : i + n] for i in range(0, len(self.tiles), n)]

    def with_tiles(self, tiles: list[str]) -> CampaignPlan:
        return replace(self, tiles=tuple(sorted(tiles)))

    def to_dict(self) -> dict:
        d = asdict(self)
        d["tiles"] = list(self.tiles)
        return d

    def to_json(self) -> str:
        """Compact JSON of the whole plan (an Argo parameter): never '{{' or '}}', which Argo would expand."""
        text = json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"))
        while "{{" in text or "}}" in text:  # only structural braces: values refuse braces
            text = text.replace("{{", "{ {").replace("}}", "} }")
        return text

    @classmethod
    def from_dict(cls, d: dict) -> CampaignPlan:
        if not isinstance(d, dict):
            raise InputError(f"a campaign must be a JSON object, not {type(d).__name__}")
        d = dict(d)
        fields = cls.__dataclass_fields__
        unknown = set(map(str, d)) - set(fields)
        if unknown:
            raise InputError(f"unknown field(s) {', '.join(map(repr, sorted(unknown)))}; expected {', '.join(fields)}")
        required = [k for k, f in fields.items() if f.default is MISSING and f.default_factory is MISSING]
        missing = [k for k in required if k not in d and k != "tiles"]  # a plan without tiles is a template
        if missing:
            raise InputError(f"missing field(s) {', '.join(missing)}")
        tiles = d.get("tiles", [])
        if not isinstance(tiles, list) or not all(isinstance(t, str) for t in tiles):
            raise InputError(f"invalid tiles {tiles!r}: expected a list of tile ids")
        d["tiles"] = tuple(tiles)
        return cls(**d).validate()

    def save(self, path):
        """Write the plan as JSON, whole (a local file or an object); returns its location."""
        return storage.atomic_write_text(path, json.dumps(self.to_dict(), indent=2))

    @classmethod
    def load(cls, path) -> CampaignPlan:
        try:
            data = json.loads(storage.path(path).read_text())
        except FileNotFoundError:
            raise InputError(f"campaign file {str(path)!r} does not exist") from None
        except json.JSONDecodeError as exc:
            raise InputError(f"campaign file {str(path)!r} is not valid JSON: {exc.msg} at line {exc.lineno}") from None
        except (UnicodeDecodeError, IsADirectoryError, PermissionError) as exc:
            raise InputError(
                f"campaign file {str(path)!r} cannot be read as UTF-8 JSON text ({type(exc).__name__})"
            ) from None
        if not isinstance(data, dict):
            raise InputError(f"campaign file {str(path)!r} must hold a JSON object")
        try:
            return cls.from_dict(data)
        except InputError as exc:
            raise InputError(f"campaign file {str(path)!r}: {exc}") from None
