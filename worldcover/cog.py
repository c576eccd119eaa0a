"""Cloud-optimised GeoTIFF writing with rio-cogeo, atomically.

Every product is first written to a temporary name in the destination
folder and renamed only once complete and valid, so a crash never leaves a
file that a later step could take for a finished one (the atomic writes,
checksums and temp sweeps themselves are :mod:`worldcover.storage`'s, for
local disk and object storage alike).
"""

from __future__ import annotations

import os
import threading
from collections.abc import Sequence
from typing import Literal

import numpy as np
from odc.geo.geobox import GeoBox
from rasterio.io import MemoryFile
from rio_cogeo.cogeo import cog_translate, cog_validate
from rio_cogeo.profiles import cog_profiles

from worldcover.errors import DataError
from worldcover.storage import Location, atomic_path, path

# rio-cogeo's translate is not safe in two threads of one process: under load,
# one call's in-memory GeoTIFF intermittently opens as the other's WarpedVRT
# ("Writing through VRTSourcedRasterBand is not supported"). One at a time;
# the callers' numpy work still overlaps with it.
_TRANSLATE_LOCK = threading.Lock()



#: the overview resamplings rio-cogeo accepts
OverviewResampling = Literal[
    "nearest", "bilinear", "cubic", "cubic_spline", "lanczos", "average", "mode", "gauss", "rms"
]


def write_cog(
    dest: str | os.PathLike | Location,
    data: np.ndarray,
    geobox: GeoBox,
    *,
    nodata: float | int | None,
    overview_resampling: OverviewResampling = "nearest",
    colormap: dict | None = None,
    band_names: Sequence[str] | None = None,
    tags: dict | None = None,
    blocksize: int = 512,
) -> Location:
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
    target = path(dest)
    with _TRANSLATE_LOCK, MemoryFile() as mem:
        with mem.open(**profile) as src:
            src.write(arr)
            if colormap is not None:
                src.write_colormap(1, colormap)
            for i, name in enumerate(band_names or [], start=1):
                src.set_band_description(i, name)
            if tags:
                src.update_tags(**{k: str(v) for k, v in tags.items()})
        with mem.open() as src, atomic_path(target, suffix=".tif") as tmp:
            cog_translate(src, tmp, dst_profile, nodata=nodata, overview_resampling=overview_resampling,
                          in_memory=True, quiet=True, forward_band_tags=True,
                          colormap=colormap, additional_cog_metadata=None)
            ok, errors, _ = cog_validate(tmp, quiet=True)
            if not ok:
                raise DataError(f"{target.name} is not a valid COG: {'; '.join(errors)}")
    return target
