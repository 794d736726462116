"""Conveyor's error hierarchy.

Every error Conveyor raises on purpose derives from :class:`ConveyorError`::

    ConveyorError
    ├── ConfigurationError       a setting or topology entry is invalid
    ├── BrokerError              the broker cannot be reached or refused a command
    ├── StoreError               the job store cannot be reached
    ├── NotFound                 no such job, job type or queue
    ├── InvalidSubmission        a submit was refused before anything was enqueued
    │   ├── UnknownJobType
    │   └── PayloadInvalid       the payload failed the job type's model
    ├── Conflict                 the job is not in a state that allows the request
    ├── AccessDenied             the caller may not do this
    │   ├── Unauthenticated      no API key, or an unknown or revoked one
    │   └── PermissionDenied     a valid key without the scope the request needs
    ├── RateLimited              too many submissions; ``retry_after_s`` says when to retry
    ├── JobTimeoutError          waiting for a job took longer than allowed
    └── JobError                 raised inside a job to steer what happens next
        ├── PermanentError       never retried: the job fails at once
        │   ├── DeliveryLimitExceeded  its process died under it on every delivery
        │   ├── NoGpuAvailable         a gpu="required" job found no GPU worker in time
        │   ├── MediaError             ffmpeg refused the input or failed (media pack)
        │   ├── ResultNotSerializable  it returned a value JSON cannot encode
        │   └── JobStalled             started, then no heartbeat or progress (stalled policy)
        ├── TransientError       retried with backoff while retries remain
        ├── JobCancelled         the job was cancelled while it ran
        ├── SkipJob              a middleware's before_job: end the job cancelled, unrun
        └── Defer                a middleware's before_job: run this attempt later

HTTP status codes are mapped from this tree in one place (the API module).
"""

from __future__ import annotations

from typing import Any


class ConveyorError(Exception):
    """The root of every error Conveyor raises on purpose."""


class ConfigurationError(ConveyorError):
    """A setting, environment variable or topology entry is invalid."""


class BrokerError(ConveyorError):
    """The broker could not be reached, or refused a command."""


class StoreError(ConveyorError):
    """The job store could not be reached."""


class NotFound(ConveyorError):
    """No such job, job type or queue."""


class InvalidSubmission(ConveyorError):
    """A submission was refused before anything was enqueued."""


class UnknownJobType(InvalidSubmission, NotFound):
    """The job type is not registered; the message lists the known ones.

    A worker that takes a job of a type no live worker serves fails it with this
    error, ``reason`` saying so.
    """

    def __init__(self, name: str, known: list[str], *, reason: str | None = None) -> None:
        self.name = name
        self.known = sorted(known)
        listed = ", ".join(self.known) or "(none registered)"
        super().__init__(reason or f"unknown job type {name!r}; known types: {listed}")


class PayloadInvalid(InvalidSubmission):
    """The payload failed validation against the job type's input model.

    ``errors`` holds one entry per problem: ``{"field", "message", "type"}``.
    """

    def __init__(self, job_type: str, errors: list[dict[str, Any]]) -> None:
        self.job_type = job_type
        self.errors = errors
        lines = "; ".join(f"{e['field'] or '(payload)'}: {e['message']}" for e in errors)
        super().__init__(f"invalid payload for {job_type}: {lines}")


class Conflict(ConveyorError):
    """The job (or entry) is not in a state that allows the request (e.g. a result not ready)."""


class AccessDenied(ConveyorError):
    """The caller may not do this."""


class Unauthenticated(AccessDenied):
    """No API key was sent, or it is unknown or revoked."""


class PermissionDenied(AccessDenied):
    """The API key is valid but lacks the scope the request needs."""


class RateLimited(ConveyorError):
    """Too many requests; retry after ``retry_after_s`` seconds."""

    def __init__(self, message: str, retry_after_s: float) -> None:
        self.retry_after_s = retry_after_s
        super().__init__(message)


class JobTimeoutError(ConveyorError, TimeoutError):
    """Waiting for a job to finish took longer than the caller allowed."""


class JobError(ConveyorError):
    """Base of the errors a job raises to say how its failure should be treated."""


class PermanentError(JobError):
    """A failure that retrying cannot fix: the job fails at once."""


class TransientError(JobError):
    """A failure that may go away: the job is retried with backoff."""


class NoGpuAvailable(PermanentError):
    """A ``gpu="required"`` job waited ``CONVEYOR_GPU_WAIT_S`` and no GPU worker took it.

    CPU-only workers hand such a job back to its queue for a GPU worker; on a fleet
    without one it would circle forever. Past the wait it fails and goes to the
    dead-letter queue with this error (and an alert where its queue raises them).
    """


class SkipJob(JobError):
    """Raised by a middleware's ``before_job``: the job ends ``cancelled`` without running."""


class Defer(JobError):
    """Raised by a middleware's ``before_job``: run this attempt again in ``seconds``."""

    def __init__(self, seconds: float, reason: str = "deferred by middleware") -> None:
        super().__init__(f"{reason} (back in {seconds:g}s)")
        self.seconds = max(0.0, float(seconds))
        self.reason = reason


class DeliveryLimitExceeded(PermanentError):
    """The job was started again and again without finishing: its process died each time.

    A job that crashes its own worker process (a segfault, the kernel's OOM killer)
    would otherwise be redelivered forever; past ``CONVEYOR_MAX_REDELIVERIES`` it
    fails and goes to the dead-letter queue with this error.
    """


class MediaError(PermanentError):
    """A media job cannot be done: ffmpeg failed, or the input is not usable media.

    The message ends with the last lines ffmpeg wrote to stderr.
    """


class ResultNotSerializable(PermanentError):
    """The job ran, but returned a value JSON cannot encode (a circular reference, a
    dict with tuple keys): it fails, and goes to the dead-letter queue, with this error."""


class JobStalled(PermanentError):
    """The job was started and then showed no sign of life (no progress, no worker
    heartbeat) past the stalled threshold; recorded when the policy fails it."""


class JobCancelled(JobError):
    """The job was cancelled; raised inside the job at its next progress report."""
