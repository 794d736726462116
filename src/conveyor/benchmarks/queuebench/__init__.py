"""One harness for Conveyor and the other Python queues: the same phases, the same probe.

Each queue is driven by :mod:`.drive` in a process of its own, under the interpreter
that has that queue installed. So that an interpreter without Conveyor can run it,
this package imports only the standard library and the one queue being measured, and
its modules import each other relatively: ``conveyor bench --peers`` puts the
``benchmarks`` folder on ``PYTHONPATH`` and runs ``python -m queuebench.drive QUEUE``.
"""

import os

#: The broker URL every queue of one run is given (each on its own database).
URL_ENV = "QUEUEBENCH_URL"


def broker_url() -> str:
    """The broker URL of this run."""
    return os.environ[URL_ENV]
