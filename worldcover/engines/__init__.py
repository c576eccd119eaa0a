"""Engines that run a campaign plan: ``local`` (dask on this machine or a dask cluster) and ``argo``
(hera-rendered Argo Workflows submitted to an Argo Server)."""
