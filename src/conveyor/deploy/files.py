"""Rendering a deployment plan to files: YAML for compose and Kubernetes, units for systemd."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from conveyor.deploy import Target, compose, kubernetes, systemd
from conveyor.deploy.plan import DeployPlan


class _Dumper(yaml.SafeDumper):
    """Writes a shared value out in full each time: no ``&id001`` anchors for readers."""

    def ignore_aliases(self, data: Any) -> bool:
        return True


def to_yaml(*documents: Any) -> str:
    """``documents`` as one YAML stream (``---`` between them), keys in their given order."""
    return "---\n".join(
        yaml.dump(doc, Dumper=_Dumper, sort_keys=False, default_flow_style=False, width=100)
        for doc in documents
    )


def render(target: Target, plan: DeployPlan) -> dict[str, str]:
    """Relative path → text of every file ``target`` consists of."""
    if target == "compose":
        return {compose.FILE_NAME: compose.HEADER + to_yaml(compose.compose_file(plan))}
    if target == "kubernetes":
        files = {
            f"kubernetes/{name}": _k8s_header(name) + to_yaml(*build(plan))
            for name, build in kubernetes.FILES.items()
        }
        kustomization = {
            "apiVersion": "kustomize.config.k8s.io/v1beta1",
            "kind": "Kustomization",
            "namespace": plan.namespace,
            "resources": kubernetes.BASE,
        }
        files["kubernetes/kustomization.yaml"] = _k8s_header("") + to_yaml(kustomization)
        return files
    return {f"systemd/{name}": text for name, text in systemd.units(plan).items()}


def _k8s_header(name: str) -> str:
    lines = ["# Rendered by `conveyor deploy render kubernetes`: render again rather than edit."]
    if name == "secrets.yaml":
        lines.append("# Not applied by `kubectl apply -k`: replace every CHANGE-ME and apply this")
        lines.append("# file, or create the two Secrets with kubectl (docs/deployment.md).")
    if name in ("keda.yaml", "hpa.yaml"):
        lines.append("# An alternative to the manager's scaling: apply it, and drop these profiles")
        lines.append("# from the manager's --profiles, so one autoscaler drives each Deployment.")
    if name == "hpa.yaml":
        lines.append(
            "# Needs prometheus-adapter exposing conveyor_profile_backlog as an external metric."
        )
    return "\n".join(lines) + "\n"


def write(files: dict[str, str], out: Path) -> list[Path]:
    """Write ``files`` under ``out``; the paths written."""
    written = []
    for relative, text in files.items():
        path = out / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        written.append(path)
    return written
