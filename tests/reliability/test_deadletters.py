"""The dead-letter Python API: replay one or many, purge, and the bad inputs.

The store is stood in for by a small in-memory one here (the real store and
recorder are exercised end to end in tests/chaos/test_deadletters.py).
"""

from __future__ import annotations

import json
import time
from typing import Any

import pytest
import redis
from pydantic import BaseModel

from conveyor import Conveyor, JobContext, PermanentError, Settings, keys
from conveyor.client.deadletters import (
    DeadLetter,
    NotReplayable,
    get_dead_letter,
    list_dead_letters,
    purge,
    replay,
    replay_matching,
)
from conveyor.errors import Conflict, InvalidSubmission, NotFound


class MemoryStore:
    """The two reading methods of the job store that the dead-letter API uses."""

    def __init__(self, letters: list[DeadLetter]) -> None:
        self.letters = {letter.job_id: letter for letter in letters}

    def get_dead_letter(self, job_id: str) -> DeadLetter | None:
        return self.letters.get(job_id)

    def list_dead_letters(self, **f: Any) -> list[DeadLetter]:
        found = [
            d
            for d in self.letters.values()
            if all(f.get(k) is None or getattr(d, k) == f[k] for k in ("type", "queue", "tenant"))
            and (f.get("error_type") is None or d.error_type == f["error_type"])
            and (f.get("since") is None or d.failed_at >= f["since"])
            and (f.get("until") is None or d.failed_at < f["until"])
            and (f.get("include_replayed") or d.replayed_as is None)
        ]
        return sorted(found, key=lambda d: -d.failed_at)[: f.get("limit", 100)]


def letter(job_id: str, **changes: Any) -> DeadLetter:
    now = time.time()
    fields: dict[str, Any] = {
        "job_id": job_id,
        "type": "diag.sleep",
        "queue": "processing",
        "priority": 3,
        "payload": {"seconds": 0.1},
        "error_type": "TimeLimitExceeded",
        "error_message": "hard time limit (2s) exceeded",
        "attempt": 1,
        "deliveries": 1,
        "failed_at": now - 60,
        "expires_at": now + 7 * 86400,
    }
    fields.update(changes)
    return DeadLetter(**fields)


def dead_letter_events(client: redis.Redis) -> list[dict[str, Any]]:
    events = [json.loads(fields[b"e"]) for _, fields in client.xrange(keys.EVENTS)]
    return [e for e in events if e["type"].startswith("dead_letter_")]


def test_replay_makes_a_new_job_linked_to_its_dead_letter(
    app: Conveyor, redis_client: redis.Redis
) -> None:
    store = MemoryStore([letter("dead-1", tenant="acme")])
    job = replay(app, "dead-1", time_limit=30, store=store)
    assert job.id != "dead-1"
    state = job.state()
    assert state.status == "queued" and state.replay_of == "dead-1"
    assert state.payload == {"seconds": 0.1, "steps": 1}
    assert state.tenant == "acme" and state.priority == 3
    queued = [
        json.loads(f[b"e"])
        for _, f in redis_client.xrange(keys.EVENTS)
        if json.loads(f[b"e"])["type"] == "queued"
    ]
    assert queued[-1]["replay_of"] == "dead-1" and queued[-1]["job_id"] == job.id
    [event] = dead_letter_events(redis_client)
    assert event["type"] == "dead_letter_replayed" and event["v"] == 1
    assert event["job_id"] == "dead-1" and event["replayed_as"] == job.id
    assert isinstance(event["ts"], float)


def test_a_second_replay_is_refused_until_forced(app: Conveyor, redis_client: redis.Redis) -> None:
    store = MemoryStore([letter("dead-1")])
    first = replay(app, "dead-1", store=store)
    # The recorder may not have marked it yet: the Redis claim still refuses.
    with pytest.raises(Conflict, match="already being replayed"):
        replay(app, "dead-1", store=store)
    store.letters["dead-1"] = letter("dead-1", replayed_as=first.id)
    with pytest.raises(Conflict, match=f"already replayed as {first.id}"):
        replay(app, "dead-1", store=store)
    again = replay(app, "dead-1", force=True, queue="batch", priority=1, store=store)
    assert again.id != first.id and again.state().queue == "batch"
    assert again.state().priority == 1


