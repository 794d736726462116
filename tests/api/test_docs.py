"""``/docs`` works offline: Swagger UI's files are served by the API itself."""

from __future__ import annotations

import re

from fastapi.testclient import TestClient

from conveyor import Conveyor, Settings
from conveyor.api import create_app


def test_docs_page_loads_every_asset_from_the_api_itself() -> None:
    # No lifespan: the page and its files need neither broker nor store.
    client = TestClient(create_app(Conveyor(Settings(redis_url="redis://127.0.0.1:1/0"))))
    page = client.get("/docs")
    assert page.status_code == 200
    assert not re.search(r"(src|href)=['\"]?(https?:)?//", page.text), page.text
    assets = re.findall(r"(?:src|href)=['\"]?(/docs/assets/[^'\" >]+)", page.text)
    assert {a.rsplit("/", 1)[1] for a in assets} >= {"swagger-ui-bundle.js", "swagger-ui.css"}
    for asset in assets:
        reply = client.get(asset)
        assert reply.status_code == 200 and len(reply.content) > 100, asset
    assert "/openapi.json" in page.text
