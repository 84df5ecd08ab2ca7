"""Shopify OAuth (authorization code grant, offline tokens) and request signatures."""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import time
from collections.abc import Mapping
from datetime import timedelta
from typing import Any

import httpx
from authlib.common.urls import add_params_to_uri

from connectors.auth import (
    ACCESS_TOKEN,
    REFRESH_TOKEN,
    TokenEndpoint,
    TokenFlow,
    fetch_token,
    lifetime_end,
)
from connectors.base import CredentialStore, StoredCredential
from connectors.errors import OAuthError, PlatformError
from connectors.shopify.domains import validate_shop_domain

CALLBACK_MAX_AGE = timedelta(minutes=5)
TOKEN_HEADER = "X-Shopify-Access-Token"  # noqa: S105  the Admin API's header, not a secret


def shop_base_url(shop: str, base_url: str | None) -> str:
    """``https://{shop}`` on the real platform; ``{base}/{shop}`` against the sandbox."""
    shop = validate_shop_domain(shop)
    return f"{base_url}/{shop}" if base_url else f"https://{shop}"


def authorize_url(
    *,
    shop: str,
    client_id: str,
    scopes: list[str],
    redirect_uri: str,
    state: str,
    base_url: str | None,
) -> str:
    return add_params_to_uri(
        f"{shop_base_url(shop, base_url)}/admin/oauth/authorize",
        [
            ("client_id", client_id),
            ("scope", ",".join(scopes)),
            ("redirect_uri", redirect_uri),
            ("state", state),
        ],
    )


def query_signature(params: Mapping[str, str], secret: str) -> str:
    message = "&".join(f"{k}={v}" for k, v in sorted(params.items()) if k != "hmac")
    return hmac.new(secret.encode(), message.encode(), hashlib.sha256).hexdigest()


RETRY_FROM_HUB = "Start the connection again from the hub or your connect link."


def verify_callback(
    params: Mapping[str, str],
    *,
    secret: str,
    now: float | None = None,
    retry: str = RETRY_FROM_HUB,
) -> str:
    """Check a query Shopify signed (the OAuth callback, the app URL): its hmac and timestamp;
    returns the validated shop domain.

    Raises OAuthError with a message for the person in front of the browser, ending in
    ``retry`` (what to do next).
    """
    if not _hex_digest_matches(params.get("hmac", ""), query_signature(params, secret)):
        raise OAuthError(
            "callback hmac mismatch",
            user_message=f"The answer from Shopify could not be verified (bad signature). {retry}",
        )
    try:
        stamp = int(params.get("timestamp", ""))
    except ValueError:
        raise OAuthError(
            "callback without timestamp",
            user_message=f"The answer from Shopify had no valid time. {retry}",
        ) from None
    age = (now or time.time()) - stamp
    if age > CALLBACK_MAX_AGE.total_seconds() or age < -60:
        raise OAuthError(
            "callback too old", user_message=f"The answer from Shopify is too old. {retry}"
        )
    try:
        return validate_shop_domain(params.get("shop", ""))
    except Exception:
        raise OAuthError(
            "callback with invalid shop", user_message=f"The answer named an invalid shop. {retry}"
        ) from None


def _hex_digest_matches(given: str, expected: str) -> bool:
    """Constant-time compare of a hex digest from the query string; anything that is not hex
    (non-ASCII included, on which ``compare_digest`` of two str raises) does not match."""
    try:
        given_bytes = bytes.fromhex(given)
    except ValueError:
        return False
    return bool(given_bytes) and hmac.compare_digest(given_bytes, bytes.fromhex(expected))


def verify_webhook(body: bytes, signature: str | None, secret: str) -> bool:
    """X-Shopify-Hmac-Sha256: base64 HMAC-SHA256 of the raw body; constant-time compare.

    A header that is not base64 (non-ASCII included) is a mismatch, never an exception.
    """
    if not signature:
        return False
    try:
        given = base64.b64decode(signature, validate=True)
    except (binascii.Error, ValueError):
        return False
    expected = hmac.new(secret.encode(), body, hashlib.sha256).digest()
    return hmac.compare_digest(expected, given)


def token_credentials(body: Mapping[str, Any]) -> list[StoredCredential]:
    """The access token (and refresh token, when expiring) of a token endpoint answer."""
    token = body.get("access_token")
    if not isinstance(token, str) or not token:
        raise PlatformError("token endpoint answered without an access token")
    scopes = [s for s in str(body.get("scope", "")).split(",") if s]
    result = [StoredCredential(ACCESS_TOKEN, token, scopes, lifetime_end(body, "expires_in"))]
    refresh = body.get("refresh_token")
    if isinstance(refresh, str) and refresh:
        expires = lifetime_end(body, "refresh_token_expires_in")
        result.append(StoredCredential(REFRESH_TOKEN, refresh, scopes, expires))
    return result


def token_endpoint(
    *,
    shop: str,
    client_id: str,
    client_secret: str,
    base_url: str | None,
    transport: httpx.AsyncBaseTransport | None = None,
) -> TokenEndpoint:
    """The shop's token endpoint; Shopify takes the app's credentials in the body."""
    return TokenEndpoint(
        "Shopify",
        f"{shop_base_url(shop, base_url)}/admin/oauth/access_token",
        client_id,
        client_secret,
        transport,
    )


async def exchange_code(
    *,
    shop: str,
    code: str,
    client_id: str,
    client_secret: str,
    base_url: str | None,
    expiring: bool = False,
    transport: httpx.AsyncBaseTransport | None = None,
) -> list[StoredCredential]:
    """The offline token for the callback's code (and its refresh token when ``expiring``).

    authlib also sends ``grant_type=authorization_code``, which Shopify's endpoint accepts
    beside the documented client_id, client_secret and code (the OAuth 2 form of the call).
    """
    endpoint = token_endpoint(
        shop=shop,
        client_id=client_id,
        client_secret=client_secret,
        base_url=base_url,
        transport=transport,
    )
    token = await fetch_token(
        endpoint,
        grant_type="authorization_code",
        refused="Shopify refused the authorization code (it may have expired or been used). "
        "Start the connection again.",
        code=code,
        **({"expiring": "1"} if expiring else {}),
    )
    return token_credentials(token)


def token_flow(endpoint: TokenEndpoint, credentials: CredentialStore) -> TokenFlow:
    """The Admin API's token header; an expiring token refreshed ahead of expiry or on a 401
    (clocks drift), the rotated refresh token saved with it."""
    return TokenFlow(
        endpoint,
        credentials,
        header=TOKEN_HEADER,
        credentials_of=token_credentials,
    )