def test_bad_replays_leave_the_dead_letter_in_place(
    app: Conveyor, redis_client: redis.Redis
) -> None:
    store = MemoryStore(
        [
            letter("gone", type="video.render_v1"),
            letter("stale", payload={"seconds": "soon"}),
        ]
    )
    with pytest.raises(NotFound, match="no dead letter for job nope"):
        replay(app, "nope", store=store)
    with pytest.raises(NotReplayable, match=r"unknown job type 'video\.render_v1'.*left in place"):
        replay(app, "gone", store=store)
    with pytest.raises(NotReplayable, match=r"payload no longer validates.*seconds") as caught:
        replay(app, "stale", store=store)
    assert caught.value.errors[0]["field"] == "seconds"
    with pytest.raises(InvalidSubmission, match="unknown queue"):
        replay(app, "stale", queue="nope", store=MemoryStore([letter("stale")]))
    assert dead_letter_events(redis_client) == []
    assert redis_client.get(keys.dead_letter_replay("stale")) is None, "claim released"
    assert redis_client.get(keys.dead_letter_replay("gone")) is None


def test_replay_matching_replays_what_it_can_and_reports_the_rest(
    app: Conveyor, redis_client: redis.Redis
) -> None:
    now = time.time()
    store = MemoryStore(
        [
            letter("a", failed_at=now - 30),
            letter("b", failed_at=now - 20),
            letter("old", failed_at=now - 7200),
            letter("bad", failed_at=now - 10, payload={"seconds": -1}),
            letter("other", failed_at=now - 10, error_type="PermanentError"),
        ]
    )
    report = replay_matching(
        app, error_type="TimeLimitExceeded", since=now - 3600, time_limit=60, store=store
    )
    assert set(report.replayed) == {"a", "b"}
    assert set(report.refused) == {"bad"} and "no longer validates" in report.refused["bad"]
    replayed = {e["job_id"]: e["replayed_as"] for e in dead_letter_events(redis_client)}
    assert replayed == report.replayed


def test_bulk_replay_with_no_filter_is_refused_unless_everything(
    app: Conveyor, redis_client: redis.Redis
) -> None:
    # An empty filter would replay every tenant's dead letters: like purge, say so.
    store = MemoryStore([letter("a", tenant="t1"), letter("b", tenant="t2")])
    with pytest.raises(InvalidSubmission, match="everything=True"):
        replay_matching(app, store=store)
    with pytest.raises(InvalidSubmission):
        replay_matching(app, to_queue="batch", store=store)  # a target is not a filter
    assert dead_letter_events(redis_client) == []
    assert set(replay_matching(app, everything=True, store=store).replayed) == {"a", "b"}


def test_get_and_list_read_the_store(app: Conveyor) -> None:
    store = MemoryStore([letter("a", queue="critical"), letter("b")])
    assert get_dead_letter(app, "a", store=store).queue == "critical"
    assert [d.job_id for d in list_dead_letters(app, queue="critical", store=store)] == ["a"]
    with pytest.raises(NotFound):
        get_dead_letter(app, "zzz", store=store)


def test_purge_one_or_matching_needs_a_target(app: Conveyor, redis_client: redis.Redis) -> None:
    store = MemoryStore([letter("a", queue="critical"), letter("b"), letter("c")])
    assert purge(app, "a", store=store) == ["a"]
    with pytest.raises(NotFound):
        purge(app, "zzz", store=store)
    with pytest.raises(InvalidSubmission, match="everything=True"):
        purge(app, store=store)
    assert sorted(purge(app, queue="processing", store=store)) == ["b", "c"]
    assert sorted(purge(app, everything=True, store=store)) == ["a", "b", "c"]
    purged = [e for e in dead_letter_events(redis_client) if e["type"] == "dead_letter_purged"]
    assert len(purged) == 6 and {"v", "type", "job_id", "ts"} == set(purged[0])


