"""Two ``conveyor beat`` processes on one broker: one fires, the other takes over when it dies."""

from __future__ import annotations

import contextlib
import itertools
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import redis

from conveyor import keys
from conveyor.testing import wait_until

INTERVAL_S = 0.5
LOCK_TIMEOUT_S = 3.0
SUBMITTED = re.compile(r"schedule tick submitted test\.tick as job ([0-9a-f-]{36})")


class Beat:
    """A ``conveyor beat`` subprocess for the test application."""

    def __init__(self, broker_url: str, home: Path, name: str) -> None:
        self.log_path = home / f"{name}.log"
        env = dict(
            os.environ,
            REDIS_URL=broker_url,
            CONVEYOR_HOME=str(home),
            CONVEYOR_APP="tests.periodic.apps:app",
            CONVEYOR_BEAT_INTERVAL_S=str(INTERVAL_S),
            CONVEYOR_BEAT_LOCK_TIMEOUT_S=str(LOCK_TIMEOUT_S),
        )
        with open(self.log_path, "wb") as out:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "conveyor", "beat"],
                stdout=out,
                stderr=subprocess.STDOUT,
                env=env,
                start_new_session=True,
            )

    def log(self) -> str:
        """What the beat printed so far."""
        return self.log_path.read_text(errors="replace")

    def jobs(self) -> list[str]:
        """The job ids this beat submitted, in order."""
        return SUBMITTED.findall(self.log())

    def kill(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=10)

    def stop(self) -> int:
        self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.kill()
            raise


@contextlib.contextmanager
def beats(broker_url: str, home: Path, *names: str) -> Iterator[list[Beat]]:
    started: list[Beat] = []
    try:
        for name in names:
            started.append(Beat(broker_url, home, name))
        yield started
    finally:
        for beat in started:
            if beat.process.poll() is None:
                beat.kill()


def created_at(client: redis.Redis, job_ids: list[str]) -> list[float]:
    return sorted(float(client.hget(keys.job(j), "created_at") or 0) for j in job_ids)


def test_two_beats_fire_once_and_the_standby_takes_over_within_the_lock_timeout(
    broker_url: str, redis_client: redis.Redis, tmp_path: Path
) -> None:
    with beats(broker_url, tmp_path, "a") as (a,):
        wait_until(lambda: len(a.jobs()) >= 2, timeout=60, what=f"beat a fires ({a.log_path})")
        with beats(broker_url, tmp_path, "b") as (b,):
            # Takeover is measured from a standby that waits on the lock, not one still
            # starting up (imports take seconds on a loaded machine).
            wait_until(lambda: "beat: Starting" in b.log(), timeout=60, what="beat b started")
            fired = len(a.jobs())
            wait_until(lambda: len(a.jobs()) >= fired + 3, timeout=30, what="more ticks of a")
            assert b.jobs() == [], "the standby beat fired while the active one held the lock"

            a.kill()
            killed_at = time.time()
            first = wait_until(
                lambda: b.jobs()[:1], timeout=LOCK_TIMEOUT_S + 30, what="b takes over"
            )
            took_over_s = float(redis_client.hget(keys.job(first[0]), "created_at") or 0)
            took_over_s -= killed_at
            wait_until(lambda: len(b.jobs()) >= 3, timeout=30, what="b keeps firing")
            assert b.stop() == 0
            # A clean stop hands the lock back at once.
            assert redis_client.exists(keys.BEAT_LOCK) == 0

    fired_a, fired_b = a.jobs(), b.jobs()
    assert not set(fired_a) & set(fired_b)
    print(f"takeover after {took_over_s:.2f}s (lock timeout {LOCK_TIMEOUT_S:g}s)")
    # The lock outlives the killed beat by at most one timeout; the standby polls it
    # every interval (and the loaded test machine gets a second of slack).
    assert took_over_s <= LOCK_TIMEOUT_S + 2 * INTERVAL_S + 1.0
    times = created_at(redis_client, fired_a + fired_b)
    gaps = [later - earlier for earlier, later in itertools.pairwise(times)]
    assert min(gaps) > 0.5, f"a schedule of every 1s fired twice: gaps {gaps}"
    # Every run is an ordinary queued job, tagged with its schedule.
    state = redis_client.hgetall(keys.job(fired_b[-1]))
    assert state[b"status"] == b"queued"
    assert state[b"type"] == b"test.tick"
    assert state[b"queue"] == b"batch"
    assert b"schedule:tick" in state[b"tags"]
