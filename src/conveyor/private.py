"""Files and directories that hold every tenant's data, created for their owner only.

``CONVEYOR_HOME`` (0700) and the SQLite job store (0600) hold payloads, results and
tracebacks of every tenant: other local users must not read them. SQLite gives its
``-wal`` and ``-shm`` files the database file's mode, so creating the database
file first is enough. Modes are set at creation: an existing directory the user
chose (``CONVEYOR_HOME=.``) is left as it is.
"""

from __future__ import annotations

import os
from pathlib import Path

DIR_MODE = 0o700
FILE_MODE = 0o600


def private_dir(path: Path) -> Path:
    """Create ``path`` (and its parents) if missing; each directory created here is 0700."""
    missing: list[Path] = []
    for folder in (path, *path.parents):
        if folder.is_dir():
            break
        missing.append(folder)
    for folder in reversed(missing):
        folder.mkdir(exist_ok=True)
        # mkdir's mode is filtered by the umask; chmod is not.
        folder.chmod(DIR_MODE)
    return path


def private_file(path: Path) -> Path:
    """Create ``path`` empty and 0600 if missing (its directory 0700 if created here)."""
    private_dir(path.parent)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, FILE_MODE)
    except FileExistsError:
        return path
    os.fchmod(fd, FILE_MODE)
    os.close(fd)
    return path
