"""WorkflowTemplate ``worldcover-validate-<version>``: accuracy report of a campaign's mosaic.

Campaigns call its ``validate`` template; the validation team launches it on
its own from the Argo UI (its entrypoint ``launch`` takes the workflow's
parameters, each described in the submit form), e.g. with a labelled
reference file once the sampling design has been labelled.
"""

from hera.workflows import DAG, Script, Task, WorkflowTemplate
from hera.workflows import models as m

from worldcover.engines.argo import entry
from worldcover.engines.argo import parts as p

#: the launch form: name -> (description, default or None for required)
LAUNCH_PARAMETERS = {
    "out_root": ("The campaign's output root (s3://bucket/prefix), holding its mosaic.", None),
    "campaign": ("The campaign's name (as in campaign.json).", None),
    "year": ("Year of the map.", "2021"),
    "reference": ("Labelled samples: an s3:// CSV (the design's samples.csv with reference_class filled), "
                  "sim:s3://ARCHIVE for a simulated archive's truth, or empty to stop at the sampling design.", ""),
    "n": ("Sample size of the design (0: the design's default).", "0"),
}


def build(cfg: p.RenderConfig) -> WorkflowTemplate:
    with WorkflowTemplate(
        **p.shared_template(p.TEMPLATE_VALIDATE, "WorldCover: validate the mosaic",
                            "Error matrix, overall/user's/producer's accuracy and area estimates with 95 % "
                            "confidence intervals (Olofsson et al. 2014) against reference samples. Submit it "
                            "from the UI with a campaign's output root and a labelled reference file."),
        entrypoint="launch",
        arguments=[m.Parameter(name=k, description=d, **({} if v is None else {"value": v}))
                   for k, (d, v) in LAUNCH_PARAMETERS.items()],
        service_account_name=cfg.service_account,
        pod_metadata=m.Metadata(labels={**p.PART_OF, p.LABEL_ROLE: "validate"}),
    ) as wt:
        validate = Script(
            name="validate",
            source=entry.validate,
            resources=p.resources(cpu="2", memory="16Gi", cpu_limit="4", disk="20Gi"),
            retry_strategy=p.retry(cfg, cfg.step_deadline_s),
            active_deadline_seconds=cfg.step_deadline_s,
            env=p.base_env() + p.credentials_env(cfg),
            **p.script_kwargs(cfg, disk="20Gi"),
        )
        with DAG(name="launch"):
            Task(name="validate", template=validate,
                 arguments={k: p.workflow_parameter(k) for k in LAUNCH_PARAMETERS})
    return wt
