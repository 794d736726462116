"""What an attempt of a job came to, as middleware sees it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

OutcomeStatus = Literal["succeeded", "retrying", "failed", "cancelled"]


@dataclass(frozen=True)
class Outcome:
    """An attempt's outcome, after it was recorded."""

    status: OutcomeStatus
    #: The job's return value (``succeeded``).
    result: Any = None
    #: What the job raised (``retrying``, ``failed``), or why it was skipped (``cancelled``).
    error: BaseException | None = None
    #: Seconds until the next attempt (``retrying``).
    retry_in_s: float | None = None

    @property
    def final(self) -> bool:
        """Whether the job is over (no further attempt follows)."""
        return self.status != "retrying"
