"""Deduplication: an idempotency key or a job type's ``unique=`` key makes a second
submit return the existing job while it is queued or running (or succeeded within
``unique_ttl``); it is atomic under concurrent submits."""

from __future__ import annotations

import threading
import time

import pytest
import redis

from conveyor import Conveyor, Settings, keys
from conveyor.errors import ConfigurationError
from conveyor.events import new_event
from tests.reliability.apps import Order, order, register


@pytest.fixture
def dedup_app(settings: Settings, redis_client: redis.Redis) -> Conveyor:
    app = Conveyor(settings)
    register(app)
    return app


def _concurrently(n: int, submit: object) -> list[str]:
    barrier = threading.Barrier(n)
    ids: list[str] = []
    errors: list[BaseException] = []
    lock = threading.Lock()

    def one() -> None:
        try:
            barrier.wait(timeout=30)
            job = submit()  # type: ignore[operator]
            with lock:
                ids.append(job.id)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=one) for _ in range(n)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not errors, errors
    return ids


def _jobs_created(client: redis.Redis) -> int:
    return sum(1 for _ in client.scan_iter(match=keys.job("*"), count=1000))


def test_50_concurrent_submits_with_one_idempotency_key_create_one_job(
    dedup_app: Conveyor, redis_client: redis.Redis
) -> None:
    ids = _concurrently(
        50, lambda: dedup_app.submit("diag.noop", {}, queue="batch", idempotency_key="order-42")
    )
    assert len(ids) == 50 and len(set(ids)) == 1
    assert _jobs_created(redis_client) == 1
    assert redis_client.llen("batch") + redis_client.llen("batch:1") == 1


def test_50_concurrent_submits_of_a_unique_job_type_create_one_job(
    dedup_app: Conveyor, redis_client: redis.Redis
) -> None:
    ids = _concurrently(50, lambda: dedup_app.submit("uq.order", {"user": "ada", "item": "x"}))
    assert len(set(ids)) == 1
    assert _jobs_created(redis_client) == 1


def test_unique_fields_and_whole_payload(dedup_app: Conveyor) -> None:
    first = dedup_app.submit("uq.order", {"user": "ada", "item": "x", "note": "one"})
    # Only user and item make the key: a different note is the same job.
    again = dedup_app.submit("uq.order", {"user": "ada", "item": "x", "note": "two"})
    assert again.id == first.id and again.deduplicated and not first.deduplicated
    other = dedup_app.submit("uq.order", {"user": "bob", "item": "x"})
    assert other.id != first.id
    # unique=True: the whole payload is the key.
    a = dedup_app.submit("uq.payload", {"user": "ada", "note": "one"})
    assert dedup_app.submit("uq.payload", {"user": "ada", "note": "one"}).id == a.id
    assert dedup_app.submit("uq.payload", {"user": "ada", "note": "two"}).id != a.id


def _finish(app: Conveyor, job_id: str, status: str, finished_at: float) -> None:
    state = app.get_job(job_id).state()
    app.event_writer().emit(
        new_event(status, job_id, state.type, state.queue),  # type: ignore[arg-type]
        fields={"finished_at": finished_at},
    )


def test_unique_ttl_after_success_and_new_job_after_failure(dedup_app: Conveyor) -> None:
    first = dedup_app.submit("uq.order", {"user": "ada"})
    _finish(dedup_app, first.id, "succeeded", time.time())
    # Succeeded within unique_ttl (30 s): still the same job.
    assert dedup_app.submit("uq.order", {"user": "ada"}).id == first.id
    _finish(dedup_app, first.id, "succeeded", time.time())
    dedup_app.event_writer().client.hset(keys.job(first.id), "finished_at", time.time() - 31)
    second = dedup_app.submit("uq.order", {"user": "ada"})
    assert second.id != first.id and not second.deduplicated
    # A failed (or cancelled) holder never blocks a new submit.
    _finish(dedup_app, second.id, "failed", time.time())
    third = dedup_app.submit("uq.order", {"user": "ada"})
    assert third.id != second.id
    # unique_ttl 0 (uq.payload): once succeeded, a new submit makes a new job.
    p1 = dedup_app.submit("uq.payload", {"user": "x"})
    _finish(dedup_app, p1.id, "succeeded", time.time())
    assert dedup_app.submit("uq.payload", {"user": "x"}).id != p1.id


def test_unique_names_unknown_field_is_a_configuration_error(dedup_app: Conveyor) -> None:
    with pytest.raises(ConfigurationError, match="unknown field"):
        dedup_app.job("uq.bad", unique=["nope"])(order)
    assert Order.model_fields  # the model the job types share


def test_unique_jobs_are_scoped_to_the_tenant(dedup_app: Conveyor) -> None:
    # Tenant A must never be handed tenant B's job (its id, tenant and payload).
    b = dedup_app.submit("uq.order", {"user": "ada", "item": "x"}, tenant="tenant-b")
    a = dedup_app.submit("uq.order", {"user": "ada", "item": "x"}, tenant="tenant-a")
    assert a.id != b.id and not a.deduplicated
    assert a.state().tenant == "tenant-a"
    assert dedup_app.submit("uq.order", {"user": "ada", "item": "x"}, tenant="tenant-a").id == a.id
    # No tenant (the Python client without one) is a scope of its own, too.
    assert dedup_app.submit("uq.order", {"user": "ada", "item": "x"}).id not in (a.id, b.id)
    # A tenant name holding the separator cannot pose as another scope.
    assert keys.unique("t", "d", "a:b") != keys.unique("b:t", "d", "a")


def test_idempotency_keys_cannot_cross_tenants_through_a_separator() -> None:
    from conveyor.api.auth import Principal
    from conveyor.api.service import scoped_idempotency_key

    a = Principal("k1", "a", frozenset({"submit"}))
    a_b = Principal("k2", "a/b", frozenset({"submit"}))
    assert scoped_idempotency_key(a, "b/c") != scoped_idempotency_key(a_b, "c")
