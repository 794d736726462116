"""The submitting side of a queue whose library has no bulk call."""

from __future__ import annotations

from collections.abc import Callable


class OneByOne:
    """Bulk enqueue is one ``send(kind, i)`` call a job, as the library's users write it."""

    def __init__(self, send: Callable[[str, int], object]) -> None:
        self.send = send

    def enqueue_bulk(self, kind: str, ids: range) -> None:
        """Send each job in turn."""
        for i in ids:
            self.send(kind, i)

    def enqueue_one(self, kind: str, i: int) -> None:
        """Send one job."""
        self.send(kind, i)

    def close(self) -> None:
        """Nothing to release: the library keeps its own connections."""
