"""Publish a simulated archive to object storage, as a real Sentinel catalogue lives there.

A generated archive holds COGs and STAC items whose hrefs are local absolute
paths: fine on one machine, unreadable in a pod. :func:`publish` uploads every
file of the archive under a URL prefix and rewrites the catalogue so that each
href names the uploaded object (``s3://bucket/prefix/data/...``). The result is
served like the local one (``LocalStacApi(url)`` / ``worldcover stac serve URL``)
and read by odc-stac through GDAL's ``/vsis3/``, from this machine or a pod.
"""

from __future__ import annotations

import json
from pathlib import Path

from worldcover import storage
from worldcover.errors import InputError

CATALOGUE = "stac"


def _rehome(value, old: str, new: str):
    """Every string under ``old/`` in a JSON document, moved under ``new/``."""
    if isinstance(value, dict):
        return {k: _rehome(v, old, new) for k, v in value.items()}
    if isinstance(value, list):
        return [_rehome(v, old, new) for v in value]
    if isinstance(value, str):
        for prefix in (old + "/", "file://" + old + "/"):
            if value.startswith(prefix):
                return new + "/" + value[len(prefix):]
    return value


def publish(archive: str | Path, dest: str) -> str:
    """Upload a local archive to ``dest`` (an object-store URL); the catalogue last. Returns ``dest``."""
    src = Path(archive).resolve()
    if not (src / CATALOGUE / "items").is_dir():
        raise InputError(
            f"archive {str(archive)!r} has no {CATALOGUE}/items: expected a `worldcover sim generate` output"
        )
    storage.check_location(dest, "archive destination")
    if not storage.is_remote(dest):
        raise InputError(f"invalid archive destination {dest!r}: expected an s3:// (or gs://, az://) URL")
    dest = dest.rstrip("/")
    files = sorted(p for p in src.rglob("*") if p.is_file() and not p.name.startswith("."))
    data = [p for p in files if p.relative_to(src).parts[0] != CATALOGUE]
    for p in data:
        storage.put_copy(p, f"{dest}/{p.relative_to(src).as_posix()}")
    for p in files:
        if p.relative_to(src).parts[0] == CATALOGUE and p.suffix == ".json":
            doc = _rehome(json.loads(p.read_text()), str(src), dest)
            storage.atomic_write_text(f"{dest}/{p.relative_to(src).as_posix()}", json.dumps(doc))
    return dest


def fetch_catalogue(url: str, into: str | Path) -> Path:
    """Copy the catalogue of a published archive (its ``stac/`` JSON files) into a local folder."""
    base = storage.path(url.rstrip("/")) / CATALOGUE
    if not base.is_dir():
        raise InputError(f"STAC archive {url!r} has no {CATALOGUE}/: expected a `worldcover sim publish` output")
    out = Path(into)
    for p in base.rglob("*.json"):
        rel = storage.relpath(p, base)
        target = out / CATALOGUE / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(p.read_text())
    return out


__all__ = ["fetch_catalogue", "publish"]
