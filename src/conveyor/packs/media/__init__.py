"""The media pack: ffmpeg jobs for video and audio teams.

Enable it with one line — ``Conveyor(packs=["diag", "media"])``, ``app.use("media")``
or ``CONVEYOR_PACKS=diag,upkeep,media`` for the built-in application — and set
``CONVEYOR_MEDIA_ROOTS`` to the directories jobs may read and write. See
``docs/media.md``.

=========================  ==========================================  =====================
job type                   input                                       result
=========================  ==========================================  =====================
``media.probe``            :class:`ProbeInput`                         :class:`ProbeResult`
``media.transcode``        :class:`TranscodeInput`                     :class:`EncodeResult`
``media.preview``          :class:`PreviewInput`                       :class:`PreviewResult`
``media.extract_audio``    :class:`ExtractAudioInput`                  :class:`AudioResult`
``media.normalize_loudness`` :class:`LoudnessInput`                    :class:`LoudnessResult`
``media.waveform``         :class:`WaveformInput`                      :class:`WaveformResult`
``media.render``           :class:`RenderInput`                        :class:`EncodeResult`
``media.render_batch``     :class:`RenderBatchInput`                   :class:`RenderBatchResult`
=========================  ==========================================  =====================
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from conveyor.middleware.options import installed_options
from conveyor.packs.media import policy as policies
from conveyor.packs.media.audio import extract_audio, normalize_loudness, waveform
from conveyor.packs.media.inputs import (
    ExtractAudioInput,
    LoudnessInput,
    PreviewInput,
    ProbeInput,
    RenderBatchInput,
    RenderInput,
    Scene,
    TranscodeInput,
    WaveformInput,
)
from conveyor.packs.media.policy import MediaPolicy
from conveyor.packs.media.results import (
    AudioResult,
    EncodeResult,
    LoudnessResult,
    PreviewResult,
    ProbeResult,
    RenderBatchResult,
    WaveformResult,
)
from conveyor.packs.media.scenes import render, render_batch
from conveyor.packs.media.video import preview, probe_media, transcode

if TYPE_CHECKING:
    from conveyor.app import Conveyor

__all__ = [
    "AudioResult",
    "EncodeResult",
    "ExtractAudioInput",
    "LoudnessInput",
    "LoudnessResult",
    "MediaPolicy",
    "PreviewInput",
    "PreviewResult",
    "ProbeInput",
    "ProbeResult",
    "RenderBatchInput",
    "RenderBatchResult",
    "RenderInput",
    "Scene",
    "TranscodeInput",
    "WaveformInput",
    "WaveformResult",
    "register",
]


def register(app: Conveyor) -> None:
    """Register the media jobs on ``app`` and make its settings the media policy."""
    policies.activate(MediaPolicy.from_settings(app.settings))

    def own(options: dict[str, Any]) -> dict[str, Any]:
        return installed_options(options, app.middleware)

    app.job("media.probe", **own({"retries": 2}))(probe_media)
    app.job("media.transcode", **own({"gpu": "prefer"}))(transcode)
    app.job("media.preview")(preview)
    app.job("media.extract_audio")(extract_audio)
    app.job("media.normalize_loudness")(normalize_loudness)
    app.job("media.waveform")(waveform)
    app.job("media.render", **own({"gpu": "prefer"}))(render)
    app.job("media.render_batch", **own({"gpu": "prefer"}))(render_batch)
