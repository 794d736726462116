"""A submission is typed, frozen, and stored on the delayed set in the form every version reads."""

from __future__ import annotations

import dataclasses
import json

import pytest

from conveyor.submission import Submission

# What earlier versions wrote on the delayed set: a submit with a delay, and a retry.
OLD_SUBMIT = (
    '{"id":"j1","type":"diag.noop","payload":{"n":1},"queue":"processing","priority":3,'
    '"attempt":0,"created_at":1700000000.5,"due_at":1700003600.5,"time_limit":30.0,'
    '"labels":{"tenant":"acme","tags":["a"]}}'
)
OLD_RETRY = (
    '{"id":"j2","type":"gp.model","payload":{},"queue":"batch","priority":1,"attempt":2,'
    '"created_at":null,"due_at":1700000010.0,"soft_time_limit":20.0,"device":"cpu"}'
)
OLD_HAND_BACK = (
    '{"id":"j3","type":"audio.transcribe","payload":{"url":"u"},"queue":"generation",'
    '"priority":5,"attempt":0,"created_at":null,"due_at":null,"handed_back":true}'
)


def test_entries_written_by_earlier_versions_are_read() -> None:
    submit = Submission.from_json(OLD_SUBMIT)
    assert (submit.id, submit.type, submit.queue, submit.priority) == (
        "j1",
        "diag.noop",
        "processing",
        3,
    )
    assert submit.payload == {"n": 1} and submit.due_at == 1700003600.5
    assert submit.limits() == {"time_limit": 30.0}
    assert submit.labels == {"tenant": "acme", "tags": ["a"]}
    retry = Submission.from_json(OLD_RETRY)
    assert retry.attempt == 2 and retry.device == "cpu" and retry.time_limit is None
    assert retry.meta() == {
        "attempt": 2,
        "queue": "batch",
        "priority": 1,
        "created_at": None,
        "soft_time_limit": 20.0,
        "device": "cpu",
    }
    assert Submission.from_json(OLD_HAND_BACK).handed_back


def test_entries_are_written_in_the_form_earlier_versions_read() -> None:
    for raw in (OLD_SUBMIT, OLD_RETRY, OLD_HAND_BACK):
        assert json.loads(Submission.from_json(raw).to_json()) == json.loads(raw)


def test_unknown_fields_are_ignored_and_a_non_submission_refused() -> None:
    extra = json.dumps({**json.loads(OLD_SUBMIT), "added_later": 1})
    assert Submission.from_json(extra) == Submission.from_json(OLD_SUBMIT)
    for raw in ('{"id":"j1","n":1}', "[1, 2]", '{"type":"t","queue":"q"}'):
        with pytest.raises(ValueError):
            Submission.from_json(raw)


def test_a_submission_is_frozen_and_changed_by_copy() -> None:
    submission = Submission("j1", "diag.noop", {}, "processing", 3)
    with pytest.raises(dataclasses.FrozenInstanceError):
        submission.attempt = 1  # type: ignore[misc]
    retry = submission.but(attempt=1, device="cpu")
    assert (submission.attempt, retry.attempt, retry.device) == (0, 1, "cpu")


def test_hooks_see_a_read_only_view_with_its_labels() -> None:
    view = Submission("j1", "diag.noop", {}, "processing", 3).view()
    assert view["labels"] == {} and view["type"] == "diag.noop"
    with pytest.raises(TypeError):
        view["queue"] = "batch"  # type: ignore[index]


def test_due_now_or_later() -> None:
    assert Submission("j1", "t", {}, "q", 0).is_due(100.0)
    assert Submission("j1", "t", {}, "q", 0, due_at=100.0).is_due(100.0)
    assert not Submission("j1", "t", {}, "q", 0, due_at=100.5).is_due(100.0)
