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
# # 4. Tile products and the mosaic
#
# `run_tile` processes a tile block by block into three Cloud-Optimised GeoTIFFs and a STAC item:
# **Map** (uint8 class codes with the legend's colour table), **Prob** (the probability of the mapped
# class, %) and **InputQuality** (S1 and S2 observation counts and the share of S2 observations
# discarded by cloud masking, at 0.0005°). `build_mosaic` merges the finished tiles into a 10 m VRT, a
# categorical pyramid (100 m, 1 km, 10 km), area tables, a quicklook and a STAC collection. Everything
# is opened here with rioxarray, as any user of the products would.

# %%
import json

import matplotlib.pyplot as plt
import nbsetup
import numpy as np
import pandas as pd
import rioxarray
from IPython.display import Image, display

import worldcover as wc

SIZE = nbsetup.SIZE
archive = nbsetup.archive()
api = nbsetup.stac_api(archive)
root = nbsetup.outputs() / "campaign"
print(f"tiles {', '.join(SIZE.tiles)}, blocks {nbsetup.blocks_spec()} of {SIZE.block_size} px -> {root}")

# %% [markdown]
# ## Running the tiles
#
# Idempotent: a finished tile (every product present and matching its recorded checksum) is skipped,
# an interrupted one resumes at its first unfinished block.

# %%
runs = [wc.run_tile(tile, SIZE.year, api.url, "default", root, block_size=SIZE.block_size,
                    blocks=nbsetup.blocks_spec()) for tile in SIZE.tiles]
pd.DataFrame([r.to_dict() for r in runs]).drop(columns=["outputs", "error"])


# %% [markdown]
# ## One tile's products
#
# A tile's COGs cover the whole 3x3 degree tile; only the processed blocks hold data, so they are read
# through a window (rioxarray opens lazily; `.sel` reads only what is selected).

# %%
def blocks_bbox(tile_id):
    """(W, S, E, N) of the processed blocks of a tile."""
    boxes = np.array([b.bbox for b in nbsetup.blocks() if b.tile.id == tile_id])
    return boxes[:, 0].min(), boxes[:, 1].min(), boxes[:, 2].max(), boxes[:, 3].max()


def window(path, bbox, **kwargs):
    """The part of a raster inside ``bbox``, read with rioxarray."""
    west, south, east, north = bbox
    da = rioxarray.open_rasterio(path, **kwargs)
    return da.sel(x=slice(west, east), y=slice(north, south)).load()


tile = SIZE.tiles[0]
paths = wc.tile_paths(root, tile, SIZE.year)
bbox = blocks_bbox(tile)
classes = window(paths.map, bbox).squeeze("band")
prob = window(paths.prob, bbox).squeeze("band")
quality = window(paths.quality, bbox)
print(paths.map.name, dict(classes.sizes), "CRS", classes.rio.crs, "nodata", classes.rio.nodata)
extent = (bbox[0], bbox[2], bbox[1], bbox[3])
fig, axes = plt.subplots(1, 5, figsize=(22, 4))
wc.show_classes(axes[0], classes.values, extent=extent, title="Map", legend=False)
im = axes[1].imshow(prob, extent=extent, cmap="magma", vmin=0, vmax=100)
axes[1].set_title("Prob (%)", fontsize=9)
fig.colorbar(im, ax=axes[1], shrink=0.7)
for ax, band, name in zip(axes[2:], (1, 2, 3), ("S1 observations", "S2 observations", "S2 discarded (%)"), strict=True):
    im = ax.imshow(quality.sel(band=band), extent=extent, cmap="viridis", interpolation="nearest")
    ax.set_title(f"InputQuality: {name}", fontsize=9)
    fig.colorbar(im, ax=ax, shrink=0.7)
for ax in axes:
    ax.ticklabel_format(useOffset=False)
fig.legend(handles=wc.legend_patches(classes.values[classes.values > 0]), loc="lower center", ncol=6, fontsize=7)
plt.show()

# %% [markdown]
# The STAC item records the products, their checksums and the provenance: model card, source, chain
# parameters and the items every block was made from.

# %%
item = json.loads(paths.item.read_text())
print(item["id"], item["properties"]["datetime"] if item["properties"].get("datetime") else
      (item["properties"].get("start_datetime"), item["properties"].get("end_datetime")))
print("assets:", {k: v["type"] for k, v in item["assets"].items()})
print("properties:", sorted(item["properties"])[:25])

# %% [markdown]
# ## The mosaic
#
# Up to date mosaics are not rebuilt (a key over the tiles' checksums); the per-tile pieces are cached.

# %%
summary = wc.build_mosaic(root, SIZE.year)
outputs = {k: root / v for k, v in summary["outputs"].items()}
print(summary["status"], f"{summary['tiles']} tiles, extent {summary['extent']}")
pd.Series({k: str(v.relative_to(root)) for k, v in outputs.items()}).to_frame("file")

# %%
display(Image(filename=str(outputs["quicklook"]), width=900))

# %% [markdown]
# The 10 m VRT reads like any raster; here around the processed blocks of each tile, next to the 100 m
# level of the pyramid (categorical mode of 10x10 pixels).

# %%
fig, axes = plt.subplots(len(SIZE.tiles), 2, figsize=(11, 4.2 * len(SIZE.tiles)), squeeze=False)
for row, tile_id in zip(axes, SIZE.tiles, strict=True):
    bbox = blocks_bbox(tile_id)
    extent = (bbox[0], bbox[2], bbox[1], bbox[3])
    ten_m = window(outputs["vrt"], bbox).squeeze("band")
    hundred_m = window(outputs["map_100m"], bbox).squeeze("band")
    wc.show_classes(row[0], ten_m.values, extent=extent, title=f"{tile_id}: 10 m VRT", legend=False)
    wc.show_classes(row[1], hundred_m.values, extent=extent, title=f"{tile_id}: 100 m level")
plt.tight_layout()
plt.show()

# %% [markdown]
# Class areas are geodesic (pixel areas on the WGS84 ellipsoid), per stage and continent:

# %%
areas = pd.read_csv(outputs["areas_csv"])
areas.head(12)

# %%
collection = json.loads(outputs["collection"].read_text())
print(collection["id"], "|", collection["description"][:200])
print("item_assets:", sorted(collection.get("item_assets", {})))

# %%
api.stop()
