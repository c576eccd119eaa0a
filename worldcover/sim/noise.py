"""Seamless, deterministic randomness for the simulated world.

Every field of the simulated world is a function of *absolute* position
(longitude/latitude, or the absolute pixel index of a fixed lattice) and of
the seed, never of the block being generated. Any block of any tile can then
be generated on its own, in any order, and adjacent blocks still join
without a seam.

Three tools:

* :func:`fbm` -- multi-octave value noise whose lattice values come from a
  vectorised integer hash of (key, lattice ix, iy), evaluated on a
  triplanar projection of the sphere (:class:`Domain`): smooth, spatially
  coherent fields (terrain, climate anomalies, clouds, patchiness);
* :func:`voronoi` -- jittered-lattice Voronoi cells ("cellular noise") for
  crop parcels and city blocks;
* :func:`pixel_random` -- i.i.d. draws (Gaussian, Gamma...) per pixel of an
  absolute pixel lattice, produced chunk by chunk from generators seeded by
  the chunk index, so two overlapping chips on the same grid get the same
  sensor noise and speckle.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

# Standard deviation of one octave of value noise with quintic fade and
# lattice values uniform in [-1, 1] (measured over 10^6 random points); used
# to give fbm() output unit variance.
_VALUE_NOISE_STD = 0.4524

_M1 = np.uint32(0x7FEB352D)
_M2 = np.uint32(0x846CA68B)
_GOLD = np.uint32(0x9E3779B9)


def key(seed: int, name: str, *extra: int) -> int:
    """A 32-bit key naming one random field: same (seed, name, extra) -> same field."""
    text = f"{int(seed)}:{name}:" + ",".join(str(int(e)) for e in extra)
    return zlib.crc32(text.encode()) & 0xFFFFFFFF


def mix32(h: np.ndarray) -> np.ndarray:
    """Chris Wellons' ``lowbias32`` integer finaliser on uint32 arrays (wrapping arithmetic)."""
    h = h.astype(np.uint32, copy=True)
    h ^= h >> 16
    h *= _M1
    h ^= h >> 15
    h *= _M2
    h ^= h >> 16
    return h


def _as_u32(a: np.ndarray) -> np.ndarray:
    """Integer lattice indices (possibly negative) as wrapped uint32."""
    return np.asarray(a).astype(np.int64).astype(np.uint32)


def hash2(k: int, ix: np.ndarray, iy: np.ndarray) -> np.ndarray:
    """uint32 hash of (key, ix, iy); broadcasts ``ix`` and ``iy``."""
    hx = mix32(_as_u32(ix) ^ np.uint32(k))
    return mix32(hx ^ (_as_u32(iy) * _GOLD + np.uint32((k * 0x85EBCA6B) & 0xFFFFFFFF)))


def unit(h: np.ndarray) -> np.ndarray:
    """uint32 hash -> float32 uniform in [0, 1)."""
    return (h >> 8).astype(np.float32) * np.float32(1.0 / (1 << 24))


def unit_of(ids: np.ndarray, salt: int) -> np.ndarray:
    """A uniform [0, 1) attribute of integer ids (e.g. per crop parcel), one stream per ``salt``."""
    return unit(mix32(_as_u32(ids) ^ np.uint32(salt & 0xFFFFFFFF)))


EARTH_RADIUS_KM = 6371.0
_PLANE_THRESHOLD = 0.5  # a projection plane is used where the surface faces it at least this much


