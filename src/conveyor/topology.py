"""Queues, their priorities, and the worker profiles that consume them.

The default table comes from DESIGN.md; a ``conveyor.toml`` can change any
entry or add new ones::

    [queues.thumbnails]
    priority = 4

    [profiles.processing]
    queues = ["processing", "thumbnails"]
    concurrency = 6
"""

from __future__ import annotations

import math
import re
import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

from conveyor.errors import ConfigurationError

#: Message priority levels, 10 being the most urgent.
MIN_PRIORITY = 0
MAX_PRIORITY = 10
DEAD_LETTER = "dead-letter"

Pool = Literal["prefork", "procs", "threads", "solo"]
GpuPolicy = Literal["required", "prefer", "none"]

_NAME = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,62}$")


@dataclass(frozen=True)
class Queue:
    """A named queue with a priority: a worker drains higher ones first."""

    name: str
    priority: int


@dataclass(frozen=True)
class Profile:
    """A kind of worker: which queues it consumes, in what order, and how."""

    name: str
    queues: tuple[str, ...]
    concurrency: int
    pool: Pool = "prefork"
    gpu: GpuPolicy = "none"
    autoscale: tuple[int, int] | None = None
    #: ``(min, max)`` worker processes the worker manager keeps (None: the settings' defaults).
    workers: tuple[int, int] | None = None
    #: Celery's prefetch multiplier and max tasks per pool child (None: the settings').
    prefetch: int | None = None
    max_tasks_per_child: int | None = None
    #: Default hard and soft time limits (seconds) for jobs this profile's workers run
    #: (None: the settings'). A job type's own limits, and a submission's, win over these.
    time_limit: float | None = None
    soft_time_limit: float | None = None
    #: The keys ``conveyor.toml`` set for this profile (its own settings win over the
    #: environment's defaults; see :mod:`conveyor.worker.sizing`).
    configured: frozenset[str] = frozenset()


@dataclass(frozen=True)
class Topology:
    """Every queue and profile, validated together."""

    queues: Mapping[str, Queue]
    profiles: Mapping[str, Profile]
    default_queue: str = "processing"
    extra: Mapping[str, Any] = field(default_factory=dict)

    def queue(self, name: str) -> Queue:
        """The queue called ``name``, or a :class:`ConfigurationError` listing the known ones."""
        try:
            return self.queues[name]
        except KeyError:
            raise ConfigurationError(
                f"unknown queue {name!r}; known queues: {', '.join(self.queue_names())}"
            ) from None

    def profile(self, name: str) -> Profile:
        """The profile called ``name``, or a :class:`ConfigurationError` listing the known ones."""
        try:
            return self.profiles[name]
        except KeyError:
            raise ConfigurationError(
                f"unknown profile {name!r}; known profiles: {', '.join(self.profiles)}"
            ) from None

    def queue_names(self) -> list[str]:
        """Queue names, most urgent first."""
        return [q.name for q in self.ordered(self.queues.values())]

    @staticmethod
    def ordered(queues: Iterable[Queue]) -> list[Queue]:
        """``queues`` sorted most urgent first (ties keep their given order)."""
        return sorted(queues, key=lambda q: -q.priority)

    def queue_priorities(self) -> dict[str, int]:
        """Queue name → priority, as the broker transport needs it."""
        return {q.name: q.priority for q in self.queues.values()}


def default_topology() -> Topology:
    """The queue and profile table from DESIGN.md."""
    queues = [
        Queue("critical", 10),
        Queue("generation-high", 7),
        Queue("generation", 5),
        Queue("processing", 3),
        Queue("batch", 1),
        Queue("monitoring", 0),
        # Below monitoring: dead letters are looked at last.
        Queue(DEAD_LETTER, -1),
    ]
    profiles = [
        Profile("critical", ("critical",), 2, gpu="prefer"),
        Profile("generation", ("generation-high", "generation"), 2, gpu="prefer", autoscale=(2, 4)),
        Profile("processing", ("processing",), 4),
        Profile("batch", ("batch",), 2),
        Profile("monitoring", ("monitoring", DEAD_LETTER), 1, pool="threads"),
    ]
    return Topology({q.name: q for q in queues}, {p.name: p for p in profiles})


