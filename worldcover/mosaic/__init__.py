"""The global mosaic of a campaign year: VRT, categorical overview COGs, areas, quicklook, STAC.

Entry point: :func:`build_mosaic` (``worldcover mosaic build``). Modules:
:mod:`~worldcover.mosaic.vrt` (hand-written GDAL VRT), :mod:`~worldcover.mosaic.overviews`
(categorical mode, level COGs), :mod:`~worldcover.mosaic.pieces` (per-tile cached pieces),
:mod:`~worldcover.mosaic.areas` (geodesic class areas), :mod:`~worldcover.mosaic.quicklook`,
:mod:`~worldcover.mosaic.stac` (collection, offline validation), :mod:`~worldcover.mosaic.build`.
"""

from worldcover.mosaic.build import MosaicPaths, build_mosaic
from worldcover.mosaic.overviews import LEVELS, Level, categorical_mode
from worldcover.mosaic.stac import OfflineValidator, validate_offline

__all__ = ["LEVELS", "Level", "MosaicPaths", "OfflineValidator", "build_mosaic", "categorical_mode", "validate_offline"]
