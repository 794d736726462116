"""Job types: what ``@app.job`` records, and the :class:`JobContext` a job receives."""

from __future__ import annotations

import inspect
import random
import shutil
import tempfile
import typing
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType, TracebackType
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ValidationError

from conveyor.errors import ConfigurationError, JobCancelled, PayloadInvalid
from conveyor.nobool import bool_errors
from conveyor.topology import MAX_PRIORITY, MIN_PRIORITY, GpuPolicy

if TYPE_CHECKING:
    from conveyor.worker.executor import Execution

JobFunction = Callable[..., Any]
Backoff = float | Sequence[float]

#: Errors that are retried unless a job type says otherwise.
DEFAULT_TRANSIENT: tuple[type[BaseException], ...] = (ConnectionError, TimeoutError, OSError)


@dataclass(frozen=True)
class JobDefinition:
    """A registered job type: its function, input model and execution policy."""

    name: str
    func: JobFunction
    model: type[BaseModel]
    queue: str | None = None
    priority: int | None = None
    retries: int | None = None
    backoff: Backoff | None = None
    time_limit: float | None = None
    soft_time_limit: float | None = None
    rate_limit: str | None = None
    gpu: GpuPolicy = "none"
    unique: bool | tuple[str, ...] = False
    #: With ``unique``: seconds after success during which a same-key submit still
    #: returns the finished job (0: only while it is queued, scheduled or running).
    unique_ttl: float = 0.0
    transient: tuple[type[BaseException], ...] = DEFAULT_TRANSIENT
    #: The ``@app.job`` keywords an installed middleware declared (``Middleware.options``)
    #: beyond the fields above, e.g. ``options["tenant_quota"]``; read-only.
    options: Mapping[str, Any] = field(
        default_factory=lambda: MappingProxyType({}), hash=False, compare=False
    )

    def validate(self, payload: Any) -> BaseModel:
        """The payload as the job's model, or :class:`PayloadInvalid` with field-level errors.

        A field the model does not declare is refused (a misspelt ``secs`` must not
        run with defaults), unless the model opts in to extra fields with
        ``model_config = ConfigDict(extra="allow")`` (or ``"ignore"``). A boolean
        is never taken as a number.
        """
        payload = payload if payload is not None else {}
        mistaken = bool_errors(self.model, payload)
        if mistaken:
            raise PayloadInvalid(self.name, mistaken)
        takes = ", ".join(self.model.model_fields) or "no fields"
        unknown = [
            {
                "field": name,
                "message": f"unknown field; {self.name} takes: {takes}",
                "type": "extra_forbidden",
            }
            for name in undeclared_fields(self.model, payload)
        ]
        try:
            params = self.model.model_validate(payload)
        except ValidationError as exc:
            raise PayloadInvalid(self.name, unknown + field_errors(exc)) from None
        if unknown:
            raise PayloadInvalid(self.name, unknown)
        return params

    def json_schema(self) -> dict[str, Any]:
        """The JSON schema of the job's input."""
        return self.model.model_json_schema()


def undeclared_fields(model: type[BaseModel], payload: Any) -> list[str]:
    """The top-level keys of ``payload`` that ``model`` neither declares nor opts in to.

    A model whose ``extra`` setting is given explicitly decides for itself (pydantic
    keeps, drops or refuses them); only the default, which drops them silently, is
    turned into a refusal here.
    """
    if not isinstance(payload, dict) or model.model_config.get("extra") is not None:
        return []
    known: set[str] = set()
    for name, info in model.model_fields.items():
        known.add(name)
        for alias in (info.alias, info.validation_alias):
            if isinstance(alias, str):
                known.add(alias)
            elif alias is not None:
                return []  # AliasChoices/AliasPath: pydantic alone knows what matches
    return [key for key in payload if key not in known]


def field_errors(exc: ValidationError) -> list[dict[str, Any]]:
    """Pydantic's errors as ``{"field", "message", "type"}`` entries."""
    return [
        {
            "field": ".".join(str(part) for part in error["loc"]),
            "message": error["msg"],
            "type": error["type"],
        }
        for error in exc.errors()
    ]


