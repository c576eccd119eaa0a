"""Python-defined Argo DAGs (hera). Edit these; `make argo` renders them into argo/.

One module per WorkflowTemplate (process_tile, batch, merge, validate, launch) or campaign
(campaign). Each exposes ``build(...)`` returning hera objects. The business
logic lives in :mod:`worldcover.campaign.steps`; the building blocks
(security, credentials, metrics, retries) in :mod:`worldcover.engines.argo.parts`.
"""
