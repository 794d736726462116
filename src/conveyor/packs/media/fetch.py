"""Fetching a URL input into the job's temporary directory, one checked hop at a time.

ffmpeg itself never opens the network (its protocol whitelist is ``file,pipe``):
the worker downloads the input first. Each hop — the URL, then every redirect —
is checked against the URL rules, its host resolved and every address checked,
and the connection made to the checked address (the name is kept for the
``Host`` header and TLS), so neither a redirect nor a DNS answer that changes
between check and connect can reach a loopback or private address.
"""

from __future__ import annotations

import re
from pathlib import Path, PurePosixPath
from urllib.parse import urljoin, urlsplit, urlunsplit

import httpx

from conveyor.errors import MediaError, TransientError
from conveyor.packs.media.confine import check_url, resolve_public
from conveyor.packs.media.policy import MediaPolicy
from conveyor.packs.media.runner import Progress

MAX_REDIRECTS = 5
_SUFFIX = re.compile(r"^\.[A-Za-z0-9]{1,8}$")


def _pinned(url: str, policy: MediaPolicy) -> tuple[str, str, str]:
    """(URL with the checked address as host, Host header, TLS server name)."""
    check_url(url, policy)
    parts = urlsplit(url)
    host = parts.hostname or ""
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        address = resolve_public(host, port, policy)
    except OSError as exc:
        raise TransientError(f"cannot resolve {host}: {exc}") from None
    shown = f"[{address}]" if ":" in address else address
    netloc = f"{shown}:{port}"
    header = host if parts.port is None else f"{host}:{parts.port}"
    return urlunsplit(parts._replace(netloc=netloc)), header, host


def fetch(url: str, directory: Path, policy: MediaPolicy, progress: Progress) -> Path:
    """Download ``url`` into ``directory``; the local file's path.

    Refused URLs raise ``ValueError``-based :class:`MediaError`; network failures
    and 5xx answers raise :class:`TransientError` (the job is retried).
    """
    suffix = PurePosixPath(urlsplit(url).path).suffix
    target = directory / ("input" + (suffix if _SUFFIX.match(suffix) else ""))
    for _ in range(MAX_REDIRECTS + 1):
        try:
            pinned, host_header, server_name = _pinned(url, policy)
        except ValueError as exc:
            raise MediaError(f"URL refused: {exc}") from None
        try:
            with (
                httpx.Client(timeout=30.0, follow_redirects=False) as client,
                client.stream(
                    "GET",
                    pinned,
                    headers={"Host": host_header},
                    extensions={"sni_hostname": server_name},
                ) as response,
            ):
                if response.is_redirect:
                    url = urljoin(url, response.headers.get("location", ""))
                    continue
                if response.status_code >= 500 or response.status_code == 429:
                    raise TransientError(f"{server_name} answered {response.status_code}")
                if response.status_code >= 400:
                    raise MediaError(f"{server_name} answered {response.status_code}")
                _save(response, target, policy.url_max_bytes, progress)
                return target
        except httpx.HTTPError as exc:
            raise TransientError(f"download from {server_name} failed: {exc}") from None
    raise MediaError(f"more than {MAX_REDIRECTS} redirects")


def _save(response: httpx.Response, target: Path, limit: int, progress: Progress) -> None:
    total = int(response.headers.get("content-length") or 0) or None
    if total is not None and total > limit:
        raise MediaError(f"download is {total} bytes, over CONVEYOR_MEDIA_URL_MAX_MB")
    received = 0
    with target.open("wb") as out:
        for chunk in response.iter_bytes(1 << 20):
            received += len(chunk)
            if received > limit:
                raise MediaError("download is over CONVEYOR_MEDIA_URL_MAX_MB")
            out.write(chunk)
            if total:
                progress.report(100.0 * received / total, "download")
            else:
                progress.check_cancelled()
