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
# # 2. One block through the chain
#
# A block of the simulated world goes through every step `worldcover tile run` takes, one at a time:
# a STAC search (a real STAC API, `rustac serve`, on loopback), loading with odc-stac, the
# Sentinel-2 cloud masks, the 10-day composites, spectral indices, Sentinel-1 backscatter, the
# features, and finally the classes and their probabilities from the default model.
#
# `WORLDCOVER_NB_SIZE=tiny` runs it on a 60 px block and two months; the default is a 240 px block
# and a whole year.

# %%
import matplotlib.pyplot as plt
import nbsetup
import numpy as np
import pandas as pd

import worldcover as wc

SIZE = nbsetup.SIZE
block = nbsetup.blocks()[0]
year = SIZE.year
archive = nbsetup.archive()  # simulated once, then reused by every notebook
api = nbsetup.stac_api(archive)
print(f"block {block.id} ({block.size} px), {year}; STAC API at {api.url}")

# %% [markdown]
# ## STAC search
#
# The same pystac-client search a campaign makes: the block's bounding box, the year.

# %%
source = wc.StacSource(api.url)
items = source.search("sentinel-2-l2a", block, f"{year}-01-01/{year}-12-31")
scenes = pd.DataFrame([{
    "date": i.datetime.date(), "id": i.id, "cloud cover %": i.properties["eo:cloud_cover"],
    "MGRS tile": i.properties["s2:mgrs_tile"], "processing baseline": i.properties["s2:processing_baseline"],
} for i in items]).sort_values("date")
print(f"{len(items)} Sentinel-2 L2A items")
scenes.head(10)

# %% [markdown]
# ## Loading the block
#
# `load_block` loads S2 (harmonised per item from its processing baseline: DN → reflectance),
# S1 RTC and the DEM onto the block's 10 m product grid. (`tile run` loads them on their native UTM
# grid instead, `load_block(..., native=True)`, and resamples the features once.)

# %%
inputs = source.load_block(block, year)
s2 = inputs.s2.load()
print("S2:", dict(s2.sizes), "| S1:", dict(inputs.s1.sizes) if inputs.s1 is not None else None,
      "| DEM:", inputs.dem is not None)
print("harmonisation of the first items:", {h.baseline: h.offset_dn for h in inputs.harmonisation})


# %%
def rgb(ds, t):
    """A true-colour image of acquisition ``t`` (reflectance stretched to 0..0.3)."""
    bands = [ds[b].isel(time=t).values for b in ("B04", "B03", "B02")]
    return np.clip(np.dstack(bands) / 0.3, 0, 1)


cloudy = s2["SCL"].isin([8, 9, 10]).mean(("y", "x")).values
clearest, partly = int(np.argmin(cloudy)), int(np.argmin(np.abs(cloudy - 0.5)))  # a scene half under cloud
fig, axes = plt.subplots(1, 4, figsize=(15, 3.8))
for ax, t, what in ((axes[0], clearest, "clearest"), (axes[2], partly, f"{100 * cloudy[partly]:.0f} % cloud")):
    ax.imshow(rgb(s2, t))
    ax.set_title(f"{what}: {str(s2.time.values[t])[:10]}", fontsize=9)
for ax, t in ((axes[1], clearest), (axes[3], partly)):
    im = ax.imshow(s2["SCL"].isel(time=t), cmap="tab20", vmin=0, vmax=11, interpolation="nearest")
    ax.set_title("SCL", fontsize=9)
fig.colorbar(im, ax=axes[3], ticks=range(12), shrink=0.8)
for ax in axes:
    ax.axis("off")
plt.show()

# %% [markdown]
# ## Cloud masks
#
# Invalid SCL classes (nodata, saturated, cloud shadow, medium and high cloud, cirrus) are masked and
# clouds and shadows are dilated by 3 pixels to catch their undetected edges; persistent snow is kept.

# %%
valid = wc.valid_mask(s2["SCL"], wc.S2MaskConfig()).compute()
share = pd.Series(valid.mean(("y", "x")).values, index=pd.DatetimeIndex(s2.time.values).date)
ax = share.plot.bar(figsize=(10, 3), color="tab:blue", title="share of the block's pixels kept, per acquisition")
ax.set_ylim(0, 1)
plt.show()

