"""Deployment files rendered from the topology and settings: compose, Kubernetes, systemd.

``conveyor deploy render TARGET`` calls :func:`render` and :func:`write`; the
repository's ``deploy/`` holds the defaults (a test renders them again and
compares, so they cannot drift). The names below load on first use, so the CLI
can read the targets and defaults without YAML or the settings.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    from conveyor.deploy.files import render, to_yaml, write
    from conveyor.deploy.plan import DeployPlan, make_plan

Target = Literal["compose", "kubernetes", "systemd"]
TARGETS: tuple[Target, ...] = ("compose", "kubernetes", "systemd")
DEFAULT_IMAGE = "conveyor:latest"
DEFAULT_NAMESPACE = "conveyor"

__all__ = [
    "DEFAULT_IMAGE",
    "DEFAULT_NAMESPACE",
    "TARGETS",
    "DeployPlan",
    "Target",
    "make_plan",
    "render",
    "to_yaml",
    "write",
]

_HOMES = {
    "DeployPlan": "conveyor.deploy.plan",
    "make_plan": "conveyor.deploy.plan",
    "render": "conveyor.deploy.files",
    "to_yaml": "conveyor.deploy.files",
    "write": "conveyor.deploy.files",
}


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module 'conveyor.deploy' has no attribute {name!r}")
    return getattr(importlib.import_module(home), name)
