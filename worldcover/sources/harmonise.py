"""Sentinel-2 DN -> surface reflectance, decided per item (never by date alone).

From processing baseline 04.00 (25 Jan 2022) L2A digital numbers carry a
+1000 offset: reflectance = (DN - 1000) / 10000. Earlier: DN / 10000. Some
catalogues already removed the offset (Earth Search's
``earthsearch:boa_offset_applied``) and some carry offset metadata that
contradicts the baseline, so the baseline decides and disagreements are
reported, not silently trusted.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

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


def item_baseline(item: pystac.Item | dict) -> str | None:
    """The item's processing baseline from ``s2:processing_baseline`` or its product URI."""
    props = item.properties if isinstance(item, pystac.Item) else item.get("properties", {})
    value = props.get("s2:processing_baseline")
    if value:
        parse_baseline(value)  # validates the form
        return str(value)
    for key in ("s2:product_uri", "s2:granule_id", "s2:datatake_id"):
        m = _URI_BASELINE.search(str(props.get(key, "")) + "_")
        if m:
            return f"{m.group(1)}.{m.group(2)}"
    return None


def _declared_offset(item: pystac.Item | dict, asset_key: str | None) -> float | None:
    assets = item.assets if isinstance(item, pystac.Item) else item.get("assets", {})
    keys = [asset_key] if asset_key else list(assets)
    for key in keys:
        asset = assets.get(key)
        if asset is None:
            continue
        fields = asset.extra_fields if isinstance(asset, pystac.Asset) else asset
        for band in fields.get("raster:bands", []) or []:
            if "offset" in band:
                return float(band["offset"])
    return None


def harmonisation(item: pystac.Item | dict, asset_key: str | None = None) -> Harmonisation:
    """Decide the DN offset of one item."""
    item_id = item.id if isinstance(item, pystac.Item) else item.get("id", "?")
    props = item.properties if isinstance(item, pystac.Item) else item.get("properties", {})
    baseline = item_baseline(item)
    declared = _declared_offset(item, asset_key)
    if props.get("earthsearch:boa_offset_applied") is True:
        # DN were already shifted back by the catalogue: no offset left to remove.
        return Harmonisation(item_id, baseline, 0, "earthsearch:boa_offset_applied",
                             declared is not None and declared != 0.0)
    if baseline is not None:
        offset = S2_BOA_OFFSET_DN if baseline_has_offset(baseline) else 0
        disagrees = declared is not None and round(declared * S2_QUANTIFICATION) != offset
        return Harmonisation(item_id, baseline, offset, "s2:processing_baseline", disagrees)
    if declared is not None:
        return Harmonisation(item_id, None, int(round(declared * S2_QUANTIFICATION)), "raster:bands")
    raise DataError(
        f"item {item_id!r} has no s2:processing_baseline, product URI or raster:bands offset: "
        "cannot tell whether its DN carry the baseline-04.00 offset"
    )
