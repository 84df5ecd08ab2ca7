"""HTTP routes of the hub beside Reflex: health, OAuth callbacks, webhooks, the sandbox.

``build_api`` is passed to ``rx.App(api_transformer=...)`` as a factory: it builds a fresh
Starlette app around Reflex's ASGI app every time (the harness builds the App twice).
"""

from __future__ import annotations

import importlib
import logging
from typing import Any

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.routing import BaseRoute, Mount
from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware

from dashboard.api.security_headers import SecurityHeadersMiddleware
from dashboard.logging_setup import RequestIdMiddleware
from dashboard.settings import get_settings

log = logging.getLogger(__name__)

SANDBOX_STATE_FILE = "sandbox-state.json"  # in the data dir: the mounted sandbox's grants
# Modules exposing ``routes: list[BaseRoute]``; a platform's routes live in its own module.
ROUTE_MODULES = (
    "dashboard.api.health",
    "dashboard.api.session",
    "dashboard.api.shopify",
    "dashboard.api.amazon",
    "dashboard.api.metrics",
    "dashboard.api.records_export",
)


def collect_routes() -> list[BaseRoute]:
    routes: list[BaseRoute] = []
    for name in ROUTE_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as error:
            if error.name != name:
                raise
            continue
        routes.extend(module.routes)
    return routes


def build_api(asgi_app: Any) -> Starlette:
    """Our routes first, the sandbox at /sandbox when the connectors use it there (not a
    standalone one: see ``Settings.sandbox_mounted``), Reflex for everything else."""
    settings = get_settings()
    routes = collect_routes()
    if settings.sandbox_mounted and _sandbox_installed():
        from connectors.sandbox.app import create_sandbox_app
        from dashboard.services.integrations import connect_callback_url, webhook_url

        sandbox = create_sandbox_app(
            seed=settings.sandbox_seed,
            time_scale=settings.sandbox_time_scale,
            demo=settings.sandbox_demo,
            public_base=f"{settings.public_url}/sandbox",
            shopify_compliance_url=webhook_url("shopify"),
            # Grants outlive a restart of the hub, as on a real platform.
            state_file=settings.data_dir / SANDBOX_STATE_FILE,
            # The control API needs the hub's token; consent sends codes to the hub only.
            control_token=settings.sandbox_control_token,
            redirect_uris={p: [connect_callback_url(p)] for p in ("shopify", "amazon")},
        )
        routes.append(Mount("/sandbox", app=sandbox))
    routes.append(Mount("/", app=asgi_app))
    # Behind the reverse proxy every connection comes from it: the client's own address (the
    # sign-in limit counts per address) and scheme come from its X-Forwarded-* headers, and
    # only from a proxy listed in HUB_TRUSTED_PROXIES (anyone else could forge them).
    proxies = [host.strip() for host in settings.trusted_proxies.split(",") if host.strip()]
    forwarded = Middleware(ProxyHeadersMiddleware, trusted_hosts=proxies)
    headers = Middleware(SecurityHeadersMiddleware, public_url=settings.public_url or "")
    # Outermost: every line logged while a request is handled carries its id; then the
    # client's address and scheme as the trusted proxy saw them.
    return Starlette(
        routes=routes, middleware=[Middleware(RequestIdMiddleware), forwarded, headers]
    )


def _sandbox_installed() -> bool:
    import importlib.util

    if importlib.util.find_spec("connectors.sandbox.app") is None:
        log.warning("HUB_SANDBOX is on but connectors.sandbox.app is missing; not mounted")
        return False
    return True
