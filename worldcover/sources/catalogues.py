"""STAC catalogue presets and item search with pystac-client.

A preset names a real STAC API and how its collections and asset keys are
spelt. Anything else is taken as a STAC API URL (e.g. the simulated archive
served on loopback), with the Planetary Computer layout unless told otherwise.

Sentinel-1 must be geocoded backscatter on a map grid: RTC gamma0 (Planetary
Computer ``sentinel-1-rtc``, preferred) or geocoded sigma0
(``sentinel-1-sigma0``, e.g. a local archive of Earth Engine's S1_GRD). A GRD
collection in radar geometry (Earth Search and CDSE ``sentinel-1-grd``) is
refused: odc-stac would place uncalibrated DN by the item's footprint.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

import pystac
from pystac_client import Client
from pystac_client.conformance import ConformanceClasses

from worldcover.bands import S2_ASSET_KEYS
from worldcover.errors import DataError, InputError

# Geocoded S1 collections a STAC API may offer, in order of preference, and the backscatter they hold.
S1_GEOCODED: dict[str, str] = {"sentinel-1-rtc": "gamma0-rtc", "sentinel-1-sigma0": "sigma0"}
# S1 collections in radar geometry (slant/ground range, not on a map grid): refused.
S1_RADAR_GEOMETRY = frozenset({"sentinel-1-grd"})
# A custom STAC API's S1 collection is chosen from what it offers (choose_s1_collection).
AUTO = "auto"


@dataclass(frozen=True)
class CataloguePreset:
    """How one STAC API spells the collections and assets we need."""

    name: str
    url: str
    s2_collection: str
    s1_collection: str | None
    dem_collection: str | None
    layout: str  # key of bands.S2_ASSET_KEYS
    s1_assets: tuple[str, str] = ("vv", "vh")
    s1_backscatter: str | None = None  # gamma0-rtc | sigma0 | grd (radar geometry, refused); None: auto
    dem_asset: str = "data"
    sign: str | None = None  # name of an href-signing function, resolved lazily
    notes: str = ""


PRESETS: dict[str, CataloguePreset] = {
    "earth-search": CataloguePreset(
        name="earth-search",
        url="https://earth-search.aws.element84.com/v1",
        s2_collection="sentinel-2-l2a",
        s1_collection="sentinel-1-grd",
        dem_collection="cop-dem-glo-30",
        layout="earth-search",
        s1_backscatter="grd",
        notes="S1 GRD is in radar geometry; use planetary-computer RTC for loading onto a grid.",
    ),
    "planetary-computer": CataloguePreset(
        name="planetary-computer",
        url="https://planetarycomputer.microsoft.com/api/stac/v1",
        s2_collection="sentinel-2-l2a",
        s1_collection="sentinel-1-rtc",
        dem_collection="cop-dem-glo-30",
        layout="planetary-computer",
        s1_backscatter="gamma0-rtc",
        sign="planetary_computer",
    ),
    "copernicus-dataspace": CataloguePreset(
        name="copernicus-dataspace",
        url="https://stac.dataspace.copernicus.eu/v1",
        s2_collection="sentinel-2-l2a",
        s1_collection="sentinel-1-grd",
        dem_collection=None,
        layout="copernicus-dataspace",
        s1_backscatter="grd",
        notes="S1 GRD is in radar geometry; use planetary-computer RTC or sentinelhub gamma0 terrain.",
    ),
}


def resolve(source: str, layout: str = "planetary-computer") -> CataloguePreset:
    """A preset by name, or a preset for any ``http(s)://`` STAC API URL."""
    if source in PRESETS:
        return PRESETS[source]
    if source.startswith(("http://", "https://")):
        if layout not in S2_ASSET_KEYS:
            raise InputError(f"unknown layout {layout!r}: expected one of {', '.join(S2_ASSET_KEYS)}")
        return CataloguePreset(
            name="custom", url=source.rstrip("/"), s2_collection="sentinel-2-l2a",
            s1_collection=AUTO, dem_collection="cop-dem-glo-30", layout=layout,
        )
    raise InputError(
        f"unknown source {source!r}: expected a preset ({', '.join(PRESETS)}) or a STAC API URL"
    )


def check_s1_geocoded(preset: CataloguePreset) -> CataloguePreset:
    """Refuse a preset whose Sentinel-1 is GRD in radar geometry, naming what to use instead."""
    if preset.s1_backscatter == "grd" or preset.s1_collection in S1_RADAR_GEOMETRY:
        raise InputError(
            f"source {preset.name!r}: its Sentinel-1 collection {preset.s1_collection!r} is GRD in radar geometry "
            "(uncalibrated, not on a map grid); expected geocoded backscatter: use --source planetary-computer "
            "(sentinel-1-rtc, RTC gamma0) or --source sentinelhub (gamma0 terrain)"
        )
    return preset


def choose_s1_collection(client: Client) -> tuple[str | None, str | None]:
    """(collection, backscatter kind) of the geocoded S1 a STAC API offers, preferring RTC; (None, None) if none.

    A ``sentinel-1-grd`` alone is not used (radar geometry): S1 is then missing.
    """
    try:
        offered = {c.id for c in client.get_collections()}
    except Exception as exc:
        raise DataError(f"cannot list the collections of STAC API {client.self_href}: "
                        f"{type(exc).__name__}: {exc}") from None
    for collection, kind in S1_GEOCODED.items():
        if collection in offered:
            return collection, kind
    return None, None


def signer(preset: CataloguePreset) -> Callable[[pystac.Item], pystac.Item] | None:
    """Href signing for catalogues whose assets need it (Planetary Computer SAS tokens)."""
    if preset.sign == "planetary_computer":
        import planetary_computer

        return planetary_computer.sign
    return None


def open_client(url: str) -> Client:
    try:
        return Client.open(url)
    except Exception as exc:  # pystac-client raises several types for an unreachable API
        raise DataError(f"cannot open STAC API {url}: {type(exc).__name__}: {exc}") from None


def search_items(
    client: Client,
    collections: Sequence[str],
    bbox: Iterable[float],
    datetime: str,
    max_cloud: float | None = None,
    limit: int = 100,
) -> list[pystac.Item]:
    """Search and return all matching items, filtering cloud cover.

    Cloud cover goes to the server (query extension) when it says it
    supports it, and is filtered here otherwise, as real APIs differ.
    """
    kwargs: dict = dict(collections=list(collections), bbox=list(bbox), datetime=datetime, limit=limit)
    server_side = max_cloud is not None and client.conforms_to(ConformanceClasses.QUERY)
    if server_side:
        kwargs["query"] = {"eo:cloud_cover": {"lte": max_cloud}}
    try:
        items = list(client.search(**kwargs).items())
    except Exception as exc:
        raise DataError(f"STAC search on {client.self_href} failed: {type(exc).__name__}: {exc}") from None
    if max_cloud is not None and not server_side:
        items = [i for i in items if i.properties.get("eo:cloud_cover", 0.0) <= max_cloud]
    return sorted(items, key=lambda i: (i.datetime or i.common_metadata.start_datetime, i.id))


__all__ = ["AUTO", "CataloguePreset", "PRESETS", "S1_GEOCODED", "S1_RADAR_GEOMETRY", "check_s1_geocoded",
           "choose_s1_collection", "resolve", "signer", "open_client", "search_items"]