# %% [markdown]
# ## Composites and indices
#
# The kept observations are averaged into 36 dekads (10-day periods) and the gaps interpolated in
# time; indices come from the Awesome Spectral Indices catalogue (spyndex).

# %%
s2r = wc.preprocess_s2(s2, year)
composites = s2r.composites.compute()
ndvi = wc.spectral_index(composites, "NDVI").compute()
raw_ndvi = ((s2["B08"] - s2["B04"]) / (s2["B08"] + s2["B04"])).where(valid)
cy, cx = block.shape[0] // 2, block.shape[1] // 2
fig, (ax, ax2) = plt.subplots(1, 2, figsize=(13, 3.6), gridspec_kw={"width_ratios": [2, 1]})
ax.plot(composites.time.values, ndvi[:, cy, cx], "-", label="dekad composite (gap-filled)")
ax.plot(s2.time.values, raw_ndvi[:, cy, cx], "o", label="kept observations")
ax.set_title(f"NDVI at the block's centre pixel, {year}", fontsize=9)
ax.legend(fontsize=8)
busiest = int(np.nanargmax(ndvi.mean(("y", "x")).values))
im = ax2.imshow(ndvi[busiest], cmap="YlGn", vmin=0, vmax=1)
ax2.set_title(f"NDVI, dekad of {str(composites.time.values[busiest])[:10]}", fontsize=9)
ax2.axis("off")
fig.colorbar(im, ax=ax2, shrink=0.8)
plt.show()
quality = s2r.quality.compute()
print({k: float(quality[k].mean()) for k in quality.data_vars})

# %% [markdown]
# ## Sentinel-1
#
# VV and VH are speckle-filtered, averaged per month in linear power, then converted to dB; VH/VV is
# their ratio.

# %%
s1r = wc.preprocess_s1(inputs.s1, year)
s1db = s1r.db.compute()
fig, axes = plt.subplots(1, 3, figsize=(13, 3.5))
for ax, var in zip(axes, ("vv_db", "vh_db", "ratio_db"), strict=True):
    im = ax.imshow(s1db[var].mean("time"), cmap="gray")
    ax.set_title(f"{var}, mean of the months", fontsize=9)
    ax.axis("off")
    fig.colorbar(im, ax=ax, shrink=0.8)
plt.show()
print("S1 observations per pixel:", int(s1r.count.max()))

# %% [markdown]
# ## Features
#
# The default model's features (temporal percentiles of bands and indices, monthly NDVI, S1 statistics,
# DEM and slope, latitude), computed exactly as the model was trained on them.

# %%
model = wc.load_default_model()
config = wc.feature_config_of(model)
features = wc.compute_features(s2r.composites, s1r.db, inputs.dem, config).compute()
print(f"{features.sizes['feature']} features, e.g. {list(features.feature.values[:4])} ...")
shown = [n for n in ("s2_B04_p50", "ndvi_p90", "s1_vh_db_p50", "dem") if n in features.feature.values]
fig, axes = plt.subplots(1, len(shown), figsize=(3.4 * len(shown), 3.2))
for ax, name in zip(np.atleast_1d(axes), shown, strict=True):
    ax.imshow(features.sel(feature=name), cmap="viridis")
    ax.set_title(name, fontsize=9)
    ax.axis("off")
plt.show()

# %% [markdown]
# ## Classes and probabilities
#
# LightGBM gives a class and the probability of that class for every pixel. The simulated world
# knows its truth, so the block's agreement is printed beside the map.

# %%
codes, prob = model.predict_block(features)
truth = wc.simulated_truth(block, SIZE.seed).values
codes = np.asarray(codes)
agreement = float((codes == truth).mean())
fig, axes = plt.subplots(1, 3, figsize=(15, 4))
wc.show_classes(axes[0], truth, title="simulated truth", legend=False)
wc.show_classes(axes[1], codes, title=f"default model ({100 * agreement:.1f} % agree)")
im = axes[2].imshow(prob, cmap="magma", vmin=0, vmax=100)
axes[2].set_title("probability of the class (%)", fontsize=9)
fig.colorbar(im, ax=axes[2], shrink=0.8)
for ax in axes:
    ax.axis("off")
plt.tight_layout()
plt.show()
pd.crosstab(pd.Series(truth.ravel(), name="truth"), pd.Series(codes.ravel(), name="map"))

# %%
api.stop()
