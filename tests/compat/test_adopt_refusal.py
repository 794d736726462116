"""A stock message that cannot run is refused on record; its dead-letter message goes out
the executor's way, through the installed middleware (none without ``DeadLetters``).

In process: :func:`adopt` is called as the worker's strategy calls it, no worker runs.
"""

from __future__ import annotations

import uuid

import pytest
import redis

from conveyor import Conveyor, Settings
from conveyor.compat.adopt import StockMessage, adopt
from conveyor.middleware import default_middleware
from conveyor.middleware.deadletters import DeadLetters


def _dead_letter_messages(client: redis.Redis) -> int:
    return sum(
        int(client.llen(name))
        for name in client.scan_iter(match="dead-letter*")
        if client.type(name) == b"list"
    )


@pytest.mark.parametrize("installed", [True, False])
@pytest.mark.parametrize("name", ["no.such.type", "diag.sleep"])
def test_a_refused_message_is_dead_lettered_only_with_the_dead_letters_middleware(
    settings: Settings, redis_client: redis.Redis, installed: bool, name: str
) -> None:
    chosen = [m for m in default_middleware() if installed or not isinstance(m, DeadLetters)]
    app = Conveyor(settings, default_middleware=chosen)
    # An unknown type, or input that fails validation.
    message = StockMessage(id=str(uuid.uuid4()), name=name, kwargs={"seconds": "soon"})
    assert adopt(app, message) == "failed"
    assert app.get_job(message.id).state().status == "failed"
    assert _dead_letter_messages(redis_client) == (1 if installed else 0)
