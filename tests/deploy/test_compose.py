"""The compose file is valid against the Compose Specification and says what a host needs."""

from __future__ import annotations

import json
from typing import Any

import jsonschema
import pytest
import yaml

from conveyor.deploy import render
from tests.deploy.conftest import DATA, overridden, plan_for


def _compose(plan: Any = None) -> dict[str, Any]:
    files = render("compose", plan or plan_for())
    data = yaml.safe_load(files["docker-compose.yml"])
    assert isinstance(data, dict)
    return data


def _validator() -> jsonschema.Draft7Validator:
    schema = json.loads((DATA / "compose-spec.json").read_text())
    return jsonschema.Draft7Validator(schema)


def test_compose_file_is_valid_against_the_compose_specification() -> None:
    errors = [e.message for e in _validator().iter_errors(_compose())]
    assert errors == []


def test_the_schema_check_catches_a_misspelt_key() -> None:
    data = _compose()
    data["services"]["api"]["restrat"] = "always"
    assert list(_validator().iter_errors(data))


def test_broker_persists_with_aof_and_reads_its_password_from_a_secret() -> None:
    data = _compose()
    valkey = data["services"]["valkey"]
    script = " ".join(valkey["entrypoint"])
    assert "--appendonly yes" in script
    assert "--maxmemory-policy noeviction" in script
    assert "/run/secrets/broker_password" in script
    assert valkey["volumes"] == ["valkey-data:/data"]
    assert data["secrets"] == {"broker_password": {"file": "./secrets/broker_password"}}
    assert set(data["volumes"]) == {"valkey-data", "conveyor-store"}
    for name, service in data["services"].items():
        if name != "valkey":
            assert "REDIS_PASSWORD" not in service["environment"], name
            assert service["secrets"] == ["broker_password"], name


def test_services_cover_api_recorder_beat_and_a_worker_per_profile() -> None:
    services = _compose()["services"]
    assert services["api"]["command"][:2] == ["conveyor", "api"]
    assert services["recorder"]["command"] == ["conveyor", "recorder"]
    assert services["beat"]["command"] == ["conveyor", "beat"]
    for profile in ("critical", "generation", "processing", "batch", "monitoring"):
        worker = services[f"worker-{profile}"]
        assert worker["command"] == ["conveyor", "worker", "--profile", profile]
        assert worker["healthcheck"]["test"][1:3] == ["conveyor", "worker-probe"]
    manager = services["manager"]
    assert manager["environment"]["CONVEYOR_AUTOSCALE_BACKEND"] == "compose"
    assert "--profiles" in manager["command"]


def test_gpu_profiles_reserve_a_gpu_and_the_others_do_not() -> None:
    services = _compose()["services"]
    devices = services["worker-generation"]["deploy"]["resources"]["reservations"]["devices"]
    assert devices == [{"driver": "nvidia", "count": 1, "capabilities": ["gpu"]}]
    assert "resources" not in services["worker-processing"]["deploy"]


def test_stop_grace_covers_the_profiles_hard_time_limit() -> None:
    topology = overridden({"profiles": {"processing": {"time_limit": 120}}})
    services = _compose(plan_for(topology))["services"]
    assert services["worker-processing"]["stop_grace_period"] == "180s"
    # The settings' default hard limit (3600 s) for the others.
    assert services["worker-batch"]["stop_grace_period"] == "3660s"


def test_without_autoscaling_workers_are_fixed_and_no_manager_runs() -> None:
    data = _compose(plan_for(autoscale=False))
    assert "manager" not in data["services"]
    assert data["services"]["worker-processing"]["deploy"]["replicas"] == 2
    assert not list(_validator().iter_errors(data))


def test_flower_runs_only_under_its_compose_profile() -> None:
    flower = _compose()["services"]["flower"]
    assert flower["profiles"] == ["flower"]
    assert "celery flower" in flower["entrypoint"][-1]


@pytest.mark.parametrize("profiles", [["processing"], ["processing", "generation"]])
def test_profiles_narrow_the_workers(profiles: list[str]) -> None:
    from conveyor.deploy import make_plan
    from conveyor.topology import default_topology
    from tests.deploy.conftest import default_settings

    plan = make_plan(default_settings(), default_topology(), profiles)
    services = _compose(plan)["services"]
    assert sorted(s for s in services if s.startswith("worker-")) == sorted(
        f"worker-{p}" for p in profiles
    )


def test_every_volume_secret_and_dependency_used_is_declared() -> None:
    data = _compose()
    for name, service in data["services"].items():
        for volume in service.get("volumes", []):
            source = volume.split(":", 1)[0]
            if not source.startswith(("/", "$", ".")):
                assert source in data["volumes"], (name, source)
        for secret in service.get("secrets", []):
            assert secret in data["secrets"], (name, secret)
        for dependency in service.get("depends_on", {}):
            assert dependency in data["services"], (name, dependency)
