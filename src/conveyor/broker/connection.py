"""Redis connections: one client per process and URL, and a fail-fast reachability check."""

from __future__ import annotations

import os
import threading

import redis

from conveyor.errors import BrokerError
from conveyor.settings import mask_url

_clients: dict[tuple[int, str], redis.Redis] = {}
_lock = threading.Lock()


def client_for(url: str, *, timeout_s: float = 5.0) -> redis.Redis:
    """A shared client for ``url`` in this process (a new one after a fork)."""
    key = (os.getpid(), url)
    found = _clients.get(key)
    if found is not None:
        return found
    with _lock:
        found = _clients.get(key)
        if found is None:
            found = redis.Redis.from_url(
                url,
                socket_connect_timeout=timeout_s,
                socket_keepalive=True,
                health_check_interval=30,
                retry_on_timeout=True,
            )
            _clients[key] = found
        return found


def check_reachable(url: str, *, timeout_s: float = 3.0) -> None:
    """Raise :class:`BrokerError` naming the URL (password masked) unless it answers PING."""
    probe = redis.Redis.from_url(url, socket_connect_timeout=timeout_s, socket_timeout=timeout_s)
    try:
        probe.ping()
    except redis.AuthenticationError as exc:
        raise BrokerError(f"broker at {mask_url(url)} refused the password: {exc}") from None
    except (redis.ConnectionError, redis.TimeoutError, OSError) as exc:
        raise BrokerError(f"cannot reach the broker at {mask_url(url)}: {exc}") from None
    except redis.ResponseError as exc:
        raise BrokerError(f"broker at {mask_url(url)} answered with an error: {exc}") from None
    finally:
        probe.close()
