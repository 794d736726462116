"""The docker compose file: broker, API, recorder, beat, workers per profile, manager, Flower.

One file, ``docker-compose.yml``, valid against the compose specification:

* ``valkey`` with AOF persistence, ``noeviction``, and its password from the
  ``broker_password`` secret (never in the file, never on a command line);
* ``api``, ``recorder`` (the job store's single writer; SQLite on a named
  volume every Conveyor service mounts) and ``beat`` (one instance: it schedules periodic jobs);
* ``worker-PROFILE`` per profile, with a GPU reservation for GPU profiles and a
  ``stop_grace_period`` above the profile's hard time limit (warm shutdown);
* ``manager`` (``conveyor autoscale`` with the compose back end) scaling those
  services, or fixed replica counts when ``CONVEYOR_AUTOSCALE=false``;
* ``flower`` under the ``flower`` compose profile (``--profile flower``).
"""

from __future__ import annotations

from typing import Any

from conveyor.deploy.plan import (
    API_PORT,
    BROKER_PORT,
    FLOWER_PORT,
    HEARTBEAT_FILE,
    DeployPlan,
    ProfilePlan,
)

PROJECT = "conveyor"
FILE_NAME = "docker-compose.yml"
SECRET = "broker_password"
SECRET_PATH = f"/run/secrets/{SECRET}"
STORE_DIR = "/var/lib/conveyor"
VALKEY_IMAGE = "valkey/valkey:8.1"

HEADER = """\
# Conveyor on one host with docker compose. Rendered by `conveyor deploy render compose`
# from conveyor.toml's profiles and the settings: render again rather than edit.
#
#   docker build -f deploy/Dockerfile --build-arg EXTRAS=flower -t conveyor:latest .
#   docker build -f deploy/Dockerfile --target manager -t conveyor-manager:latest .
#   cd deploy && mkdir -p secrets && openssl rand -hex 32 > secrets/broker_password
#   docker compose up -d                      # add --profile flower for Flower on :5555
#   docker compose exec api conveyor keys create --tenant default --scopes submit,read
"""


def service_name(profile: str) -> str:
    """The compose service that runs ``profile``'s workers (``CONVEYOR_COMPOSE_SERVICE``)."""
    return f"worker-{profile}"


def _common(plan: DeployPlan) -> dict[str, Any]:
    """What every Conveyor service shares: image, broker address, secret, restart."""
    return {
        "image": f"${{CONVEYOR_IMAGE:-{plan.image}}}",
        "restart": "unless-stopped",
        "env_file": [{"path": ".env", "required": False}],
        "environment": {
            "REDIS_URL": f"redis://valkey:{BROKER_PORT}/0",
            # The image's entrypoint reads VAR_FILE into VAR (deploy/docker-entrypoint.sh).
            "REDIS_PASSWORD_FILE": SECRET_PATH,
            "DATABASE_URL": f"sqlite:///{STORE_DIR}/jobs.db",
        },
        "secrets": [SECRET],
        "volumes": [f"conveyor-store:{STORE_DIR}"],
        "depends_on": {"valkey": {"condition": "service_healthy"}},
        # The image's check is a worker's heartbeat; workers and the API set their own.
        "healthcheck": {"disable": True},
    }


def _valkey() -> dict[str, Any]:
    # The password goes into a config file include, so `ps` never shows it.
    script = (
        f'printf \'requirepass "%s"\\n\' "$$(cat {SECRET_PATH})" > /tmp/auth.conf && '
        "exec docker-entrypoint.sh valkey-server --include /tmp/auth.conf "
        "--appendonly yes --appendfsync everysec --maxmemory-policy noeviction"
    )
    return {
        "image": VALKEY_IMAGE,
        "restart": "unless-stopped",
        "entrypoint": ["sh", "-c", script],
        "secrets": [SECRET],
        "volumes": ["valkey-data:/data"],
        "healthcheck": {
            "test": [
                "CMD-SHELL",
                f'REDISCLI_AUTH="$$(cat {SECRET_PATH})" valkey-cli ping | grep -q PONG',
            ],
            "interval": "5s",
            "timeout": "3s",
            "retries": 10,
        },
    }


