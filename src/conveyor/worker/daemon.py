"""``conveyor worker --detach``: the same worker, started in the background."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

DETACH_FLAGS = ("--detach", "-D")


def detach(argv: list[str], logfile: Path) -> int:
    """Start ``conveyor`` with ``argv`` (less the detach flag) in a new session.

    Its output goes to ``logfile``; it outlives this process and the terminal.
    Returns the child's process id.
    """
    args = [a for a in argv if a not in DETACH_FLAGS]
    logfile.parent.mkdir(parents=True, exist_ok=True)
    with open(logfile, "ab") as out:
        child = subprocess.Popen(
            [sys.executable, "-m", "conveyor", *args],
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            close_fds=True,
        )
    return child.pid
