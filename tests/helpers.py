"""Plain helpers and constants the test modules share (fixtures live in conftest.py).

Test modules import these (``from tests.helpers import run_cli``) rather than importing
conftest.py, which pytest loads itself as a plugin.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
#: data shared beside the checkout (Argo schemas, real STAC items and rasters): see the README; tests
#: that need a part of it skip when it is absent
SHARED = REPO.parent / "shared"
#: the default model as users name it: the repository's link to the model shipped in the package
#: (worldcover/model/default_model); it is committed, so tests fail rather than skip without it
DEFAULT_MODEL = REPO / "models" / "default"


def run_cli(*args: str) -> tuple[int, str, str]:
    """Run the real console script in a subprocess: exit code, stdout, stderr."""
    proc = subprocess.run([sys.executable, "-m", "worldcover", *args], capture_output=True, text=True, timeout=300)
    return proc.returncode, proc.stdout, proc.stderr
