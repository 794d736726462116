"""Deployment files rendered from the default topology and default settings."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from conveyor.deploy import DeployPlan, Target, make_plan, render
from conveyor.settings import Settings
from conveyor.topology import Topology, apply_overrides, default_topology

DATA = Path(__file__).parent / "data"


def default_settings(**values: Any) -> Settings:
    """The settings' defaults whatever the environment says (plus ``values``)."""
    return Settings.model_construct(**values)


def plan_for(topology: Topology | None = None, **settings: Any) -> DeployPlan:
    """The plan for every profile of ``topology`` (default: the built-in table)."""
    return make_plan(default_settings(**settings), topology or default_topology())


def overridden(toml_data: dict[str, Any]) -> Topology:
    """The default topology with a ``conveyor.toml``'s tables applied."""
    return apply_overrides(default_topology(), toml_data)


def documents(files: dict[str, str], name: str) -> list[Any]:
    """The YAML documents of one rendered file."""
    return [doc for doc in yaml.safe_load_all(files[name]) if doc is not None]


@pytest.fixture
def rendered() -> Any:
    """``rendered(target)``: the default render of ``target``."""

    def build(target: Target, plan: DeployPlan | None = None) -> dict[str, str]:
        return render(target, plan or plan_for())

    return build
