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
# # 1. The grid and the nested stages
#
# The map is made on the ESA WorldCover grid: EPSG:4326, 1/12000 degree pixels ("10 m"), 3x3 degree
# tiles of 36000 x 36000 pixels named by their south-west corner. A tile is processed in square
# blocks. Production grows in nested stages of the land tiles, 1 % ⊂ 10 % ⊂ 100 %, each stratified
# by latitude zone and continent so that a small stage still validates something.
#
# Everything here is `import worldcover as wc`; nothing is read from the network.

# %%
import os
from collections import Counter

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.colors import ListedColormap
from matplotlib.patches import Rectangle

import worldcover as wc

SIZE = os.environ.get("WORLDCOVER_NB_SIZE", "normal")  # nothing heavy here: the knob changes nothing
print(f"worldcover {wc.__version__}, size {SIZE}")

# %% [markdown]
# ## One tile, its blocks and its pixel grid

# %%
tile = wc.Tile.parse("N00E006")
print("bbox (W, S, E, N):", tile.bbox)
print("shape:", tile.shape, " transform:", tuple(tile.transform)[:6])
print("land fraction (global-land-mask):", round(tile.land_fraction, 3))
for block_size in (3000, 1200, 240):
    print(f"blocks of {block_size} px: {tile.block_grid(block_size)} (rows, cols)")
block = tile.block(5, 7, 3000)
print(block.id, block.bbox, block.geobox.shape)
print("its native Sentinel-2 grid (UTM, 10 m):", wc.native_geobox(block).crs, wc.native_geobox(block).shape)

# %% [markdown]
# ## The land tiles and the three nested stages
#
# `wc.land_tiles()` keeps every tile with land in the 1 km mask; ESA's product has 2,651 tiles
# (its own land mask). The stages are deterministic (a seed) and nested.

# %%
land = wc.land_tiles()
stages = {name: wc.stage_tiles(name) for name in ("1pct", "10pct", "100pct")}
print(f"{len(land):,} land tiles (ESA WorldCover: 2,651)")
ids = {name: {t.id for t in tiles} for name, tiles in stages.items()}
assert ids["1pct"] <= ids["10pct"] <= ids["100pct"], "stages must be nested"
pd.DataFrame(wc.stages_summary()).set_index("zone")

# %%
level = np.zeros((60, 120), dtype=np.uint8)  # one cell per 3-degree tile: 0 sea, 1..3 the smallest stage holding it
for value, name in enumerate(("100pct", "10pct", "1pct"), start=1):
    for t in stages[name]:
        south, west = t.bbox[1], t.bbox[0]
        level[int((90 - south) // 3) - 1, int((west + 180) // 3)] = value
cmap = ListedColormap(["#dde6ee", "#b9c7a5", "#3f7f3f", "#d62728"])
fig, ax = plt.subplots(figsize=(12, 6))
ax.imshow(level, extent=(-180, 180, -90, 90), cmap=cmap, vmin=0, vmax=3, interpolation="nearest")
ax.set_title("Land tiles by stage: 100pct (light), 10pct (green), 1pct (red)")
ax.set_xlabel("longitude (°)")
ax.set_ylabel("latitude (°)")
plt.show()

# %% [markdown]
# ## Is the 1 % stage representative?
#
# Each latitude zone (and continent) gets its share of the 1pct tiles, so a validation of the first
# stage does not hear only from Siberia.

# %%
strata = pd.DataFrame([{"tile": t.id, **vars(wc.stratum(t)), "land": t.land_fraction} for t in stages["1pct"]])
share = pd.DataFrame({
    name: pd.Series(Counter(wc.stratum(t).zone for t in tiles)) / len(tiles) for name, tiles in stages.items()
}).fillna(0)
ax = share.plot.bar(figsize=(9, 3.5), title="Share of each stage's tiles per latitude zone")
ax.set_ylabel("share of the stage")
plt.show()
strata.groupby(["zone", "continent"]).size().rename("1pct tiles").to_frame()

# %% [markdown]
# ## The 1pct tiles on the map

# %%
fig, ax = plt.subplots(figsize=(12, 6))
ax.imshow(level > 0, extent=(-180, 180, -90, 90), cmap=ListedColormap(["#dde6ee", "#d9d9c8"]),
          interpolation="nearest")
zones = sorted(strata["zone"].unique())
colours = dict(zip(zones, plt.cm.tab10.colors, strict=False))
for t in stages["1pct"]:
    west, south, east, north = t.bbox
    ax.add_patch(Rectangle((west, south), east - west, north - south, color=colours[wc.stratum(t).zone]))
    ax.annotate(t.id, (east, north), fontsize=6)
ax.legend(handles=[Rectangle((0, 0), 1, 1, color=colours[z], label=z) for z in zones], fontsize=7,
          loc="lower left")
ax.set_title(f"The {len(stages['1pct'])} tiles of the 1pct stage, by latitude zone")
plt.show()
