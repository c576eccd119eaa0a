"""Where the native-grid and product-grid Maps differ, by input group (issue 15's "same pixels" point).

    python -m benchmarks.agreement_sources [--block-size 1024] [--json out.json]

On ``make bench``'s block it computes two sets of features on the product grid: the product-grid chain's
(every input warped first, as before issue 15), and those of the native chain's S2 composites, S1 composites
(linear power) and DEM resampled bilinear to the product grid (``Regrid``), and classifies both with the
default model. Swapping one feature group (S2, S1, terrain, location) between the two says how much of the
disagreement each group's processing order makes: the product grid mixes neighbouring pixels before
masking, compositing and the pixel-sized filters (cloud dilation, the S1 speckle window), the native grid
after them. The native chain itself mixes later still (the model's scores), so its agreement is lower than
the composites' line here.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from benchmarks.block_chain import YEAR, _load, archive_for, bench_block

GROUPS = ("s2", "s1", "terrain", "location")


def feature_group(name: str) -> str:
    """The input group a feature comes from."""
    if name.startswith("s1_"):
        return "s1"
    if name in ("dem", "slope"):
        return "terrain"
    if name.startswith(("lat_", "lon_")):  # sin/cos of latitude (and longitude, where a config keeps it)
        return "location"
    return "s2"


def _features(block_size: int, model_dir: Path, dilation_px: int, speckle_window: int):
    """(the model, the product-grid chain's features, the features of the native composites resampled to the
    product grid)."""
    import dask
    import xarray as xr
    from odc.geo.xr import xr_coords

    from worldcover.features import compute_features
    from worldcover.model import Model
    from worldcover.preprocess.s1 import preprocess_s1, to_db
    from worldcover.preprocess.s2 import S2MaskConfig, preprocess_s2
    from worldcover.regrid import Regrid
    from worldcover.sources.local_api import LocalStacApi
    from worldcover.sources.stac import StacSource
    from worldcover.tile.run import feature_config_of, source_needs

    model = Model.load(model_dir)
    config = feature_config_of(model)
    block = bench_block(block_size)
    archive, _ = archive_for(block_size)
    with LocalStacApi(archive) as api, dask.config.set(scheduler="threads"):
        src = StacSource(api.url, chunk=block_size, **source_needs(model))
        nat = _load(src, block, native=True)
        mask = S2MaskConfig(dilation_radius=dilation_px)
        comp = preprocess_s2(nat.s2, YEAR, mask, coarse=nat.s2_20m).composites.compute()
        s1db = preprocess_s1(nat.s1, YEAR, window=speckle_window).db.compute()
        dem = nat.dem.compute()
        prod = _load(src, block, native=False)
        product = compute_features(preprocess_s2(prod.s2, YEAR, mask, coarse=prod.s2_20m).composites,
                                   preprocess_s1(prod.s1, YEAR, window=speckle_window).db, prod.dem, config).compute()
    rg = Regrid(nat.geobox, block.geobox)
    coords, dims = xr_coords(block.geobox, crs_coord_name="spatial_ref"), block.geobox.dimensions

    def onto(ds: xr.Dataset) -> xr.Dataset:  # (time, y, x) variables, resampled bilinear
        return xr.Dataset({
            v: xr.DataArray(rg.bilinear(da.transpose("time", ...).values), dims=("time", *dims),
                            coords={"time": da.time.values, **coords})
            for v, da in ds.data_vars.items()
        })

    dem_p = xr.DataArray(rg.bilinear(dem.squeeze().values), dims=dims, coords=coords, name="dem")
    # S1 composites are means of linear power: resampled as power, then in dB, as the product chain averages
    power = xr.Dataset({p: (10 ** (s1db[f"{p}_db"] / 10)).astype(np.float32) for p in ("vv", "vh")})
    resampled = compute_features(onto(comp), to_db(onto(power)), dem_p, config).compute()
    return model, product, resampled


def agreement_by_group(block_size: int = 1024, model_dir: Path | None = None, dilation_px: int | None = None,
                       speckle_window: int | None = None) -> dict:
    """Share of product-grid Map pixels reproduced by each mix of the two feature sets; the cloud dilation
    and the S1 speckle window (in pixels of each grid) default to the chain's."""
    from worldcover.chain import ChainParams
    from worldcover.model.location import DEFAULT_MODEL_DIR

    dilation_px = ChainParams().cloud_dilation_px if dilation_px is None else dilation_px
    speckle_window = ChainParams().s1_speckle_window if speckle_window is None else speckle_window
    model, product, resampled = _features(block_size, model_dir or DEFAULT_MODEL_DIR, dilation_px, speckle_window)
    reference = np.asarray(model.predict_block(product)[0])
    groups = np.array([feature_group(str(n)) for n in product.feature.values])

    def agreement(features) -> float:
        return round(float((np.asarray(model.predict_block(features)[0]) == reference).mean()), 5)

    def swapped(base, other, group: str):
        mixed = base.copy()
        idx = np.flatnonzero(groups == group)
        mixed.values[idx] = other.values[idx]
        return mixed

    def noisy(scale: float):  # the product chain's features, each off by a relative N(0, scale), seeded
        rng = np.random.default_rng(0)
        out = product.copy()
        out.values *= (1 + scale * rng.standard_normal(out.shape)).astype(np.float32)
        return out

    diff = np.abs(resampled.values - product.values) / np.maximum(np.abs(product.values), 1e-6)
    return {
        "block_size": block_size, "pixels": int(reference.size), "cloud_dilation_px": dilation_px,
        "s1_speckle_window": speckle_window,
        "features_per_group": {g: int((groups == g).sum()) for g in GROUPS},
        "composites_resampled": agreement(resampled),
        "composites_resampled_but_from_the_product_chain": {g: agreement(swapped(resampled, product, g))
                                                            for g in GROUPS},
        "product_chain_but_from_the_resampled_composites": {g: agreement(swapped(product, resampled, g))
                                                            for g in GROUPS},
        # how far the two feature sets are apart, and how many pixels that much noise alone changes
        "median_relative_difference": {g: round(float(np.nanmedian(diff[groups == g])), 5) for g in GROUPS},
        "product_chain_with_relative_noise": {str(e): agreement(noisy(e)) for e in (1e-4, 1e-3, 1e-2)},
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--block-size", type=int, default=1024)
    ap.add_argument("--cloud-dilation", type=int, default=None, help="pixels (default: the chain's)")
    ap.add_argument("--speckle-window", type=int, default=None, help="pixels (default: the chain's)")
    ap.add_argument("--json", default=None, help="also write the figures here")
    args = ap.parse_args()
    result = agreement_by_group(args.block_size, dilation_px=args.cloud_dilation, speckle_window=args.speckle_window)
    text = json.dumps(result, indent=1)
    print(text)
    if args.json:
        Path(args.json).write_text(text + "\n")


if __name__ == "__main__":
    main()
