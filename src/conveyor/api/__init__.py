"""The HTTP API: FastAPI app factory, one router per resource, auth, SSE.

``create_app(conveyor)`` builds the ASGI app; ``conveyor api`` serves it with uvicorn.
"""

from conveyor.api.app import create_app

__all__ = ["create_app"]
