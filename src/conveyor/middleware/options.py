"""Which middleware gives each ``@app.job`` option its meaning, checked at declaration.

Besides the core's options and the built-ins' (``retries``, ``rate_limit``…), a
middleware may declare options of its own in :attr:`Middleware.options
<conveyor.middleware.Middleware.options>`: ``@app.job`` then accepts them and keeps
them in ``JobDefinition.options`` (``ctx.options`` in a hook). A keyword that is
neither is refused, naming it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any

from conveyor.errors import ConfigurationError
from conveyor.middleware.base import Middleware


def check_options(
    job: str, options: Mapping[str, Any], middleware: Sequence[Middleware]
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Refuse an option of job type ``job`` that no middleware of the app owns; return
    ``options`` split into the definition's own fields and the middleware-declared rest.

    Options no built-in middleware owns (``queue``, ``priority``, ``unique``…) are
    the core's and always accepted; an option left at its default (or ``retries=0``,
    ``gpu="none"``) needs no owner. Any other keyword must be declared by an
    installed middleware, whatever its value.
    """
    owned = frozenset().union(*(mw.options for mw in middleware))
    fields = definition_fields()
    extra = {name: value for name, value in options.items() if name not in fields}
    for name in extra:
        if name not in owned:
            declared = sorted(owned - fields)
            raise ConfigurationError(
                f"job {job!r}: unknown option {name}=; no installed middleware declares it "
                f"(job options: {', '.join(sorted(fields))}"
                + (f"; declared by middleware: {', '.join(declared)})" if declared else ")")
            )
    core = {name: value for name, value in options.items() if name in fields}
    for name, value in core.items():
        if _unset(name, value):
            continue
        owner = _built_in_owners().get(name)
        if owner is None or name in owned:
            continue
        raise ConfigurationError(
            f"job {job!r}: {name}= needs the {owner} middleware, which this app does not "
            f"install; add conveyor.middleware.{owner}() to Conveyor(middleware=[...]) "
            f"(or to default_middleware=[...]), or drop {name}="
        )
    return core, extra


def definition_fields() -> frozenset[str]:
    """The ``@app.job`` keywords a :class:`~conveyor.jobs.JobDefinition` has a field for."""
    from conveyor.jobs import JobDefinition

    internal = {"name", "func", "model", "options"}
    return frozenset(f.name for f in dataclasses.fields(JobDefinition)) - internal


def installed_options(
    options: Mapping[str, Any], middleware: Sequence[Middleware]
) -> dict[str, Any]:
    """``options`` less those whose built-in owner no middleware of the app stands in for.

    How the built-in packs declare their jobs, so that a pack loads on any app: a
    job of ``diag`` or ``media`` goes without ``retries=`` on an app without
    :class:`~conveyor.middleware.Retries` (every failure final there, as for the
    app's own jobs) rather than refusing to load. An app's own jobs are checked
    strictly (:func:`check_options`).
    """
    owned = frozenset().union(*(mw.options for mw in middleware))
    owners = _built_in_owners()
    return {name: value for name, value in options.items() if name not in owners or name in owned}


#: Values that ask for what an app without the option's owner does anyway.
_NEUTRAL = {"gpu": "none", "retries": 0}


def _unset(name: str, value: Any) -> bool:
    return value is None or (name in _NEUTRAL and value == _NEUTRAL[name])


_OWNERS: dict[str, str] = {}


def _built_in_owners() -> dict[str, str]:
    """Option → the name of the built-in middleware that owns it."""
    if not _OWNERS:
        from conveyor.middleware.defaults import default_middleware

        for mw in default_middleware():
            _OWNERS.update(dict.fromkeys(mw.options, type(mw).__name__))
    return _OWNERS
