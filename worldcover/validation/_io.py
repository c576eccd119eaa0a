"""Atomic file writes (the shared helpers of :mod:`worldcover.cog`), plus one for path-taking writers.

A reader never sees a half-written file and a failed run leaves the old file intact.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from worldcover import storage
from worldcover.storage import atomic_path
from worldcover.storage import atomic_write_text as write_text

__all__ = ["atomic_path", "write_text", "write_with"]


def write_with(target: str | storage.Location, writer: Callable[[Path], None]) -> storage.Location:
    """Atomically create ``target`` with ``writer(tmp_path)`` (for libraries that want a path)."""
    with atomic_path(target) as tmp:
        writer(tmp)
    return storage.path(target)
