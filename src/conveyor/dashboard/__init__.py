"""The web dashboard, served by the API at ``/``: server-rendered pages over the job store.

:func:`install` adds its pages and static files to an API application. Pages are
Jinja2 templates (``templates/``), styled by one stylesheet and enhanced by one
small script (``static/``); everything ships in the wheel, so the dashboard works
air-gapped.

Each page is a route in ``routes.py``, a template, and an entry in
:data:`conveyor.dashboard.render.NAV`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from fastapi import FastAPI


def install(app: FastAPI) -> None:
    """Serve the dashboard from ``app`` (built by :func:`conveyor.api.create_app`)."""
    from starlette.staticfiles import StaticFiles

    from conveyor.dashboard.routes import router
    from conveyor.dashboard.session import Sessions

    app.state.dashboard_sessions = Sessions(app.state.ctx)
    app.include_router(router)
    app.mount("/static", StaticFiles(packages=[("conveyor.dashboard", "static")]), name="static")


__all__ = ["install"]
