"""Whether a Shopify webhook body was signed by an app of the shop it names.

The apps that may sign a shop's webhooks (its integrations' own apps, then the hub's default
app) come from the database, their secrets decrypted: three queries and two decryptions per
delivery, the largest cost of the webhook route in a profile (bench/webhook_ingest.py). A
process remembers them for ``REMEMBER`` seconds, but only to accept: a signature the
remembered secrets refuse is checked again against the database's, so a new or rotated
secret is honoured at once. A secret removed from the hub is still accepted for at most
``REMEMBER`` seconds by a process that used it just before.
"""

from __future__ import annotations

import functools
import time

from connectors.errors import InvalidInput
from connectors.shopify import auth as shopify_auth
from dashboard.services import app_credentials
from dashboard.services import integrations as integration_service
from dashboard.services.app_credentials import ShopifyApp

REMEMBER = 10.0  # seconds
MAX_SHOPS = 10_000  # remembered at once per process; beyond, forgotten all together

_known: dict[str, tuple[float, list[ShopifyApp]]] = {}


async def signed_by_shop_app(shop_header: str, body: bytes, signature: str | None) -> bool:
    """True when ``signature`` is the HMAC of ``body`` with the secret of an app that may sign
    for the shop in ``shop_header`` (``X-Shopify-Shop-Domain``, unsigned)."""
    shop = _shop_of(shop_header)
    now = time.monotonic()
    remembered = _known.get(shop)
    if (
        remembered is not None
        and remembered[0] > now
        and _any_signed(remembered[1], body, signature)
    ):
        return True
    apps = (
        await app_credentials.shopify_apps_for_shop(shop)
        if shop
        else [app_credentials.default_app()]
    )
    if len(_known) >= MAX_SHOPS:
        _known.clear()
    _known[shop] = (now + REMEMBER, apps)
    return _any_signed(apps, body, signature)


@functools.lru_cache(maxsize=1024)  # the same few headers, a thousand times a second
def _shop_of(shop_header: str) -> str:
    """The header's shop, normalized; "" for one that is not a shop domain."""
    try:
        return integration_service.normalize_shop_domain(shop_header)
    except InvalidInput:
        return ""


def _any_signed(apps: list[ShopifyApp], body: bytes, signature: str | None) -> bool:
    return any(shopify_auth.verify_webhook(body, signature, app.client_secret) for app in apps)


def forget() -> None:
    """Forget every remembered app (tests; an app's credentials changed in this process)."""
    _known.clear()
