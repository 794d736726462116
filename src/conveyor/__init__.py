"""Conveyor: a production job platform for Python services, built on Celery."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from conveyor.app import Conveyor
    from conveyor.client.job import Job
    from conveyor.errors import (
        BrokerError,
        ConfigurationError,
        ConveyorError,
        Defer,
        InvalidSubmission,
        JobCancelled,
        JobError,
        JobTimeoutError,
        NotFound,
        PayloadInvalid,
        PermanentError,
        SkipJob,
        StoreError,
        TransientError,
        UnknownJobType,
    )
    from conveyor.jobs import JobContext, JobDefinition
    from conveyor.middleware import Middleware, Outcome
    from conveyor.settings import Settings
    from conveyor.state import JobState
    from conveyor.timelimits import SoftTimeLimitExceeded, TimeLimitExceeded
    from conveyor.topology import Profile, Queue, Topology

#: Where each public name lives: imported on first use, so that `conveyor --help`
#: and other quick commands do not pay for Celery, kombu and SQLAlchemy.
_HOMES = {
    "Conveyor": "conveyor.app",
    "Job": "conveyor.client.job",
    "JobContext": "conveyor.jobs",
    "JobDefinition": "conveyor.jobs",
    "SoftTimeLimitExceeded": "conveyor.timelimits",
    "TimeLimitExceeded": "conveyor.timelimits",
    "Middleware": "conveyor.middleware",
    "Outcome": "conveyor.middleware",
    "Settings": "conveyor.settings",
    "JobState": "conveyor.state",
    "Profile": "conveyor.topology",
    "Queue": "conveyor.topology",
    "Topology": "conveyor.topology",
    **{
        name: "conveyor.errors"
        for name in (
            "BrokerError",
            "ConfigurationError",
            "ConveyorError",
            "Defer",
            "InvalidSubmission",
            "JobCancelled",
            "JobError",
            "JobTimeoutError",
            "NotFound",
            "PayloadInvalid",
            "PermanentError",
            "SkipJob",
            "StoreError",
            "TransientError",
            "UnknownJobType",
        )
    },
}


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module 'conveyor' has no attribute {name!r}")
    value = getattr(importlib.import_module(home), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)


__version__ = "0.1.0"

__all__ = [
    # the application and its client
    "Conveyor",
    "Job",
    "JobState",
    # declaring jobs
    "JobContext",
    "JobDefinition",
    "Middleware",
    "Outcome",
    # configuration
    "Profile",
    "Queue",
    "Settings",
    "Topology",
    # errors
    "BrokerError",
    "ConfigurationError",
    "ConveyorError",
    "InvalidSubmission",
    "Defer",
    "JobCancelled",
    "JobError",
    "JobTimeoutError",
    "NotFound",
    "PayloadInvalid",
    "PermanentError",
    "SkipJob",
    "SoftTimeLimitExceeded",
    "StoreError",
    "TimeLimitExceeded",
    "TransientError",
    "UnknownJobType",
    "__version__",
]
