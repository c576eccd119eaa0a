"""The Argo engine: a campaign plan rendered with hera into Argo Workflows objects,
validated against the Argo schema, and submitted to an Argo Server.

Public API, by module (``render`` and ``submit`` are module names, so import
the functions from their modules; the other names are also available here,
lazily, so that the runner entrypoints in :mod:`worldcover.engines.argo.entry`,
imported in every pod, stay light)::

    # worldcover.engines.argo.render
    render(plan, cfg=None, *, prefix=None, retry_of=None, version="v4.1.2") -> Rendering
    write(objects, out_dir) -> list[Path]
    render_step_calls(plan, cfg=None) -> list[StepCall]
    # worldcover.engines.argo.schema
    validate_object(obj, version="v4.1.2", strict=True) -> dict
    # worldcover.engines.argo.submit
    service(server, namespace, token=None, verify_ssl=True) -> WorkflowsService
    read_token(token_file=None) -> str | None
    submit(plan, svc, namespace=None, cfg=None) -> Submission
    campaign_status(name, svc, namespace=None) -> CampaignStatus
    retry(name, svc, namespace=None, cfg=None) -> Submission
    # worldcover.engines.argo.golden (the repository's argo/ folder, `make argo`)
    render_tree(cfg=None) -> dict[str, str]
    stale(root, files) -> list[str]
    write_tree(root, files) -> list[str]
"""

from importlib import import_module

_EXPORTS = {
    "RenderConfig": "parts",
    "Rendering": "render", "render_step_calls": "render", "write": "render",
    "ArgoSchemaError": "schema", "validate_object": "schema",
    "ArgoServerError": "submit", "CampaignStatus": "submit", "Submission": "submit", "campaign_status": "submit",
    "read_token": "submit", "retry": "submit", "service": "submit",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(import_module(f"{__name__}.{_EXPORTS[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
