"""Preprocessing of one block: Sentinel-2 masking and composites, Sentinel-1 composites.

The tile runner calls, per block::

    from worldcover.preprocess import s1, s2
    from worldcover import features

    s2_out = s2.preprocess_s2(s2_raw, year=year)           # -> S2Result(composites, quality)
    s1_out = s1.preprocess_s1(s1_raw, year=year)           # -> S1Result(db, count)
    feats = features.compute_features(s2_out.composites, s1_out.db, dem)   # (feature, y, x)

Modules: :mod:`.s2` (cloud and snow masks, dekad composites, quality layers), :mod:`.s1` (speckle filter,
monthly dB composites, observation counts), :mod:`.kernels` (the numpy kernels they and
:mod:`worldcover.features` share, and the wrappers that run them on numpy or dask alike).
"""
