"""Sentinel Hub Process API as a provider of block inputs (the `sentinelhub` package).

One multi-temporal request per block and sensor: the evalscript returns every
acquisition (mosaicking ORBIT) as bands of one FLOAT32 GeoTIFF plus the
acquisition dates as user data. ``harmonizeValues`` makes Sentinel Hub remove
the baseline-04.00 offset server-side, so values arrive as reflectance.
Credentials come from the environment (``SH_CLIENT_ID``, ``SH_CLIENT_SECRET``)
and are never logged or put in an error message.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np
import pandas as pd
import xarray as xr
from odc.geo.xr import xr_coords

from worldcover.bands import S1_POLARISATIONS, S2_BANDS, SCL, to_yx
from worldcover.errors import DataError, InputError
from worldcover.grid import Block
from worldcover.sources.stac import BlockInputs

S2_ORDER = [*S2_BANDS, SCL]

S2_EVALSCRIPT = """//VERSION=3
// Every acquisition of the period: 12 L2A bands (reflectance, harmonised) + SCL.
function setup() {
  return {
    input: [{bands: %(bands)s, units: "REFLECTANCE"}, {bands: ["SCL"], units: "DN"}],
    output: {id: "default", bands: 1, sampleType: "FLOAT32"},
    mosaicking: "ORBIT"
  };
}
function updateOutput(outputs, collection) {
  outputs.default.bands = collection.scenes.length * %(nbands)d;
}
function updateOutputMetadata(scenes, inputMetadata, outputMetadata) {
  outputMetadata.userData = {dates: scenes.map(s => s.date)};
}
function evaluatePixel(samples) {
  var out = [];
  for (var i = 0; i < samples.length; i++) {
    var s = samples[i];
    %(push)s
  }
  return out;
}
"""

S1_EVALSCRIPT = """//VERSION=3
// Every S1 IW acquisition: gamma0 (terrain-flattened) VV and VH in linear power.
function setup() {
  return {
    input: [{bands: ["VV", "VH", "dataMask"]}],
    output: {id: "default", bands: 1, sampleType: "FLOAT32"},
    mosaicking: "ORBIT"
  };
}
function updateOutput(outputs, collection) { outputs.default.bands = collection.scenes.length * 2; }
function updateOutputMetadata(scenes, inputMetadata, outputMetadata) {
  outputMetadata.userData = {dates: scenes.map(s => s.date)};
}
function evaluatePixel(samples) {
  var out = [];
  for (var i = 0; i < samples.length; i++) {
    var s = samples[i];
    out.push(s.dataMask ? s.VV : NaN, s.dataMask ? s.VH : NaN);
  }
  return out;
}
"""


def s2_evalscript() -> str:
    # Reflectance bands arrive as FLOAT reflectance, harmonised; SCL stays a class number.
    push = "out.push(" + ", ".join(f"s.{b}" for b in S2_BANDS) + ", s.SCL);"
    import json

    return S2_EVALSCRIPT % {"bands": json.dumps(list(S2_BANDS)), "nbands": len(S2_ORDER), "push": push}


@dataclass(frozen=True)
class Credentials:
    client_id: str
    client_secret: str

    def __repr__(self) -> str:  # never show the secret
        return f"Credentials(client_id={self.client_id[:4]}…, client_secret=***)"

    @classmethod
    def from_env(cls) -> Credentials:
        cid, secret = os.environ.get("SH_CLIENT_ID"), os.environ.get("SH_CLIENT_SECRET")
        if not cid or not secret:
            raise InputError("Sentinel Hub needs SH_CLIENT_ID and SH_CLIENT_SECRET in the environment")
        return cls(cid, secret)


def _config(creds: Credentials | None):
    from sentinelhub import SHConfig

    config = SHConfig()
    if creds is not None:
        config.sh_client_id = creds.client_id
        config.sh_client_secret = creds.client_secret
    return config


def build_requests(block: Block, year: int, creds: Credentials | None = None, max_cloud: float | None = None):
    """The S2 and S1 SentinelHubRequests for one block-year (nothing is sent)."""
    from sentinelhub import CRS, BBox, DataCollection, MimeType, SentinelHubRequest

    bbox = BBox(block.bbox, crs=CRS.WGS84)
    interval = (f"{year}-01-01T00:00:00Z", f"{year}-12-31T23:59:59Z")
    height, width = block.shape
    config = _config(creds)
    responses = [SentinelHubRequest.output_response("default", MimeType.TIFF),
                 SentinelHubRequest.output_response("userdata", MimeType.JSON)]
    s2 = SentinelHubRequest(
        evalscript=s2_evalscript(),
        input_data=[SentinelHubRequest.input_data(
            DataCollection.SENTINEL2_L2A, time_interval=interval,
            maxcc=None if max_cloud is None else max_cloud / 100.0,
            other_args={"processing": {"harmonizeValues": True, "upsampling": "BILINEAR"}},
        )],
        responses=responses, bbox=bbox, size=(width, height), config=config,
    )
    s1 = SentinelHubRequest(
        evalscript=S1_EVALSCRIPT,
        input_data=[SentinelHubRequest.input_data(
            DataCollection.SENTINEL1_IW, time_interval=interval,
            other_args={"processing": {"backCoeff": "GAMMA0_TERRAIN", "orthorectify": True,
                                       "demInstance": "COPERNICUS_30", "speckleFilter": {"type": "NONE"}}},
        )],
        responses=responses, bbox=bbox, size=(width, height), config=config,
    )
    return s2, s1


def _to_dataset(data: np.ndarray, dates: list[str], names: list[str], block: Block) -> xr.Dataset:
    """(y, x, time*bands) -> Dataset of (time, y, x) variables on the block grid."""
    h, w = block.shape
    n = len(dates)
    if data.shape != (h, w, n * len(names)):
        raise DataError(f"Sentinel Hub returned shape {data.shape}, expected {(h, w, n * len(names))}")
    cube = data.reshape(h, w, n, len(names)).transpose(3, 2, 0, 1)
    coords = dict(xr_coords(block.geobox))
    time = pd.to_datetime(dates).tz_localize(None) if n else pd.DatetimeIndex([])
    ds = xr.Dataset({name: (("time", "latitude", "longitude"), cube[i]) for i, name in enumerate(names)},
                    coords={"time": time, **coords})
    return to_yx(ds)


class SentinelHubSource:
    """Block inputs from the Sentinel Hub Process API (needs credentials and the internet)."""

    kind = "sentinelhub"

    def __init__(self, max_cloud: float | None = None, creds: Credentials | None = None) -> None:
        self.max_cloud = max_cloud
        self.creds = creds

    def load_block(self, block: Block, year: int) -> BlockInputs:
        creds = self.creds or Credentials.from_env()
        s2_req, s1_req = build_requests(block, year, creds, self.max_cloud)
        try:
            s2_resp = s2_req.get_data()[0]
            s1_resp = s1_req.get_data()[0]
        except Exception as exc:  # the package raises several types; never echo credentials
            raise DataError(f"Sentinel Hub request for block {block.id} failed: {type(exc).__name__}") from None
        s2 = _to_dataset(np.asarray(s2_resp["default.tif"]), s2_resp["userdata.json"]["dates"], S2_ORDER, block)
        s2[SCL] = s2[SCL].fillna(0).astype("uint8")
        for b in S2_BANDS:
            s2[b] = s2[b].where(s2[b] > 0).astype("float32")
        s1 = _to_dataset(np.asarray(s1_resp["default.tif"]), s1_resp["userdata.json"]["dates"],
                         list(S1_POLARISATIONS), block)
        return BlockInputs(s2=s2, s1=s1, dem=None, items={"s2": [], "s1": [], "dem": []},
                           s1_info={"collection": "SENTINEL1_IW", "backscatter": "gamma0-terrain"})
