"""systemd units for hosts that run Conveyor without containers (the broker lives elsewhere).

* ``conveyor-worker-PROFILE@.service`` — one worker per instance
  (``systemctl enable --now conveyor-worker-processing@{1..3}``), named
  ``PROFILE-N@host``;
* ``conveyor-worker-PROFILE-gpu@.service`` (GPU profiles) — one worker per GPU,
  the instance is the GPU index (``…-gpu@0``, ``…-gpu@1``): ``CUDA_VISIBLE_DEVICES``;
* ``conveyor-api.service``, ``conveyor-recorder.service``, ``conveyor-beat.service``;
* ``conveyor.target`` — starts and stops them together.

Stopping is Celery's warm shutdown: ``KillSignal=SIGTERM`` to the main process
only (``KillMode=mixed``), which takes no new job and lets running ones finish;
``TimeoutStopSec`` is the profile's hard time limit plus a margin, after which
systemd sends SIGKILL and the lease rescue hands the jobs back.
"""

from __future__ import annotations

from conveyor.deploy.plan import API_PORT, DeployPlan, ProfilePlan

CONVEYOR_BIN = "/opt/conveyor/bin/conveyor"
ENV_FILE = "/etc/conveyor/conveyor.env"
HOME = "/var/lib/conveyor"
TARGET = "conveyor.target"


def _unit(description: str, exec_start: str, *, stop_s: int, extra: list[str]) -> str:
    lines = [
        "# Rendered by `conveyor deploy render systemd`: render again rather than edit.",
        "[Unit]",
        f"Description={description}",
        "After=network-online.target",
        "Wants=network-online.target",
        f"PartOf={TARGET}",
        "",
        "[Service]",
        "Type=exec",
        "User=conveyor",
        "Group=conveyor",
        f"WorkingDirectory={HOME}",
        f"Environment=CONVEYOR_HOME={HOME}",
        # Settings (REDIS_URL, DATABASE_URL, CONVEYOR_APP …); the leading '-': optional.
        f"EnvironmentFile=-{ENV_FILE}",
        *extra,
        f"ExecStart={exec_start}",
        "KillSignal=SIGTERM",
        "KillMode=mixed",
        f"TimeoutStopSec={stop_s}",
        "Restart=on-failure",
        "RestartSec=5",
        "NoNewPrivileges=yes",
        "PrivateTmp=yes",
        "ProtectSystem=strict",
        "ProtectHome=yes",
        f"ReadWritePaths={HOME}",
        "",
        "[Install]",
        f"WantedBy={TARGET}",
        "",
    ]
    return "\n".join(lines)


def _worker(profile: ProfilePlan, conveyor: str) -> str:
    return _unit(
        f"Conveyor worker {profile.name} #%i",
        f"{conveyor} worker --profile {profile.name} --name {profile.name}-%i@%H",
        stop_s=profile.grace_s,
        extra=[],
    )


def _gpu_worker(profile: ProfilePlan, conveyor: str) -> str:
    return _unit(
        f"Conveyor worker {profile.name} on GPU %i",
        f"{conveyor} worker --profile {profile.name} --name {profile.name}-gpu%i@%H",
        stop_s=profile.grace_s,
        extra=["Environment=CUDA_VISIBLE_DEVICES=%i"],
    )


def _target() -> str:
    return "\n".join(
        [
            "# Rendered by `conveyor deploy render systemd`: render again rather than edit.",
            "[Unit]",
            "Description=Conveyor (API, recorder, beat and workers on this host)",
            "",
            "[Install]",
            "WantedBy=multi-user.target",
            "",
        ]
    )


def units(plan: DeployPlan, conveyor: str = CONVEYOR_BIN) -> dict[str, str]:
    """File name → unit text."""
    found = {TARGET: _target()}
    found["conveyor-api.service"] = _unit(
        "Conveyor HTTP API",
        f"{conveyor} api --host 0.0.0.0 --port {API_PORT}",
        stop_s=30,
        extra=[],
    )
    found["conveyor-recorder.service"] = _unit(
        "Conveyor recorder (the job store's writer)", f"{conveyor} recorder", stop_s=30, extra=[]
    )
    found["conveyor-beat.service"] = _unit(
        "Conveyor beat (periodic jobs; run it on one host only)",
        f"{conveyor} beat",
        stop_s=30,
        extra=[],
    )
    for profile in plan.profiles:
        found[f"conveyor-worker-{profile.name}@.service"] = _worker(profile, conveyor)
        if profile.gpu:
            found[f"conveyor-worker-{profile.name}-gpu@.service"] = _gpu_worker(profile, conveyor)
    return found
