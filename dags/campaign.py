"""A campaign as Argo objects: the plan's step calls as DAG tasks.

The calls come from :func:`worldcover.campaign.calls.step_calls` (the same
list the local engine runs): ``write_plan`` (the campaign records its plan as
``campaign.json`` in its output root; every tile or batch waits for it), one
``process_tile`` per tile, then ``collect_failures``, ``merge`` and ``validate``,
and a final ``gate``.

* One batch of tiles: a single Workflow whose DAG writes the plan, runs the
  tiles (tasks named by tile id, e.g. ``n00e006``), then the campaign steps.
* More than one batch: workflow of workflows. A parent Workflow applies one
  child Workflow per batch, named ``<parent>-b000`` (so a retried or repeated
  ``apply`` is a no-op, never a duplicate), from the shared template
  ``worldcover-batch-<version>`` fed that batch's tiles as a JSON list (a
  ``withParam`` fan-out, dags/batch.py); it waits for the child's phase, then
  runs the campaign steps. Nothing is created per campaign but workflows, each
  object stays small and each workflow well under 1,000 nodes. The parent's
  exit handler stops its children when it did not succeed (stopping or
  failing the parent does not cascade on its own).

No tile's failure stops the others (``failFast: false``); collect-failures
starts once every tile or batch has *finished* (a batch whose resource pod was
lost is retried, and never counts as finished). The gate fails the campaign
when more tiles failed than ``max-failed-tiles`` (a workflow parameter, set
again on resubmission); merge and validate still run on the finished tiles.
"""

import json

from hera.workflows import DAG, Task, Workflow
from hera.workflows import models as m

from worldcover.campaign.calls import phases, step_calls
from worldcover.engines.argo import parts as p
from worldcover.errors import DataError

#: step function -> (WorkflowTemplate, template) that runs it
STEP_TEMPLATES = {
    "write_plan": (p.TEMPLATE_PROCESS_TILE, "write-plan"),
    "process_tile": (p.TEMPLATE_PROCESS_TILE, "process-tile"),
    "collect_failures": (p.TEMPLATE_PROCESS_TILE, "collect-failures"),
    "merge": (p.TEMPLATE_MERGE, "merge"),
    "validate": (p.TEMPLATE_VALIDATE, "validate"),
}


def step_task(call, plan, depends=None) -> Task:
    """A DAG task calling one step through its WorkflowTemplate, arguments spelt out."""
    if call.name not in STEP_TEMPLATES:
        raise DataError(f"no Argo template runs step {call.name!r}: add it to STEP_TEMPLATES in dags/campaign.py")
    template, entry = STEP_TEMPLATES[call.name]
    tile = call.arguments.get("tile")
    extra = {"stage": p.stage_label(plan)} if call.name in ("process_tile", "collect_failures") else {}
    return Task(
        name=p.task_name(tile) if tile else call.name.replace("_", "-"),
        template_ref=m.TemplateRef(name=template, template=entry),
        arguments=p.step_arguments(call, extra),
        depends=depends,
    )


def setup_steps(calls, plan) -> str | None:
    """write_plan (in order, if more): what every tile or batch depends on (None when nothing)."""
    depends = None
    for call in calls:
        depends = step_task(call, plan, depends).name
    return depends


def campaign_steps(calls, plan, after: list[str], *, errored: bool = True) -> None:
    """collect_failures -> merge -> validate -> gate, the first once everything in ``after`` has finished."""
    depends = p.all_done(after, errored=errored)
    for call in calls:
        depends = step_task(call, plan, depends).name
    Task(name="gate", template_ref=m.TemplateRef(name=p.TEMPLATE_PROCESS_TILE, template="gate"), depends=depends,
         when="{{tasks.collect-failures.outputs.parameters.failed}} > " + p.workflow_parameter(p.GATE_PARAMETER),
         arguments={"failed": "{{tasks.collect-failures.outputs.parameters.failed}}",
                    "allowed": p.workflow_parameter(p.GATE_PARAMETER), "out_root": plan.out_root})


