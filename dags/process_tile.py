"""WorkflowTemplate ``worldcover-process-tile-<version>``: the campaign's plan record, one tile, its failure list.

``process-tile`` waits for the cluster-wide semaphore (ConfigMap
``worldcover-limits``, key ``process-tile``): operators change how many tiles
run at once, across every campaign, without resubmitting anything.
"""

from hera.workflows import Container, Script, WorkflowTemplate
from hera.workflows import models as m

from worldcover.engines.argo import entry
from worldcover.engines.argo import parts as p


def bookkeeping_step(cfg: p.RenderConfig, name: str, source, deadline_s: int, **counted) -> Script:
    """A small campaign step (JSON in the output root, no pixels): a quarter core, 1 GiB. With ``counted``
    (outputs, inputs, metrics) it counts the campaign's tiles, once: no retryStrategy (see tile_metrics)."""
    return Script(
        name=name,
        source=source,
        resources=p.resources(cpu="250m", memory="1Gi", cpu_limit="1", disk="1Gi"),
        retry_strategy=None if counted else p.retry(cfg, deadline_s),
        **counted,
        active_deadline_seconds=deadline_s,
        env=p.base_env() + p.credentials_env(cfg),
        **p.script_kwargs(cfg, disk="1Gi"),
    )


#: the gate: runs only when more tiles failed than allowed (its task's ``when``), and fails the campaign
GATE_CODE = (
    "import os, sys; failed, allowed, root = sys.argv[1:4]\n"
    "msg = f'failed tiles: {failed}, more than the {allowed} allowed; the list is in ' "
    "f'{root.rstrip(chr(47))}/failed_tiles.json'\n"
    "if os.path.exists('/dev/termination-log'):  # Kubernetes' file: the node's message in the Argo UI\n"
    "    open('/dev/termination-log', 'w').write(msg)\n"
    "sys.exit(msg)"
)


def gate(cfg: p.RenderConfig) -> Container:
    """A one-line container that fails with the counts (no retries: the count will not change)."""
    return Container(
        name="gate",
        inputs=[m.Parameter(name=n) for n in ("failed", "allowed", "out_root")],
        image=cfg.image, image_pull_policy=cfg.image_pull_policy,
        command=["python", "-c", GATE_CODE, "{{inputs.parameters.failed}}", "{{inputs.parameters.allowed}}",
                 "{{inputs.parameters.out_root}}"],
        resources=p.resources(cpu="50m", memory="256Mi", cpu_limit="500m", disk="64Mi"),
        active_deadline_seconds=300,
        env=p.base_env(),
        security_context=p.container_security(cfg), pod_security_context=p.pod_security(cfg),
        volumes=p.scratch("64Mi"), **cfg.scheduling(),
    )


def build(cfg: p.RenderConfig) -> WorkflowTemplate:
    deadline = p.tile_deadline(cfg)
    with WorkflowTemplate(
        **p.shared_template(p.TEMPLATE_PROCESS_TILE, "WorldCover: process one tile",
                            "S1/S2 preprocessing, features and the 11-class LightGBM classifier for one 3x3 degree "
                            "tile: Map, Probability and InputQuality COGs plus a STAC item. A tile whose valid "
                            "outputs already exist is skipped; progress shows blocks done / blocks."),
        entrypoint="process-tile",
        service_account_name=cfg.service_account,
    ) as wt:
        Script(
            name="process-tile",
            source=entry.process_tile,
            inputs=[p.stage_input()],
            outputs=p.tile_outputs(),
            resources=p.resources(cpu="4", memory="24Gi", cpu_limit="8", disk="40Gi"),
            retry_strategy=p.retry(cfg, deadline),
            active_deadline_seconds=deadline,
            synchronization=p.tile_semaphore(),
            env=p.base_env() + p.credentials_env(cfg),
            **p.script_kwargs(cfg, disk="40Gi", spot=True),
        )
        bookkeeping_step(cfg, "write-plan", entry.write_plan, deadline_s=600)
        bookkeeping_step(cfg, "collect-failures", entry.collect_failures, deadline_s=3600,
                         outputs=p.failure_outputs(), inputs=[p.stage_input()], metrics=p.tile_metrics())
        gate(cfg)
    return wt
