"""Sandbox Amazon routes: Seller Central consent, LWA token endpoint, SP-API and the static
sandbox, each below the sandbox base as Amazon lays them out on its hosts:

``https://api.amazon.com`` -> ``{BASE}/amazon/lwa``;
``https://{host}`` (each marketplace's Seller Central) -> ``{BASE}/amazon/sellercentral/{host}``;
``https://sellingpartnerapi-{region}.amazon.com`` -> ``{BASE}/amazon/sp/{region}``;
``https://sandbox.sellingpartnerapi-{region}.amazon.com`` -> ``{BASE}/amazon/sp-sandbox/{region}``.

Split along its seams: ``operations.py`` (SP-API), ``static.py`` (the static sandbox),
``oauth.py`` (LWA and consent), ``control.py`` (control routes and the demo profile).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from connectors.sandbox.amazon.control import control_routes, run_demo_changes, seed_demo
from connectors.sandbox.amazon.oauth import (
    appstore_authorize,
    appstore_confirm,
    consent,
    lwa_token,
)
from connectors.sandbox.amazon.operations import download_document, sp_api
from connectors.sandbox.amazon.sandbox import AmazonSandbox
from connectors.sandbox.amazon.static import static_sandbox

__all__ = ["build_routes", "control_routes", "run_demo_changes", "seed_demo"]


def build_routes(sandbox: AmazonSandbox) -> list[BaseRoute]:
    """Routes below ``{BASE}/amazon``."""

    def bound(endpoint: Callable[[Request, AmazonSandbox], Awaitable[Response]]) -> Any:
        async def call(request: Request) -> Response:
            return await endpoint(request, sandbox)

        return call

    every = ["GET", "POST", "PUT", "PATCH", "DELETE"]
    return [
        Route("/lwa/auth/o2/token", bound(lwa_token), methods=["POST"]),
        Route(
            "/sellercentral/{host:str}/apps/authorize/consent",
            bound(consent),
            methods=["GET", "POST"],
        ),
        Route(
            "/sellercentral/{host:str}/apps/appstore/authorize",
            bound(appstore_authorize),
            methods=["GET", "POST"],
        ),
        Route(
            "/sellercentral/{host:str}/apps/authorize/confirm/{app_id:str}",
            bound(appstore_confirm),
            methods=["GET"],
        ),
        Route("/sp/{region:str}/{path:path}", bound(sp_api), methods=every),
        Route("/sp-sandbox/{region:str}/{path:path}", static_sandbox, methods=every),
        Route("/documents/{document_id:str}", bound(download_document), methods=["GET"]),
    ]
