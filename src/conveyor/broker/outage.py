"""When the broker cannot take a write, and how a write that must not be lost waits for it.

Two kinds of trouble look alike to a client and are not:

* the broker is **down** (restarting, the network gone): the connection fails;
* the broker is **up but refuses writes**: it is full (``OOM`` under ``maxmemory``
  with ``noeviction``), a read-only replica after a failover (``READONLY``), or its
  persistence is failing (``MISCONF``). Reads still work; writes fail until an
  operator or the failover fixes it.

In both cases a worker that could not record a job's start or outcome must not let
Celery acknowledge the message as done: the job would vanish, neither run nor
failed. It waits instead (:func:`wait_for_broker`) and writes once the broker takes
writes again.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any, TypeVar

import redis
from redis.exceptions import MasterDownError, OutOfMemoryError, ReadOnlyError

log = logging.getLogger("conveyor.broker")

T = TypeVar("T")

#: Errors that mean the broker is unreachable (restarting, network down).
BROKER_DOWN = (redis.ConnectionError, redis.TimeoutError)

#: Error codes of a broker that is up but refuses writes for now. A pipeline or a
#: Lua script reports them after a prefix ("Command # 1 (…) of pipeline caused error: ").
_REFUSAL_CODES = ("OOM", "READONLY", "MISCONF", "NOREPLICAS", "MASTERDOWN", "LOADING")

#: How long a write that must not be lost retries while the broker is unreachable.
BROKER_DOWN_WAIT_S = 60.0
#: The longest pause between two tries.
MAX_PAUSE_S = 5.0


def refuses_writes(exc: BaseException) -> bool:
    """Whether ``exc`` is the broker refusing writes for now (full, read-only, MISCONF)."""
    if isinstance(exc, ReadOnlyError | OutOfMemoryError | MasterDownError):
        return True
    if not isinstance(exc, redis.ResponseError):
        return False
    text = str(exc)
    return any(text.startswith(f"{code} ") or f": {code} " in text for code in _REFUSAL_CODES)


def unavailable(exc: BaseException) -> bool:
    """Whether ``exc`` means the broker cannot take this write now (down, or refusing)."""
    return isinstance(exc, BROKER_DOWN) or refuses_writes(exc)


def wait_for_broker(
    func: Callable[..., T],
    *args: Any,
    down_wait_s: float = BROKER_DOWN_WAIT_S,
    refused_wait_s: float | None = None,
    **kwargs: Any,
) -> T:
    """Call ``func``, retrying with backoff while the broker is down or refuses writes.

    An unreachable broker is waited for up to ``down_wait_s`` (then the error is
    raised). A broker that answers but refuses writes is waited for as long as it
    takes (or ``refused_wait_s``): it is there, and the write is one it must take
    before the job can move on. ``func`` must be safe to repeat (Conveyor's
    state-change script refuses a change already applied as stale).
    """
    began = time.monotonic()
    pause = 0.2
    while True:
        try:
            return func(*args, **kwargs)
        except redis.RedisError as exc:
            waited = time.monotonic() - began + pause
            if refuses_writes(exc) and (refused_wait_s is None or waited <= refused_wait_s):
                log.warning("broker refuses writes (%s); retrying in %.1fs", exc, pause)
            elif isinstance(exc, BROKER_DOWN) and waited <= down_wait_s:
                log.warning("broker unreachable (%s); retrying in %.1fs", exc, pause)
            else:
                raise
        time.sleep(pause)
        pause = min(pause * 2, MAX_PAUSE_S)


def wait_until_reachable(url: str, *, timeout_s: float, wait_s: float) -> None:
    """Return once the broker at ``url`` answers PING, waiting up to ``wait_s`` for it.

    How a long-running service (worker, recorder, API, worker manager) starts during a
    broker outage under ``conveyor up``: it waits, logging each try, instead of exiting
    and being restarted in a loop. With ``wait_s`` 0, or once it has passed, the
    usual :class:`~conveyor.errors.BrokerError` is raised; a refused password is
    raised at once (a configuration error, which waiting does not fix).
    """
    from conveyor.broker.connection import check_reachable
    from conveyor.settings import mask_url

    deadline = time.monotonic() + wait_s
    pause = 0.5
    while time.monotonic() + pause < deadline:
        probe = redis.Redis.from_url(
            url, socket_connect_timeout=timeout_s, socket_timeout=timeout_s
        )
        try:
            probe.ping()
            return
        except redis.AuthenticationError:
            break
        except (redis.ConnectionError, redis.TimeoutError, OSError) as exc:
            log.warning(
                "broker at %s unreachable (%s); waiting %.1fs for it", mask_url(url), exc, pause
            )
        finally:
            probe.close()
        time.sleep(pause)
        pause = min(pause * 2, MAX_PAUSE_S)
    check_reachable(url, timeout_s=timeout_s)
