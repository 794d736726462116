"""The application the media tests' worker runs (``CONVEYOR_APP=tests.media.media_app:app``);
its media roots come from the worker's environment."""

from __future__ import annotations

from conveyor import Conveyor

app = Conveyor(packs=["diag", "media"])
