"""The Dockerfile, read instruction by instruction (no engine builds it here)."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = ROOT / "deploy" / "Dockerfile"


def _instructions(text: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, continuation lines joined, comments dropped."""
    logical: list[str] = []
    pending = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        logical.append(pending + line)
        pending = ""
    found = []
    for line in logical:
        word, _, rest = line.partition(" ")
        found.append((word.upper(), rest.strip()))
    return found


def _stages(text: str) -> dict[str, list[tuple[str, str]]]:
    """Stage name → its instructions, each stage starting with its FROM."""
    stages: dict[str, list[tuple[str, str]]] = {}
    current: list[tuple[str, str]] = []
    for instruction in _instructions(text):
        if instruction[0] == "FROM":
            match = re.search(r"\bAS\s+(\S+)$", instruction[1], re.IGNORECASE)
            current = []
            stages[match.group(1) if match else str(len(stages))] = current
        current.append(instruction)
    return stages


def _user(stages: dict[str, list[tuple[str, str]]], name: str) -> str:
    """The user a stage runs as, following FROM another stage."""
    user = "root"
    for word, rest in stages[name]:
        if word == "FROM":
            parent = rest.split()[0]
            if parent in stages:
                user = _user(stages, parent)
        if word == "USER":
            user = rest
    return user


def test_the_final_image_and_the_manager_run_as_a_non_root_user() -> None:
    stages = _stages(DOCKERFILE.read_text())
    final = list(stages)[-1]
    for name in (final, "manager"):
        assert _user(stages, name) not in ("root", "0", "0:0"), name


def test_it_builds_on_slim_python_installs_the_wheel_and_ffmpeg() -> None:
    text = DOCKERFILE.read_text()
    froms = [rest for word, rest in _instructions(text) if word == "FROM"]
    assert all(re.match(r"(python:\$\{PYTHON_VERSION\}-slim|base|docker:)", f) for f in froms)
    runs = " ".join(rest for word, rest in _instructions(text) if word == "RUN")
    assert "pip wheel" in runs and "/wheels/conveyor-*.whl" in runs
    assert re.search(r"apt-get install[^&]*\bffmpeg\b", runs)


def test_health_is_the_workers_heartbeat_probe() -> None:
    instructions = _instructions(DOCKERFILE.read_text())
    checks = [rest for word, rest in instructions if word == "HEALTHCHECK"]
    assert any('"conveyor", "worker-probe"' in check for check in checks)


def test_nothing_is_fetched_by_add() -> None:
    for word, rest in _instructions(DOCKERFILE.read_text()):
        assert word != "ADD" or not re.search(r"(https?|git)://|git@", rest), rest


def test_the_entrypoint_script_is_copied_and_turns_secret_files_into_settings(
    tmp_path: Path,
) -> None:
    text = DOCKERFILE.read_text()
    password = tmp_path / "broker_password"
    password.write_text("s3cret")
    assert "deploy/docker-entrypoint.sh" in text
    secret = ROOT / "deploy" / "docker-entrypoint.sh"
    done = subprocess.run(
        ["sh", str(secret), "sh", "-c", 'echo "$REDIS_PASSWORD|${REDIS_PASSWORD_FILE:-gone}"'],
        env={"PATH": os.environ["PATH"], "REDIS_PASSWORD_FILE": str(password)},
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    assert done.stdout.strip() == "s3cret|gone"
