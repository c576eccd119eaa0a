"""The step functions of a campaign: the only entry points both engines call.

The local engine calls them through dask; the Argo engine calls them from
hera runner scripts inside the worldcover image. Arguments are plain JSON
values (strings, numbers) so that they travel as Argo parameters unchanged,
and each returns a small JSON-able dict (it becomes ``outputs.result``).
"""

from __future__ import annotations


def process_tile(tile: str, year: int, source: str, model: str, out_root: str,
                 block_size: int = 3000, blocks: str = "all", max_cloud: float | None = None,
                 campaign: str = "") -> dict:
    """Produce one tile's Map, Probability and InputQuality COGs and its STAC item (idempotent)."""
    raise NotImplementedError("wired when worldcover.tile lands")


def merge(out_root: str, campaign: str, year: int) -> dict:
    """Merge finished tiles into the mosaic (VRT + overview pyramid + STAC collection)."""
    raise NotImplementedError("wired when worldcover.mosaic lands")


def validate(out_root: str, campaign: str, year: int, reference: str = "", n: int = 0) -> dict:
    """Accuracy report of the campaign's mosaic against reference samples."""
    raise NotImplementedError("wired when worldcover.validation lands")


def collect_failures(out_root: str, campaign: str, year: int) -> dict:
    """List the campaign's tiles (from ``out_root/campaign.json``) without a valid finished product."""
    raise NotImplementedError("wired when worldcover.tile lands")
