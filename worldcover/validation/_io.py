"""Atomic file writes: write to a temporary file beside the target, then rename over it.

A reader never sees a half-written file and a failed run leaves the old file intact.
"""

from __future__ import annotations

import os
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator


@contextmanager
def atomic_path(target: str | Path) -> Iterator[Path]:
    """Yield a temporary path in the target's directory; rename it onto ``target`` on success."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        os.chmod(tmp_path, 0o644)
        os.replace(tmp_path, target)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


def write_text(target: str | Path, text: str) -> Path:
    """Atomically write UTF-8 text."""
    with atomic_path(target) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return Path(target)


def write_with(target: str | Path, writer: Callable[[Path], None]) -> Path:
    """Atomically create ``target`` with ``writer(tmp_path)`` (for libraries that want a path)."""
    with atomic_path(target) as tmp:
        writer(tmp)
    return Path(target)
