"""The base of Conveyor's built-in middleware: hooks that decide what a delivery comes to.

A built-in policy (rate limits, the delivery limit, GPU placement, retries, dead
letters, progress) is a :class:`~conveyor.middleware.Middleware` like an application's, with
these internal hooks besides the public ones. They receive the worker's
``Execution`` so that a decision and its write stay one step (a retry's reschedule
and its ``retrying`` event are one round trip: ``Execution._reschedule``). Their
signatures may change between releases: applications use the public hooks.

Where each internal hook runs, around the public ones::

    before_start → the start is recorded → after_start → before_job → the job
    → on_error → on_failure (first policy to decide wins; none: failed for good)
    → after_failed (the failed event is written) → after_job / after_final

and, while the job runs, ``on_progress`` at each ``ctx.progress()``.

A policy hook that raises is logged and skipped, like any hook: the delivery
goes on as if the policy had not been there. Broker errors pass through (the
delivery is handed back or waits for the broker, as before).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import redis

from conveyor.errors import PermanentError
from conveyor.middleware.base import Middleware
from conveyor.middleware.chain import overriding
from conveyor.middleware.flower import FlowerEvents
from conveyor.middleware.leases import Leases
from conveyor.middleware.outcome import Outcome

if TYPE_CHECKING:
    from conveyor.worker.executor import Execution

log = logging.getLogger("conveyor.middleware")


class Policy(Middleware):
    """A built-in middleware that may decide a delivery's course (internal hooks)."""

    def before_start(self, execution: Execution) -> bool:
        """Before the start is recorded: True when this policy handled the delivery
        (put it back for later, routed it elsewhere), so it does not run now.

        Raise a :class:`~conveyor.errors.PermanentError` to fail the job without
        running it (recorded as its failure, with its dead letter).
        """
        return False

    def after_start(self, execution: Execution, started_at: float) -> bool:
        """After the start is recorded, before the job runs: True when this policy
        recorded the job's outcome itself (through ``execution._handle_error``)."""
        return False

    def on_failure(
        self, execution: Execution, exc: BaseException, started_at: float
    ) -> Outcome | None:
        """The attempt failed with ``exc``: a ``retrying`` outcome when this policy
        rescheduled the job (its write done), or None to leave the decision to the next
        policy. When no policy decides, the job fails for good."""
        return None

    def after_failed(self, execution: Execution, dead_letter: dict[str, Any]) -> None:
        """The job failed for good and its ``failed`` event is written; ``dead_letter``
        describes it (job id, type, queue, priority, error, attempt, deliveries, worker)."""

    def on_progress(
        self, execution: Execution, percent: float, stage: str | None, message: str | None
    ) -> bool:
        """The job reported progress (``ctx.progress()``): False when the job must stop
        because it was cancelled (``ctx.progress()`` then raises ``JobCancelled``)."""
        return True


@dataclass(frozen=True)
class Hooks:
    """An app's middleware sorted by the hooks each overrides, worked out once per app
    so that a delivery calls only the hooks that do something."""

    before_start: Sequence[Policy]
    after_start: Sequence[Policy]
    on_failure: Sequence[Policy]
    after_failed: Sequence[Policy]
    on_progress: Sequence[Policy]
    on_error: Sequence[Middleware]
    after_job: Sequence[Middleware]
    after_final: Sequence[Middleware]
    #: Whether state changes carry Celery task events (:class:`FlowerEvents` installed).
    flower_events: bool
    #: The :class:`Leases` middleware a worker's heartbeat drives (the first installed).
    leases: Leases | None

    @classmethod
    def of(cls, middleware: Sequence[Middleware]) -> Hooks:
        """The hook lists of ``middleware`` (in list order)."""
        policies = [mw for mw in middleware if isinstance(mw, Policy)]
        return cls(
            before_start=overriding(policies, "before_start", Policy),
            after_start=overriding(policies, "after_start", Policy),
            on_failure=overriding(policies, "on_failure", Policy),
            after_failed=overriding(policies, "after_failed", Policy),
            on_progress=overriding(policies, "on_progress", Policy),
            on_error=overriding(middleware, "on_error"),
            after_job=overriding(middleware, "after_job"),
            after_final=overriding(middleware, "after_final"),
            flower_events=any(isinstance(mw, FlowerEvents) for mw in middleware),
            leases=next((mw for mw in middleware if isinstance(mw, Leases)), None),
        )


def before_start(policies: Sequence[Policy], execution: Execution) -> bool | PermanentError:
    """Run the ``before_start`` hooks: True when one handled the delivery, the error when
    one refused the job, else False."""
    for policy in policies:
        try:
            if policy.before_start(execution):
                return True
        except PermanentError as exc:
            return exc
        except redis.RedisError:
            raise
        except Exception:
            _failed(policy, "before_start")
    return False


def after_start(policies: Sequence[Policy], execution: Execution, started_at: float) -> bool:
    """Run the ``after_start`` hooks: True when one recorded the job's outcome."""
    for policy in policies:
        try:
            if policy.after_start(execution, started_at):
                return True
        except redis.RedisError:
            raise
        except Exception:
            _failed(policy, "after_start")
    return False


def on_failure(
    policies: Sequence[Policy], execution: Execution, exc: BaseException, started_at: float
) -> Outcome | None:
    """Ask each policy in turn what a failed attempt comes to; the first answer wins."""
    for policy in policies:
        try:
            outcome = policy.on_failure(execution, exc, started_at)
        except redis.RedisError:
            raise
        except Exception:
            _failed(policy, "on_failure")
            continue
        if outcome is not None:
            return outcome
    return None


def after_failed(
    policies: Sequence[Policy], execution: Execution, dead_letter: dict[str, Any]
) -> None:
    """Run the ``after_failed`` hooks (each failure logged and isolated)."""
    for policy in policies:
        try:
            policy.after_failed(execution, dead_letter)
        except Exception:
            _failed(policy, "after_failed")


def on_progress(
    policies: Sequence[Policy],
    execution: Execution,
    percent: float,
    stage: str | None,
    message: str | None,
) -> bool:
    """Run the ``on_progress`` hooks: False as soon as one says the job must stop."""
    for policy in policies:
        try:
            if not policy.on_progress(execution, percent, stage, message):
                return False
        except redis.RedisError:
            raise
        except Exception:
            _failed(policy, "on_progress")
    return True


def _failed(policy: Policy, hook: str) -> None:
    log.exception(
        "middleware %s.%s failed; ignored (the job goes on as without it)",
        type(policy).__name__,
        hook,
    )
