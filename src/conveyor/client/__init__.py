"""The client side: what an application that submits jobs uses.

The :class:`~conveyor.client.job.Job` handle that ``submit`` returns, batches, dead
letters and purging a queue.
"""

from __future__ import annotations

from typing import Any


def __getattr__(name: str) -> Any:
    # Lazy, so that importing a sibling module never pulls in the handle's imports.
    if name == "Job":
        from conveyor.client.job import Job

        return Job
    raise AttributeError(name)
