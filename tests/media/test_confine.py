"""Paths and URLs of media jobs: confined to the roots, one message for missing and
refused, checked when the payload is validated (a submit, the API, the worker)."""

from __future__ import annotations

from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from conveyor import Conveyor, Settings
from conveyor.api import create_app
from conveyor.errors import PayloadInvalid
from conveyor.packs.media import policy as policies
from conveyor.packs.media.confine import (
    NO_INPUT,
    NO_OUTPUT,
    check_url,
    resolve_input,
    resolve_output,
)
from conveyor.packs.media.inputs import RenderInput, TranscodeInput
from conveyor.packs.media.policy import MediaPolicy
from tests.media.conftest import Media


def test_inputs_resolve_inside_the_roots(media: Media) -> None:
    policy = media.policy
    assert resolve_input("clip.mp4", policy) == media.read / "clip.mp4"
    assert resolve_input(str(media.read / "clip.mp4"), policy) == media.read / "clip.mp4"


@pytest.mark.parametrize(
    "value",
    [
        "missing.mp4",
        "../outside/secret.mp4",
        "{outside}/secret.mp4",
        "escape.mp4",
        "escape_dir/secret.mp4",
        "/etc/passwd",
        "in/../../outside/secret.mp4",
    ],
)
def test_missing_and_refused_inputs_get_the_same_error(media: Media, value: str) -> None:
    with pytest.raises(ValueError) as caught:
        resolve_input(value.format(outside=media.outside), media.policy)
    assert str(caught.value) in (NO_INPUT, "'..' is not allowed in media paths")


def test_outputs_only_in_write_roots(media: Media) -> None:
    policy = media.policy
    assert resolve_output("new/dir/a.mp4", policy) == media.write / "new/dir/a.mp4"
    for value in ["escape_out/a.mp4", str(media.read / "a.mp4"), str(media.outside / "a.mp4")]:
        with pytest.raises(ValueError, match=NO_OUTPUT):
            resolve_output(value, policy)
    with pytest.raises(ValueError, match=r"'\.\.'"):
        resolve_output("../out/a.mp4", policy)


def test_no_roots_no_paths() -> None:
    with pytest.raises(ValueError, match="CONVEYOR_MEDIA_ROOTS"):
        resolve_input("/tmp/x.mp4", MediaPolicy())


URLS = MediaPolicy(url_schemes=frozenset({"https"}), url_hosts=("cdn.example.com", "*.media.test"))


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("file:///etc/passwd", "scheme 'file'"),
        ("concat:/a.mp4|/b.mp4", "scheme 'concat'"),
        ("http://cdn.example.com/a.mp4", "scheme 'http'"),
        ("https://evil.example.org/a.mp4", "not in CONVEYOR_MEDIA_URL_HOSTS"),
        ("https:///a.mp4", "no host"),
    ],
)
def test_urls_outside_the_rules_are_refused(url: str, reason: str) -> None:
    with pytest.raises(ValueError, match=reason):
        check_url(url, URLS)


def test_loopback_and_private_addresses_need_an_explicit_allowance() -> None:
    anyhost = MediaPolicy(url_schemes=frozenset({"http"}), url_hosts=("*",))
    for url in [
        "http://127.0.0.1/a.mp4",
        "http://10.1.2.3/a",
        "http://[::1]/a",
        "http://localhost/a",
        "http://169.254.169.254/latest",
        "http://[::ffff:192.168.0.1]/a",
    ]:
        with pytest.raises(ValueError, match="loopback"):
            check_url(url, anyhost)
    assert check_url("http://93.184.216.34/a.mp4", anyhost)
    allowed = MediaPolicy(
        url_schemes=frozenset({"http"}), url_hosts=("*",), allow_private_urls=True
    )
    assert check_url("http://127.0.0.1/a.mp4", allowed)
    assert check_url("https://x.media.test/a.mp4", URLS)


def test_models_name_the_field_and_store_the_real_path(media: Media) -> None:
    with policies.using(media.policy):
        ok = TranscodeInput.model_validate({"source": "clip.mp4", "output": "x/y.mp4"})
        assert ok.source == str(media.read / "clip.mp4") and ok.output == str(
            media.write / "x/y.mp4"
        )
        with pytest.raises(ValueError, match=r"output must end in \.webm"):
            TranscodeInput.model_validate(
                {"source": "clip.mp4", "output": "y.mp4", "codec": "vp9", "container": "webm"}
            )
        bad = {
            "scenes": [{"source": "clip.mp4"}, {"source": "escape.mp4"}],
            "subtitles": "clip.mp4",
        }
        with pytest.raises(ValueError) as caught:
            RenderInput.model_validate(bad)
        fields = {".".join(map(str, e["loc"])) for e in caught.value.errors()}  # type: ignore[attr-defined]
        assert fields == {"scenes.1.source", "subtitles"}


@pytest.fixture
def media_app(media: Media, broker_url: str, tmp_path: Path) -> Conveyor:
    settings = Settings(redis_url=broker_url, home=f"{tmp_path}/home", media_roots=media.roots)
    return Conveyor(settings, packs=["media"])


def test_submit_refuses_an_escape_before_enqueueing(media_app: Conveyor) -> None:
    with pytest.raises(PayloadInvalid) as caught:
        media_app.submit("media.probe", {"source": "../outside/secret.mp4"})
    assert caught.value.errors[0]["field"] == "source"


def test_api_answers_422_naming_the_field(media_app: Conveyor, media: Media) -> None:
    with TestClient(create_app(media_app, auth=False)) as client:
        for payload, field in [
            ({"source": "escape.mp4"}, "payload.source"),
            ({"source": "missing.mp4"}, "payload.source"),
            ({"source": "clip.mp4", "output": "escape_out/stolen.mp4"}, "payload.output"),
            ({"source": "https://169.254.169.254/latest/meta-data"}, "payload.source"),
        ]:
            answer = client.post(
                "/api/v1/jobs", json={"type": "media.transcode", "payload": payload}
            )
            assert answer.status_code == 422, answer.text
            errors = answer.json()["errors"]
            assert [e["field"] for e in errors] == [field]
        missing = client.post(
            "/api/v1/jobs", json={"type": "media.probe", "payload": {"source": "nope.mp4"}}
        )
        escaped = client.post(
            "/api/v1/jobs", json={"type": "media.probe", "payload": {"source": "escape.mp4"}}
        )
        assert missing.json()["errors"][0]["message"] == escaped.json()["errors"][0]["message"]
