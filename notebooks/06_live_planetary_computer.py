# ---
# jupyter:
#   jupytext:
#     formats: py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 6. Live: one real block from Planetary Computer
#
# The same chain as notebook 2 on real Sentinel-2 L2A, Sentinel-1 RTC and Copernicus DEM from
# Microsoft's Planetary Computer (hrefs signed by the `planetary-computer` package; a subscription key in
# `PC_SDK_SUBSCRIPTION_KEY` raises the rate limits but is not needed), compared with ESA's own
# WorldCover 2021 map of the same block.
#
# It needs the internet. Offline (or with `WORLDCOVER_NB_OFFLINE=1`) it says so and does nothing else:
# every cell below checks `ONLINE`. `WORLDCOVER_NB_SIZE=tiny` takes a 60 px block, the default 240 px.

# %%
import os
import socket

import worldcover as wc

HOST = "planetarycomputer.microsoft.com"


def online(host: str = HOST, timeout: float = 5.0) -> bool:
    """Whether ``host`` answers on HTTPS (no DNS or no route: offline)."""
    if os.environ.get("WORLDCOVER_NB_OFFLINE"):
        return False
    try:
        with socket.create_connection((host, 443), timeout=timeout):
            return True
    except OSError:
        return False


ONLINE = online()
SIZE = os.environ.get("WORLDCOVER_NB_SIZE", "normal")
BLOCK_SIZE = 60 if SIZE == "tiny" else 240
YEAR = 2021
LON, LAT = 3.72, 51.05  # farmland south-west of Ghent, Flanders
print(f"{HOST}: {'reachable' if ONLINE else 'not reachable: offline, this notebook stops here'}")

# %%
if ONLINE:
    wc.install_log_redaction()  # a subscription key in the environment never reaches a log record
    import matplotlib.pyplot as plt
    import numpy as np

    tile = wc.tile_of(LON, LAT)
    west, _, _, north = tile.bbox
    row, col = int((north - LAT) * 12000) // BLOCK_SIZE, int((LON - west) * 12000) // BLOCK_SIZE
    block = tile.block(row, col, BLOCK_SIZE)
    source = wc.StacSource("planetary-computer", max_cloud=60)
    items = source.search("sentinel-2-l2a", block, f"{YEAR}-01-01/{YEAR}-12-31")
    print(f"block {block.id} {block.bbox}: {len(items)} S2 L2A items with <= 60 % cloud in {YEAR}")

# %% [markdown]
# ## Load, preprocess, classify
#
# `classify_block` is the whole chain of `tile run` for one block: masks, composites, S1, features and
# the default model.

# %%
if ONLINE:
    inputs = source.load_block(block, YEAR)
    model = wc.load_default_model()
    result = wc.classify_block(block, YEAR, inputs, model, wc.ChainParams(grid="product"))
    print(f"S2 acquisitions {inputs.s2.sizes['time']}, S1 {inputs.s1.sizes['time'] if inputs.s1 is not None else 0}, "
          f"DEM {'yes' if inputs.dem is not None else 'no'}; harmonisation: "
          f"{sorted({(h.baseline, h.offset_dn) for h in inputs.harmonisation})[:4]} ...")

# %% [markdown]
# ## Against ESA WorldCover 2021 (v200)
#
# Planetary Computer also serves ESA's map (`esa-worldcover`); its pixels lie on the same grid.

# %%
if ONLINE:
    import planetary_computer
    import rioxarray

    esa_items = source.client.search(collections=["esa-worldcover"], bbox=block.bbox,
                                     datetime=f"{YEAR}-01-01/{YEAR}-12-31").item_collection()
    esa = None
    if len(esa_items):
        href = planetary_computer.sign(esa_items[0]).assets["map"].href
        w, s, e, n = block.bbox
        esa = rioxarray.open_rasterio(href).sel(x=slice(w, e), y=slice(n, s)).squeeze("band").values
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.5))
    s2 = inputs.s2.isel(time=int(np.argmax((inputs.s2["SCL"] == 4).mean(("y", "x")).values))).compute()
    axes[0].imshow(np.clip(np.dstack([s2[b].values for b in ("B04", "B03", "B02")]) / 0.3, 0, 1))
    axes[0].set_title(f"S2 {str(s2.time.values)[:10]}", fontsize=9)
    wc.show_classes(axes[1], result.codes, title="worldcover default model", legend=esa is None)
    if esa is not None and esa.shape == result.codes.shape:
        agree = float((esa == result.codes).mean())
        wc.show_classes(axes[2], esa, title=f"ESA WorldCover 2021 ({100 * agree:.0f} % agree)")
    for ax in axes:
        ax.axis("off")
    plt.show()
