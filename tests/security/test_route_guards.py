"""Every HTTP entry point of the hub declares who may call it (``dashboard.api.access``), and
the declaration holds: a request with nothing (no session, link, state or signature) is
refused by every route that is not public.

Walks the hub's real Starlette app (``build_api``), not a hand-kept list: a new route built
without ``access.route`` fails here. Reflex's own app (mounted at /) and the sandbox (mounted
at /sandbox, guarded by its own token) are not hub routes.
"""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
from starlette.applications import Starlette
from starlette.routing import BaseRoute, Mount, Route

from dashboard.api import build_api
from dashboard.api.access import Access, access_of

NOT_HUB_ROUTES = {"", "/sandbox"}  # Mount paths: Reflex's app at /, the sandbox
# What a request carrying nothing gets from a route of each kind.
REFUSED_WITHOUT_CREDENTIALS = {
    Access.PLATFORM_SIGNED: {400, 401},
    Access.OAUTH_STATE: {400},
    Access.SESSION_OR_LINK: {401, 403},
    Access.SESSION: {401, 403},
    Access.SAME_ORIGIN_FORM: {403},
    Access.BEARER_TOKEN: {401},
}


def hub_routes(routes: list[BaseRoute], prefix: str = "") -> Iterator[tuple[str, BaseRoute]]:
    for entry in routes:
        if isinstance(entry, Mount):
            if entry.path in NOT_HUB_ROUTES:
                continue
            yield from hub_routes(list(entry.routes), prefix + entry.path)
        else:
            yield prefix + getattr(entry, "path", repr(entry)), entry


def undeclared(app: Starlette) -> list[str]:
    return [path for path, entry in hub_routes(app.routes) if access_of(entry) is None]


@pytest.fixture
def hub_app(hub_db: object) -> Starlette:
    return build_api(Starlette())


def test_every_hub_route_declares_its_access(hub_app: Starlette) -> None:
    paths = [path for path, _ in hub_routes(hub_app.routes)]
    assert "/api/webhooks/shopify" in paths and "/api/oauth/amazon/callback" in paths
    assert undeclared(hub_app) == []


def test_a_route_without_a_declaration_is_caught(hub_app: Starlette) -> None:
    async def leak(_: object) -> None: ...

    hub_app.router.routes.insert(0, Route("/api/leak", leak))
    assert undeclared(hub_app) == ["/api/leak"]


async def test_each_declaration_holds_for_a_request_carrying_nothing(hub_app: Starlette) -> None:
    transport = httpx.ASGITransport(app=hub_app)
    async with httpx.AsyncClient(transport=transport, base_url="http://hub.test") as client:
        for path, entry in hub_routes(hub_app.routes):
            access = access_of(entry)
            assert access is not None, path
            if access is Access.PUBLIC:
                continue
            for method in sorted(getattr(entry, "methods", None) or {"GET"}):
                if method == "HEAD":
                    continue
                response = await client.request(method, path)
                assert response.status_code in REFUSED_WITHOUT_CREDENTIALS[access], (
                    method,
                    path,
                    response.status_code,
                )
