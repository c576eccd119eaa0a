"""WorkflowTemplate ``worldcover-campaign-<version>``: launch a campaign from the Argo UI.

*Workflow Templates -> worldcover-campaign-<version> -> Submit* shows a form
(stage as a choice, year, model, source, output root, ..., each described).
Its one pod runs ``worldcover campaign submit`` in the image against the
Argo Server, so a campaign launched from the UI is rendered, validated and
linted exactly as one launched from the CLI. The pod runs as the
``worldcover-launcher`` ServiceAccount (install/launcher.yaml), whose token
the Argo Server accepts (``--auth-mode=client``) and which may only create
workflows and the campaign's templates.
"""

from hera.workflows import DAG, Container, Task, WorkflowTemplate
from hera.workflows import models as m

from worldcover.engines.argo import parts as p

LAUNCHER_ACCOUNT = "worldcover-launcher"
TOKEN_FILE = "/var/run/secrets/kubernetes.io/serviceaccount/token"
#: the form: name -> (description, default or None for required, choices)
FORM = {
    "stage": ("Nested stage of the global tile list: 1pct validates the chain, then 10pct, then 100pct.", "1pct",
              ["1pct", "10pct", "100pct"]),
    "year": ("Year of the map.", "2021", None),
    "out_root": ("Output root on object storage (s3://bucket/prefix); one campaign year per root.", None, None),
    "model": ("'default' (the model in the image) or an s3:// URI of a model folder with its card.", "default", None),
    "source": ("Catalogue: planetary-computer, earth-search, sentinelhub or a STAC API URL.", "planetary-computer",
               None),
    "name": ("Campaign name (empty: wc-<stage>-<year>).", "", None),
    "reference": ("Labelled samples for validation (s3:// CSV), or empty to stop at the sampling design.", "", None),
    "argo_server": ("The Argo Server as seen from a pod (a certificate the image trusts, or http).",
                    "https://argo-server.argo:2746", None),
}
OPTIONS = {"stage": "--stage", "year": "--year", "out_root": "--out-root", "model": "--model", "source": "--source",
           "name": "--name", "reference": "--reference", "argo_server": "--argo-server"}


def build(cfg: p.RenderConfig) -> WorkflowTemplate:
    with WorkflowTemplate(
        **p.shared_template(p.template_name("worldcover-campaign"), "WorldCover: launch a campaign",
                            "Renders, validates and submits a campaign (stage, year, model, source, output root) "
                            "as `worldcover campaign submit` does; the campaign's own workflow then appears in "
                            "the workflow list."),
        entrypoint="launch",
        arguments=[m.Parameter(name=k, description=d, **({} if v is None else {"value": v}),
                               **({"enum": c} if c else {})) for k, (d, v, c) in FORM.items()],
        service_account_name=LAUNCHER_ACCOUNT,
        pod_metadata=m.Metadata(labels={**p.PART_OF, p.LABEL_ROLE: "launcher"}),
    ) as wt:
        args = []
        for k, flag in OPTIONS.items():
            args += [flag, p.input_parameter(k)]
        submit = Container(
            name="submit",
            inputs=[m.Parameter(name=k, **({"enum": c} if c else {})) for k, (_, _, c) in FORM.items()],
            image=cfg.image, image_pull_policy=cfg.image_pull_policy,
            command=["worldcover", "campaign", "submit"],
            args=args + ["--namespace", "{{workflow.namespace}}", "--token-file", TOKEN_FILE, "--json"],
            resources=p.resources(cpu="250m", memory="1Gi", cpu_limit="1", disk="1Gi"),
            active_deadline_seconds=600,
            env=p.base_env(),
            automount_service_account_token=True,  # the launcher's token: how it authenticates to the server
            security_context=p.container_security(cfg), pod_security_context=p.pod_security(cfg),
            volumes=p.scratch("1Gi"), **cfg.scheduling(),
        )
        with DAG(name="launch"):
            Task(name="submit", template=submit,
                 arguments={k: p.workflow_parameter(k) for k in FORM})
    return wt
