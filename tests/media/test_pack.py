"""Enabling the media pack: one line, or one setting for the built-in app."""

from __future__ import annotations

from pathlib import Path

import pytest

from conveyor import Conveyor, Settings
from conveyor.errors import ConfigurationError

MEDIA_TYPES = {
    "media.probe",
    "media.transcode",
    "media.preview",
    "media.extract_audio",
    "media.normalize_loudness",
    "media.waveform",
    "media.render",
    "media.render_batch",
}


def test_packs_setting_and_use(tmp_path: Path) -> None:
    built_in = Conveyor(Settings(home=tmp_path, packs=("diag", "media")))
    assert set(built_in.definitions) >= MEDIA_TYPES
    plain = Conveyor(Settings(home=tmp_path))
    assert not MEDIA_TYPES & set(plain.definitions)
    plain.use("media")
    assert set(plain.definitions) >= MEDIA_TYPES
    assert plain.definition("media.transcode").gpu == "prefer"
    with pytest.raises(ConfigurationError, match="no built-in pack 'video'"):
        plain.use("video")


def test_job_type_schemas_describe_the_inputs(tmp_path: Path) -> None:
    app = Conveyor(Settings(home=tmp_path), packs=["media"])
    schema = app.definition("media.render").json_schema()
    assert {"scenes", "transition", "subtitles", "codec", "container", "crf"} <= set(
        schema["properties"]
    )
