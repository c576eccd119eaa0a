"""Run a script under two OpenBLAS kernels: results that must not depend on the CPU's BLAS.

OpenBLAS picks its kernel per CPU, and ``OPENBLAS_CORETYPE`` overrides it (this host sets it; the image's
pods do not), so anything computed with ``@`` can differ in the last bits between a pod and the host.
"""

from __future__ import annotations

import os
import platform
import subprocess
import sys

import pytest

# FMA (Haswell) and SSE (Nehalem) kernels: ``weights @ matrix`` differs between them; both run on any x86-64
# machine of the last decade
KERNELS = ("Haswell", "Nehalem")

x86_only = pytest.mark.skipif(platform.machine() != "x86_64", reason="OPENBLAS_CORETYPE names x86 kernels")


def outputs_per_kernel(script: str) -> list[str]:
    """The stdout of ``python -c script`` under each of :data:`KERNELS`."""
    outs = []
    for core in KERNELS:
        env = {**os.environ, "OPENBLAS_CORETYPE": core}
        outs.append(subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True,
                                   check=True).stdout)
    return outs
