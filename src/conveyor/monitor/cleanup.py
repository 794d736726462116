"""File clean-up under configured roots: by age, then by total size (oldest first).

Only paths inside the roots are ever touched. The walk never follows a symbolic
link (a link is an entry like a file: removing it removes the link, never what
it points at), and each removal re-checks that the file's directory still
resolves inside its root, so a directory swapped for a link meanwhile is
skipped. With ``dry_run`` nothing is removed and the figures say what would be.
"""

from __future__ import annotations

import os
import stat
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

_SIZE_UNITS = {"": 1, "b": 1, "k": 1024, "m": 1024**2, "g": 1024**3, "t": 1024**4}


def parse_size(value: str | int) -> int:
    """Bytes in ``value``: a number of bytes, or ``500M``, ``50GB``, ``1.5T`` (powers of 1024)."""
    if isinstance(value, int):
        return value
    text = value.strip().lower().removesuffix("ib").removesuffix("b")
    number, unit = text, ""
    if text and text[-1] in _SIZE_UNITS:
        number, unit = text[:-1], text[-1]
    try:
        size = int(float(number) * _SIZE_UNITS[unit])
    except ValueError:
        raise ValueError(f"expected bytes or a size such as 500M or 50GB (got {value!r})") from None
    if size < 0:
        raise ValueError(f"a size must be ≥ 0 (got {value!r})")
    return size


@dataclass
class _Entry:
    path: str
    root: str
    size: int
    mtime: float


@dataclass
class CleanupReport:
    """What a clean-up found and removed (or, in a dry run, would remove)."""

    roots: list[str]
    dry_run: bool
    scanned_files: int = 0
    scanned_bytes: int = 0
    deleted_files: int = 0
    deleted_bytes: int = 0
    deleted_by_age: int = 0
    deleted_by_size: int = 0
    removed_dirs: int = 0
    kept_files: int = 0
    kept_bytes: int = 0
    errors: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        """The figures as JSON (a job's result)."""
        return dict(self.__dict__)


def _inside(path: str, root: str) -> bool:
    return os.path.commonpath([path, root]) == root


def _walk(root: str, entries: list[_Entry], dirs: list[str], errors: list[str]) -> None:
    try:
        scanner = os.scandir(root)
    except OSError as exc:
        errors.append(f"{root}: {exc.strerror or exc}")
        return
    with scanner:
        for entry in scanner:
            try:
                info = entry.stat(follow_symlinks=False)
            except OSError as exc:
                errors.append(f"{entry.path}: {exc.strerror or exc}")
                continue
            if stat.S_ISDIR(info.st_mode):
                dirs.append(entry.path)
                _walk(entry.path, entries, dirs, errors)
            else:
                entries.append(_Entry(entry.path, "", info.st_size, info.st_mtime))


def clean_files(
    roots: list[Path],
    *,
    max_age_s: float | None = None,
    max_total_bytes: int | None = None,
    dry_run: bool = False,
    remove_empty_dirs: bool = True,
    now: float | None = None,
) -> CleanupReport:
    """Remove files older than ``max_age_s``, then the oldest until ``max_total_bytes`` is met.

    The size cap applies to all roots together. Roots are taken as resolved
    absolute paths; a root that does not exist is reported in ``errors``.
    """
    now = time.time() if now is None else now
    resolved = [os.path.realpath(root) for root in roots]
    report = CleanupReport(roots=resolved, dry_run=dry_run)
    entries: list[_Entry] = []
    dirs: list[str] = []
    for root in resolved:
        found: list[_Entry] = []
        _walk(root, found, dirs, report.errors)
        for entry in found:
            entry.root = root
        entries.extend(found)
    report.scanned_files = len(entries)
    report.scanned_bytes = sum(e.size for e in entries)
    entries.sort(key=lambda e: e.mtime)
    doomed: list[tuple[_Entry, str]] = []
    kept: list[_Entry] = []
    for entry in entries:
        if max_age_s is not None and now - entry.mtime > max_age_s:
            doomed.append((entry, "age"))
        else:
            kept.append(entry)
    if max_total_bytes is not None:
        total = sum(e.size for e in kept)
        while kept and total > max_total_bytes:
            oldest = kept.pop(0)
            total -= oldest.size
            doomed.append((oldest, "size"))
    for entry, reason in doomed:
        if not _remove(entry, dry_run, report.errors):
            kept.append(entry)
            continue
        report.deleted_files += 1
        report.deleted_bytes += entry.size
        if reason == "age":
            report.deleted_by_age += 1
        else:
            report.deleted_by_size += 1
    report.kept_files = len(kept)
    report.kept_bytes = sum(e.size for e in kept)
    if remove_empty_dirs and not dry_run and doomed:
        for directory in sorted(dirs, key=len, reverse=True):
            try:
                os.rmdir(directory)  # only succeeds when empty
                report.removed_dirs += 1
            except OSError:
                pass
    return report


def _remove(entry: _Entry, dry_run: bool, errors: list[str]) -> bool:
    parent = os.path.realpath(os.path.dirname(entry.path))
    if not _inside(parent, entry.root):
        errors.append(f"{entry.path}: its directory no longer resolves inside {entry.root}")
        return False
    if dry_run:
        return True
    try:
        os.unlink(entry.path)  # unlink never follows a link: a link is removed, not its target
    except FileNotFoundError:
        return True
    except OSError as exc:
        errors.append(f"{entry.path}: {exc.strerror or exc}")
        return False
    return True


def check_roots(configured: tuple[Path, ...], asked: list[str] | None) -> list[Path]:
    """The roots to clean: ``asked`` (each inside a configured root), or every configured one.

    Raises ``ValueError`` for a path outside the configured roots: a job's input
    never widens what the operator allowed (``CONVEYOR_CLEANUP_ROOTS``).
    """
    allowed = [os.path.realpath(root) for root in configured]
    if not asked:
        return [Path(root) for root in allowed]
    chosen = []
    for path in asked:
        real = os.path.realpath(path)
        if not any(_inside(real, root) for root in allowed):
            raise ValueError(
                f"{path} is outside the clean-up roots ({', '.join(allowed) or 'none configured'}"
                "; set CONVEYOR_CLEANUP_ROOTS)"
            )
        chosen.append(Path(real))
    return chosen