def test_the_recorder_files_and_updates_dead_letters_in_the_real_store(
    app: Conveyor, redis_client: redis.Redis
) -> None:
    """The contract with the recorder: ``failed`` files the dead letter; the API's events
    mark it replayed and purge it."""
    from conveyor.store import open_store
    from conveyor.store.recorder import Recorder
    from conveyor.worker.executor import Execution

    store = open_store(app.settings)
    store.upgrade()
    recorder = Recorder(store, app.redis, consumer="test")
    try:
        job = app.submit("diag.flaky", {"fail_times": 1, "permanent": True}, tenant="acme")
        meta = {"attempt": 0, "queue": "processing", "priority": 3}
        definition = app.definition("diag.flaky")
        payload = {"fail_times": 1, "permanent": True}
        Execution(app, definition, job.id, payload, meta, "processing-1@host").run()
        recorder.drain()
        dead = get_dead_letter(app, job.id, store=store)
        assert dead.type == "diag.flaky" and dead.queue == "processing" and dead.priority == 3
        assert dead.payload == payload and dead.tenant == "acme"
        assert dead.error_type == "PermanentError" and "attempt 0" in (dead.error_message or "")
        assert "Traceback" in (dead.traceback or "") and "flaky" in (dead.traceback or "")
        assert (dead.attempt, dead.deliveries, dead.worker) == (0, 1, "processing-1@host")
        assert dead.expires_at == pytest.approx(dead.failed_at + 7 * 86400)

        new = replay(app, job.id, store=store)
        recorder.drain()
        assert get_dead_letter(app, job.id, store=store).replayed_as == new.id
        record = store.get_job(new.id)
        assert record is not None and record.replay_of == job.id
        assert list_dead_letters(app, store=store) == []
        assert [d.job_id for d in list_dead_letters(app, include_replayed=True, store=store)] == [
            job.id
        ]

        assert purge(app, job.id, store=store) == [job.id]
        recorder.drain()
        with pytest.raises(NotFound):
            get_dead_letter(app, job.id, store=store)
    finally:
        store.close()


class V1(BaseModel):
    text: str


class V2(BaseModel):
    text: str
    language: str


def _v1(ctx: JobContext, params: V1) -> None:
    raise PermanentError("bad input")


def _v2(ctx: JobContext, params: V2) -> None:
    pass


def test_real_dead_letters_of_a_vanished_type_or_an_old_payload_stay_in_place(
    settings: Settings, redis_client: redis.Redis
) -> None:
    from conveyor.store import open_store
    from conveyor.store.recorder import Recorder
    from conveyor.worker.executor import Execution

    old = Conveyor(settings)
    old.job("t.speech")(_v1)
    store = open_store(settings)
    store.upgrade()
    try:
        job = old.submit("t.speech", {"text": "hi"})
        Execution(
            old, old.definition("t.speech"), job.id, {"text": "hi"}, {"queue": "processing"}, "w"
        ).run()
        Recorder(store, old.redis, consumer="test").drain()
        assert get_dead_letter(old, job.id, store=store).error_type == "PermanentError"

        gone = Conveyor(settings)
        with pytest.raises(NotReplayable, match=r"unknown job type 't\.speech'"):
            replay(gone, job.id, store=store)
        changed = Conveyor(settings)
        changed.job("t.speech")(_v2)
        with pytest.raises(NotReplayable, match="language") as caught:
            replay(changed, job.id, store=store)
        assert [e["field"] for e in caught.value.errors] == ["language"]
        report = replay_matching(changed, type="t.speech", store=store)
        assert report.replayed == {} and list(report.refused) == [job.id]

        Recorder(store, old.redis, consumer="test").drain()
        assert get_dead_letter(old, job.id, store=store).replayed_as is None
        assert replay(old, job.id, store=store).state().replay_of == job.id
    finally:
        store.close()
