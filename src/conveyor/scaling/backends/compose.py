"""The docker compose back end: ``docker compose up -d --scale SERVICE=N``.

Each profile is a compose service (``CONVEYOR_COMPOSE_SERVICE``, default
``worker-{profile}``). Compose stops removed containers with SIGTERM and the
service's ``stop_grace_period`` — set it above the longest job so that
scale-down is warm (``deploy/docker-compose.yml`` sets it from the hard time limit).
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from conveyor.scaling.backends.base import BackendError, HealthEvent, Usage
from conveyor.settings import Settings

Runner = Callable[[list[str]], "subprocess.CompletedProcess[str]"]
TIMEOUT_S = 120.0


def run_command(argv: list[str]) -> subprocess.CompletedProcess[str]:
    """Run ``argv``, capturing its output."""
    return subprocess.run(argv, capture_output=True, text=True, timeout=TIMEOUT_S, check=False)


@dataclass
class ComposeBackend:
    """Scales compose services through the ``docker compose`` command."""

    docker: str = "docker"
    file: Path | None = None
    project: str | None = None
    service: str = "worker-{profile}"
    runner: Runner = field(default=run_command)
    name: str = "compose"

    @classmethod
    def from_settings(cls, settings: Settings) -> ComposeBackend:
        """Build from ``CONVEYOR_COMPOSE_*``; the ``docker`` command must be on PATH."""
        docker = shutil.which("docker")
        if docker is None:
            raise BackendError("compose back end: the `docker` command is not on PATH")
        return cls(
            docker=docker,
            file=settings.compose_file,
            project=settings.compose_project,
            service=settings.compose_service,
        )

    def base(self) -> list[str]:
        """``docker compose`` with the file and project options."""
        argv = [self.docker, "compose"]
        if self.file is not None:
            argv += ["-f", str(self.file)]
        if self.project is not None:
            argv += ["-p", self.project]
        return argv

    def _run(self, argv: list[str]) -> str:
        try:
            done = self.runner(argv)
        except (OSError, subprocess.SubprocessError) as exc:
            raise BackendError(f"`{' '.join(argv)}` could not run: {exc}") from None
        if done.returncode != 0:
            raise BackendError(
                f"`{' '.join(argv)}` failed ({done.returncode}): {done.stderr.strip()[:300]}"
            )
        return done.stdout

    def current(self, profile: str) -> int:
        """Running containers of the profile's service (``docker compose ps -q``)."""
        service = self.service.format(profile=profile)
        out = self._run([*self.base(), "ps", "-q", "--status", "running", service])
        return len([line for line in out.splitlines() if line.strip()])

    def scale(self, profile: str, count: int) -> None:
        """``docker compose up -d --no-recreate --scale SERVICE=N SERVICE``."""
        if count < 0:
            raise BackendError(f"cannot run a negative number of workers ({count})")
        service = self.service.format(profile=profile)
        self._run(
            [*self.base(), "up", "-d", "--no-recreate", "--scale", f"{service}={count}", service]
        )

    def usage(self, profile: str) -> Usage:
        """Not measured here; the rules that need it are skipped."""
        return Usage()

    def check_health(self) -> list[HealthEvent]:
        """Compose restarts unhealthy containers through their healthcheck and restart policy."""
        return []

    def close(self, grace_s: float) -> None:
        """Nothing to release: the containers belong to compose."""
