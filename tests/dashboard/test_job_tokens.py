"""``POST /api/v1/jobs/{id}/token``: a read token for one job's event streams, and nothing else."""

from __future__ import annotations

import time

from conveyor.api import tokens
from tests.dashboard.conftest import Dash


def _token(dash: Dash, job_id: str, role: str = "reader") -> dict[str, object]:
    headers = {"Authorization": f"Bearer {dash.keys[role]}"}
    reply = dash.http.post(f"/api/v1/jobs/{job_id}/token", headers=headers)
    assert reply.status_code == 200, reply.text
    return dict(reply.json())


def _finished_job(dash: Dash) -> str:
    job = dash.app.submit("diag.noop", {}, tenant="tenant-a")
    job.cancel()
    return job.id


def test_a_token_opens_its_jobs_event_stream(dash: Dash) -> None:
    job_id = _finished_job(dash)
    body = _token(dash, job_id)
    assert body["job_id"] == job_id
    assert 0 < float(str(body["expires_at"])) - time.time() <= 600
    dash.http.cookies.clear()
    reply = dash.http.get(f"/api/v1/jobs/{job_id}/events", params={"token": body["token"]})
    assert reply.status_code == 200
    assert '"status":"cancelled"' in reply.text


def test_a_token_is_refused_for_another_job_and_as_an_api_key(dash: Dash) -> None:
    token = str(_token(dash, _finished_job(dash))["token"])
    other = _finished_job(dash)
    dash.http.cookies.clear()
    reply = dash.http.get(f"/api/v1/jobs/{other}/events", params={"token": token})
    assert reply.status_code == 401 and "another job" in reply.json()["detail"]
    as_key = {"Authorization": f"Bearer {token}"}
    assert dash.http.get(f"/api/v1/jobs/{other}", headers=as_key).status_code == 401
    assert dash.http.get("/api/v1/jobs", headers=as_key).status_code == 401


def test_an_expired_or_tampered_token_is_refused(dash: Dash) -> None:
    job_id = _finished_job(dash)
    ctx = dash.http.app.state.ctx  # type: ignore[attr-defined]
    expired = ctx.signer(tokens.PURPOSE).sign({"job": job_id}, 60, now=time.time() - 120)
    reply = dash.http.get(f"/api/v1/jobs/{job_id}/events", params={"token": expired})
    assert reply.status_code == 401 and "expired" in reply.json()["detail"]
    good = str(_token(dash, job_id)["token"])
    tampered = good[:-2] + ("AA" if not good.endswith("AA") else "BB")
    reply = dash.http.get(f"/api/v1/jobs/{job_id}/events", params={"token": tampered})
    assert reply.status_code == 401


def test_a_session_cookie_is_no_job_token(dash: Dash) -> None:
    job_id = _finished_job(dash)
    dash.sign_in("reader")
    session = dash.http.cookies["conveyor_session"]
    reply = dash.http.get(f"/api/v1/jobs/{job_id}/events", params={"token": session})
    assert reply.status_code == 401


def test_no_token_for_another_tenants_job(dash: Dash) -> None:
    headers = {"Authorization": f"Bearer {dash.keys['reader']}"}
    reply = dash.http.post(f"/api/v1/jobs/{dash.jobs['b']}/token", headers=headers)
    assert reply.status_code == 404


def test_the_websocket_accepts_a_job_token(dash: Dash) -> None:
    job_id = _finished_job(dash)
    token = _token(dash, job_id)["token"]
    with dash.http.websocket_connect(f"/api/v1/jobs/{job_id}/ws?access_token={token}") as ws:
        first = ws.receive_json()
    assert first["event"]["type"] == "state"
    assert first["event"]["state"]["status"] == "cancelled"