def single_workflow(plan, cfg, setup_calls, tile_calls, final_calls, prefix, extra_labels) -> Workflow:
    with Workflow(
        generate_name=f"{prefix}-",
        labels={**p.campaign_labels(plan, "campaign"), **extra_labels},
        annotations={**p.campaign_ui(plan, len(tile_calls), 1), **p.plan_annotation(plan)},
        entrypoint="main",
        arguments=p.campaign_arguments(cfg, plan),
        metrics=p.campaign_metrics(plan),
        **p.workflow_spec(cfg, plan, parallelism=cfg.tile_parallelism),
    ) as wf, DAG(name="main", fail_fast=False):
        first = setup_steps(setup_calls, plan)
        for call in tile_calls:
            step_task(call, plan, first)
        campaign_steps(final_calls, plan, after=[p.task_name(c.arguments["tile"]) for c in tile_calls])
    return wf


def tile_arguments(plan, calls) -> dict[str, str]:
    """What every tile of the campaign gets besides its id (one value each: the batch template's parameters)."""
    args = [p.step_arguments(c, {"stage": p.stage_label(plan)}) for c in calls]
    shared = {k: v for k, v in args[0].items() if k != "tile"}
    differ = any({k: v for k, v in a.items() if k != "tile"} != shared for a in args)
    if differ or set(shared) != set(p.TILE_PARAMETERS):
        raise DataError("tile calls differ in more than the tile, or not in worldcover-batch's parameters "
                        f"({sorted(shared)}): update TILE_PARAMETERS in worldcover/engines/argo/parts.py")
    return shared


def parent_workflow(plan, cfg, setup_calls, batches, final_calls, prefix, extra_labels) -> Workflow:
    """Applies one child Workflow per batch (the batch template fed its tiles), then runs the campaign steps;
    stops the children on exit."""
    n_tiles = sum(len(calls) for calls in batches)
    with Workflow(
        generate_name=f"{prefix}-",
        labels={**p.campaign_labels(plan, "parent"), **extra_labels},
        annotations={**p.campaign_ui(plan, n_tiles, len(batches)), **p.plan_annotation(plan)},
        entrypoint="main",
        on_exit="on-exit",
        arguments=p.campaign_arguments(cfg, plan),
        metrics=p.campaign_metrics(plan),
        **p.workflow_spec(cfg, plan, parallelism=cfg.batch_parallelism),
    ) as wf:
        shared = tile_arguments(plan, [c for calls in batches for c in calls])
        batch, stop = p.batch_resource(plan, cfg, extra_labels, shared), p.stop_resource()
        names = [f"b{index:03d}" for index in range(len(batches))]
        with DAG(name="on-exit"):
            # a child not created yet is not found: nothing to stop, which is fine
            Task(name="stop-children", template=stop, arguments={"batch": "{{item}}"}, with_items=names,
                 when="{{workflow.status}} != Succeeded", continue_on=m.ContinueOn(failed=True))
        with DAG(name="main", fail_fast=False):
            first = setup_steps(setup_calls, plan)
            for name, calls in zip(names, batches, strict=True):
                tiles = json.dumps([c.arguments["tile"] for c in calls], separators=(",", ":"))
                Task(name=name, template=batch, depends=first, arguments={"batch": name, "tiles": tiles})
            campaign_steps(final_calls, plan, after=names, errored=False)
    return wf


def build(plan, cfg: p.RenderConfig, *, prefix: str | None = None, retry_of: str | None = None) -> list:
    """The campaign's objects: [Workflow] (one batch) or [parent Workflow] (its children come from
    the shared batch template)."""
    prefix = prefix or plan.name
    extra = {p.LABEL_RETRY_OF: retry_of} if retry_of else {}
    setup_calls, tile_calls, final_calls = phases(step_calls(plan))
    by_tile = {c.arguments["tile"]: c for c in tile_calls}
    groups = [[by_tile[t] for t in batch] for batch in plan.batches()]
    if len(groups) == 1:
        return [single_workflow(plan, cfg, setup_calls, groups[0], final_calls, prefix, extra)]
    return [parent_workflow(plan, cfg, setup_calls, groups, final_calls, prefix, extra)]
