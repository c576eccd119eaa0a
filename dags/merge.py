"""WorkflowTemplate ``worldcover-merge-<version>``: finished tiles -> mosaic (VRT, overviews, STAC collection)."""

from hera.workflows import Script, WorkflowTemplate

from worldcover.engines.argo import entry
from worldcover.engines.argo import parts as p


def build(cfg: p.RenderConfig) -> WorkflowTemplate:
    with WorkflowTemplate(
        **p.shared_template(p.TEMPLATE_MERGE, "WorldCover: merge tiles into the mosaic",
                            "Merges a campaign's finished tiles into a VRT with an overview pyramid and a STAC "
                            "collection."),
        entrypoint="merge",
        service_account_name=cfg.service_account,
    ) as wt:
        Script(
            name="merge",
            source=entry.merge,
            resources=p.resources(cpu="4", memory="32Gi", cpu_limit="8", disk="100Gi"),
            retry_strategy=p.retry(cfg, cfg.step_deadline_s),
            active_deadline_seconds=cfg.step_deadline_s,
            env=p.base_env() + p.credentials_env(cfg),
            **p.script_kwargs(cfg, disk="100Gi"),
        )
    return wt
