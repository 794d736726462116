"""Confinement: every path a media job touches lies inside the media roots, every URL
passes the URL rules.

The checks run twice: as validators of the input models (so the API answers 422
naming the field before anything is enqueued) and again in the worker, when the
job's payload is validated before the job runs. A path that does not exist and a
path that is not allowed get the same message, so the API is no oracle for which
files exist on the media hosts.
"""

from __future__ import annotations

import ipaddress
import re
import socket
from pathlib import Path, PurePosixPath
from typing import Annotated
from urllib.parse import urlsplit

from pydantic import AfterValidator

from conveyor.packs.media import policy as policies
from conveyor.packs.media.policy import MediaPolicy

#: The one message for an input that is missing, outside the roots or not a file.
NO_INPUT = "no readable media file at this path inside the media roots"
#: The one message for an output that would land outside the write roots.
NO_OUTPUT = "not a writable path inside the media write roots"

_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*:")


def _lexical(value: str) -> PurePosixPath:
    if not value or "\x00" in value or any(ord(c) < 32 for c in value):
        raise ValueError("not a path")
    path = PurePosixPath(value)
    if ".." in path.parts:
        raise ValueError("'..' is not allowed in media paths")
    return path


def _inside(path: Path, roots: tuple[Path, ...]) -> bool:
    return any(path == root or path.is_relative_to(root) for root in roots)


def resolve_input(value: str, policy: MediaPolicy) -> Path:
    """The real path of an existing file inside a read root, or ``ValueError``.

    A relative path is looked up in each root in order; symlinks are followed and
    the target must lie inside a root too.
    """
    path = _lexical(value)
    roots = policy.read_roots
    if not roots:
        raise ValueError("no media roots are configured (CONVEYOR_MEDIA_ROOTS)")
    candidates = [Path(path)] if path.is_absolute() else [root / path for root in roots]
    for candidate in candidates:
        real = candidate.resolve()
        if _inside(real, roots) and real.is_file():
            return real
    raise ValueError(NO_INPUT)


def resolve_output(value: str, policy: MediaPolicy, *, directory: bool = False) -> Path:
    """Where an output goes: inside a write root, after following any symlinks.

    A relative path is taken under the first write root. Missing directories are
    allowed (the worker creates them); an existing directory is refused for a file.
    """
    path = _lexical(value)
    roots = policy.write_roots
    if not roots:
        raise ValueError("no writable media root is configured (CONVEYOR_MEDIA_ROOTS …:rw)")
    candidate = Path(path) if path.is_absolute() else roots[0] / path
    real = candidate.resolve()
    if not _inside(real, roots) or (real.exists() and real.is_dir() != directory):
        raise ValueError(NO_OUTPUT)
    return real


def is_url(value: str) -> bool:
    """Whether ``value`` is written as a URL (``scheme:…``) rather than a path."""
    return bool(_SCHEME.match(value))


def check_url(value: str, policy: MediaPolicy) -> str:
    """``value`` if its scheme and host are allowed, else ``ValueError``.

    Names are not resolved here (the worker resolves and checks every address
    before it connects, see :mod:`conveyor.packs.media.fetch`); an address written
    as an IP literal is checked at once.
    """
    parts = urlsplit(value)
    scheme = parts.scheme.lower()
    if scheme not in policy.url_schemes or scheme not in ("http", "https"):
        allowed = ", ".join(sorted(policy.url_schemes)) or "none"
        raise ValueError(f"URL scheme {scheme!r} is not allowed (allowed: {allowed})")
    host = (parts.hostname or "").lower().rstrip(".")
    if not host:
        raise ValueError("URL has no host")
    if not host_allowed(host, policy.url_hosts):
        raise ValueError(f"host {host!r} is not in CONVEYOR_MEDIA_URL_HOSTS")
    if not policy.allow_private_urls:
        if host == "localhost" or host.endswith(".localhost"):
            raise ValueError(f"host {host!r} is a loopback address")
        try:
            address = ipaddress.ip_address(host)
        except ValueError:
            return value
        if not is_public(address):
            raise ValueError(f"host {host!r} is a private or loopback address")
    return value


def host_allowed(host: str, allowed: tuple[str, ...]) -> bool:
    """Whether ``host`` matches an entry: exact, ``*.suffix`` or ``*``."""
    for entry in allowed:
        if entry == "*" or entry == host:
            return True
        if entry.startswith("*.") and host.endswith(entry[1:]):
            return True
    return False


def is_public(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    """Whether an address is a global unicast one (not loopback, private, link-local…)."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return address.is_global and not address.is_multicast


def resolve_public(host: str, port: int, policy: MediaPolicy) -> str:
    """An address of ``host`` that the policy allows connecting to, or ``ValueError``.

    Every address the name resolves to must be allowed, so a name that also
    points inside the network is refused rather than raced.
    """
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    addresses = [str(info[4][0]) for info in infos]
    if not addresses:
        raise ValueError(f"host {host!r} does not resolve")
    if not policy.allow_private_urls:
        for address in addresses:
            if not is_public(ipaddress.ip_address(address.split("%")[0])):
                raise ValueError(f"host {host!r} resolves to a private or loopback address")
    return addresses[0]


# ------------------------------------------------------------ model field types


def _input(value: str) -> str:
    return str(resolve_input(value, policies.current()))


def _source(value: str) -> str:
    if is_url(value):
        return check_url(value, policies.current())
    return _input(value)


def _output(value: str) -> str:
    return str(resolve_output(value, policies.current()))


def _output_dir(value: str) -> str:
    return str(resolve_output(value, policies.current(), directory=True))


#: An existing file inside the media roots (validated to its real absolute path).
InputPath = Annotated[str, AfterValidator(_input)]
#: An input file, or an ``http(s)`` URL the URL rules allow.
Source = Annotated[str, AfterValidator(_source)]
#: A file to write inside a write root (validated to its real absolute path).
OutputPath = Annotated[str, AfterValidator(_output)]
#: A directory to write into, inside a write root (created when missing).
OutputDir = Annotated[str, AfterValidator(_output_dir)]
