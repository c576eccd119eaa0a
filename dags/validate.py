"""WorkflowTemplate ``worldcover-validate``: accuracy report of a campaign's mosaic."""

from hera.workflows import Script, WorkflowTemplate

from worldcover.engines.argo import entry, parts as p


def build(cfg: p.RenderConfig) -> WorkflowTemplate:
    with WorkflowTemplate(
        name=p.TEMPLATE_VALIDATE,
        labels={**p.PART_OF, p.LABEL_ROLE: "template"},
        annotations=p.ui("WorldCover: validate the mosaic",
                         "Error matrix, overall/user's/producer's accuracy and area estimates with 95 % "
                         "confidence intervals (Olofsson et al. 2014) against reference samples."),
        entrypoint="validate",
        service_account_name=cfg.service_account,
    ) as wt:
        Script(
            name="validate",
            source=entry.validate,
            resources=p.resources(cpu="2", memory="8Gi", cpu_limit="4", memory_limit="16Gi", disk="20Gi"),
            retry_strategy=p.retry(cfg),
            active_deadline_seconds=cfg.step_deadline_s,
            env=p.base_env() + p.credentials_env(cfg),
            **p.script_kwargs(cfg, disk="20Gi"),
        )
    return wt
