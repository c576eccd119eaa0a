"""The repository's ``argo/`` folder, regenerated from ``dags/``: ``worldcover campaign render-golden`` (``make argo``).

Writes the shared WorkflowTemplates, a representative campaign per stage
(1pct, 10pct, 100pct for 2021), the install manifests, a kustomization and
the install guide. The output is deterministic; ``tests/test_argo_render.py``
fails when the committed ``argo/`` differs from a fresh render. Files under
the managed folders that a render no longer produces are removed.
"""

from __future__ import annotations

from pathlib import Path

from worldcover.campaign.plan import CampaignPlan
from worldcover.engines.argo import install
from worldcover.engines.argo.guide import README
from worldcover.engines.argo.parts import RenderConfig
from worldcover.engines.argo.render import (
    HEADER,
    check,
    render_campaign_objects,
    render_launcher,
    render_templates,
    to_yaml,
)
from worldcover.storage import atomic_write_text

REPRESENTATIVE_YEAR = 2021
REPRESENTATIVE_STAGES = ("1pct", "10pct", "100pct")
REPRESENTATIVE_OUT_ROOT = "s3://worldcover/campaigns"
#: folders a render owns entirely: a file in them that the render does not produce is stale
MANAGED = ("templates", "campaigns", "install")
#: the committed folder, beside the package in a checkout of the repository
REPO_FOLDER = Path(__file__).resolve().parents[3] / "argo"


def representative_plans() -> list[CampaignPlan]:
    """One campaign per stage, for the representative year: what the folder shows a reader of each stage."""
    return [CampaignPlan.create(f"wc-{s}-{REPRESENTATIVE_YEAR}", REPRESENTATIVE_YEAR, stage=s,
                                out_root=REPRESENTATIVE_OUT_ROOT, engine="argo") for s in REPRESENTATIVE_STAGES]


def render_tree(cfg: RenderConfig | None = None) -> dict[str, str]:
    """Relative path -> file text of everything under argo/, each object checked against the Argo schema."""
    cfg = cfg or RenderConfig()
    templates = render_templates(cfg)
    launcher = render_launcher(cfg)
    check([launcher], cfg)
    files: dict[str, str] = {launcher.path: launcher.yaml}
    for o in templates:
        files[o.path] = o.yaml
    for plan in representative_plans():
        objects = render_campaign_objects(plan, cfg)
        check(templates + objects, cfg)
        for o in objects:
            files[o.path] = o.yaml
    manifests = install.manifests(cfg)
    for path, obj in manifests.items():
        install.check_manifest(obj)
        files[path] = HEADER + to_yaml(obj)
    resources = list(manifests) + [o.path for o in templates] + [launcher.path]
    files["kustomization.yaml"] = HEADER + to_yaml(install.kustomization(resources))
    files["README.md"] = README
    return dict(sorted(files.items()))


def stale(root: Path, files: dict[str, str]) -> list[str]:
    """Paths that differ between ``root`` and ``files`` (missing, changed or extra)."""
    out = [p for p, text in files.items() if not (root / p).is_file() or (root / p).read_text() != text]
    for sub in MANAGED:
        for f in sorted((root / sub).rglob("*")) if (root / sub).is_dir() else []:
            rel = f.relative_to(root).as_posix()
            if f.is_file() and rel not in files:
                out.append(rel)
    return sorted(set(out))


def write_tree(root: Path, files: dict[str, str]) -> list[str]:
    """Bring ``root`` in line with ``files``; return the paths written or removed."""
    changed = stale(root, files)
    for rel in changed:
        dest = root / rel
        if rel in files:
            atomic_write_text(dest, files[rel])
        elif dest.is_file():
            dest.unlink()
    for sub in MANAGED:  # drop folders left empty
        for d in sorted((root / sub).rglob("*"), reverse=True) if (root / sub).is_dir() else []:
            if d.is_dir() and not any(d.iterdir()):
                d.rmdir()
    return changed
