"""WorkflowTemplate ``worldcover-process-tile``: the campaign's plan record, one tile, and its failure list."""

from hera.workflows import Script, WorkflowTemplate

from worldcover.engines.argo import entry, parts as p


def bookkeeping_step(cfg: p.RenderConfig, name: str, source, deadline_s: int) -> Script:
    """A small campaign step (JSON in the output root, no pixels): a quarter core, 512 MiB."""
    return Script(
        name=name,
        source=source,
        resources=p.resources(cpu="250m", memory="512Mi", cpu_limit="1", memory_limit="1Gi", disk="1Gi"),
        retry_strategy=p.retry(cfg),
        active_deadline_seconds=deadline_s,
        env=p.base_env() + p.credentials_env(cfg),
        **p.script_kwargs(cfg, disk="1Gi"),
    )


def build(cfg: p.RenderConfig) -> WorkflowTemplate:
    with WorkflowTemplate(
        name=p.TEMPLATE_PROCESS_TILE,
        labels={**p.PART_OF, p.LABEL_ROLE: "template"},
        annotations=p.ui("WorldCover: process one tile",
                         "S1/S2 preprocessing, features and the 11-class LightGBM classifier for one 3x3 degree "
                         "tile: Map, Probability and InputQuality COGs plus a STAC item. A tile whose valid "
                         "outputs already exist is skipped."),
        entrypoint="process-tile",
        service_account_name=cfg.service_account,
    ) as wt:
        Script(
            name="process-tile",
            source=entry.process_tile,
            inputs=[p.stage_input()],
            outputs=p.tile_outputs(),
            resources=p.resources(cpu="4", memory="16Gi", cpu_limit="8", memory_limit="24Gi", disk="40Gi"),
            retry_strategy=p.retry(cfg),
            active_deadline_seconds=cfg.tile_deadline_s,
            metrics=p.tile_metrics(),
            env=p.base_env() + p.credentials_env(cfg),
            **p.script_kwargs(cfg, disk="40Gi"),
        )
        bookkeeping_step(cfg, "write-plan", entry.write_plan, deadline_s=600)
        bookkeeping_step(cfg, "collect-failures", entry.collect_failures, deadline_s=3600)
    return wt
