"""WorkflowTemplate ``worldcover-batch-<version>``: one batch of a campaign's tiles, fanned out by ``withParam``.

A parent campaign workflow creates one child Workflow per batch from this
template (one shared template for every campaign and batch: nothing per
campaign to overwrite or delete). The child's ``tiles`` parameter, a JSON list
of tile ids, is the fan-out: one ``process-tile`` node per tile, shown as
``tile(0:N00E006)``; the other parameters are the campaign's, the same for
every tile. No tile's failure stops the others.
"""

from hera.workflows import DAG, Task, WorkflowTemplate
from hera.workflows import models as m

from worldcover.engines.argo import parts as p

TILES = "tiles"


def build(cfg: p.RenderConfig) -> WorkflowTemplate:
    spec = p.workflow_spec(cfg, None, parallelism=cfg.tile_parallelism, ttl=False)
    with WorkflowTemplate(
        **p.shared_template(p.TEMPLATE_BATCH, "WorldCover: one batch of tiles",
                            "A child workflow of a campaign: process-tile for each tile of the `tiles` parameter "
                            "(a JSON list of tile ids), with the campaign's year, source, model and output root."),
        entrypoint="main",
        arguments=[m.Parameter(name=TILES, description="JSON list of the batch's tile ids, e.g. [\"N45E003\"]")]
        + [m.Parameter(name=k, description=d) for k, d in p.TILE_PARAMETERS.items()],
        **spec,
    ) as wt, DAG(name="main", fail_fast=False):
        Task(
            name="tile",
            template_ref=m.TemplateRef(name=p.TEMPLATE_PROCESS_TILE, template="process-tile"),
            with_param=p.workflow_parameter(TILES),
            arguments={"tile": "{{item}}", **{k: p.workflow_parameter(k) for k in p.TILE_PARAMETERS}},
        )
    return wt