@dataclass
class Domain:
    """Points on the globe prepared for noise evaluation ("triplanar" mapping).

    A 2-D noise evaluated on ``x = lon * cos(lat)`` shears badly far from the
    prime meridian. Instead each point is placed on the sphere (km) and the
    noise is evaluated on the orthographic projections onto the coordinate
    planes that the surface faces, blended with weights that vanish before a
    plane becomes oblique. Every field is therefore isotropic within a factor
    of two, continuous everywhere (no seam at the antimeridian either) and a
    function of position only.
    """

    planes: list[tuple[int, np.ndarray, np.ndarray, np.ndarray]]  # (plane id, u km, v km, weight)
    dominant: np.ndarray  # int8 id of the plane with the largest weight (for cellular noise)
    shape: tuple[int, ...]

    def subset(self, index) -> Domain:
        planes = [(pid, u[index], v[index], w[index]) for pid, u, v, w in self.planes]
        dominant = self.dominant[index]
        return Domain([p for p in planes if np.any(p[3] > 0)], dominant, dominant.shape)

    def plane_coords(self, pid: int) -> tuple[np.ndarray, np.ndarray]:
        for q, u, v, _ in self.planes:
            if q == pid:
                return u, v
        raise KeyError(pid)


def domain(lon: np.ndarray, lat: np.ndarray) -> Domain:
    """The noise domain of points given in degrees (any shape)."""
    lam = np.radians(np.asarray(lon, np.float64))
    phi = np.radians(np.asarray(lat, np.float64))
    cphi = np.cos(phi)
    p = (EARTH_RADIUS_KM * cphi * np.cos(lam), EARTH_RADIUS_KM * cphi * np.sin(lam), EARTH_RADIUS_KM * np.sin(phi))
    n = [c / EARTH_RADIUS_KM for c in p]
    raw = [np.maximum(np.abs(c) - _PLANE_THRESHOLD, 0.0) ** 2 for c in n]
    norm = np.sqrt(raw[0] ** 2 + raw[1] ** 2 + raw[2] ** 2)
    planes = []
    for axis in range(3):
        w = (raw[axis] / norm).astype(np.float32)
        if not np.any(w > 0):
            continue
        j, k = (axis + 1) % 3, (axis + 2) % 3
        for sign in (0, 1):  # the two hemispheres facing a plane get different noise
            side = (n[axis] < 0) if sign else (n[axis] >= 0)
            ws = np.where(side, w, np.float32(0))
            if np.any(ws > 0):
                planes.append((2 * axis + sign, p[j], p[k], ws))
    stack = np.stack([np.asarray(r) * np.where(n[a] >= 0, 1, -1) for a, r in enumerate(raw)])
    best = np.argmax(np.abs(stack), axis=0)
    sgn = np.take_along_axis(stack, best[None], 0)[0] < 0
    dominant = (2 * best + sgn).astype(np.int8)
    return Domain(planes, dominant, np.shape(lon))


def _lattice_values(k: int, ix: np.ndarray, iy: np.ndarray) -> np.ndarray:
    return unit(hash2(k, ix, iy)) * np.float32(2.0) - np.float32(1.0)


def value_noise(u: np.ndarray, v: np.ndarray, k: int) -> np.ndarray:
    """One octave of value noise at lattice coordinates (u, v); float32 in [-1, 1].

    When the points are dense (a raster), the lattice values are hashed once
    on the bounding rectangle of lattice cells and gathered, which is much
    cheaper than hashing four corners per point at coarse octaves.
    """
    fu_floor = np.floor(u)
    fv_floor = np.floor(v)
    fu = (u - fu_floor).astype(np.float32)
    fv = (v - fv_floor).astype(np.float32)
    iu = fu_floor.astype(np.int64)
    iv = fv_floor.astype(np.int64)
    if iu.size == 0:
        return np.zeros(np.shape(u), np.float32)
    u0, v0 = int(iu.min()), int(iv.min())
    w = int(iu.max()) - u0 + 2
    h = int(iv.max()) - v0 + 2
    if w * h <= 4 * iu.size + 4096:
        table = _lattice_values(k, np.arange(u0, u0 + w)[None, :], np.arange(v0, v0 + h)[:, None]).ravel()
        idx = (iv - v0) * w + (iu - u0)
        a = table[idx]
        b = table[idx + 1]
        c = table[idx + w]
        d = table[idx + w + 1]
    else:  # scattered points: hash the four corners directly
        a = _lattice_values(k, iu, iv)
        b = _lattice_values(k, iu + 1, iv)
        c = _lattice_values(k, iu, iv + 1)
        d = _lattice_values(k, iu + 1, iv + 1)
    su = fu * fu * fu * (fu * (fu * np.float32(6) - np.float32(15)) + np.float32(10))
    sv = fv * fv * fv * (fv * (fv * np.float32(6) - np.float32(15)) + np.float32(10))
    return a + (b - a) * su + (c - a) * sv + (a - b - c + d) * (su * sv)


