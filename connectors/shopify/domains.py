"""Shop domain validation: the first line of defence of the install flow.

Refused before any request: IPs, ports, paths, credentials, look-alikes such as
``shop.myshopify.com.evil.com``. Only ``name.myshopify.com`` (lower-cased) passes.
"""

from __future__ import annotations

import re

from connectors.errors import InvalidInput

SHOP_DOMAIN = re.compile(r"^[a-z0-9][a-z0-9-]*\.myshopify\.com$")
_MAX_LENGTH = 255


def validate_shop_domain(value: str) -> str:
    """Return the lower-cased shop domain; raise InvalidInput with a message a user can act on."""
    shop = (value or "").strip().lower()
    if shop.startswith(("http://", "https://")):
        shop = shop.split("://", 1)[1].rstrip("/")
    if not shop:
        raise InvalidInput("Enter the shop's domain, for example my-store.myshopify.com.")
    if len(shop) > _MAX_LENGTH or not SHOP_DOMAIN.fullmatch(shop):
        raise InvalidInput(
            f"{value.strip()[:80]!r} is not a Shopify shop domain. Use the store's "
            "myshopify.com address, for example my-store.myshopify.com (no path, port or "
            "other domain)."
        )
    return shop
