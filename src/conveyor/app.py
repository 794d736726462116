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
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from functools import cached_property
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, overload

import redis

from conveyor import delayed, keys
from conveyor.broker.connection import check_reachable, client_for
from conveyor.broker.embedded import discover
from conveyor.client import Job
from conveyor.errors import (
    BrokerError,
    ConfigurationError,
    ConveyorError,
    InvalidSubmission,
    UnknownJobType,
)
from conveyor.events import EventWriter, new_event
from conveyor.jobs import JobDefinition, JobFunction, make_definition
from conveyor.middleware import Middleware
from conveyor.middleware.chain import call_hooks, overriding
from conveyor.ratelimit import RateLimiter
from conveyor.schedules import Schedule
from conveyor.settings import Settings, mask_url
from conveyor.topology import MAX_PRIORITY, MIN_PRIORITY, GpuPolicy, Topology, load_topology

if TYPE_CHECKING:
    from celery import Celery

    from conveyor.celery_events import CeleryEvents

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
        packs: Sequence[str] | None = None,
    ) -> None:
        self.settings = settings or Settings.load()
        self.topology = topology or load_topology(self.settings.config_file)
        self.middleware: list[Middleware] = list(middleware)
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
        queue = options.get("queue")
        if queue is not None:
            self.topology.queue(queue)

        def decorate(func: JobFunction) -> JobFunction:
            if name in self._definitions:
                raise ConfigurationError(f"job type {name!r} is already registered")
            self._definitions[name] = make_definition(func, name, **options)
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
                    if definition.func is func:
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
        from conveyor.celery_events import CeleryEvents

        return CeleryEvents(self.broker_url, hostname=f"client@{socket.gethostname()}")

    def task_sent_event(self, spec: dict[str, Any]) -> tuple[str, str]:
        """The ``task-sent`` event for one published attempt."""
        from conveyor.celery_events import task_fields

        fields = task_fields(spec["id"], spec["type"], spec["payload"], _meta(spec))
        fields.update(queue=spec["queue"], exchange=spec["queue"], routing_key=spec["queue"])
        return self.celery_events.event("task-sent", fields)

    @cached_property
    def celery(self) -> Celery:
        """The Celery app, configured and with every job type registered as a task."""
        from conveyor.engine import build_celery
        from conveyor.worker import guard
        from conveyor.worker.adapter import register
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
        job and its retries (see :func:`conveyor.limits.resolve_limits`).

        Raises :class:`UnknownJobType`, :class:`PayloadInvalid` or
        :class:`InvalidSubmission` before anything is enqueued, and
        :class:`BrokerError` when the broker cannot be reached.
        """
        definition = self.definition(type)
        params = definition.validate(payload)
        queue = self._check_queue(queue, definition)
        priority = self._check_priority(priority, definition, queue)
        hard, soft = None, None
        if time_limit is not None or soft_time_limit is not None:
            from conveyor.engine import visibility_timeout
            from conveyor.limits import resolve_limits

            hard, soft = resolve_limits(
                definition,
                self.settings,
                time_limit,
                soft_time_limit,
                visibility_timeout_s=visibility_timeout(
                    self.settings, self._definitions.values(), self.topology
                ),
            )
        due_at = _due_at(delay, eta)
        job_id = str(uuid.uuid4())
        now = time.time()
        spec = self.submission_spec(
            definition,
            job_id,
            params.model_dump(mode="json"),
            queue=queue,
            priority=priority,
            attempt=0,
            created_at=now,
            due_at=due_at,
            time_limit=hard,
            soft_time_limit=soft,
        )
        labels = {"tenant": tenant, "batch_id": batch_id, "replay_of": replay_of}
        spec["labels"] = {k: v for k, v in labels.items() if v is not None}
        if tags:
            spec["labels"]["tags"] = list(tags)
        if self._enqueue_hooks:
            # A ConveyorError (e.g. PermissionDenied) from a hook refuses the submission.
            call_hooks(
                self._enqueue_hooks,
                "before_enqueue",
                self,
                MappingProxyType(spec),
                passes=(ConveyorError,),
            )
        claim_key = None
        if idempotency_key is not None:
            claim_key = keys.idempotency(idempotency_key)
        elif definition.unique:
            claim_key = keys.unique(
                definition.name, unique_digest(definition, spec["payload"]), tenant
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
                self._enqueue(spec, idempotency_key)
            except BaseException:
                if claim_key is not None:
                    self.redis.delete(claim_key)
                raise
        except (redis.RedisError, _kombu_operational_error(), OSError) as exc:
            raise BrokerError(
                f"could not submit {type}: broker at {mask_url(self.broker_url)} "
                f"is unreachable ({exc})"
            ) from None
        return Job(self, job_id, submitted=spec)

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
        """Shared per-job-type rate limits (:mod:`conveyor.ratelimit`)."""
        return RateLimiter(self.redis)

    def _claim_idempotency(self, key: str, job_id: str) -> str | None:
        script = self.redis.register_script(_IDEMPOTENT)
        ttl = self.settings.result_expires_s
        existing = script(keys=[keys.idempotency(key)], args=[job_id, ttl, keys.job("")])
        return existing.decode() if existing else None

    def submission_spec(
        self,
        definition: JobDefinition,
        job_id: str,
        payload: Any,
        *,
        queue: str,
        priority: int | None,
        attempt: int,
        created_at: float | None,
        due_at: float | None = None,
        time_limit: float | None = None,
        soft_time_limit: float | None = None,
    ) -> dict[str, Any]:
        """Everything needed to publish (or re-publish) one attempt of a job.

        Time limits are included only when this job overrides its type's.
        """
        limits = {"time_limit": time_limit, "soft_time_limit": soft_time_limit}
        return {
            "id": job_id,
            "type": definition.name,
            "payload": payload,
            "queue": queue,
            "priority": priority,
            "attempt": attempt,
            "created_at": created_at,
            "due_at": due_at,
            **{name: value for name, value in limits.items() if value is not None},
        }

    def _enqueue(self, spec: dict[str, Any], idempotency_key: str | None) -> None:
        due_at = spec["due_at"]
        fields = {
            "type": spec["type"],
            "queue": spec["queue"],
            "priority": spec["priority"],
            "payload": spec["payload"],
            "created_at": spec["created_at"],
            "due_at": due_at,
        }
        labels: dict[str, Any] = spec.get("labels") or {}
        fields.update(labels)
        writer = self.event_writer()
        if due_at is not None and due_at > time.time():
            event = new_event(
                "scheduled",
                spec["id"],
                spec["type"],
                spec["queue"],
                priority=spec["priority"],
                payload=spec["payload"],
                due_at=due_at,
                idempotency_key=idempotency_key,
                created_at=spec["created_at"],
                **labels,
            )
            pipe = writer.client.pipeline(transaction=True)
            delayed.schedule(pipe, spec["id"], due_at, spec)
            writer.emit(event, fields=fields, mode="init", client=pipe)
            pipe.execute()
            return
        push = self._direct_message(spec)
        if push is None:
            # Publish first: if the broker is down nothing is left behind.
            self.publish_spec(spec, record=False)
        event = new_event(
            "queued",
            spec["id"],
            spec["type"],
            spec["queue"],
            priority=spec["priority"],
            payload=spec["payload"],
            idempotency_key=idempotency_key,
            created_at=spec["created_at"],
            **labels,
        )
        # With a direct message, the message and its event go in one atomic step.
        writer.emit(
            event, fields=fields, mode="init", celery=[self.task_sent_event(spec)], push=push
        )

    def _direct_message(self, spec: dict[str, Any]) -> tuple[str, str] | None:
        """The message to push with the ``queued`` event, or None to publish through Celery.

        Direct on Conveyor's Redis transport without compression (see
        :mod:`conveyor.broker.message`); through Celery's producer otherwise.
        """
        # Here, not at import: Celery and kombu cost a quick command (`conveyor status`) a lot.
        from conveyor.broker.message import redis_message
        from conveyor.broker.transport import TRANSPORT_PATH

        conf = self.celery.conf
        if conf.broker_transport != TRANSPORT_PATH or conf.task_compression:
            return None
        limits = _limits(spec)
        kwargs = {"meta": _meta(spec)}
        return redis_message(
            self.celery,
            task_id=spec["id"],
            name=spec["type"],
            args=[spec["payload"]],
            kwargs=kwargs,
            queue=spec["queue"],
            priority=spec["priority"],
            argsrepr=_repr_json([spec["payload"]]),
            kwargsrepr=_repr_json(kwargs),
            time_limit=limits.get("time_limit"),
            soft_time_limit=limits.get("soft_time_limit"),
        )

    def publish_spec(self, spec: dict[str, Any], record: bool = True) -> None:
        """Publish one attempt of a job to its queue (used by submit, retries and the mover)."""
        kwargs = {"meta": _meta(spec)}
        self.celery.send_task(
            spec["type"],
            args=[spec["payload"]],
            kwargs=kwargs,
            task_id=spec["id"],
            queue=spec["queue"],
            routing_key=spec["queue"],
            priority=spec["priority"],
            # Celery builds these with saferepr, a third of the publish's CPU time;
            # compact JSON (what Flower shows) costs a tenth of that.
            argsrepr=_repr_json([spec["payload"]]),
            kwargsrepr=_repr_json(kwargs),
            **_limits(spec),
        )
        if record:
            event = new_event(
                "queued",
                spec["id"],
                spec["type"],
                spec["queue"],
                priority=spec["priority"],
                attempt=spec["attempt"],
            )
            self.event_writer().emit(
                event, fields={"due_at": spec.get("due_at")}, celery=[self.task_sent_event(spec)]
            )


def _running_job_id() -> str:
    """The id of the job this thread runs in a worker ("" outside a job)."""
    from celery import current_task

    request = getattr(current_task, "request", None) if current_task else None
    return str(getattr(request, "id", None) or "")


def _kombu_operational_error() -> type[Exception]:
    # kombu (with Celery) loads on the first publish, not when a quick command starts.
    import kombu.exceptions

    return kombu.exceptions.OperationalError


def _repr_json(value: Any, limit: int = 1024) -> str:
    """A compact, bounded display form of a task's arguments (Celery's argsrepr)."""
    text = json.dumps(value, separators=(",", ":"), default=str)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _meta(spec: dict[str, Any]) -> dict[str, Any]:
    """The ``meta`` keyword argument a job's message carries."""
    return {
        "attempt": spec["attempt"],
        "queue": spec["queue"],
        "priority": spec["priority"],
        "created_at": spec["created_at"],
        **_limits(spec),
        **({"device": spec["device"]} if spec.get("device") else {}),
    }


def _limits(spec: dict[str, Any]) -> dict[str, Any]:
    """The time limits this job overrides (none: its type's apply)."""
    return {
        name: float(spec[name])
        for name in ("time_limit", "soft_time_limit")
        if spec.get(name) is not None
    }


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
