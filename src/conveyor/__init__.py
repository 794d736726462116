"""Conveyor: a production job platform for Python services, built on Celery."""

from conveyor.app import Conveyor
from conveyor.client import Job
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
from conveyor.limits import SoftTimeLimitExceeded, TimeLimitExceeded
from conveyor.middleware import Middleware, Outcome
from conveyor.settings import Settings
from conveyor.state import JobState
from conveyor.topology import Profile, Queue, Topology

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
