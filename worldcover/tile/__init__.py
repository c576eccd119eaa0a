"""One tile through the chain, in the order the data flow:

- :mod:`worldcover.tile.run`: each block through :mod:`worldcover.chain` (loaded, preprocessed, featurised), then
  classified; the tile assembled (``run_tile``);
- :mod:`worldcover.tile.products`: the block rasters assembled into the Map, Prob and InputQuality COGs and the
  tile's STAC item;
- :mod:`worldcover.tile.points`: the same chain on small chips around reference points (``model train --points``).

Where a tile's files live is :mod:`worldcover.layout`.
"""
