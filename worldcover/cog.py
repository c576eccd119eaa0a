"""Cloud-optimised GeoTIFF writing with rio-cogeo, atomically.

Every product is first written to a temporary name in the destination
folder and renamed only once complete and valid, so a crash never leaves a
file that a later step could take for a finished one.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import re
import tempfile
import threading
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np
import rasterio
from odc.geo.geobox import GeoBox
from rasterio.io import MemoryFile
from rio_cogeo.cogeo import cog_translate, cog_validate
from rio_cogeo.profiles import cog_profiles

from worldcover.errors import DataError

# rio-cogeo's translate is not safe in two threads of one process: under load,
# one call's in-memory GeoTIFF intermittently opens as the other's WarpedVRT
# ("Writing through VRTSourcedRasterBand is not supported"). One at a time;
# the callers' numpy work still overlaps with it.
_TRANSLATE_LOCK = threading.Lock()


TEMP_MARK = ".part"  # temporary names: .<dest name>.<random>.part<suffix>
_TEMP_RE = re.compile(r"^\..+\.[A-Za-z0-9_]{6,}\.part(\.[A-Za-z0-9]+)?$")


def is_temp_name(name: str) -> bool:
    """True for the temporary names :func:`atomic_path` writes (never a finished file's name)."""
    return bool(_TEMP_RE.match(name))


def remove_temps(folder: str | os.PathLike, recursive: bool = False) -> int:
    """Delete leftovers of interrupted atomic writes under ``folder``; returns how many.

    Only call this where no other process is writing (e.g. under the campaign
    lock): a live write's temporary file looks the same as a dead one's.
    """
    folder = Path(folder)
    if not folder.is_dir():
        return 0
    n = 0
    for dirpath in ([d for d, _, _ in os.walk(folder)] if recursive else [str(folder)]):
        try:
            names = os.listdir(dirpath)
        except FileNotFoundError:  # inside a scratch folder removed a moment ago
            continue
        for name in filter(is_temp_name, names):
            path = os.path.join(dirpath, name)
            if os.path.isdir(path):  # an atomic_workdir scratch folder
                shutil.rmtree(path, ignore_errors=True)
            else:
                try:
                    os.unlink(path)
                except FileNotFoundError:
                    continue
            n += 1
    return n


@contextmanager
def atomic_path(dest: str | os.PathLike, suffix: str | None = None) -> Iterator[Path]:
    """Yield a temporary path beside ``dest``; rename it onto ``dest`` only on success.

    The temporary name is hidden and marked (:func:`is_temp_name`), so nothing
    that looks for finished files can take it for one, and a sweep after a
    crash (:func:`remove_temps`) can find it.
    """
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=TEMP_MARK + (suffix or ".tmp"), dir=dest.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        os.chmod(tmp_path, 0o644)  # mkstemp makes 0600; products are meant to be shared
        os.replace(tmp_path, dest)
    finally:
        tmp_path.unlink(missing_ok=True)


@contextmanager
def atomic_workdir(dest: str | os.PathLike) -> Iterator[Path]:
    """Yield a path inside a hidden, marked scratch folder beside ``dest``; rename it onto ``dest`` on success.

    For writers that make their own temporary files next to their output
    (rio-cogeo's on-disk translate does): those land in the scratch folder
    too, so a crash leaves nothing visible, and :func:`remove_temps` sweeps it.
    """
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f".{dest.name}.", suffix=TEMP_MARK + ".d", dir=dest.parent))
    try:
        out = work / dest.name
        yield out
        os.chmod(out, 0o644)
        os.replace(out, dest)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def atomic_write_text(dest: str | os.PathLike, text: str) -> Path:
    """Write UTF-8 text atomically; returns ``dest``."""
    with atomic_path(dest) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return Path(dest)


def sha256_file(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def write_cog(
    dest: str | os.PathLike,
    data: np.ndarray,
    geobox: GeoBox,
    *,
    nodata: float | int | None,
    overview_resampling: str = "nearest",
    colormap: dict | None = None,
    band_names: Sequence[str] | None = None,
    tags: dict | None = None,
    blocksize: int = 512,
) -> Path:
    """Write ``data`` ((band, y, x) or (y, x)) on ``geobox`` as a validated COG at ``dest``."""
    arr = data[np.newaxis] if data.ndim == 2 else data
    if arr.shape[1:] != geobox.shape:
        raise DataError(f"array shape {arr.shape[1:]} does not match the geobox {tuple(geobox.shape)}")
    profile = dict(
        driver="GTiff", height=arr.shape[1], width=arr.shape[2], count=arr.shape[0], dtype=arr.dtype.name,
        crs=str(geobox.crs), transform=geobox.transform, nodata=nodata,
    )
    dst_profile = cog_profiles.get("deflate")
    size = min(blocksize, max(16, 1 << int(np.log2(max(min(arr.shape[1:]), 16)))))
    dst_profile.update(blockxsize=size, blockysize=size, predictor=2 if arr.dtype.kind in "iu" else 3)
    dest = Path(dest)
    with _TRANSLATE_LOCK, MemoryFile() as mem:
        with mem.open(**profile) as src:
            src.write(arr)
            if colormap is not None:
                src.write_colormap(1, colormap)
            for i, name in enumerate(band_names or [], start=1):
                src.set_band_description(i, name)
            if tags:
                src.update_tags(**{k: str(v) for k, v in tags.items()})
        with mem.open() as src, atomic_path(dest, suffix=".tif") as tmp:
            cog_translate(src, tmp, dst_profile, nodata=nodata, overview_resampling=overview_resampling,
                          in_memory=True, quiet=True, forward_band_tags=True,
                          colormap=colormap, additional_cog_metadata=None)
            ok, errors, _ = cog_validate(tmp, quiet=True)
            if not ok:
                raise DataError(f"{dest.name} is not a valid COG: {'; '.join(errors)}")
    return dest


def read_cog(path: str | os.PathLike, band: int | None = None) -> np.ndarray:
    with rasterio.open(path) as src:
        return src.read(band) if band else src.read()
