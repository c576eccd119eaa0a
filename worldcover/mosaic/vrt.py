"""A GDAL VRT mosaic written by hand as XML: one raster made of many tile COGs.

Why a VRT (and not MosaicJSON): a VRT is GDAL's own virtual-mosaic format, so
QGIS, ``gdalinfo``, rasterio and every GDAL-based tool open it directly as one
10 m raster with its colour table and nodata value; sources are plain relative
paths, so the mosaic moves with the campaign folder (or a bucket prefix through
``/vsis3/``). MosaicJSON only lists which COGs cover which web-mercator
quadkeys: it needs a dynamic tiler (titiler, rio-tiler) to become pixels, gives
no single raster to GIS tools and carries no colour table or nodata. So we
write the VRT; a MosaicJSON can be derived later from the same tile list if a
web tiler is ever deployed.

We write the XML ourselves because ``gdalbuildvrt`` (and the osgeo bindings)
are not available: rasterio's wheel ships GDAL the library, not its utilities.
The sources of a WorldCover mosaic never overlap and share one pixel grid, so
each is a ``SimpleSource`` with integer ``SrcRect``/``DstRect`` (nearest,
no resampling): reading the VRT gives exactly the tile pixels. The coarse
overview COGs are attached as ``<Overview>`` elements of the band, so a
zoomed-out read (QGIS at global scale, rasterio with ``out_shape``) reads the
100 m / 1 km / 10 km COGs instead of thousands of tiles.
"""

from __future__ import annotations

import os
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from affine import Affine
from rasterio.crs import CRS

from worldcover import storage
from worldcover.legend import NODATA, colormap
from worldcover.storage import atomic_write_text


@dataclass(frozen=True)
class VrtSource:
    """One source raster placed in the VRT: where its pixels go, and its header facts.

    ``dst_offset`` is (col, row) of the source's top-left pixel in the VRT grid;
    ``size`` is (width, height) of the source; ``block`` its (x, y) block size, so
    GDAL need not open every source just to open the VRT.
    """

    path: storage.Location
    dst_offset: tuple[int, int]
    size: tuple[int, int]
    block: tuple[int, int] = (512, 512)


def _geotransform_text(transform: Affine) -> str:
    """GDAL's own formatting (%.16e): every double round-trips exactly."""
    gt = transform.to_gdal()
    return ", ".join(f"{v:.16e}" for v in gt)


def _relative(path, start) -> str:
    """Path of ``path`` relative to the VRT's folder, with forward slashes."""
    return storage.relpath(path, start)


def vrt_xml(
    dest: storage.Location,
    *,
    width: int,
    height: int,
    transform: Affine,
    sources: Sequence[VrtSource],
    overviews: Sequence[Path] = (),
    crs: str = "EPSG:4326",
    description: str = "",
) -> str:
    """The VRT document for a single-band uint8 class map (codes, colour table, nodata 0).

    Paths (sources and overviews) are written relative to ``dest``'s folder.
    """
    folder = storage.path(dest).parent
    root = ET.Element("VRTDataset", rasterXSize=str(width), rasterYSize=str(height))
    srs = ET.SubElement(root, "SRS", dataAxisToSRSAxisMapping="2,1")
    srs.text = CRS.from_user_input(crs).to_wkt()
    ET.SubElement(root, "GeoTransform").text = _geotransform_text(transform)
    band = ET.SubElement(root, "VRTRasterBand", dataType="Byte", band="1")
    if description:
        ET.SubElement(band, "Description").text = description
    ET.SubElement(band, "NoDataValue").text = str(NODATA)
    ET.SubElement(band, "ColorInterp").text = "Palette"
    table = ET.SubElement(band, "ColorTable")
    for _, (r, g, b, a) in sorted(colormap().items()):
        ET.SubElement(table, "Entry", c1=str(r), c2=str(g), c3=str(b), c4=str(a))
    for ovr in overviews:
        el = ET.SubElement(band, "Overview")
        ET.SubElement(el, "SourceFilename", relativeToVRT="1").text = _relative(ovr, folder)
        ET.SubElement(el, "SourceBand").text = "1"
    for src in sources:
        w, h = src.size
        x, y = src.dst_offset
        el = ET.SubElement(band, "SimpleSource")
        ET.SubElement(el, "SourceFilename", relativeToVRT="1").text = _relative(src.path, folder)
        ET.SubElement(el, "SourceBand").text = "1"
        ET.SubElement(
            el, "SourceProperties", RasterXSize=str(w), RasterYSize=str(h), DataType="Byte",
            BlockXSize=str(src.block[0]), BlockYSize=str(src.block[1]),
        )
        ET.SubElement(el, "SrcRect", xOff="0", yOff="0", xSize=str(w), ySize=str(h))
        ET.SubElement(el, "DstRect", xOff=str(x), yOff=str(y), xSize=str(w), ySize=str(h))
    ET.indent(root, space="  ")
    return ET.tostring(root, encoding="unicode") + "\n"


def write_vrt(dest: str | os.PathLike | storage.Location, **kwargs) -> storage.Location:
    """Write :func:`vrt_xml` to ``dest`` atomically (temp file + rename, or one upload)."""
    dest = storage.path(dest)
    atomic_write_text(dest, vrt_xml(dest, **kwargs))
    return dest
