"""The application object: job registry, Celery app, and the submitting client."""

from __future__ import annotations

import hashlib
import importlib
import json
import os
import re
import socket
import time
import uuid
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime
from functools import cached_property
from typing import TYPE_CHECKING, Any, overload

import redis

from conveyor import enqueue, keys
from conveyor.broker.connection import check_reachable, client_for
from conveyor.broker.embedded import discover
from conveyor.client.job import Job
from conveyor.errors import (
    BrokerError,
    ConfigurationError,
    ConveyorError,
    InvalidSubmission,
    UnknownJobType,
)
from conveyor.events import EventWriter
from conveyor.jobs import JobDefinition, JobFunction, make_definition
from conveyor.middleware import Middleware
from conveyor.middleware.chain import call_hooks, overriding
from conveyor.middleware.defaults import default_middleware as _default_middleware
from conveyor.middleware.options import check_options
from conveyor.middleware.policy import Hooks
from conveyor.schedules import Schedule
from conveyor.settings import Settings, mask_url
from conveyor.submission import Submission
from conveyor.topology import MAX_PRIORITY, MIN_PRIORITY, GpuPolicy, Topology, load_topology
from conveyor.worker.ratelimits import RateLimiter

if TYPE_CHECKING:
    from celery import Celery

    from conveyor.engine.events import CeleryEvents

_UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")

_IDEMPOTENT = """
local existing = redis.call('GET', KEYS[1])
if existing then
  local status = redis.call('HGET', ARGV[3] .. existing, 'status')
  if status ~= 'failed' and status ~= 'cancelled' then return existing end
end
redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[2])
return false
"""

# A job type's uniqueness key: the job holding it is returned while it is queued,
# scheduled or running, or succeeded less than unique_ttl (ARGV[5]) seconds ago.
# The running job that submits (ARGV[6]) hands the key over: a job that re-submits
# itself (a clean-up that schedules its next run) would otherwise get itself back.
_UNIQUE = """
local existing = redis.call('GET', KEYS[1])
if existing and existing ~= ARGV[6] then
  local state = redis.call('HMGET', ARGV[3] .. existing, 'status', 'finished_at')
  local status = state[1]
  if status ~= 'failed' and status ~= 'cancelled' then
    if status ~= 'succeeded' then return existing end
    local finished = tonumber(state[2] or '0') or 0
    if tonumber(ARGV[4]) - finished < tonumber(ARGV[5]) then return existing end
  end
end
redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[2])
return false
"""


