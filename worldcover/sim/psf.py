"""The sensors' point-spread blur, shared by the Sentinel-2 and Sentinel-1 renderers."""

from __future__ import annotations

import numpy as np


def blur(a: np.ndarray, kernel: np.ndarray) -> np.ndarray:
    """Separable 3-tap blur over the last two axes with edge replication (in place friendly)."""
    k0, k1, k2 = (np.float32(v) for v in kernel)
    p = np.concatenate([a[..., :1, :], a, a[..., -1:, :]], axis=-2)
    a = k0 * p[..., :-2, :] + k1 * p[..., 1:-1, :] + k2 * p[..., 2:, :]
    p = np.concatenate([a[..., :1], a, a[..., -1:]], axis=-1)
    return k0 * p[..., :-2] + k1 * p[..., 1:-1] + k2 * p[..., 2:]
