"""The one mapping from Conveyor's error tree to HTTP statuses."""

from __future__ import annotations

import pytest

from conveyor.api.errors import error_response, status_for
from conveyor.cli.api import is_loopback
from conveyor.errors import (
    BrokerError,
    ConfigurationError,
    Conflict,
    NotFound,
    PayloadInvalid,
    PermissionDenied,
    RateLimited,
    StoreError,
    Unauthenticated,
    UnknownJobType,
)


@pytest.mark.parametrize(
    ("error", "status"),
    [
        (UnknownJobType("x", ["a"]), 422),  # also a NotFound: the submission view wins
        (PayloadInvalid("t", [{"field": "a", "message": "m", "type": "t"}]), 422),
        (NotFound("no job"), 404),
        (Conflict("done"), 409),
        (Unauthenticated("no key"), 401),
        (PermissionDenied("scope"), 403),
        (RateLimited("slow down", 0.2), 429),
        (BrokerError("down"), 503),
        (StoreError("down"), 503),
        (ConfigurationError("bad"), 500),
    ],
)
def test_status_for_each_branch_of_the_tree(error: Exception, status: int) -> None:
    assert status_for(error) == status  # type: ignore[arg-type]


def test_rate_limited_says_when_to_retry_in_whole_seconds() -> None:
    assert error_response(RateLimited("slow", 0.2)).headers["Retry-After"] == "1"
    assert error_response(RateLimited("slow", 2.5)).headers["Retry-After"] == "3"


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("127.0.0.1", True),
        ("::1", True),
        ("localhost", True),
        ("0.0.0.0", False),
        ("10.1.2.3", False),
    ],
)
def test_loopback_detection(host: str, loopback: bool) -> None:
    assert is_loopback(host) is loopback