def unique_digest(definition: JobDefinition, payload: dict[str, Any]) -> str:
    """The digest of a job's uniqueness key: its whole payload, or the fields ``unique`` names."""
    fields = definition.unique
    data = payload if fields is True else {name: payload.get(name) for name in fields or ()}
    canonical = json.dumps(data, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()[:32]


class Conveyor:
    """A Conveyor application: declare jobs with :meth:`job`, submit them with :meth:`submit`.

    Nothing connects at construction; the broker is resolved on first use —
    the configured URL (``CELERY_BROKER_URL``, ``REDIS_URL`` or ``REDIS_HOST``…)
    or else the embedded broker that ``conveyor up`` runs for ``CONVEYOR_HOME``.
    """

    def __init__(
        self,
        settings: Settings | None = None,
        *,
        topology: Topology | None = None,
        middleware: Sequence[Middleware] = (),
        default_middleware: Sequence[Middleware] | None = None,
        packs: Sequence[str] | None = None,
    ) -> None:
        self.settings = settings or Settings.load()
        self.topology = topology or load_topology(self.settings.config_file)
        #: The built-in middleware (``default_middleware``, else
        #: :func:`conveyor.middleware.default_middleware`), then the application's.
        defaults = _default_middleware() if default_middleware is None else default_middleware
        self.middleware: list[Middleware] = [*defaults, *middleware]
        self.hooks = Hooks.of(self.middleware)
        # Worked out once: submits and deliveries skip hooks no middleware overrides.
        self._enqueue_hooks = overriding(self.middleware, "before_enqueue")
        self.before_job_hooks = overriding(self.middleware, "before_job")
        self._definitions: dict[str, JobDefinition] = {}
        self._writer: tuple[int, EventWriter] | None = None
        #: ``@app.on_worker_start`` hooks, run once per job-running process.
        self.worker_start_hooks: list[Callable[[], Any]] = []
        self._schedules: dict[str, Schedule] = {}
        for pack in self.settings.packs if packs is None else packs:
            self.use(pack)

    def use(self, pack: str) -> None:
        """Register a built-in pack's jobs (``"diag"``, ``"upkeep"``, ``"media"``) on this app."""
        try:
            module = importlib.import_module(f"conveyor.packs.{pack}")
        except ModuleNotFoundError as exc:
            if exc.name != f"conveyor.packs.{pack}":
                raise
            raise ConfigurationError(
                f"no built-in pack {pack!r} (packs: diag, upkeep, media)"
            ) from None
        module.register(self)

    # ------------------------------------------------------------ registration

    @overload
    def job(self, name: str) -> Any: ...

    @overload
    def job(
        self,
        name: str,
        *,
        queue: str | None = None,
        priority: int | None = None,
        retries: int | None = None,
        backoff: float | Sequence[float] | None = None,
        time_limit: float | None = None,
        soft_time_limit: float | None = None,
        rate_limit: str | None = None,
        gpu: GpuPolicy = "none",
        unique: bool | Sequence[str] = False,
        unique_ttl: float | None = None,
        transient: Sequence[type[BaseException]] | None = None,
        **middleware_options: Any,
    ) -> Callable[[JobFunction], JobFunction]: ...

    def job(self, name: str, **options: Any) -> Any:
        """Declare a job type (as a decorator), or get the handle of an existing job.

        ``@app.job("music.generate", queue="generation", retries=3)`` registers the
        decorated ``(ctx: JobContext, params: Model)`` function. ``app.job(job_id)``
        with a job id (a UUID) and no options returns that job's :class:`Job` handle,
        as :meth:`get_job` does.
        """
        if not options and _UUID.match(name):
            return self.get_job(name)
        options, extra = check_options(name, options, self.middleware)
        queue = options.get("queue")
        if queue is not None:
            self.topology.queue(queue)

        def decorate(func: JobFunction) -> JobFunction:
            if name in self._definitions:
                raise ConfigurationError(f"job type {name!r} is already registered")
            self._definitions[name] = make_definition(func, name, extra, **options)
            self.__dict__.pop("celery", None)
            return func

        return decorate

    def on_worker_start(self, func: Callable[[], Any]) -> Callable[[], Any]:
        """Decorator: run ``func`` once in every worker process before it takes jobs.

        What it returns (a loaded model…) is available to jobs as
        ``ctx.resources[func.__name__]`` (see :mod:`conveyor.worker.resources`).
        """
        self.worker_start_hooks.append(func)
        return func

    def periodic(
        self,
        name: str,
        *,
        job: str | None = None,
        every: str | float | None = None,
        cron: str | None = None,
        payload: dict[str, Any] | None = None,
        queue: str | None = None,
        priority: int | None = None,
        enabled: bool = True,
    ) -> Callable[[JobFunction], JobFunction]:
        """Declare a periodic job that ``conveyor beat`` submits ``every`` ("1h") or on ``cron``.

        Put it above ``@app.job`` to schedule that job type, or call it with ``job=``
        (default: the job type named ``name``). See :mod:`conveyor.schedules`.
        """
        from conveyor.schedules import make_schedule, with_job

        if name in self._schedules:
            raise ConfigurationError(f"schedule {name!r} is already declared")
        self._schedules[name] = make_schedule(
            name,
            job or name,
            every=every,
            cron=cron,
            payload=payload,
            queue=queue,
            priority=priority,
            enabled=enabled,
        )

        def decorate(func: JobFunction) -> JobFunction:
            if job is None:
                for definition in self._definitions.values():
                    # An async job's definition holds its wrapper (AsyncJob).
                    if func in (definition.func, getattr(definition.func, "__wrapped__", None)):
                        self._schedules[name] = with_job(self._schedules[name], definition.name)
            return func

        return decorate

    def schedules(self) -> dict[str, Schedule]:
        """Every schedule: declared in code, then ``[schedules.NAME]`` of ``conveyor.toml``."""
        from conveyor.schedules import load_schedules

        return load_schedules(self, self._schedules)

    def get_job(self, job_id: str) -> Job:
        """The handle of an existing job."""
        return Job(self, job_id)

    @property
    def definitions(self) -> dict[str, JobDefinition]:
        """Every registered job type by name."""
        return dict(self._definitions)

    def definition(self, name: str) -> JobDefinition:
        """The job type ``name``, or :class:`UnknownJobType` listing the known ones."""
        try:
            return self._definitions[name]
        except KeyError:
            raise UnknownJobType(name, list(self._definitions)) from None

    def queue_for(self, definition: JobDefinition) -> str:
        """The queue a job type is routed to when a submit names none."""
        return definition.queue or self.topology.default_queue

    def retries_for(self, definition: JobDefinition) -> int:
        """How many retries a job type gets."""
        if definition.retries is not None:
            return definition.retries
        return self.settings.default_retries

    # ------------------------------------------------------------- connections

    @cached_property
    def broker_url(self) -> str:
        """The broker URL in use (configured, or the running embedded broker's)."""
        configured = self.settings.configured_broker_url
        if configured:
            return configured
        info = discover(self.settings.home_dir)
        if info is None:
            raise BrokerError(
                f"no broker: none is configured (REDIS_URL / CELERY_BROKER_URL) and no "
                f"embedded broker runs for CONVEYOR_HOME={self.settings.home_dir}; "
                "start one with `conveyor up`"
            )
        return str(info["url"])

    @property
    def redis(self) -> redis.Redis:
        """This process's Redis client for the broker."""
        return client_for(self.broker_url, timeout_s=self.settings.broker_connect_timeout_s)

    def check_broker(self) -> None:
        """Raise :class:`BrokerError` (URL named, password masked) unless the broker answers."""
        check_reachable(self.broker_url, timeout_s=self.settings.broker_connect_timeout_s)

    def event_writer(self) -> EventWriter:
        """This process's :class:`EventWriter` (a new one after a fork)."""
        pid = os.getpid()
        if self._writer is None or self._writer[0] != pid:
            writer = EventWriter(
                self.redis,
                state_ttl_s=self.settings.result_expires_s,
                events_maxlen=self.settings.events_maxlen,
            )
            self._writer = (pid, writer)
        return self._writer[1]

    @cached_property
    def celery_events(self) -> CeleryEvents:
        """Builds the Celery-format task events that Flower reads."""
        from conveyor.engine.events import CeleryEvents

        return CeleryEvents(self.broker_url, hostname=f"client@{socket.gethostname()}")

    @cached_property
    def celery(self) -> Celery:
        """The Celery app, configured and with every job type registered as a task."""
        from conveyor.engine.config import build_celery
        from conveyor.engine.task import register
        from conveyor.worker import guard
        from conveyor.worker.deadletter import register_dead_letter_task

        app = build_celery(
            self.settings, self.topology, self.broker_url, self._definitions.values()
        )
        for definition in self._definitions.values():
            register(app, self, definition)
        register_dead_letter_task(app, self)
        guard.install(app)
        return app

    # -------------------------------------------------------------- submitting

    def submit(
        self,
        type: str,
        payload: dict[str, Any] | None = None,
        *,
        priority: int | None = None,
        queue: str | None = None,
        delay: float | None = None,
        eta: datetime | float | None = None,
        idempotency_key: str | None = None,
        tenant: str | None = None,
        batch_id: str | None = None,
        tags: Sequence[str] | None = None,
        replay_of: str | None = None,
        time_limit: float | None = None,
        soft_time_limit: float | None = None,
    ) -> Job:
        """Validate and enqueue a job; return its :class:`Job` handle.

        ``tenant``, ``batch_id``, ``tags`` and ``replay_of`` (the job this one
        re-runs) are recorded with the job (live state, ``queued`` event, store).
        ``time_limit`` / ``soft_time_limit`` override the job type's limits for this
        job and its retries (see :func:`conveyor.timelimits.resolve_limits`).

        Raises :class:`UnknownJobType`, :class:`PayloadInvalid` or
        :class:`InvalidSubmission` before anything is enqueued, and
        :class:`BrokerError` when the broker cannot be reached.
        """
        submission = self.submission(
            type,
            payload,
            priority=priority,
            queue=queue,
            delay=delay,
            eta=eta,
            tenant=tenant,
            batch_id=batch_id,
            tags=tags,
            replay_of=replay_of,
            time_limit=time_limit,
            soft_time_limit=soft_time_limit,
        )
        return self.enqueue_submission(submission, idempotency_key)

    def submission(
        self,
        type: str,
        payload: dict[str, Any] | None = None,
        *,
        priority: int | None = None,
        queue: str | None = None,
        delay: float | None = None,
        eta: datetime | float | None = None,
        tenant: str | None = None,
        batch_id: str | None = None,
        tags: Sequence[str] | None = None,
        replay_of: str | None = None,
        time_limit: float | None = None,
        soft_time_limit: float | None = None,
    ) -> Submission:
        """Validate a new job and build its :class:`Submission` (what :meth:`submit` enqueues),
        after the ``before_enqueue`` hooks accepted it; nothing is enqueued yet."""
        definition = self.definition(type)
        params = definition.validate(payload)
        queue = self._check_queue(queue, definition)
        priority = self._check_priority(priority, definition, queue)
        hard, soft = None, None
        if time_limit is not None or soft_time_limit is not None:
            from conveyor.engine.config import visibility_timeout
            from conveyor.timelimits import resolve_limits

            hard, soft = resolve_limits(
                definition,
                self.settings,
                time_limit,
                soft_time_limit,
                visibility_timeout_s=visibility_timeout(
                    self.settings, self._definitions.values(), self.topology
                ),
            )
        labels: dict[str, Any] = {}
        if tenant is not None:
            labels["tenant"] = tenant
        if batch_id is not None:
            labels["batch_id"] = batch_id
        if replay_of is not None:
            labels["replay_of"] = replay_of
        if tags:
            labels["tags"] = list(tags)
        submission = Submission(
            id=str(uuid.uuid4()),
            type=definition.name,
            payload=params.model_dump(mode="json"),
            queue=queue,
            priority=priority,
            created_at=time.time(),
            due_at=_due_at(delay, eta),
            time_limit=hard,
            soft_time_limit=soft,
            labels=labels,
        )
        if self._enqueue_hooks:
            # A ConveyorError (e.g. PermissionDenied) from a hook refuses the submission.
            call_hooks(
                self._enqueue_hooks,
                "before_enqueue",
                self,
                submission.view(),
                passes=(ConveyorError,),
            )
        return submission

    def enqueue_submission(self, submission: Submission, idempotency_key: str | None = None) -> Job:
        """Enqueue a new job built by :meth:`submission` (see :meth:`submit`): the job
        holding its idempotency key or uniqueness key instead, if there is one."""
        definition = self.definition(submission.type)
        job_id = submission.id
        claim_key = None
        if idempotency_key is not None:
            claim_key = keys.idempotency(idempotency_key)
        elif definition.unique:
            claim_key = keys.unique(
                definition.name,
                unique_digest(definition, submission.payload),
                submission.labels.get("tenant"),
            )
        try:
            if idempotency_key is not None:
                existing = self._claim_idempotency(idempotency_key, job_id)
                if existing is not None:
                    return Job(self, existing, deduplicated=True)
            elif claim_key is not None:
                existing = self._claim_unique(claim_key, job_id, definition.unique_ttl)
                if existing is not None:
                    return Job(self, existing, deduplicated=True)
            try:
                enqueue.submit(self, submission, idempotency_key)
            except BaseException:
                if claim_key is not None:
                    self.redis.delete(claim_key)
                raise
        except self._broker_errors() as exc:
            raise self._unreachable(submission.type, exc) from None
        return Job(self, job_id, submitted=submission)

    def enqueue_submissions(self, submissions: Sequence[Submission]) -> list[Job]:
        """Enqueue many new jobs built by :meth:`submission` in one round trip (each its own
        atomic step); those with an idempotency or uniqueness key go through
        :meth:`enqueue_submission` instead."""
        if not submissions:
            return []
        try:
            enqueue.submit_all(self, submissions)
        except self._broker_errors() as exc:
            raise self._unreachable(submissions[0].type, exc) from None
        return [Job(self, submission.id, submitted=submission) for submission in submissions]

    def submit_many(
        self,
        type: str,
        payloads: Iterable[dict[str, Any] | None],
        *,
        priority: int | None = None,
        queue: str | None = None,
        delay: float | None = None,
        tenant: str | None = None,
        batch_id: str | None = None,
        tags: Sequence[str] | None = None,
        time_limit: float | None = None,
        soft_time_limit: float | None = None,
        chunk: int = 1000,
    ) -> list[Job]:
        """Submit one job of ``type`` per payload, pipelined: ``chunk`` jobs a round trip.

        Every payload is validated (and every ``before_enqueue`` hook run) before the
        first job is enqueued, so a bad payload enqueues nothing and raises as
        :meth:`submit` would. Each job is still its own atomic step. A ``unique=`` job
        type is enqueued one by one (each claims its key). The options apply to every
        job; returns the handles in payload order.
        """
        if chunk < 1:
            raise InvalidSubmission(f"chunk must be at least 1, got {chunk}")
        submissions = [
            self.submission(
                type,
                payload,
                priority=priority,
                queue=queue,
                delay=delay,
                tenant=tenant,
                batch_id=batch_id,
                tags=tags,
                time_limit=time_limit,
                soft_time_limit=soft_time_limit,
            )
            for payload in payloads
        ]
        if submissions and self.definition(type).unique:
            return [self.enqueue_submission(submission) for submission in submissions]
        jobs: list[Job] = []
        for start in range(0, len(submissions), chunk):
            jobs += self.enqueue_submissions(submissions[start : start + chunk])
        return jobs

    def _broker_errors(self) -> tuple[type[Exception], ...]:
        return (redis.RedisError, _kombu_operational_error(), OSError)

    def _unreachable(self, type: str, exc: BaseException) -> BrokerError:
        return BrokerError(
            f"could not submit {type}: broker at {mask_url(self.broker_url)} is unreachable ({exc})"
        )

    def _check_queue(self, queue: str | None, definition: JobDefinition) -> str:
        if queue is None:
            return self.queue_for(definition)
        if queue not in self.topology.queues:
            raise InvalidSubmission(
                f"unknown queue {queue!r}; known queues: {', '.join(self.topology.queue_names())}"
            )
        return queue

    def _check_priority(self, priority: int | None, definition: JobDefinition, queue: str) -> int:
        if priority is None:
            if definition.priority is not None:
                return definition.priority
            return max(MIN_PRIORITY, min(MAX_PRIORITY, self.topology.queue(queue).priority))
        if isinstance(priority, bool) or not isinstance(priority, int):
            raise InvalidSubmission(f"priority must be an integer 0–10 (got {priority!r})")
        if not MIN_PRIORITY <= priority <= MAX_PRIORITY:
            raise InvalidSubmission(f"priority must be 0–10, 10 the most urgent (got {priority})")
        return priority

    def _claim_unique(self, key: str, job_id: str, unique_ttl: float) -> str | None:
        script = self.redis.register_script(_UNIQUE)
        ttl = self.settings.result_expires_s
        running = _running_job_id()
        existing = script(
            keys=[key], args=[job_id, ttl, keys.job(""), time.time(), unique_ttl, running]
        )
        return existing.decode() if existing else None

    @cached_property
    def rate_limiter(self) -> RateLimiter:
        """Shared per-job-type rate limits (:mod:`conveyor.worker.ratelimits`)."""
        return RateLimiter(self.redis)

    def _claim_idempotency(self, key: str, job_id: str) -> str | None:
        script = self.redis.register_script(_IDEMPOTENT)
        ttl = self.settings.result_expires_s
        existing = script(keys=[keys.idempotency(key)], args=[job_id, ttl, keys.job("")])
        return existing.decode() if existing else None


def _running_job_id() -> str:
    """The id of the job this thread runs in a worker ("" outside a job)."""
    from celery import current_task

    request = getattr(current_task, "request", None) if current_task else None
    return str(getattr(request, "id", None) or "")


def _kombu_operational_error() -> type[Exception]:
    # kombu (with Celery) loads on the first publish, not when a quick command starts.
    import kombu.exceptions

    return kombu.exceptions.OperationalError


def _due_at(delay: float | None, eta: datetime | float | None) -> float | None:
    if delay is not None and eta is not None:
        raise InvalidSubmission("give either delay or eta, not both")
    if delay is not None:
        if delay < 0:
            raise InvalidSubmission(f"delay must be ≥ 0 seconds (got {delay})")
        return time.time() + delay if delay > 0 else None
    if eta is None:
        return None
    if isinstance(eta, datetime):
        if eta.tzinfo is None:
            eta = eta.replace(tzinfo=UTC)
        return eta.timestamp()
    return float(eta)


def load_app(path: str | None) -> Conveyor:
    """The application at ``module:attribute`` (``CONVEYOR_APP``), or the built-in one."""
    if not path:
        return Conveyor()
    module_name, _, attribute = path.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ConfigurationError(f"CONVEYOR_APP: cannot import {module_name!r}: {exc}") from None
    app = getattr(module, attribute or "app", None)
    if not isinstance(app, Conveyor):
        raise ConfigurationError(
            f"CONVEYOR_APP: {path!r} is not a Conveyor application (module:attribute)"
        )
    return app
