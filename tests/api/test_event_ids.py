"""Event ids: the stream ids SSE and WebSocket clients resume from."""

from __future__ import annotations

import pytest

from conveyor.api.hub import format_id, parse_id
from conveyor.api.sse import parse_last_event_id
from conveyor.errors import InvalidSubmission
from conveyor.settings import parse_rate


def test_ids_round_trip_and_order_numerically() -> None:
    assert parse_id("1763731200123-4") == (1763731200123, 4)
    assert parse_id(b"1763731200123-10") > parse_id("1763731200123-9")
    assert format_id((1763731200123, 4)) == "1763731200123-4"


@pytest.mark.parametrize("raw", ["abc", "1-x", "-1", "1--2", "null"])
def test_a_malformed_last_event_id_is_refused(raw: str) -> None:
    with pytest.raises(InvalidSubmission):
        parse_last_event_id(raw)


def test_no_last_event_id_means_start_from_the_state() -> None:
    assert parse_last_event_id(None) is None and parse_last_event_id("") is None


@pytest.mark.parametrize(
    ("text", "rule"), [("100/s", (100, 1.0)), ("5/m", (5, 60.0)), ("off", None), ("0", None)]
)
def test_rate_limit_setting(text: str, rule: tuple[int, float] | None) -> None:
    assert parse_rate(text) == rule


@pytest.mark.parametrize("text", ["100", "x/s", "10/d", "-1/s"])
def test_a_bad_rate_limit_setting_is_refused(text: str) -> None:
    with pytest.raises(ValueError):
        parse_rate(text)
