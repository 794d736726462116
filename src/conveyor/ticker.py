"""A daemon thread that calls one step at an interval until stopped.

The background loops of a worker (heartbeat, delayed-job mover, stock-list relay)
share this shape; :class:`Ticker` holds it once: start, stop and join, and an
unexpected error in a step is logged instead of ending the thread.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

log = logging.getLogger("conveyor.ticker")


class Ticker:
    """Calls ``step`` in a daemon thread named ``name`` until :meth:`stop`.

    Between two steps it waits ``interval_s``, or the seconds ``step`` returns
    (``0`` runs the next step at once). With ``immediate`` the first step runs on
    :meth:`start`, else after one interval. A step that raises is logged and the
    loop goes on after ``interval_s``.
    """

    def __init__(
        self,
        name: str,
        interval_s: float,
        step: Callable[[], float | None],
        *,
        immediate: bool = False,
    ) -> None:
        self.name = name
        self.interval_s = interval_s
        self.step = step
        self.immediate = immediate
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def stopping(self) -> bool:
        """Whether :meth:`stop` was called."""
        return self._stop.is_set()

    def run(self) -> None:
        """The loop itself, in the calling thread (:meth:`start` runs it in its own)."""
        wait = 0.0 if self.immediate else self.interval_s
        while not self._stop.wait(wait):
            try:
                next_in = self.step()
            except Exception:  # one failing step must not end the loop
                log.exception("%s: step failed; next in %gs", self.name, self.interval_s)
                next_in = None
            wait = self.interval_s if next_in is None else max(0.0, next_in)

    def start(self) -> None:
        """Run :meth:`run` in a daemon thread."""
        self._thread = threading.Thread(target=self.run, name=self.name, daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        """End the loop after the step in hand and join the thread (at most ``timeout`` s)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=timeout)
