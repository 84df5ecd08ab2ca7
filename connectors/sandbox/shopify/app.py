"""Sandbox Shopify: OAuth consent and token endpoints, the Admin GraphQL API with cost-based
throttling, webhooks, and the control routes tests and demos drive it with.

URL layout below the sandbox base: ``https://{shop}`` becomes ``{BASE}/shopify/{shop}``.

Split along its seams: ``sandbox.py`` (the platform's state), ``routes.py`` (OAuth and the
Admin API), ``control.py`` (control routes and the demo profile).
"""

from __future__ import annotations

from connectors.sandbox.core import FaultConfig
from connectors.sandbox.shopify.control import control_routes, run_demo_changes, seed_demo
from connectors.sandbox.shopify.routes import query_hmac, routes
from connectors.sandbox.shopify.sandbox import ShopifySandbox

__all__ = [
    "FaultConfig",
    "ShopifySandbox",
    "control_routes",
    "query_hmac",
    "routes",
    "run_demo_changes",
    "seed_demo",
]
