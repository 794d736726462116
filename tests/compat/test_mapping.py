"""The documented mappings: stock priorities, binding entries, relayed lists, Celery states."""

from __future__ import annotations

from celery import states

from conveyor.compat.backend import task_meta
from conveyor.compat.relay import routes
from conveyor.compat.stock import conveyor_level, split_binding


def test_stock_priorities_reverse_and_none_or_zero_keep_the_default() -> None:
    assert [conveyor_level(p, default=3) for p in (1, 5, 9, 12)] == [9, 5, 1, 1]
    # kombu sends 0 when no priority is given: it cannot mean "most urgent".
    assert [conveyor_level(p, default=3) for p in (None, 0, -4, "x")] == [3, 3, 3, 3]


def test_binding_entries_of_either_separator_are_read() -> None:
    assert split_binding("celery\x06\x16\x06\x16celery", "\x06\x16", ":") == (
        "celery",
        "",
        "celery",
    )
    assert split_binding("ticket::reply-q", "\x06\x16", ":") == ("ticket", "", "reply-q")
    assert split_binding("no-separator", "\x06\x16", ":") is None


def test_relay_moves_stock_lists_of_known_queues_in_place_and_unknown_ones_to_the_default() -> None:
    moves = routes({"celery", "reports"}, ["processing"], "processing")
    # Onto the list a worker reads first, where it is adopted at once.
    assert moves["processing\x06\x166"] == "processing:10"
    assert "processing" not in moves  # Conveyor's own level-0 list stays where it is
    assert moves["celery"] == moves["reports\x06\x163"] == "processing:10"
    assert routes({"processing:3"}, ["processing"], "processing").keys() == {
        f"processing\x06\x16{step}" for step in (3, 6, 9)
    }


def test_celery_states_follow_conveyor_statuses() -> None:
    assert task_meta("j", {})["status"] == states.PENDING
    running = task_meta("j", {"status": "started", "progress": "40", "stage": "encode"})
    assert running["status"] == states.STARTED and running["result"]["progress"] == 40.0
    done = task_meta("j", {"status": "succeeded", "result": '{"n": 1}'})
    assert done["result"] == {"n": 1}
    assert task_meta("j", {"status": "succeeded", "result": "plain"})["result"] == "plain"
    revoked = task_meta("j", {"status": "cancelled"})
    assert revoked["status"] == states.REVOKED
    assert revoked["result"]["exc_type"] == "TaskRevokedError"
