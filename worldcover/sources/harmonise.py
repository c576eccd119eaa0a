"""Sentinel-2 DN -> surface reflectance, decided per item (never by date alone).

From processing baseline 04.00 (25 Jan 2022) L2A digital numbers carry a
+1000 offset: reflectance = (DN - 1000) / 10000. Earlier: DN / 10000. Some
catalogues already removed the offset (Earth Search's
``earthsearch:boa_offset_applied``) and some carry offset metadata that
contradicts the baseline, so the baseline decides and disagreements are
reported, not silently trusted.
"""

from __future__ import annotations

import math
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
            raise DataError(f"item {item_id!r}: asset {key!r} has raster:bands {bands!r:.80}, expected a list of objects")
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
