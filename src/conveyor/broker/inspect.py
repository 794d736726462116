"""Read-only views of the broker: queue lengths per priority level, delayed jobs."""

from __future__ import annotations

from dataclasses import dataclass, field

import redis

from conveyor import keys
from conveyor.engine.transport import LEVELS
from conveyor.topology import Topology


@dataclass
class QueueDepth:
    """How many messages wait in one queue, per priority level."""

    name: str
    priority: int
    levels: dict[int, int] = field(default_factory=dict)

    @property
    def total(self) -> int:
        """Messages waiting at every level together."""
        return sum(self.levels.values())


def queue_depths(client: redis.Redis, topology: Topology) -> list[QueueDepth]:
    """Waiting messages per queue of ``topology``, most urgent first, in one round trip."""
    queues = Topology.ordered(topology.queues.values())
    pipe = client.pipeline(transaction=False)
    for queue in queues:
        for level in LEVELS:
            pipe.llen(keys.queue_list(queue.name, level))
    counts = iter(pipe.execute())
    return [
        QueueDepth(q.name, q.priority, {level: int(next(counts)) for level in LEVELS})
        for q in queues
    ]


def delayed_count(client: redis.Redis) -> int:
    """Jobs waiting for their due time (delays and retry backoffs)."""
    return int(client.zcard(keys.DELAYED))


def reserved_count(client: redis.Redis) -> int:
    """Messages delivered to workers and not yet acknowledged."""
    return int(client.hlen("unacked"))
