"""``CONVEYOR_HOME/stack.json``: which ``conveyor up`` runs for a home, whatever its broker.

The embedded broker's own record (``broker.json``) tells a second ``conveyor up``
that a stack runs; a stack on a configured broker (``REDIS_URL``…) has no such
record, so every stack writes this one at start: its supervisor's pid (and that
process's start time, so that a reused pid is not taken for it), host and broker
URL with the password masked. It is removed when the stack stops; one left by a
stack that was killed names a process that no longer runs and is ignored.
"""

from __future__ import annotations

import json
import os
import socket
import time
from pathlib import Path
from typing import Any

import psutil

from conveyor.settings import mask_url

STACK_FILE = "stack.json"


def record(home: Path, broker_url: str) -> None:
    """Write this process's stack record for ``home`` (0600, one atomic replace)."""
    info = {
        "pid": os.getpid(),
        "pid_started": psutil.Process().create_time(),
        "host": socket.gethostname(),
        "broker": mask_url(broker_url),
        "started_at": time.time(),
    }
    path = home / STACK_FILE
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        out.write(json.dumps(info))
    tmp.replace(path)


def clear(home: Path) -> None:
    """Remove the stack record of ``home`` if this process wrote it."""
    info = _read(home)
    if info is not None and info.get("pid") == os.getpid():
        (home / STACK_FILE).unlink(missing_ok=True)


def running(home: Path) -> dict[str, Any] | None:
    """The record of the stack that runs for ``home`` on this host, or None if none does."""
    info = _read(home)
    if info is None or info.get("host") != socket.gethostname():
        return None
    pid = info.get("pid")
    if not isinstance(pid, int):
        return None
    try:
        process = psutil.Process(pid)
        if process.status() == psutil.STATUS_ZOMBIE:
            return None
        if abs(process.create_time() - float(info.get("pid_started") or 0)) > 1.0:
            return None  # the pid was reused since
    except (psutil.Error, ValueError, TypeError):
        return None
    return info


def _read(home: Path) -> dict[str, Any] | None:
    try:
        data = json.loads((home / STACK_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None
