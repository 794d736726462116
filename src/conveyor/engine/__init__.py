"""Everything Conveyor takes from Celery and kombu, behind one package.

Conveyor relies on a few of their private behaviours; each lives here and is
pinned by a contract test in ``tests/unit/engine/``, so an upgrade of either
library shows at once what it broke:

* :mod:`~conveyor.engine.config` — settings and topology to a configured Celery app;
* :mod:`~conveyor.engine.task` — the task adapter Celery runs, and its signals;
* :mod:`~conveyor.engine.transport` — the kombu Redis transport with priority levels
  and delivery leases;
* :mod:`~conveyor.engine.message` — a job's message, byte for byte as ``send_task``
  would write it;
* :mod:`~conveyor.engine.events` — Celery-format task events for Flower and
  ``celery events``;
* :mod:`~conveyor.engine.start` — a job's start recorded by the fetch that takes it.
"""
