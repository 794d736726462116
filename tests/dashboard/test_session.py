"""Dashboard sign-in, roles, CSRF and tenant isolation, in process."""

from __future__ import annotations

from fastapi.testclient import TestClient
from sqlalchemy import update

from conveyor.api import create_app
from conveyor.services import apikeys
from conveyor.store.models import ApiKeyRow
from conveyor.testing import wait_until
from tests.dashboard.conftest import Dash


def test_pages_redirect_to_sign_in_without_a_session(dash: Dash) -> None:
    dash.http.cookies.clear()
    reply = dash.http.get("/jobs?status=queued")
    assert reply.status_code == 303
    assert reply.headers["location"] == "/login?next=/jobs%3Fstatus%3Dqueued"
    assert "Sign in" in dash.http.get("/login").text


def test_a_wrong_key_is_refused_and_a_forged_cookie_ignored(dash: Dash) -> None:
    dash.http.cookies.clear()
    reply = dash.http.post("/login", data={"api_key": "cvk_nope_nope"})
    assert reply.status_code == 401 and "unknown or revoked" in reply.text
    dash.http.cookies.set("conveyor_session", "cvsess.eyJrIjoieCJ9.forged")
    assert dash.http.get("/").status_code == 303


def test_a_key_without_read_scope_cannot_sign_in(dash: Dash) -> None:
    dash.http.cookies.clear()
    reply = dash.http.post("/login", data={"api_key": dash.keys["submit-only"]})
    assert reply.status_code == 401 and "lacks the &#39;read&#39; scope" in reply.text


def test_every_page_renders_for_a_signed_in_reader(dash: Dash) -> None:
    http = dash.sign_in("reader")
    pages = ("/", "/jobs", f"/jobs/{dash.jobs['a']}", "/dead-letters", "/workers", "/batches")
    for path in (*pages, "/schedules"):
        reply = http.get(path)
        assert reply.status_code == 200, (path, reply.text[:300])
        assert "text/html" in reply.headers["content-type"]
    assert http.get("/static/dashboard.css").status_code == 200


def test_the_session_cookie_is_http_only_and_strict(dash: Dash) -> None:
    dash.http.cookies.clear()
    reply = dash.http.post("/login", data={"api_key": dash.keys["reader"]})
    cookie = reply.headers["set-cookie"].lower()
    assert "httponly" in cookie and "samesite=strict" in cookie


def test_a_tenant_sees_only_its_jobs(dash: Dash) -> None:
    http = dash.sign_in("reader")
    listing = http.get("/jobs").text
    assert dash.jobs["a"][:8] in listing and dash.jobs["b"][:8] not in listing
    other = http.get(f"/jobs/{dash.jobs['b']}")
    assert other.status_code == 404 and "Not found" in other.text
    # Asking for another tenant in the filters changes nothing for a tenant key.
    assert dash.jobs["b"][:8] not in http.get("/jobs?tenant=tenant-b").text


def test_search_by_id_and_by_payload_field(dash: Dash) -> None:
    http = dash.sign_in("reader")
    found = http.get(f"/jobs?q={dash.jobs['a']}")
    assert found.status_code == 303 and found.headers["location"] == f"/jobs/{dash.jobs['a']}"
    assert dash.jobs["a"][:8] in http.get("/jobs?q=seconds%3D7.5").text
    assert dash.jobs["a"][:8] not in http.get("/jobs?q=seconds%3D8").text


def test_a_read_key_gets_no_action_and_cannot_act(dash: Dash) -> None:
    http = dash.sign_in("reader")
    page = http.get(f"/jobs/{dash.jobs['a']}").text
    assert "Cancel job" not in page and "/cancel" not in page
    reply = http.post(f"/jobs/{dash.jobs['a']}/cancel", data={"csrf": dash.csrf()})
    assert reply.status_code == 303 and "admin" in reply.headers["location"]
    assert dash.app.redis.hget(f"conveyor:job:{dash.jobs['a']}", "status") == b"queued"


def test_an_admin_action_without_the_csrf_token_is_refused(dash: Dash) -> None:
    job = dash.app.submit("diag.noop", {}, tenant="tenant-a").id
    http = dash.sign_in("admin")
    assert "Cancel job" in http.get(f"/jobs/{job}").text
    for token in (None, "wrong"):
        data = {} if token is None else {"csrf": token}
        reply = http.post(f"/jobs/{job}/cancel", data=data)
        assert reply.status_code == 303 and "CSRF" in reply.headers["location"]
    assert dash.app.redis.hget(f"conveyor:job:{job}", "status") == b"queued"
    reply = http.post(f"/jobs/{job}/cancel", data={"csrf": dash.csrf()})
    assert reply.status_code == 303 and "cancelled" in reply.headers["location"]
    assert dash.app.redis.hget(f"conveyor:job:{job}", "status") == b"cancelled"


