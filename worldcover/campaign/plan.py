"""A campaign plan: stage or tiles, year, model, source, output root, batching.

One plan is rendered two ways (a dask graph for the local engine, hera
objects for Argo). Everything in it is validated here, before it can reach
YAML, a shell or a path.
"""

from __future__ import annotations

import json
import re
from dataclasses import MISSING, asdict, dataclass, field, replace
from pathlib import Path

from worldcover.errors import InputError
from worldcover.grid import DEFAULT_BLOCK_SIZE, Tile, check_block_size, land_tiles
from worldcover.stages import DEFAULT_SEED, check_stage, stage_tiles

_NAME_RE = re.compile(r"^[a-z0-9]([a-z0-9-]{0,38}[a-z0-9])?$")
_BLOCKS_RE = re.compile(r"^(all|first:[1-9][0-9]{0,5}|r[0-9]{1,4}c[0-9]{1,4}(,r[0-9]{1,4}c[0-9]{1,4})*)$")
_URI_RE = re.compile(r"^(s3://[a-z0-9][a-z0-9.-]{1,61}[a-z0-9](/[A-Za-z0-9._/-]*)?|[A-Za-z0-9._/-]+)$")
_SOURCE_RE = re.compile(r"^([a-z][a-z0-9-]*|https?://[A-Za-z0-9.:-]+(/[A-Za-z0-9._~/-]*)?)$")
_LABEL_RE = re.compile(r"^([a-z0-9.-]{1,253}/)?[A-Za-z0-9]([A-Za-z0-9_.-]{0,61}[A-Za-z0-9])?$")
_LABEL_VALUE_RE = re.compile(r"^([A-Za-z0-9]([A-Za-z0-9_.-]{0,61}[A-Za-z0-9])?)?$")
MIN_YEAR, MAX_YEAR = 2015, 2100


def check_name(name: str) -> str:
    """Campaign names become Kubernetes names and labels: DNS-1123, at most 40 characters."""
    if not isinstance(name, str) or not _NAME_RE.fullmatch(name):
        raise InputError(
            f"invalid campaign name {name!r}: expected 1-40 lowercase letters, digits or '-', "
            "starting and ending with a letter or digit"
        )
    return name


def check_uri(value: str, what: str) -> str:
    """Paths and s3:// URIs: no '..', no template braces, no shell metacharacters."""
    if not isinstance(value, str) or not _URI_RE.fullmatch(value) or ".." in value.split("/"):
        raise InputError(
            f"invalid {what} {value!r}: expected a path or s3://bucket/prefix of letters, digits and . _ - / "
            "without '..'"
        )
    return value


def check_source(value: str) -> str:
    if not isinstance(value, str) or not _SOURCE_RE.fullmatch(value):
        raise InputError(f"invalid source {value!r}: expected a preset name or an http(s) STAC API URL")
    return value


def check_blocks(spec: str) -> str:
    if not isinstance(spec, str) or not _BLOCKS_RE.fullmatch(spec):
        raise InputError(f"invalid blocks {spec!r}: expected 'all', 'first:N' or a list like r0c0,r0c1")
    return spec


def check_year(year: int) -> int:
    if not isinstance(year, int) or not MIN_YEAR <= year <= MAX_YEAR:
        raise InputError(f"invalid year {year!r}: Sentinel-2 data start in 2015 (expected {MIN_YEAR}..{MAX_YEAR})")
    return year


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
               bbox: tuple[float, float, float, float] | None = None, model: str = "models/default",
               source: str = "planetary-computer", out_root: str = "campaigns", **options) -> "CampaignPlan":
        """Validate everything and resolve the stage/tiles/bbox into a sorted tile list."""
        check_name(name)
        check_year(year)
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
        return plan

    def validate(self) -> "CampaignPlan":
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
        check_uri(self.model, "model")
        check_uri(self.out_root, "output root")
        check_source(self.source)
        check_block_size(self.block_size)
        check_blocks(self.blocks)
        if not isinstance(self.batch_size, int) or isinstance(self.batch_size, bool) or not 1 <= self.batch_size <= 500:
            raise InputError(f"invalid batch size {self.batch_size!r}: expected 1..500 tiles per batch")
        if not isinstance(self.labels, dict):
            raise InputError(f"invalid labels {self.labels!r}: expected a mapping of Kubernetes label keys to values")
        for key, value in self.labels.items():
            if not isinstance(key, str) or not _LABEL_RE.fullmatch(key) or not isinstance(value, str) \
                    or not _LABEL_VALUE_RE.fullmatch(value):
                raise InputError(f"invalid label {key!r}={value!r}: expected Kubernetes label syntax")
        if not isinstance(self.reference, str):
            raise InputError(f"invalid reference {self.reference!r}: expected a labelled CSV path or sim:ARCHIVE")
        if self.reference:
            check_uri(self.reference.removeprefix("sim:"), "reference")
        if self.max_cloud is not None and (not isinstance(self.max_cloud, (int, float)) or isinstance(self.max_cloud, bool)
                                           or not 0 <= self.max_cloud <= 100):
            raise InputError(f"invalid max cloud {self.max_cloud!r}: expected a percentage 0..100")
        return self

    def batches(self) -> list[tuple[str, ...]]:
        """Tiles in batches of ``batch_size`` (one Argo child workflow each)."""
        n = self.batch_size
        return [self.tiles[i : i + n] for i in range(0, len(self.tiles), n)]

    def with_tiles(self, tiles: list[str]) -> "CampaignPlan":
        return replace(self, tiles=tuple(sorted(tiles)))

    def to_dict(self) -> dict:
        d = asdict(self)
        d["tiles"] = list(self.tiles)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "CampaignPlan":
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
        from worldcover import storage

        return storage.atomic_write_text(path, json.dumps(self.to_dict(), indent=2))

    @classmethod
    def load(cls, path) -> "CampaignPlan":
        from worldcover import storage

        try:
            data = json.loads(storage.path(path).read_text())
        except FileNotFoundError:
            raise InputError(f"campaign file {str(path)!r} does not exist") from None
        except json.JSONDecodeError as exc:
            raise InputError(f"campaign file {str(path)!r} is not valid JSON: {exc.msg} at line {exc.lineno}") from None
        except (UnicodeDecodeError, IsADirectoryError, PermissionError) as exc:
            raise InputError(f"campaign file {str(path)!r} cannot be read as UTF-8 JSON text ({type(exc).__name__})") from None
        if not isinstance(data, dict):
            raise InputError(f"campaign file {str(path)!r} must hold a JSON object")
        try:
            return cls.from_dict(data)
        except InputError as exc:
            raise InputError(f"campaign file {str(path)!r}: {exc}") from None
