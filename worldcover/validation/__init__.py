"""Accuracy validation: sampling design, design-based estimators and reports.

Olofsson et al. (2014) stratified estimators for samples stratified by map class,
Stehman (2014) estimators for strata that differ from the map classes (and for
domains such as continents, and 100 m PSUs labelled at 10 m: stratified cluster
sampling), geodesic mapped areas, and HTML/JSON/CSV reports. The population is the
map's land: ocean and nodata are left out (:mod:`worldcover.landmask`).
"""

from worldcover.area import AUTHALIC_RADIUS_M, cell_area_m2, class_areas, row_areas_m2
from worldcover.landmask import parse_land_mask
from worldcover.validation.design import SampleDesign, allocate, design_sample, sample_size
from worldcover.validation.estimators import (
    AccuracyResult,
    ClassEstimates,
    Estimate,
    counts_matrix,
    oa_difference,
    olofsson,
    stehman,
    wilson,
)
from worldcover.validation.tables import (
    estimate_from_tables,
    read_counts,
    read_labelled,
    read_mapped_area,
    write_samples,
)


def build_report(*args, **kwargs):
    """See :func:`worldcover.validation.report.build_report` (imported lazily: it pulls in dask and odc)."""
    from worldcover.validation.report import build_report as _build  # lazy: report pulls dask, odc (stages)

    return _build(*args, **kwargs)


def assess(*args, **kwargs):
    """See :func:`worldcover.validation.report.assess`: the estimates of a report, nothing written."""
    from worldcover.validation.report import assess as _assess  # lazy: report pulls dask, odc (stages)

    return _assess(*args, **kwargs)


def write_report(*args, **kwargs):
    """See :func:`worldcover.validation.report.write_report`: an assessment to HTML, JSON and CSV."""
    from worldcover.validation.report import write_report as _write  # lazy: report pulls dask, odc (stages)

    return _write(*args, **kwargs)


__all__ = [
    "AUTHALIC_RADIUS_M", "AccuracyResult", "ClassEstimates", "Estimate", "SampleDesign", "allocate", "assess",
    "build_report", "cell_area_m2", "class_areas", "counts_matrix", "design_sample", "estimate_from_tables",
    "oa_difference", "olofsson", "parse_land_mask", "read_counts", "read_labelled", "read_mapped_area",
    "row_areas_m2", "sample_size", "stehman", "wilson", "write_report", "write_samples",
]
