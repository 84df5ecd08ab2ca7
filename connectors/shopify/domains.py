"""Shop domain validation: the first line of defence of the install flow.

Refused before any request: IPs, ports, paths, credentials, look-alikes such as
``shop.myshopify.com.evil.com``. Only ``name.myshopify.com`` (lower-cased) passes.
"""

from __future__ import annotations

import re
from urllib.parse import urlsplit

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


SHOP_HANDLE = re.compile(r"^[a-z0-9][a-z0-9-]*$")
ADMIN_STORE_PATH = re.compile(r"^/store/([a-z0-9][a-z0-9-]*)(?:/.*)?$")
ADMIN_HOST = "admin.shopify.com"


def shop_domain_from_input(value: str) -> str:
    """What a person may paste for a shop, as the shop domain it names: a handle
    (``acme-outdoor``), a domain, the shop's admin URL (``https://x.myshopify.com/admin``) or
    Shopify's unified admin URL (``https://admin.shopify.com/store/x``).

    This only rewrites those shapes; anything else comes back as typed, and
    ``validate_shop_domain`` stays the one gate (a URL with credentials, a port, or a host
    that is not exactly a myshopify.com shop is left for it to refuse)."""
    text = (value or "").strip().lower()
    if SHOP_HANDLE.fullmatch(text):
        return f"{text}.myshopify.com"
    if "/" not in text:
        return text
    url = urlsplit(text if "://" in text else f"https://{text}")
    if url.scheme not in ("http", "https") or "@" in url.netloc or ":" in url.netloc:
        return text
    host = url.netloc
    if host == ADMIN_HOST:
        store = ADMIN_STORE_PATH.fullmatch(url.path)
        return f"{store.group(1)}.myshopify.com" if store else text
    if SHOP_DOMAIN.fullmatch(host):
        return host
    return text
