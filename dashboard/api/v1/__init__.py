"""The Hub API, ``/api/v1``: the synced records with their change feed, integrations, syncs,
runs and change webhooks, for the team's other systems (docs/api.md).

Built with FastAPI, mounted inside the hub's Starlette app (``dashboard.api.build_api``):
the OpenAPI 3.1 document is generated from the same type hints and pydantic models that
validate each request, so the contract cannot drift from the code. Every path operation is
a ``KeyRoute`` (access ``BEARER_TOKEN``: an API key) and the document and its page are
declared ``PUBLIC`` with ``access.route``, so tests/security/test_route_guards.py checks
them all. Request ids come from the hub's RequestIdMiddleware, around everything.
"""

from __future__ import annotations

import functools
from typing import Any

from fastapi import FastAPI
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Mount

from dashboard.api.access import Access, route
from dashboard.api.v1 import docs_page, integrations, records, webhooks
from dashboard.api.v1.errors import install_error_handlers

PREFIX = "/api/v1"
DESCRIPTION = (
    "The hub's synced records, with a change feed (every insert, update and deletion once, "
    "in order, by cursor), its integrations and their health, sync requests and runs, and "
    "webhooks telling consumers that records changed. Errors are "
    '{"error": {"code", "message", "request_id"}}; every answer carries X-Request-ID.'
)


def build_app() -> FastAPI:
    app = FastAPI(
        title="Connector Hub API",
        version="1.0.0",
        description=DESCRIPTION,
        openapi_url=None,  # served below, declared with the hub's access.route
        docs_url=None,
        redoc_url=None,
        servers=[{"url": PREFIX}],
    )
    install_error_handlers(app)
    # The routers' own route objects, not include_router's wrapper entry: each stays a
    # KeyRoute in app.routes, where the OpenAPI generator and the route guard test see it.
    for module in (integrations, records, webhooks):
        app.router.routes.extend(module.router.routes)

    @functools.cache
    def document() -> dict[str, Any]:
        return app.openapi()

    async def openapi_json(_: Request) -> Response:
        return JSONResponse(document())

    async def docs(_: Request) -> Response:
        return HTMLResponse(docs_page.render(document()))

    app.router.routes.append(
        route("/openapi.json", openapi_json, methods=["GET"], access=Access.PUBLIC)
    )
    app.router.routes.append(route("/docs", docs, methods=["GET"], access=Access.PUBLIC))
    return app


def mount() -> Mount:
    """A fresh API app at /api/v1 (the hub's Starlette app is built more than once)."""
    return Mount(PREFIX, app=build_app())