def _worker(plan: DeployPlan, profile: ProfilePlan) -> dict[str, Any]:
    service = _common(plan)
    service["command"] = ["conveyor", "worker", "--profile", profile.name]
    service["environment"]["CONVEYOR_HEARTBEAT_FILE"] = HEARTBEAT_FILE
    service["stop_signal"] = "SIGTERM"
    service["stop_grace_period"] = f"{profile.grace_s}s"
    service["healthcheck"] = {
        "test": ["CMD", "conveyor", "worker-probe", "--file", HEARTBEAT_FILE],
        "interval": "15s",
        "timeout": "10s",
        "retries": 3,
        "start_period": "60s",
    }
    deploy: dict[str, Any] = {"replicas": max(1, profile.bounds[0])}
    if profile.gpu:
        deploy["resources"] = {
            "reservations": {"devices": [{"driver": "nvidia", "count": 1, "capabilities": ["gpu"]}]}
        }
    service["deploy"] = deploy
    return service


def _manager(plan: DeployPlan) -> dict[str, Any]:
    service = _common(plan)
    service["image"] = "${CONVEYOR_MANAGER_IMAGE:-conveyor-manager:latest}"
    service["command"] = ["conveyor", "autoscale", "--profiles", ",".join(plan.profile_names())]
    service["environment"].update(
        {
            "CONVEYOR_AUTOSCALE_BACKEND": "compose",
            "CONVEYOR_COMPOSE_PROJECT": PROJECT,
            # Mounted at the host's own path, so the relative paths in this file
            # (the secret) mean the same to the host's engine as to the manager.
            "CONVEYOR_COMPOSE_FILE": f"${{PWD}}/{FILE_NAME}",
            "CONVEYOR_AUTOSCALE_METRICS_PORT": str(plan.metrics_port),
        }
    )
    service["group_add"] = ["${DOCKER_GID:-999}"]
    service["volumes"] += ["/var/run/docker.sock:/var/run/docker.sock", "${PWD}:${PWD}:ro"]
    return service


def _flower(plan: DeployPlan) -> dict[str, Any]:
    service = _common(plan)
    del service["environment"]["DATABASE_URL"], service["volumes"]
    script = (
        f'export CELERY_BROKER_URL="redis://:$$(cat {SECRET_PATH})@valkey:{BROKER_PORT}/0" && '
        f"exec celery flower --port={FLOWER_PORT}"
    )
    service["entrypoint"] = ["sh", "-c", script]
    service["profiles"] = ["flower"]
    service["ports"] = [f"{FLOWER_PORT}:{FLOWER_PORT}"]
    return service


def compose_file(plan: DeployPlan) -> dict[str, Any]:
    """The compose file as data (what YAML it dumps to)."""
    api = _common(plan)
    api["command"] = ["conveyor", "api", "--host", "0.0.0.0", "--port", str(API_PORT)]
    api["ports"] = [f"{API_PORT}:{API_PORT}"]
    api["healthcheck"] = {
        "test": [
            "CMD",
            "python",
            "-c",
            f"import urllib.request; urllib.request.urlopen('http://127.0.0.1:{API_PORT}/healthz')",
        ],
        "interval": "15s",
        "timeout": "5s",
        "retries": 3,
    }
    recorder = _common(plan)
    recorder["command"] = ["conveyor", "recorder"]
    beat = _common(plan)
    beat["command"] = ["conveyor", "beat"]

    services: dict[str, Any] = {
        "valkey": _valkey(),
        "api": api,
        "recorder": recorder,
        "beat": beat,
    }
    for profile in plan.profiles:
        services[service_name(profile.name)] = _worker(plan, profile)
    if plan.autoscale:
        services["manager"] = _manager(plan)
    services["flower"] = _flower(plan)
    return {
        "name": PROJECT,
        "services": services,
        "volumes": {"valkey-data": {}, "conveyor-store": {}},
        "secrets": {SECRET: {"file": f"./secrets/{SECRET}"}},
    }
