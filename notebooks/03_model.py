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
# # 3. The model
#
# The default model is a LightGBM multiclass classifier bound to a *model card*: its features, classes,
# training and test blocks, hyperparameters, held-out metrics and provenance, sealed by the hash of the
# model text (a model refuses features it was not trained on). This notebook reads the card, draws the
# held-out confusion matrix and the feature importance, then trains a model of your own from reference
# points through the production chain.

# %%
import json

import lightgbm
import matplotlib.pyplot as plt
import nbsetup
import numpy as np
import pandas as pd

import worldcover as wc

SIZE = nbsetup.SIZE
model = wc.load_default_model()
card = model.card
print(f"{card.name} version {card.version[:12]}…, LightGBM {card.lightgbm_version}, created {card.created}")
print(f"{len(card.feature_names)} features, classes {list(card.trained_classes)}")
print(f"trained on {len(card.training_blocks)} blocks, tested on {len(card.test_blocks)} other blocks")
pd.Series(card.hyperparameters).to_frame("value")

# %% [markdown]
# ## Held-out metrics
#
# The test blocks come from other tiles and other 9-degree cells than the training blocks.

# %%
metrics = card.metrics
print(f"overall accuracy {metrics['overall_accuracy']:.3f}, kappa {metrics['kappa']:.3f}, "
      f"n = {metrics['n']:,} held-out points")
per_class = pd.DataFrame(metrics["per_class"]).T[["name", "precision", "recall", "f1", "support"]]
per_class

# %%
cm = metrics["confusion_matrix"]
counts = np.array(cm["counts"], dtype=float)
names = [str(c) for c in cm["labels"]]
share = counts / np.maximum(counts.sum(axis=1, keepdims=True), 1)  # per reference class (recall on the diagonal)
fig, ax = plt.subplots(figsize=(7, 6))
im = ax.imshow(share, cmap="Blues", vmin=0, vmax=1)
ax.set_xticks(range(len(names)), names)
ax.set_yticks(range(len(names)), names)
ax.set_xlabel(f"{cm['columns']} class")
ax.set_ylabel(f"{cm['rows']} class")
for i in range(len(names)):
    for j in range(len(names)):
        if counts[i, j]:
            ax.text(j, i, int(counts[i, j]), ha="center", va="center", fontsize=6,
                    color="white" if share[i, j] > 0.5 else "black")
fig.colorbar(im, ax=ax, shrink=0.8, label="share of the reference class")
ax.set_title("Held-out confusion matrix of the default model")
plt.show()

# %% [markdown]
# ## Feature importance
#
# Total gain of each feature over all trees (LightGBM's own measure), the top 25.

# %%
booster = lightgbm.Booster(model_str=model.model_text)
gain = pd.Series(booster.feature_importance("gain"), index=booster.feature_name()).sort_values()
gain = gain / gain.sum()
ax = gain.tail(25).plot.barh(figsize=(7, 7), title="Share of total gain, top 25 features")
plt.show()
groups = gain.groupby(lambda n: n.split("_")[0] if n.startswith(("s1", "s2")) else n.split("_")[0]).sum()
groups.sort_values(ascending=False).round(3).to_frame("share of gain")

# %% [markdown]
# ## Calibration
#
# The card records the reliability of the top-class probability on held-out blocks: is a pixel mapped
# with 80 % probability right 80 % of the time?

# %%
reliability = card.calibration["reliability_before"]
conf = np.array([np.nan if v is None else v for v in reliability["confidence"]])
acc = np.array([np.nan if v is None else v for v in reliability["accuracy"]])
fig, ax = plt.subplots(figsize=(4.5, 4.5))
ax.plot([0, 1], [0, 1], "--", color="0.6")
ax.plot(conf, acc, "o-")
ax.set_xlabel("mean top-class probability")
ax.set_ylabel("accuracy")
ax.set_title(f"reliability (ECE {reliability['ece']:.3f})", fontsize=9)
plt.show()

# %% [markdown]
# ## Training on your own points
#
# A reference set is a table of points with `lon`, `lat`, `class` (a WorldCover code) and `year`.
# Here the points are drawn at random from the simulated truth of the shared archive's blocks; in
# practice they come from a labelling campaign. `train_from_points` loads each chip of points through
# the same chain as `tile run`, splits train and test by spatial group (here: chip) and writes a model
# with its own card.

# %%
archive = nbsetup.archive()
api = nbsetup.stac_api(archive)
rng = np.random.default_rng(SIZE.seed)
rows = []
for block in nbsetup.blocks():
    truth = wc.simulated_truth(block, SIZE.seed)
    pick = rng.choice(truth.size, size=min(SIZE.points_per_block, truth.size), replace=False)
    r, c = np.unravel_index(pick, truth.shape)
    quadrant = (2 * r) // truth.shape[0] * 2 + (2 * c) // truth.shape[1]  # neighbours stay in one group
    rows.append(pd.DataFrame({"lon": truth.x.values[c], "lat": truth.y.values[r], "class": truth.values[r, c],
                              "year": SIZE.year, "group": [f"{block.id}-q{q}" for q in quadrant]}))
points = pd.concat(rows, ignore_index=True)
points_file = nbsetup.outputs() / "my-points.csv"
points.to_csv(points_file, index=False)
print(f"{len(points)} points -> {points_file}")
points["class"].value_counts().sort_index().to_frame("points")

# %%
my_model_dir = nbsetup.outputs() / "my-model"
summary = wc.train_from_points(points_file, api.url, my_model_dir, year=SIZE.year, group_by="column",
                               chip_size=SIZE.block_size, params={"num_iterations": 150},
                               name="my-points-model")
print(json.dumps({k: summary[k] for k in ("model_dir", "name", "year", "chips")}, indent=1))
mine = wc.Model.load(my_model_dir)
m = mine.card.metrics
print(f"held-out points: OA {m['overall_accuracy']:.3f}, kappa {m['kappa']:.3f}, n = {m['n']} "
      f"(split {summary['split']['rule']})")
pd.DataFrame(m["per_class"]).T[["name", "precision", "recall", "f1", "support"]]

# %% [markdown]
# The new model maps the first block like the default one does (`predict_block` on the chain's features).
# Its points were drawn from these very blocks, so this picture flatters it: the held-out figures of its
# card (points of groups it never saw) are the fair comparison, and a map is judged by notebook 5's
# design-based estimates, not by a picture.

# %%
block = nbsetup.blocks()[0]
inputs = wc.StacSource(api.url).load_block(block, SIZE.year)
chain = wc.chain_features(block, SIZE.year, inputs, wc.feature_config_of(mine), wc.ChainParams(grid="product"))
features = chain.features.compute()
codes_mine, _ = mine.predict_block(features)
codes_default, _ = model.predict_block(features)
truth = wc.simulated_truth(block, SIZE.seed).values
fig, axes = plt.subplots(1, 3, figsize=(14, 4))
wc.show_classes(axes[0], truth, title="simulated truth", legend=False)
wc.show_classes(axes[1], np.asarray(codes_default),
                title=f"default model ({100 * (np.asarray(codes_default) == truth).mean():.0f} % agree)", legend=False)
wc.show_classes(axes[2], np.asarray(codes_mine),
                title=f"my points model ({100 * (np.asarray(codes_mine) == truth).mean():.0f} % agree)")
for ax in axes:
    ax.axis("off")
plt.show()

# %%
api.stop()