def load_topology(path: Path | None) -> Topology:
    """The default table with ``path`` (a ``conveyor.toml``) applied over it.

    With ``path`` None, ``./conveyor.toml`` is used when it exists.
    """
    base = default_topology()
    found = read_config(path)
    if found is None:
        return base
    data, source = found
    return apply_overrides(base, data, source=source)


def read_config(path: Path | None) -> tuple[dict[str, Any], str] | None:
    """The parsed ``conveyor.toml`` (``path``, else ``./conveyor.toml`` if any) and its name."""
    if path is None:
        candidate = Path("conveyor.toml")
        if not candidate.is_file():
            return None
        path = candidate
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigurationError(f"CONVEYOR_CONFIG: file not found: {path}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigurationError(f"{path}: not valid TOML: {exc}") from None
    return data, str(path)


def apply_overrides(base: Topology, data: Mapping[str, Any], source: str = "config") -> Topology:
    """``base`` with the ``queues``/``profiles`` tables of ``data`` merged in.

    With ``replace_defaults = true`` at the top of ``data``, the built-in queues
    and profiles are dropped: only what ``data`` declares exists (the
    ``dead-letter`` queue is always kept, and a ``monitoring`` profile consuming it
    is added unless ``data`` declares a profile that does).
    """
    replace_defaults = data.get("replace_defaults", False)
    if not isinstance(replace_defaults, bool):
        raise ConfigurationError(f"{source}: replace_defaults must be true or false")
    if replace_defaults:
        base = _bare(base, data, source)
    queues = dict(base.queues)
    for name, spec in _table(data, "queues", source).items():
        where = f"{source}: queues.{name}"
        _check_name(name, where)
        spec = _table({"x": spec}, "x", where)
        unknown = set(spec) - {"priority"}
        if unknown:
            raise ConfigurationError(
                f"{where}: unknown key(s) {sorted(unknown)}; allowed: priority"
            )
        priority = spec.get("priority", queues[name].priority if name in queues else 0)
        if not isinstance(priority, int) or not -1 <= priority <= 100:
            raise ConfigurationError(f"{where}.priority: must be an integer from -1 to 100")
        queues[name] = Queue(name, priority)

    profiles = dict(base.profiles)
    allowed = {
        "queues",
        "concurrency",
        "pool",
        "gpu",
        "autoscale",
        "workers",
        "prefetch",
        "max_tasks_per_child",
        "time_limit",
        "soft_time_limit",
    }
    for name, spec in _table(data, "profiles", source).items():
        where = f"{source}: profiles.{name}"
        _check_name(name, where)
        spec = _table({"x": spec}, "x", where)
        unknown = set(spec) - allowed
        if unknown:
            raise ConfigurationError(
                f"{where}: unknown key(s) {sorted(unknown)}; allowed: {sorted(allowed)}"
            )
        current = profiles.get(name) or Profile(name, (), 1)
        profiles[name] = _profile_from(current, spec, where)

    default_queue = data.get("default_queue", base.default_queue)
    topology = Topology(queues, profiles, default_queue)
    _validate(topology, source)
    return topology


def _bare(base: Topology, data: Mapping[str, Any], source: str) -> Topology:
    """The part of ``base`` an application that declares its own topology keeps."""
    declared = _table(data, "profiles", source)
    queues = {DEAD_LETTER: base.queues[DEAD_LETTER]}
    profiles: dict[str, Profile] = {}
    dead_letters_consumed = any(
        isinstance(spec, dict) and DEAD_LETTER in (spec.get("queues") or [])
        for spec in declared.values()
    )
    if not dead_letters_consumed and "monitoring" not in declared:
        # Dead letters still need their worker (it records them and sends alerts).
        profiles["monitoring"] = Profile("monitoring", (DEAD_LETTER,), 1, pool="threads")
    default_queue = data.get("default_queue")
    if default_queue is None:
        names = list(_table(data, "queues", source))
        if not names:
            raise ConfigurationError(
                f"{source}: replace_defaults = true needs at least one [queues.NAME] table"
            )
        default_queue = names[0]
    return Topology(queues, profiles, default_queue)


def _profile_from(current: Profile, spec: Mapping[str, Any], where: str) -> Profile:
    updated = current
    if "queues" in spec:
        names = spec["queues"]
        if not isinstance(names, list) or not all(isinstance(n, str) for n in names) or not names:
            raise ConfigurationError(f"{where}.queues: must be a non-empty list of queue names")
        updated = replace(updated, queues=tuple(names))
    if "concurrency" in spec:
        value = spec["concurrency"]
        if not isinstance(value, int) or value < 1:
            raise ConfigurationError(f"{where}.concurrency: must be an integer ≥ 1")
        updated = replace(updated, concurrency=value)
    if "pool" in spec:
        if spec["pool"] not in ("prefork", "procs", "threads", "solo"):
            raise ConfigurationError(f"{where}.pool: must be one of prefork, procs, threads, solo")
        updated = replace(updated, pool=spec["pool"])
    if "gpu" in spec:
        if spec["gpu"] not in ("required", "prefer", "none"):
            raise ConfigurationError(f"{where}.gpu: must be one of required, prefer, none")
        updated = replace(updated, gpu=spec["gpu"])
    if "autoscale" in spec:
        pair = spec["autoscale"]
        if (
            not isinstance(pair, list)
            or len(pair) != 2
            or not all(isinstance(v, int) and v >= 1 for v in pair)
            or pair[0] > pair[1]
        ):
            raise ConfigurationError(f"{where}.autoscale: must be [min, max] with 1 ≤ min ≤ max")
        updated = replace(updated, autoscale=(pair[0], pair[1]))
    if "workers" in spec:
        pair = spec["workers"]
        if (
            not isinstance(pair, list)
            or len(pair) != 2
            or not all(isinstance(v, int) and v >= 0 for v in pair)
        ):
            raise ConfigurationError(f"{where}.workers: must be [min, max] with 0 ≤ min ≤ max")
        if pair[0] > pair[1]:
            raise ConfigurationError(
                f"{where}.workers: min {pair[0]} is above max {pair[1]}; use [min, max]"
            )
        updated = replace(updated, workers=(pair[0], pair[1]))
    if "prefetch" in spec:
        updated = replace(updated, prefetch=_positive(spec["prefetch"], f"{where}.prefetch"))
    if "max_tasks_per_child" in spec:
        value = _positive(spec["max_tasks_per_child"], f"{where}.max_tasks_per_child")
        updated = replace(updated, max_tasks_per_child=value)
    if "time_limit" in spec:
        updated = replace(updated, time_limit=_seconds(spec["time_limit"], f"{where}.time_limit"))
    if "soft_time_limit" in spec:
        value = _seconds(spec["soft_time_limit"], f"{where}.soft_time_limit")
        updated = replace(updated, soft_time_limit=value)
    updated = replace(updated, configured=updated.configured | frozenset(spec))
    hard, soft = updated.time_limit, updated.soft_time_limit
    if hard is not None and soft is not None and soft >= hard:
        raise ConfigurationError(
            f"{where}: soft_time_limit ({soft:g}s) must be below time_limit ({hard:g}s)"
        )
    return updated


def _seconds(value: Any, where: str) -> float:
    if not isinstance(value, int | float) or isinstance(value, bool) or not 0 < value < math.inf:
        raise ConfigurationError(f"{where}: must be a number of seconds > 0 (got {value!r})")
    return float(value)


def _positive(value: Any, where: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise ConfigurationError(f"{where}: must be an integer ≥ 1")
    return value


def _table(data: Mapping[str, Any], key: str, source: str) -> dict[str, Any]:
    value = data.get(key, {})
    if not isinstance(value, dict):
        raise ConfigurationError(f"{source}: [{key}] must be a table")
    return value


def _check_name(name: str, where: str) -> None:
    if not _NAME.match(name):
        raise ConfigurationError(
            f"{where}: invalid name; use lowercase letters, digits, '-', '_' or '.' "
            "(no ':' — it separates priority levels in the broker's list names)"
        )


def _validate(topology: Topology, source: str) -> None:
    for profile in topology.profiles.values():
        if not profile.queues:
            raise ConfigurationError(f"{source}: profiles.{profile.name} consumes no queue")
        for queue in profile.queues:
            if queue not in topology.queues:
                raise ConfigurationError(
                    f"{source}: profiles.{profile.name} names unknown queue {queue!r}; "
                    f"known queues: {', '.join(topology.queue_names())}"
                )
    if topology.default_queue not in topology.queues:
        raise ConfigurationError(f"{source}: default_queue {topology.default_queue!r} is unknown")
