"""Step functions for engine tests: real functions the engine resolves by dotted path."""

from __future__ import annotations

import json
from pathlib import Path

from worldcover.errors import DataError


def flaky(counter: str, fail_times: int) -> dict:
    """Fail ``fail_times`` times (counting in a file), then succeed."""
    path = Path(counter)
    n = int(path.read_text()) if path.exists() else 0
    path.write_text(str(n + 1))
    if n < fail_times:
        raise RuntimeError(f"transient failure {n + 1}")
    return {"calls": n + 1}


def bad_input(counter: str) -> dict:
    path = Path(counter)
    n = int(path.read_text()) if path.exists() else 0
    path.write_text(str(n + 1))
    raise DataError("corrupt COG: not retried")


def echo(**kwargs) -> dict:
    return json.loads(json.dumps(kwargs))
