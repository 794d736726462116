"""Where media jobs may read and write, and which URLs they may fetch.

A :class:`MediaPolicy` is built from the settings (``CONVEYOR_MEDIA_ROOTS`` and the
``CONVEYOR_MEDIA_URL_*`` settings). The input models' validators check paths and
URLs against the *active* policy, in the API process at submit time and again in
the worker before ffmpeg runs: :func:`activate` sets it when the pack is
registered on an application, :func:`using` overrides it for a block (tests).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from pathlib import Path

from conveyor.errors import ConfigurationError
from conveyor.settings import Settings


@dataclass(frozen=True)
class MediaRoot:
    """A directory media jobs may read (``ro``) or read and write (``rw``)."""

    path: Path
    writable: bool


@dataclass(frozen=True)
class MediaPolicy:
    """The media roots and the URL rules in force."""

    roots: tuple[MediaRoot, ...] = ()
    url_schemes: frozenset[str] = frozenset({"https"})
    #: Hosts URLs may name: exact names, ``*.example.com`` suffixes, or ``*`` for any.
    url_hosts: tuple[str, ...] = ()
    allow_private_urls: bool = False
    url_max_bytes: int = 2048 * 1024 * 1024
    #: ``auto``: NVENC on GPU workers; ``off``: never; ``force``: try it even where no
    #: GPU was detected (the CPU takes over when it fails).
    gpu: str = "auto"

    @property
    def read_roots(self) -> tuple[Path, ...]:
        """Every root (a write root is readable too)."""
        return tuple(root.path for root in self.roots)

    @property
    def write_roots(self) -> tuple[Path, ...]:
        """The roots marked ``rw``."""
        return tuple(root.path for root in self.roots if root.writable)

    @classmethod
    def from_settings(cls, settings: Settings) -> MediaPolicy:
        """The policy the settings describe; :class:`ConfigurationError` naming the variable."""
        return cls(
            roots=parse_roots(settings.media_roots),
            url_schemes=frozenset(s.lower() for s in settings.media_url_schemes),
            url_hosts=tuple(h.lower() for h in settings.media_url_hosts),
            allow_private_urls=settings.media_allow_private_urls,
            url_max_bytes=int(settings.media_url_max_mb * 1024 * 1024),
            gpu=settings.media_gpu,
        )


def parse_roots(text: str) -> tuple[MediaRoot, ...]:
    """``/srv/in:ro,/srv/out:rw`` → roots (``ro`` when no mode is given), resolved."""
    roots = []
    for entry in (part.strip() for part in text.split(",")):
        if not entry:
            continue
        path, sep, mode = entry.rpartition(":")
        if not sep or mode not in ("ro", "rw"):
            path, mode = entry, "ro"
        if not path or not Path(path).expanduser().is_absolute():
            raise ConfigurationError(
                f"CONVEYOR_MEDIA_ROOTS: {entry!r} is not an absolute directory; "
                "expected comma-separated PATH[:ro|:rw], e.g. /srv/media/in:ro,/srv/media/out:rw"
            )
        roots.append(MediaRoot(Path(path).expanduser().resolve(), mode == "rw"))
    return tuple(roots)


_active: MediaPolicy | None = None
_override: ContextVar[MediaPolicy | None] = ContextVar("conveyor_media_policy", default=None)


def activate(policy: MediaPolicy) -> None:
    """Make ``policy`` the process's media policy (done when the pack is registered)."""
    global _active
    _active = policy


def current() -> MediaPolicy:
    """The policy in force: a :func:`using` block's, the activated one, or the environment's."""
    override = _override.get()
    if override is not None:
        return override
    if _active is None:
        activate(MediaPolicy.from_settings(Settings.load()))
    assert _active is not None
    return _active


@contextmanager
def using(policy: MediaPolicy) -> Iterator[MediaPolicy]:
    """Validate with ``policy`` inside the block (this thread or task only)."""
    token = _override.set(policy)
    try:
        yield policy
    finally:
        _override.reset(token)
