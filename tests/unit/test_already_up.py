"""A second ``conveyor up`` for a home is refused with a configured broker too, naming the
stack that runs; once that stack stops, ``up`` may start again. In process: a stack with
no processes, on the session broker."""

from __future__ import annotations

import os

from conveyor import Settings
from conveyor.services.supervisor import Stack, already_up


def test_a_stack_on_a_configured_broker_refuses_a_second_up(settings: Settings) -> None:
    assert settings.configured_broker_url
    assert already_up(settings) is None
    stack = Stack(settings, workers=[], services=[])
    stack.start()
    try:
        reason = already_up(settings)
        assert reason is not None
        assert reason.startswith(f"Conveyor is already up for CONVEYOR_HOME={settings.home_dir}")
        assert f"pid {os.getpid()}" in reason and "127.0.0.1" in reason
        assert "stop it with Ctrl-C in its terminal" in reason
        assert settings.redis_url is not None
        password = settings.redis_url.split(":")[2].split("@")[0]
        assert password not in reason  # the broker is named, its password masked
    finally:
        stack.stop(grace_s=1)
    assert already_up(settings) is None
