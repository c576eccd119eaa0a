"""Sentinel-2 DN -> surface reflectance, decided per item (never by date alone).

From processing baseline 04.00 (25 Jan 2022) L2A digital numbers carry a
+1000 offset: reflectance = (DN - 1000) / 10000. Earlier: DN / 10000. Some
catalogues already removed the offset (Earth Search's
``earthsearch:boa_offset_applied``) and some carry offset metadata that
contradicts the baseline, so the baseline decides and disagreements are
reported, not silently trusted.

The metadata can also be wrong about the data: Earth Search served items whose
offset had been removed while ``earthsearch:boa_offset_applied`` said false
(element84/earth-search issues 66 and 71). :func:`offset_already_removed` checks
a small sample of each offset item's DN: under the offset a valid DN below 1000
is a negative reflectance, rare; without it, dark land is mostly below 1000.
"""

from __future__ import annotations

import logging
import math
import re
from dataclasses import dataclass, replace

import numpy as np
import pystac

from worldcover.bands import S2_BOA_OFFSET_DN, S2_QUANTIFICATION, baseline_has_offset, parse_baseline
from worldcover.errors import DataError

_URI_BASELINE = re.compile(r"_N(\d{2})(\d{2})_")


@dataclass(frozen=True)
class Harmonisation:
    """How to turn one item's DN into reflectance: (DN + offset_dn) / quantification."""

    item_id: str
    baseline: str | None
    offset_dn: int
    source: str  # what decided it: baseline, product_uri, raster:bands, offset-applied flag
    metadata_disagrees: bool = False
    dn_below_offset: float | None = None  # fraction of sampled valid DN < 1000, when sampled


log = logging.getLogger(__name__)

# Share of sampled valid DN below 1000 above which an item declaring the offset is taken to
# have had it removed already. Real 04.00+ data go below 1000 only in deep shadow or over
# dark water in the NIR/SWIR (a few percent at most in the blue band we sample); offset-free
# data of vegetation, water or most soils are mostly below it.
OFFSET_REMOVED_FRACTION = 0.05
# Fewer valid sampled pixels than this (a cloudless edge sliver, an empty swath) decide nothing.
OFFSET_SAMPLE_MIN = 50


def _fields(item: pystac.Item | dict) -> tuple[str, dict, dict]:
    """(id, properties, assets) of an item, checked to be the right shapes."""
    if isinstance(item, pystac.Item):
        return item.id, item.properties, item.assets
    if not isinstance(item, dict):
        raise DataError(f"STAC item {item!r:.60}: expected a JSON object")
    item_id = item.get("id", "?")
    props, assets = item.get("properties"), item.get("assets", {})
    if not isinstance(props, dict) or not isinstance(assets, dict):
        raise DataError(f"item {item_id!r}: 'properties' and 'assets' must be JSON objects")
    return item_id, props, assets


def item_baseline(item: pystac.Item | dict) -> str | None:
    """The item's processing baseline from ``s2:processing_baseline`` or its product URI."""
    item_id, props, _ = _fields(item)
    value = props.get("s2:processing_baseline")
    if value not in (None, ""):
        if not isinstance(value, str):
            raise DataError(f"item {item_id!r}: s2:processing_baseline {value!r} is not a string like '04.00'")
        try:
            parse_baseline(value)  # validates the form
        except ValueError as exc:
            raise DataError(f"item {item_id!r}: {exc}") from None
        return value.strip()
    for key in ("s2:product_uri", "s2:granule_id", "s2:datatake_id"):
        m = _URI_BASELINE.search(str(props.get(key, "")) + "_")
        if m:
            return f"{m.group(1)}.{m.group(2)}"
    return None


# The offsets a Sentinel-2 L2A catalogue can declare, as reflectance: none, or the -0.1 of baseline 04.00.
_KNOWN_OFFSETS = (0.0, S2_BOA_OFFSET_DN / S2_QUANTIFICATION)


