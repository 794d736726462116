"""What API clients see of a failure: the error's type and message, never its traceback.

Tracebacks name the server's files, paths and code; they stay in the job store for
admins (an ``admin`` key) and the CLI. File errors are also answered alike: a job
told to read a path another tenant cannot see must not tell a missing file
(``FileNotFoundError``) from a forbidden one (``PermissionError``), or the error
becomes a way to probe which files exist on the workers.
"""

from __future__ import annotations

from typing import Any, TypeVar

from conveyor.api.auth import Principal
from conveyor.state import JobState
from conveyor.store.records import DeadLetterRecord

#: Errors whose type and message would tell whether a path exists.
FILE_ERRORS = frozenset(
    {"FileNotFoundError", "PermissionError", "IsADirectoryError", "NotADirectoryError"}
)
#: What a non-admin caller sees of any of them.
FILE_ERROR = ("FileAccessError", "a file the job needed could not be opened")

State = TypeVar("State", bound=JobState)


def error_fields(error_type: str | None, message: str | None) -> tuple[str | None, str | None]:
    """The (type, message) a non-admin caller sees for a failure."""
    if error_type in FILE_ERRORS:
        return FILE_ERROR
    return error_type, message


def job(principal: Principal, value: State) -> State:
    """A job (its ``error``) as ``principal`` may see it."""
    error = value.error
    if principal.admin or error is None:
        return value
    kind, message = error_fields(error.type, error.message)
    shown = error.model_copy(update={"type": kind, "message": message, "traceback": None})
    return value.model_copy(update={"error": shown})


def dead_letter(principal: Principal, letter: DeadLetterRecord) -> DeadLetterRecord:
    """A dead letter as ``principal`` may see it."""
    if principal.admin:
        return letter
    kind, message = error_fields(letter.error_type, letter.error_message)
    update = {"error_type": kind, "error_message": message, "traceback": None}
    return letter.model_copy(update=update)


def event(principal: Principal | None, value: dict[str, Any]) -> dict[str, Any]:
    """A streamed event (or ``state`` snapshot) for ``principal`` (None: a job token's
    holder, who sees what a ``read`` key sees)."""
    if principal is not None and principal.admin:
        return value
    shown = dict(value)
    shown.pop("traceback", None)
    if "error_type" in shown:
        shown["error_type"], shown["error_message"] = error_fields(
            shown.get("error_type"), shown.get("error_message")
        )
    state = shown.get("state")
    if isinstance(state, dict) and isinstance(state.get("error"), dict):
        error = dict(state["error"])
        error.pop("traceback", None)
        error["type"], error["message"] = error_fields(error.get("type"), error.get("message"))
        shown["state"] = {**state, "error": error}
    return shown
