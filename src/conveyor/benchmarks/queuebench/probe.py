"""When job bodies start, recorded apart from every queue library.

A job calls :func:`report` first thing: one ``O_APPEND`` write of ``tag i time``
to a file per process in ``$QUEUEBENCH_PROBE_DIR``. No broker round trip, nothing
that blocks on the reader; the driver follows the files with :class:`Tailer`.
"""

from __future__ import annotations

import os
import time

PROBE_DIR_ENV = "QUEUEBENCH_PROBE_DIR"

_fd: int | None = None
_pid: int | None = None


def report(tag: str, i: int) -> None:
    """Record that job ``i`` of kind ``tag`` starts now (``i < 0``: a warm-up, not counted)."""
    global _fd, _pid
    now = time.time()
    pid = os.getpid()
    if _pid != pid:  # first call in this process, or a forked pool child
        path = os.path.join(os.environ[PROBE_DIR_ENV], f"{pid}.log")
        _fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        _pid = pid
    assert _fd is not None
    os.write(_fd, f"{tag} {i} {now!r}\n".encode())


class Tailer:
    """Reads the probe files as they grow: start times by tag, as ``(i, time)`` pairs."""

    def __init__(self, directory: str) -> None:
        self.directory = directory
        os.makedirs(directory, exist_ok=True)
        self._offsets: dict[str, int] = {}
        self._partial: dict[str, bytes] = {}
        self.records: dict[str, list[tuple[int, float]]] = {}

    def poll(self) -> None:
        """Read what was appended since the last call."""
        for name in os.listdir(self.directory):
            offset = self._offsets.get(name, 0)
            with open(os.path.join(self.directory, name), "rb") as f:
                f.seek(offset)
                data = f.read()
            if not data:
                continue
            self._offsets[name] = offset + len(data)
            lines = (self._partial.pop(name, b"") + data).split(b"\n")
            if lines[-1]:
                self._partial[name] = lines[-1]
            for line in lines[:-1]:
                tag, i, stamp = line.split()
                self.records.setdefault(tag.decode(), []).append((int(i), float(stamp)))

    def wait(self, tag: str, count: int, timeout: float) -> list[tuple[int, float]]:
        """The counted records of ``tag`` once there are ``count`` of them, or at the deadline."""
        deadline = time.monotonic() + timeout
        while True:
            self.poll()
            got = [r for r in self.records.get(tag, []) if r[0] >= 0]
            if len(got) >= count or time.monotonic() > deadline:
                return got
            time.sleep(0.02)
