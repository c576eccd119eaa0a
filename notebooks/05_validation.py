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
# # 5. Validation: design, labelling, estimates
#
# The map's accuracy and class areas are *estimated* from a probability sample, the way WorldCover was
# validated (Olofsson et al. 2014): a stratified random sample with the map classes as strata, each
# sample unit labelled by a person (here: by the simulator's truth), then design-based estimators of
# overall, user's and producer's accuracy and of each class's area, with 95 % confidence intervals.
# Ocean and nodata are outside the population: only land is assessed.

# %%
import matplotlib.pyplot as plt
import nbsetup
import numpy as np
import pandas as pd
import rioxarray

import worldcover as wc

SIZE = nbsetup.SIZE
archive = nbsetup.archive()
root = nbsetup.outputs() / "campaign"
api = nbsetup.stac_api(archive)
for tile in SIZE.tiles:  # the tiles and mosaic of notebook 4 (reused when they are there)
    wc.run_tile(tile, SIZE.year, api.url, "default", root, block_size=SIZE.block_size, blocks=nbsetup.blocks_spec())
mosaic = wc.build_mosaic(root, SIZE.year)
api.stop()
vrt = root / mosaic["outputs"]["vrt"]
vdir = nbsetup.outputs() / "validation"
vdir.mkdir(exist_ok=True)
print("map:", vrt)

# %% [markdown]
# ## The sampling design
#
# The sample size follows from a target standard error of the overall accuracy and conjectured user's
# accuracies (Olofsson et al. 2014, eq. 13), with a floor per class so that rare classes get user's
# accuracies at all. The land mask here is the simulated world's own coast.

# %%
land_mask = f"sim:{archive}"
design = wc.design_sample(vrt, n=SIZE.samples, min_per_class=SIZE.min_per_class, seed=SIZE.year,
                          land_mask=land_mask)
info = design.summary()
print(f"n = {design.n} sample units ({info['unit']}); land {info['land_area_ha']:,.1f} ha; "
      f"left out: {info['excluded']}")
strata = pd.DataFrame(info["strata"]).set_index("code")
strata

# %%
samples_csv = wc.write_samples(design.samples, vdir / "samples.csv")
samples = design.samples
fig, axes = plt.subplots(1, len(SIZE.tiles), figsize=(6 * len(SIZE.tiles), 5), squeeze=False)
for ax, tile_id in zip(axes[0], SIZE.tiles, strict=True):
    boxes = np.array([b.bbox for b in nbsetup.blocks() if b.tile.id == tile_id])
    west, south, east, north = boxes[:, 0].min(), boxes[:, 1].min(), boxes[:, 2].max(), boxes[:, 3].max()
    part = rioxarray.open_rasterio(vrt).sel(x=slice(west, east), y=slice(north, south)).squeeze("band").load()
    wc.show_classes(ax, part.values, extent=(west, east, south, north), title=f"{tile_id}: map and sample units",
                    legend=False)
    inside = samples[(samples.lon >= west) & (samples.lon <= east) & (samples.lat >= south) & (samples.lat <= north)]
    ax.scatter(inside.lon, inside.lat, s=12, facecolor="none", edgecolor="black", linewidth=0.8)
    ax.ticklabel_format(useOffset=False)
fig.legend(handles=wc.legend_patches(samples.map_class), loc="lower center", ncol=6, fontsize=7)
plt.show()

# %% [markdown]
# ## Labelling
#
# Real campaigns label each unit by photo-interpretation (Collect Earth, Geo-Wiki); the simulated world
# knows its truth, so `label_from_truth` fills `reference_class` from it. The labelled table is what a
# person would hand back.

# %%
labelled_csv = wc.label_from_truth(samples_csv, archive, vdir / "labelled.csv")
labelled = wc.read_labelled(labelled_csv)
print(f"{len(labelled)} labelled units")
pd.crosstab(labelled["map_class"], labelled["ref_code"], margins=True, margins_name="total",
            rownames=["map"], colnames=["reference"])

# %% [markdown]
# ## Estimates
#
# `assess` computes everything a report shows and writes nothing: the stratified estimators of
# Olofsson et al. (2014) on the sample counts and the mapped (geodesic) areas of the strata.
# Intervals for proportions are Wilson intervals on the effective sample size, so a class with no
# error in the sample is not reported as "100 ± 0 %".

# %%
assessment = wc.assess(vrt, labelled_csv, land_mask=land_mask, interval="wilson")
result = assessment.result
oa = result.overall_accuracy
lo, hi = oa.ci95("wilson")
print(f"overall accuracy {100 * oa.estimate:.1f} % (95 % CI {100 * lo:.1f} to {100 * hi:.1f} %), n = {result.n}")
rows = []
for name, code, c, mapped in zip(result.classes, assessment.codes, result.per_class, assessment.mapped_ha, strict=True):
    ua, pa = c.users_accuracy, c.producers_accuracy
    rows.append({"code": code, "class": name, "mapped ha": mapped,
                 "user's": ua.estimate, "user's 95 % CI": np.round(ua.ci95("wilson"), 3),
                 "producer's": pa.estimate, "producer's 95 % CI": np.round(pa.ci95("wilson"), 3),
                 "estimated ha": c.area_ha.estimate, "± ha (95 %)": c.area_ha.ci95_halfwidth})
table = pd.DataFrame(rows).set_index("code")
table.round(3)

# %% [markdown]
# Mapped area against the estimated area of each class: the map's omission and commission errors move
# area between classes; the estimate corrects for them, with its 95 % interval.

# %%
fig, ax = plt.subplots(figsize=(8, 3.8))
x = np.arange(len(table))
colours = [f"#{wc.LEGEND[[c.code for c in wc.LEGEND].index(code)].colour}" for code in table.index]
ax.bar(x - 0.2, table["mapped ha"], width=0.4, color=colours, edgecolor="0.3", label="mapped")
ax.bar(x + 0.2, table["estimated ha"], width=0.4, yerr=table["± ha (95 %)"], color="white", edgecolor="0.3",
       hatch="//", capsize=3, label="estimated (95 % CI)")
ax.set_xticks(x, table["class"], rotation=30, ha="right", fontsize=8)
ax.set_ylabel("ha")
ax.legend(fontsize=8)
ax.set_title("Class areas on land: mapped and estimated from the sample")
plt.show()

# %% [markdown]
# ## The report
#
# `write_report` writes the HTML report (plots, the design table, the error matrix with totals),
# `metrics.json` and the CSVs, from the same assessment.

# %%
report = wc.write_report(assessment, vdir / "report")
print(report.html)
print({k: report.metrics[k] for k in ("n",) if k in report.metrics},
      "overall accuracy", report.metrics["overall_accuracy"])