def test_an_admin_sees_every_tenant_and_can_switch(dash: Dash) -> None:
    http = dash.sign_in("admin")
    listing = http.get("/jobs").text
    assert dash.jobs["a"][:8] in listing and dash.jobs["b"][:8] in listing
    assert http.post("/tenant", data={"tenant": "tenant-b", "csrf": "x"}).status_code == 303
    assert dash.jobs["a"][:8] in http.get("/jobs").text  # a bad CSRF token switched nothing
    reply = http.post("/tenant", data={"tenant": "tenant-b", "csrf": dash.csrf(), "next": "/jobs"})
    assert reply.status_code == 303
    listing = http.get("/jobs").text
    assert dash.jobs["b"][:8] in listing and dash.jobs["a"][:8] not in listing
    # A tenant key cannot switch.
    http = dash.sign_in("b")
    http.post("/tenant", data={"tenant": "tenant-a", "csrf": dash.csrf()})
    assert dash.jobs["a"][:8] not in http.get("/jobs").text


def test_a_revoked_key_ends_its_sessions(dash: Dash) -> None:
    http = dash.sign_in("reader")
    assert http.get("/jobs").status_code == 200
    key_id = dash.keys["reader"].split("_")[1]
    apikeys.revoke_key(dash.store.engine, key_id)
    try:
        wait_until(lambda: http.get("/jobs").status_code == 303, timeout=10, what="session ended")
    finally:  # the other tests use this key too
        with dash.store.engine.begin() as connection:
            connection.execute(
                update(ApiKeyRow).where(ApiKeyRow.id == key_id).values(revoked_at=None)
            )
        restored = {"api_key": dash.keys["reader"]}

        def usable() -> bool:
            dash.http.post("/login", data=restored)
            return dash.http.get("/jobs").status_code == 200

        wait_until(usable, timeout=10, what="the restored key's cache entries expired")


def test_open_redirects_are_refused(dash: Dash) -> None:
    dash.http.cookies.clear()
    reply = dash.http.post(
        "/login", data={"api_key": dash.keys["reader"], "next": "//evil.example/x"}
    )
    assert reply.status_code == 303 and reply.headers["location"] == "/"


def test_job_data_is_escaped(dash: Dash) -> None:
    job = dash.app.submit("diag.noop", {}, tenant="tenant-a", tags=["<script>alert(1)</script>"])
    page = dash.sign_in("reader").get(f"/jobs/{job.id}").text
    assert "<script>alert(1)</script>" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page


def test_without_auth_the_sign_in_asks_no_key(dash: Dash) -> None:
    with TestClient(create_app(dash.app, auth=False), follow_redirects=False) as http:
        assert http.get("/").status_code == 303
        assert 'name="api_key"' not in http.get("/login").text
        assert http.post("/login", data={}).status_code == 303
        page = http.get(f"/jobs/{dash.jobs['b']}")
        assert page.status_code == 200 and "Cancel job" in page.text


def test_an_admin_pins_and_releases_a_profile(dash: Dash) -> None:
    http = dash.sign_in("admin")
    csrf = dash.csrf("/workers")
    reply = http.post("/workers/pin", data={"profile": "batch", "count": "2", "csrf": csrf})
    assert reply.status_code == 303 and "pinned" in reply.headers["location"]
    assert dash.app.redis.hget("conveyor:scaling:pins", "batch") == b"2"
    bad = http.post("/workers/pin", data={"profile": "nope", "count": "2", "csrf": csrf})
    assert "unknown+profile" in bad.headers["location"]
    http.post("/workers/release", data={"profile": "batch", "csrf": csrf})
    assert dash.app.redis.hget("conveyor:scaling:pins", "batch") is None


def test_schedules_are_listed_and_an_admin_pauses_and_runs_one(dash: Dash) -> None:
    from conveyor import schedules

    name = sorted(dash.app.schedules())[0]
    reader = dash.sign_in("reader").get("/schedules").text
    assert name in reader and "Pause" not in reader
    http = dash.sign_in("admin")
    csrf = dash.csrf("/schedules")
    assert "Run now" in http.get("/schedules").text
    reply = http.post(f"/schedules/{name}/pause", data={"csrf": csrf})
    assert reply.status_code == 303 and "paused" in reply.headers["location"]
    assert schedules.is_paused(dash.app, name)
    assert "Resume" in http.get("/schedules").text
    http.post(f"/schedules/{name}/resume", data={"csrf": csrf})
    assert not schedules.is_paused(dash.app, name)
    ran = http.post(f"/schedules/{name}/run-now", data={"csrf": csrf})
    assert "submitted" in ran.headers["location"]
    [view] = [v for v in schedules.views(dash.app) if v.name == name]
    assert view.last_job_id is not None and view.last_job_id in http.get("/schedules").text