_ROT = [(float(np.cos(a)), float(np.sin(a))) for a in (0.0, 0.91, 2.17, 0.43, 1.61, 2.83, 1.19, 2.51, 0.27, 1.97)]


def fbm2(u: np.ndarray, v: np.ndarray, k: int, scale_km: float, octaves: int = 4,
         gain: float = 0.5, lacunarity: float = 2.0) -> np.ndarray:
    """Fractal sum of value-noise octaves on plane coordinates (km), roughly unit variance.

    ``scale_km`` is the lattice spacing of the coarsest octave; each next octave
    is ``lacunarity`` times finer and ``gain`` times weaker.
    """
    total = np.zeros(np.shape(u), np.float32)
    amp, norm, freq = 1.0, 0.0, 1.0 / scale_km
    for o in range(octaves):
        # Each octave's lattice is rotated and shifted, so lattice-aligned
        # artefacts of value noise do not add up into a visible grid.
        ca, sa = _ROT[o % len(_ROT)]
        shift = 0.618034 * (o + 1) * 7.31
        uu = (u * ca - v * sa) * freq + shift
        vv = (u * sa + v * ca) * freq - shift
        total += np.float32(amp) * value_noise(uu, vv, (k + 7919 * o) & 0xFFFFFFFF)
        norm += amp * amp
        amp *= gain
        freq *= lacunarity
    return total * np.float32(1.0 / (np.sqrt(norm) * _VALUE_NOISE_STD))


def fbm(dom: Domain, k: int, scale_km: float, octaves: int = 4, gain: float = 0.5,
        lacunarity: float = 2.0) -> np.ndarray:
    """Unit-variance fractal noise at the points of ``dom``: ``scale_km`` is the coarsest feature size."""
    out = np.zeros(dom.shape, np.float32)
    for pid, u, v, w in dom.planes:
        sel = w > 0
        if sel.all():
            out += w * fbm2(u, v, (k * 31 + pid * 0x9E37) & 0xFFFFFFFF, scale_km, octaves, gain, lacunarity)
        else:
            out[sel] += w[sel] * fbm2(u[sel], v[sel], (k * 31 + pid * 0x9E37) & 0xFFFFFFFF, scale_km, octaves, gain,
                                      lacunarity)
    return out


def fbm_where(dom: Domain, mask: np.ndarray, k: int, scale_km: float, octaves: int = 4,
              fill: float = 0.0, **kw) -> np.ndarray:
    """:func:`fbm` evaluated only where ``mask`` is true (``fill`` elsewhere).

    For fields that matter only in some places (ice only where summers are
    cold, mangroves only on warm coasts): the mask is itself a function of
    position, so the result still is, and blocks stay seamless.
    """
    mask = np.asarray(mask, bool)
    if mask.all():
        return fbm(dom, k, scale_km, octaves, **kw)
    out = np.full(dom.shape, fill, np.float32)
    if mask.any():
        out[mask] = fbm(dom.subset(mask), k, scale_km, octaves, **kw)
    return out