def backoff_delay(schedule: Backoff, attempt: int, cap_s: float, jitter: float = 0.1) -> float:
    """Seconds to wait before retry number ``attempt + 1``.

    A sequence is an explicit schedule (its last entry repeats); a number is the
    base of an exponential schedule (base, 3·base, 9·base …). The step is capped
    at ``cap_s``, then spread by ±``jitter`` so that retries of many jobs that
    failed together do not all come back at once. The spread never crosses the
    cap: a step at the cap is spread below it, so capped retries stay spread too.
    """
    if isinstance(schedule, int | float):
        base = float(schedule) * (3.0 ** min(attempt, 64))
    else:
        steps = list(schedule) or [0.0]
        base = float(steps[min(attempt, len(steps) - 1)])
    base = max(0.0, min(cap_s, base))
    spread = base * jitter
    delay = base + random.uniform(-spread, spread)
    if delay > cap_s:
        delay = 2 * cap_s - delay  # reflect at the cap instead of piling up on it
    return max(0.0, delay)


def make_definition(
    func: JobFunction, name: str, extra: Mapping[str, Any] | None = None, **options: Any
) -> JobDefinition:
    """Check a job function's signature and options and build its definition.

    ``extra`` holds the options middleware declared (checked by
    :func:`conveyor.middleware.options.check_options`), kept as ``definition.options``.

    An ``async def`` function is wrapped in :class:`conveyor.worker.aio.AsyncJob`
    (``definition.func`` stays a plain ``(ctx, params)`` callable).
    """
    params = list(inspect.signature(func).parameters.values())
    if len(params) != 2:
        raise ConfigurationError(
            f"job {name!r}: the function must take (ctx: JobContext, params: SomeModel)"
        )
    hints = typing.get_type_hints(func)
    model = hints.get(params[1].name)
    if not (isinstance(model, type) and issubclass(model, BaseModel)):
        raise ConfigurationError(
            f"job {name!r}: annotate the second parameter with a pydantic model "
            "(it is the job's input schema)"
        )
    priority = options.get("priority")
    if priority is not None and not MIN_PRIORITY <= priority <= MAX_PRIORITY:
        raise ConfigurationError(f"job {name!r}: priority must be 0–10 (got {priority})")
    soft, hard = options.get("soft_time_limit"), options.get("time_limit")
    if soft is not None and hard is not None and soft >= hard:
        raise ConfigurationError(f"job {name!r}: soft_time_limit must be below time_limit")
    unique = options.get("unique", False)
    if isinstance(unique, str):
        unique = [unique]
    if isinstance(unique, list | tuple):
        unknown = sorted(set(unique) - set(model.model_fields))
        if not unique or unknown:
            raise ConfigurationError(
                f"job {name!r}: unique= names no field, or unknown field(s) {unknown}; "
                f"fields: {', '.join(model.model_fields)}"
            )
        options["unique"] = tuple(unique)
    unique_ttl = options.get("unique_ttl")
    if unique_ttl is None:
        options.pop("unique_ttl", None)
    elif unique_ttl < 0:
        raise ConfigurationError(f"job {name!r}: unique_ttl must be ≥ 0 (got {unique_ttl})")
    rate_limit = options.get("rate_limit")
    if rate_limit is not None:
        from conveyor.worker.ratelimits import parse_rate

        parse_rate(rate_limit, name)
    transient = options.get("transient")
    if transient is None:
        options.pop("transient", None)
    else:
        options["transient"] = tuple(transient)
    if inspect.iscoroutinefunction(func):
        # Called like a sync function; the coroutine runs on the process's event loop.
        from conveyor.worker.aio import AsyncJob

        func = AsyncJob(func)
    return JobDefinition(
        name=name, func=func, model=model, options=MappingProxyType(dict(extra or {})), **options
    )


def job_tempdir_root(job_id: str) -> Path:
    """The directory under which every :meth:`JobContext.tempdir` of one job is made.

    Derived from the job id alone, so the worker's main process can remove it
    after a pool process was killed at its hard time limit.
    """
    return Path(tempfile.gettempdir()) / "conveyor-jobs" / job_id


