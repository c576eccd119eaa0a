"""Regenerate ``argo/`` from ``dags/``: ``python -m worldcover.render_all argo`` (``make argo``).

Writes the shared WorkflowTemplates, a representative campaign per stage
(1pct, 10pct, 100pct for 2021), the install manifests and a kustomization.
The output is deterministic; ``tests/test_argo_render.py`` fails when the
committed ``argo/`` differs from a fresh render. Files under the managed
folders that a render no longer produces are removed.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

REPRESENTATIVE_YEAR = 2021
REPRESENTATIVE_STAGES = ("1pct", "10pct", "100pct")
REPRESENTATIVE_OUT_ROOT = "s3://worldcover/campaigns"
MANAGED = ("templates", "campaigns", "install")
from worldcover.engines.argo.guide import README  # noqa: E402  (argo/README.md: the install guide)


def representative_plans():
    from worldcover.campaign.plan import CampaignPlan

    return [CampaignPlan.create(f"wc-{s}-{REPRESENTATIVE_YEAR}", REPRESENTATIVE_YEAR, stage=s,
                                out_root=REPRESENTATIVE_OUT_ROOT, engine="argo") for s in REPRESENTATIVE_STAGES]


def render_tree(cfg=None) -> dict[str, str]:
    """Relative path -> file text of everything under argo/."""
    from worldcover.engines.argo import install
    from worldcover.engines.argo.parts import RenderConfig
    from worldcover.engines.argo.render import (
        HEADER,
        check,
        render_campaign_objects,
        render_launcher,
        render_templates,
        to_yaml,
    )

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
    from worldcover.storage import atomic_write_text as write_text

    changed = stale(root, files)
    for rel in changed:
        dest = root / rel
        if rel in files:
            write_text(dest, files[rel])
        elif dest.is_file():
            dest.unlink()
    for sub in MANAGED:  # drop folders left empty
        for d in sorted((root / sub).rglob("*"), reverse=True) if (root / sub).is_dir() else []:
            if d.is_dir() and not any(d.iterdir()):
                d.rmdir()
    return changed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m worldcover.render_all", description=__doc__.splitlines()[0])
    parser.add_argument("target", choices=["argo"], help="what to regenerate")
    parser.add_argument("--out", default=None, help="output folder (default: argo/ of the repository)")
    parser.add_argument("--check", action="store_true", help="only report stale files; exit 1 if any")
    args = parser.parse_args(argv)
    from worldcover.errors import WorldCoverError

    root = Path(args.out) if args.out else Path(__file__).resolve().parents[1] / "argo"
    try:
        files = render_tree()
    except WorldCoverError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.check:
        diff = stale(root, files)
        for p in diff:
            print(f"stale: {p}")
        return 1 if diff else 0
    changed = write_tree(root, files)
    print(f"{root}: {len(files)} files, {len(changed)} changed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