def voronoi2(u: np.ndarray, v: np.ndarray, k: int, cell_km: float, jitter: float = 0.85,
             stretch: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    """Jittered-lattice Voronoi cells on plane coordinates: (cell id uint32, km to the cell border).

    ``stretch`` > 1 elongates cells along ``u``. The border distance is the
    usual (d2 - d1) / 2 approximation.
    """
    uu = np.asarray(u) / (cell_km * stretch)
    vv = np.asarray(v) / cell_km
    iu = np.floor(uu).astype(np.int64)
    iv = np.floor(vv).astype(np.int64)
    d1 = np.full(uu.shape, np.inf)
    d2 = np.full(uu.shape, np.inf)
    best = np.zeros(uu.shape, np.uint32)
    for di in (-1, 0, 1):
        for dj in (-1, 0, 1):
            cu, cv = iu + di, iv + dj
            h = hash2(k, cu, cv)
            px = cu + 0.5 + jitter * (unit(h) - 0.5)
            py = cv + 0.5 + jitter * (unit(mix32(h ^ np.uint32(0x5BD1E995))) - 0.5)
            d = ((uu - px) * stretch) ** 2 + (vv - py) ** 2
            closer = d < d1
            d2 = np.where(closer, d1, np.minimum(d2, d))
            d1 = np.where(closer, d, d1)
            best = np.where(closer, h, best)
    edge = (np.sqrt(d2) - np.sqrt(d1)) * 0.5 * cell_km
    return best, edge.astype(np.float32)


def voronoi(dom: Domain, k: int, cell_km: float, jitter: float = 0.85,
            stretch: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    """Voronoi cells at the points of ``dom``, on each point's dominant projection plane.

    Cells cannot be blended, so where the dominant plane changes the cell
    pattern changes too (along fixed curves on the globe, like a road).
    """
    ids = np.zeros(dom.shape, np.uint32)
    edge = np.zeros(dom.shape, np.float32)
    for pid, u, v, _w in dom.planes:
        sel = dom.dominant == pid
        if sel.any():
            ids[sel], edge[sel] = voronoi2(u[sel], v[sel], (k * 31 + pid * 0x9E37) & 0xFFFFFFFF, cell_km, jitter,
                                           stretch)
    return ids, edge


# --- per-pixel i.i.d. draws on an absolute pixel lattice ---------------------

CHUNK = 256


def pixel_random(shape: tuple[int, int], col0: int, row0: int, keys: tuple[int, ...],
                 draw: Callable[[np.random.Generator, tuple[int, ...]], np.ndarray],
                 leading: tuple[int, ...] = (), dtype=np.float32) -> np.ndarray:
    """I.i.d. draws for the pixels ``[row0, row0+H) x [col0, col0+W)`` of an absolute lattice.

    The lattice is cut into 256 x 256 chunks; each chunk's values come from a
    generator seeded by (``keys``, chunk row, chunk column), so any window of
    the lattice is reproducible and overlapping windows agree. ``draw(rng,
    size)`` returns an array of ``size`` = ``leading + (256, 256)``.
    """
    h, w = shape
    out = np.empty(leading + (h, w), dtype=dtype)
    r_first, r_last = row0 // CHUNK, (row0 + h - 1) // CHUNK
    c_first, c_last = col0 // CHUNK, (col0 + w - 1) // CHUNK
    base = [int(k) & 0xFFFFFFFF for k in keys]
    for cr in range(r_first, r_last + 1):
        for cc in range(c_first, c_last + 1):
            rng = np.random.default_rng(base + [cr + (1 << 31), cc + (1 << 31)])
            block = draw(rng, leading + (CHUNK, CHUNK))
            r0, c0 = cr * CHUNK, cc * CHUNK
            rs, re_ = max(row0, r0), min(row0 + h, r0 + CHUNK)
            cs, ce = max(col0, c0), min(col0 + w, c0 + CHUNK)
            out[..., rs - row0:re_ - row0, cs - col0:ce - col0] = block[..., rs - r0:re_ - r0, cs - c0:ce - c0]
    return out


def smoothstep(x: np.ndarray, lo: float, hi: float) -> np.ndarray:
    """0 below ``lo``, 1 above ``hi``, a smooth cubic ramp between (float32)."""
    t = np.clip((np.asarray(x, dtype=np.float32) - np.float32(lo)) / np.float32(hi - lo), 0, 1)
    return t * t * (np.float32(3) - np.float32(2) * t)


def sigmoid(x: np.ndarray) -> np.ndarray:
    """Logistic function in float32."""
    x = np.asarray(x, dtype=np.float32)
    return np.float32(1) / (np.float32(1) + np.exp(-np.clip(x, -40, 40)))
