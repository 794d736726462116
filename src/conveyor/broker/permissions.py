"""May the broker's user (a Redis 6+/Valkey ACL user) run what Conveyor needs?

With ``REDIS_USERNAME`` (or a user in the URL) Conveyor connects as an ACL user.
A user without, say, ``EVALSHA`` accepts the connection and fails later on the
first state change; :func:`missing_permission` finds that at once with harmless
commands (a one-line script, reads of Conveyor's keys, a publish to a channel no
one reads) and says which command to grant, in one line.
"""

from __future__ import annotations

import re
from urllib.parse import unquote, urlsplit

import redis
from redis.exceptions import NoPermissionError

from conveyor import keys

_COMMAND = re.compile(r"run the '([\w|]+)' command")


def missing_permission(client: redis.Redis, url: str) -> str | None:
    """A one-line description of the first needed command the user may not run, or None."""
    try:
        client.register_script("return 1")()
        pipe = client.pipeline(transaction=False)
        pipe.xlen(keys.EVENTS)
        pipe.llen("processing")
        pipe.zcard(keys.WORKERS)
        pipe.hgetall(keys.job("doctor"))
        pipe.publish(f"{keys.PREFIX}:doctor", "")
        pipe.execute()
    except NoPermissionError as exc:
        return describe(exc, url)
    return None


def describe(exc: NoPermissionError, url: str) -> str:
    """``exc`` as one line naming the user and the command it lacks."""
    user = unquote(urlsplit(url).username or "") or "default"
    found = _COMMAND.search(str(exc))
    if found is None:
        return f"the broker user {user!r} lacks a permission Conveyor needs: {exc}"
    command = found.group(1).split("|")[0]
    return (
        f"the broker user {user!r} may not run {command.upper()} (Conveyor needs it); "
        f"grant it with: ACL SETUSER {user} +{command.lower()}"
    )
