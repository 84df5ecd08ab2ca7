"""Liveness and readiness probes for load balancers and `make run`."""

from __future__ import annotations

import asyncio

import sqlalchemy as sa
from starlette.requests import Request
from starlette.responses import JSONResponse

from dashboard import migrations
from dashboard.api.access import Access, route
from dashboard.db import get_engine


async def health(_: Request) -> JSONResponse:
    """The process answers: it is alive."""
    return JSONResponse({"status": "ok"})


def _check_database() -> dict[str, object]:
    with get_engine().connect() as connection:
        connection.execute(sa.text("SELECT 1"))
    current, head = migrations.current_revision(), migrations.head_revision()
    return {"database": "ok", "migration": current, "head": head, "at_head": current == head}


async def ready(_: Request) -> JSONResponse:
    """Ready to serve: database reachable and migrated to head (503 otherwise)."""
    try:
        checks = await asyncio.to_thread(_check_database)
    except Exception as error:  # any driver error means not ready; say which kind
        return JSONResponse(
            {"status": "unavailable", "database": f"unreachable: {type(error).__name__}"},
            status_code=503,
        )
    if not checks["at_head"]:
        body = {"status": "unavailable", **checks, "hint": "run `hub migrate`"}
        return JSONResponse(body, status_code=503)
    return JSONResponse({"status": "ok", **checks})


routes = [
    route("/api/health", health, methods=["GET"], access=Access.PUBLIC),
    route("/api/ready", ready, methods=["GET"], access=Access.PUBLIC),
]