def _declared_offset(item: pystac.Item | dict, asset_key: str | None) -> float | None:
    item_id, _, assets = _fields(item)
    keys = [asset_key] if asset_key else list(assets)
    for key in keys:
        asset = assets.get(key)
        if asset is None:
            continue
        fields = asset.extra_fields if isinstance(asset, pystac.Asset) else asset
        bands = fields.get("raster:bands", []) if isinstance(fields, dict) else None
        if bands is None or bands == []:
            continue
        if not isinstance(bands, list) or not all(isinstance(b, dict) for b in bands):
            raise DataError(f"item {item_id!r}: asset {key!r} has raster:bands {bands!r:.80}, "
                            "expected a list of objects")
        for band in bands:
            if "offset" in band:
                value = band["offset"]
                if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
                    raise DataError(f"item {item_id!r}: asset {key!r} declares raster:bands offset {value!r:.40}, "
                                    "expected a number")
                return float(value)
    return None


def _known(offset: float) -> bool:
    return any(abs(offset - k) < 1e-9 for k in _KNOWN_OFFSETS)


def harmonisation(item: pystac.Item | dict, asset_key: str | None = None) -> Harmonisation:
    """Decide the DN offset of one item."""
    item_id, props, _ = _fields(item)
    baseline = item_baseline(item)
    declared = _declared_offset(item, asset_key)
    if props.get("earthsearch:boa_offset_applied") is True:
        # DN were already shifted back by the catalogue: no offset left to remove.
        return Harmonisation(item_id, baseline, 0, "earthsearch:boa_offset_applied",
                             declared is not None and declared != 0.0)
    if baseline is not None:
        offset = S2_BOA_OFFSET_DN if baseline_has_offset(baseline) else 0
        disagrees = declared is not None and (not _known(declared) or round(declared * S2_QUANTIFICATION) != offset)
        return Harmonisation(item_id, baseline, offset, "s2:processing_baseline", disagrees)
    if declared is not None:
        if not _known(declared):  # nothing else to decide by: an offset no baseline ever had is not trusted
            raise DataError(f"item {item_id!r}: raster:bands offset {declared:g} is not a Sentinel-2 L2A offset "
                            f"(expected 0 or {_KNOWN_OFFSETS[1]}) and the item has no processing baseline")
        return Harmonisation(item_id, None, int(round(declared * S2_QUANTIFICATION)), "raster:bands")
    raise DataError(
        f"item {item_id!r} has no s2:processing_baseline, product URI or raster:bands offset: "
        "cannot tell whether its DN carry the baseline-04.00 offset"
    )


def fraction_below_offset(dn: np.ndarray, clear: np.ndarray | None = None) -> np.ndarray:
    """Per item (axis 0) of a DN sample: the fraction of valid DN below the 1000 offset.

    Valid: non-zero and, when ``clear`` (same shape, bool) is given, clear of
    cloud (a cloud is bright with or without the offset and would hide it).
    NaN where fewer than ``OFFSET_SAMPLE_MIN`` pixels are valid. Vectorised
    over items: ``dn`` is (item, y, x) uint16.
    """
    flat = np.asarray(dn).reshape(len(dn), -1)
    ok = flat > 0
    if clear is not None:
        ok &= np.asarray(clear).reshape(flat.shape)
    valid = ok.sum(axis=1)
    low = (ok & (flat < -S2_BOA_OFFSET_DN)).sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        frac = low / valid
    return np.where(valid >= OFFSET_SAMPLE_MIN, frac, np.nan)


def offset_already_removed(decision: Harmonisation, fraction: float) -> Harmonisation:
    """``decision`` corrected to offset 0 when its DN sample shows the offset already removed.

    Only items that would have 1000 subtracted are candidates; the correction is
    logged as a warning naming the item and recorded in the decision (source
    ``dn-sample``, ``metadata_disagrees``, the measured fraction).
    """
    if decision.offset_dn != S2_BOA_OFFSET_DN or not np.isfinite(fraction):
        return decision
    if fraction <= OFFSET_REMOVED_FRACTION:
        return replace(decision, dn_below_offset=round(float(fraction), 4))
    log.warning("Sentinel-2 item %r declares the baseline-04.00 offset (%s) but %.0f %% of its sampled valid DN "
                "are below 1000: the offset was already removed; reading its DN without it",
                decision.item_id, decision.source, 100 * fraction)
    return replace(decision, offset_dn=0, source=f"dn-sample (declared by {decision.source})",
                   metadata_disagrees=True, dn_below_offset=round(float(fraction), 4))
