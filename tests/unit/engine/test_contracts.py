"""What Conveyor relies on in Celery and kombu beyond their documented API.

Conveyor pins ``celery`` and ``kombu`` to one minor version each. Before that pin
is raised, these tests say which private behaviour an upgrade changed: each names
the Conveyor code that depends on it. The behavioural ones run against the test's
real Valkey.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

import celery
import kombu
import pytest
import redis
from celery.worker import state as worker_state
from celery.worker.consumer import Consumer
from celery.worker.control import Panel
from celery.worker.strategy import default as default_strategy
from kombu.transport import redis as kombu_redis
from kombu.transport import virtual
from kombu.utils.json import dumps, loads
from packaging.version import Version

from conveyor.engine import transport


def _params(func: Callable[..., Any]) -> list[str]:
    return list(inspect.signature(func).parameters)


def test_the_pinned_versions_are_the_ones_installed() -> None:
    # pyproject.toml: celery>=5.7,<5.8 and kombu>=5.7,<5.8; raising the pin means
    # running this module against the new versions first.
    assert Version(celery.__version__).release[:2] == (5, 7)
    assert Version(kombu.__version__).release[:2] == (5, 7)


@pytest.mark.parametrize(
    ("owner", "name", "params", "used_by"),
    [
        (kombu_redis.QoS, "append", ["self", "message", "delivery_tag"], "transport.QoS"),
        (
            kombu_redis.QoS,
            "_remove_from_indices",
            ["self", "delivery_tag", "pipe"],
            "transport.QoS (held set)",
        ),
        (kombu_redis.QoS, "pipe_or_acquire", None, "transport.QoS"),
        (kombu_redis.Channel, "_brpop_start", ["self", "timeout"], "transport.Channel fetch"),
        (kombu_redis.Channel, "_brpop_read", ["self", "options"], "transport.Channel fetch"),
        (kombu_redis.Channel, "_q_for_pri", ["self", "queue", "pri"], "priority levels"),
        (kombu_redis.Channel, "priority", ["self", "n"], "priority levels"),
        (kombu_redis.Channel, "get_table", ["self", "exchange"], "stock binding tables"),
        (kombu_redis.Channel, "conn_or_acquire", ["self", "client"], "transport.Channel"),
        (kombu_redis.Channel, "_get", ["self", "queue"], "transport.Channel._get"),
        (kombu_redis.Channel, "_maybe_update_queues_expire", None, "transport.Channel._get"),
        (virtual.Channel, "_lookup", ["self", "exchange", "routing_key", "default"], "routing"),
        (virtual.Transport, "_deliver", ["self", "message", "queue"], "transport.Channel._take"),
        (Consumer, "on_unknown_task", ["self", "body", "message", "exc"], "worker.unknown"),
    ],
)
def test_overridden_and_called_internals_keep_their_shape(
    owner: type, name: str, params: list[str] | None, used_by: str
) -> None:
    member = getattr(owner, name, None)
    assert member is not None, f"{owner.__qualname__}.{name} is gone (used by {used_by})"
    if params is not None:
        assert _params(member) == params, f"{owner.__qualname__}.{name} changed ({used_by})"


def test_kombu_channel_state_attributes_exist() -> None:
    # transport.Channel resets _in_poll after its own fetch script; the queue cycle
    # is rotated so that queues are served fairly.
    assert hasattr(kombu_redis.Channel, "_in_poll")
    assert "self._queue_cycle = " in inspect.getsource(kombu_redis.Channel.__init__)


def test_celery_worker_state_used_for_cancellation_and_vitals() -> None:
    # worker.cancel reads active_requests and fills revoked; worker.vitals reads
    # active_requests and all_total_count.
    assert isinstance(worker_state.revoked, object) and hasattr(worker_state.revoked, "add")
    assert hasattr(worker_state, "active_requests")
    assert isinstance(worker_state.all_total_count, list)


def test_celery_strategy_and_control_panel_used_by_compat() -> None:
    # compat.strategy wraps Celery's default strategy; compat.control replaces the
    # "scheduled" inspect command's handler in Panel.data.
    assert _params(default_strategy)[:3] == ["task", "app", "consumer"]
    assert "scheduled" in Panel.data


def test_kombu_restores_an_unacked_entry_written_in_conveyors_format(
    redis_client: redis.Redis, broker_url: str
) -> None:
    """transport.QoS.append writes the unacked record itself (one round trip with
    the held set); kombu's own restore must still read it back into the queue."""
    conn = kombu.Connection(broker_url, transport=transport.Transport)
    try:
        channel = conn.default_channel
        queue = "contract-restore"
        body = {"body": "e30=", "properties": {"delivery_tag": "tag-1"}, "headers": {}}
        redis_client.hset(channel.unacked_key, "tag-1", dumps([body, "", queue]))
        redis_client.zadd(channel.unacked_index_key, {"tag-1": 1.0})
        channel.qos.restore_by_tag("tag-1")
        restored = [redis_client.lpop(channel._q_for_pri(queue, p)) for p in transport.LEVELS]
        found = [loads(item) for item in restored if item]
        assert [m["properties"]["delivery_tag"] for m in found] == ["tag-1"]
        assert not redis_client.hexists(channel.unacked_key, "tag-1")
    finally:
        conn.release()


def test_a_message_header_reaches_the_task_request() -> None:
    # conveyor.engine.start: the transport adds the `conveyor_start` header, which the
    # task reads as `task.request.conveyor_start` (prefork passes the request dict to
    # the pool process; solo uses it in place).
    from celery import Celery
    from celery.app.task import Context
    from celery.worker.request import Request
    from kombu.transport.virtual import Message as VirtualMessage

    app = Celery("contract", set_as_current=False)

    @app.task(name="contract.noop", shared=False)
    def noop() -> None: ...

    headers = {"id": "x", "task": "contract.noop", "conveyor_start": [1, "started", 1, 2.0]}
    payload = {
        "body": dumps([[], {}, {}]),
        "content-type": "application/json",
        "content-encoding": "utf-8",
        "headers": headers,
        "properties": {"delivery_tag": "t", "delivery_info": {"routing_key": "q"}},
    }

    class _Channel:
        def decode_body(self, body: Any, encoding: Any) -> Any:
            return body

    message = VirtualMessage(payload, channel=_Channel())
    request = Request(message, app=app, task=noop)
    assert Context(request.request_dict).conveyor_start == [1, "started", 1, 2.0]