def remove_job_tempdirs(job_id: str) -> None:
    """Remove every temporary directory a job made (a no-op when it made none)."""
    shutil.rmtree(job_tempdir_root(job_id), ignore_errors=True)


class TempDir:
    """A private temporary directory of a running job (see :meth:`JobContext.tempdir`).

    Use it as a context manager (``with ctx.tempdir() as path:``) to remove it at
    the end of the block, or keep ``.path``: it is removed when the job ends.
    """

    def __init__(self, root: Path, prefix: str) -> None:
        root.mkdir(parents=True, exist_ok=True)
        #: The directory; it exists until the block or the job ends.
        self.path = Path(tempfile.mkdtemp(prefix=prefix, dir=root))

    def __fspath__(self) -> str:
        return str(self.path)

    def __enter__(self) -> Path:
        return self.path

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.cleanup()

    def cleanup(self) -> None:
        """Remove the directory and everything in it (safe to call twice)."""
        shutil.rmtree(self.path, ignore_errors=True)


class JobContext:
    """What a running job knows about itself, and how it reports progress.

    Received as the first argument of every job function, ``async def`` ones too:
    its methods are plain calls (each at most one quick broker round trip), safe
    inside a coroutine (see :mod:`conveyor.worker.aio`).
    """

    def __init__(self, execution: Execution) -> None:
        self._execution = execution

    @property
    def job_id(self) -> str:
        """The job's id (stable across retries)."""
        return self._execution.job_id

    @property
    def job_type(self) -> str:
        """The job type's name."""
        return self._execution.definition.name

    @property
    def attempt(self) -> int:
        """0 for the first run, 1 for the first retry, and so on."""
        return self._execution.attempt

    @property
    def device(self) -> str:
        """``"cuda"`` when the job may use the worker's GPU, ``"cpu"`` otherwise (always
        ``"cpu"`` on the retry after a GPU out-of-memory error of a ``gpu="prefer"`` job)."""
        return self._execution.device

    @property
    def deliveries(self) -> int:
        """How often a worker has started this attempt (above 1 after a worker crash)."""
        return self._execution.deliveries

    @property
    def queue(self) -> str:
        """The queue the job was taken from."""
        return self._execution.queue

    @property
    def worker(self) -> str:
        """The hostname of the worker running the job."""
        return self._execution.worker

    @property
    def resources(self) -> dict[str, Any]:
        """What this process's ``@app.on_worker_start`` hooks returned, by hook name."""
        from conveyor.worker.resources import RESOURCES

        return RESOURCES

    @property
    def options(self) -> Mapping[str, Any]:
        """The job type's middleware-declared ``@app.job`` options (``definition.options``)."""
        return self._execution.definition.options

    @property
    def cancelled(self) -> bool:
        """True once someone has cancelled the job (checked against the broker)."""
        return self._execution.is_cancelled()

    def tempdir(self, prefix: str = "tmp-") -> TempDir:
        """A new private temporary directory, removed whatever happens.

        ``with ctx.tempdir() as path:`` removes it at the end of the block, even
        when the block ends with :class:`~conveyor.SoftTimeLimitExceeded`. Any
        directory still there when the job ends — it returned, raised, or its
        process was killed at the hard time limit — is removed by the worker.
        """
        return TempDir(job_tempdir_root(self.job_id), prefix)

    def progress(
        self, percent: float, stage: str | None = None, message: str | None = None
    ) -> None:
        """Report progress (0–100) with an optional stage name and message.

        Raises :class:`JobCancelled` if the job was cancelled meanwhile, so a
        cancelled job stops at its next report. Recording the report and that check
        are the :class:`~conveyor.middleware.Progress` middleware's (installed by
        default); without it this only checks ``percent``.
        """
        if not 0 <= percent <= 100:
            raise ValueError(f"progress must be between 0 and 100 (got {percent})")
        if not self._execution.report_progress(float(percent), stage, message):
            raise JobCancelled(f"job {self.job_id} was cancelled")
