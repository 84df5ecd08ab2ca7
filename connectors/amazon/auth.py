"""Amazon authorization: the Seller Central website workflow and Login with Amazon tokens.

Consent URL -> the seller approves -> our callback gets ``spapi_oauth_code`` (lives five
minutes, single use) and ``selling_partner_id`` -> we exchange the code at LWA at once for a
refresh token, which is the integration's lasting credential. Access tokens (one hour) are
minted from it and cached by the connector.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from authlib.common.urls import add_params_to_uri

from connectors.amazon.regions import lwa_token_url, seller_central_base
from connectors.base import StoredCredential
from connectors.errors import AuthRevoked, OAuthError, PlatformError, TransientError
from connectors.http import build_client, raise_for_transient, with_retries

REFRESH_TOKEN = "refresh_token"  # noqa: S105  credential kind names, not secrets
ACCESS_TOKEN = "access_token"  # noqa: S105
SELLER_ID = re.compile(r"^[A-Z0-9]{8,20}$")
# Errors Seller Central reports, and what the person in front of the browser should do.
CONSENT_ERRORS = {
    "MD1000": "The hub's Amazon app is still in draft: the hub must send version=beta. "
    "Ask your hub administrator to set HUB_AMAZON_DRAFT_APP=true.",
    "MD5101": "The hub's callback address is not registered with its Amazon app. Ask your hub "
    "administrator to add it to the app's OAuth redirect URIs in Solution Provider Portal.",
    "MD9100": "Amazon could not find a selling account for this region. Sign in to Seller "
    "Central with the account you sell on and start again.",
}


def consent_url(
    *,
    region: str,
    app_id: str,
    state: str,
    redirect_uri: str,
    draft: bool,
    base_url: str | None,
) -> str:
    params = [("application_id", app_id), ("state", state), ("redirect_uri", redirect_uri)]
    if draft:  # only while the app is in draft; a published app must not send it
        params.append(("version", "beta"))
    return add_params_to_uri(
        f"{seller_central_base(region, base_url)}/apps/authorize/consent", params
    )


def verify_callback(params: Mapping[str, str]) -> tuple[str, str]:
    """(selling_partner_id, spapi_oauth_code) from the redirect, or OAuthError saying why."""
    retry = "Start the connection again from the hub or your connect link."
    error = params.get("error") or params.get("error_code")
    if error:
        advice = CONSENT_ERRORS.get(error, params.get("error_description") or "")
        raise OAuthError(
            f"amazon consent error {error}",
            user_message=f"Amazon did not authorize the hub ({error}). {advice} {retry}".strip(),
        )
    code = params.get("spapi_oauth_code", "")
    seller = params.get("selling_partner_id", "")
    if not code:
        raise OAuthError(
            "callback without code", user_message=f"Amazon sent no authorization code. {retry}"
        )
    if not SELLER_ID.fullmatch(seller):
        raise OAuthError(
            "callback with invalid selling_partner_id",
            user_message=f"Amazon's answer named no valid selling partner. {retry}",
        )
    return seller, code


async def _lwa(
    payload: dict[str, str], base_url: str | None, transport: httpx.AsyncBaseTransport | None
) -> dict[str, Any]:
    async with build_client(transport=transport) as client:

        async def post() -> httpx.Response:
            response = await client.post(
                lwa_token_url(base_url),
                data=payload,
                headers={"Content-Type": "application/x-www-form-urlencoded;charset=UTF-8"},
            )
            raise_for_transient(response)
            return response

        try:
            # The official helper retries the token call three times with 2^n s backoff.
            response = await with_retries(post, attempts=3, initial_wait=1.0, max_elapsed=30)
        except (TransientError, httpx.TransportError) as error:
            raise TransientError(f"Login with Amazon unreachable: {error}") from error
    try:
        body: dict[str, Any] = response.json()
    except ValueError:
        raise PlatformError("Login with Amazon answered with a malformed body") from None
    if response.status_code >= 400:
        reason = str(body.get("error", "unknown"))
        if reason == "invalid_grant":
            raise AuthRevoked(
                f"Login with Amazon refused the grant: {body.get('error_description')}"
            )
        raise PlatformError(f"Login with Amazon refused: {reason}", status=response.status_code)
    if not isinstance(body.get("access_token"), str):
        raise PlatformError("Login with Amazon answered without an access token")
    return body


def _access(body: dict[str, Any]) -> StoredCredential:
    lifetime = int(body.get("expires_in") or 3600)
    return StoredCredential(
        ACCESS_TOKEN,
        body["access_token"],
        [],
        datetime.now(UTC) + timedelta(seconds=lifetime),
    )


async def exchange_code(
    *,
    code: str,
    redirect_uri: str,
    client_id: str,
    client_secret: str,
    base_url: str | None,
    transport: httpx.AsyncBaseTransport | None = None,
) -> list[StoredCredential]:
    """The refresh token (the lasting credential) and a first access token."""
    try:
        body = await _lwa(
            {
                "grant_type": "authorization_code",
                "code": code,
                "redirect_uri": redirect_uri,
                "client_id": client_id,
                "client_secret": client_secret,
            },
            base_url,
            transport,
        )
    except AuthRevoked:
        raise OAuthError(
            "authorization code refused",
            user_message="Amazon refused the authorization code: it may have expired (codes "
            "live five minutes) or been used already. Start the connection again.",
        ) from None
    refresh = body.get("refresh_token")
    if not isinstance(refresh, str) or not refresh:
        raise PlatformError("Login with Amazon answered without a refresh token")
    return [StoredCredential(REFRESH_TOKEN, refresh), _access(body)]


async def refresh_access_token(
    *,
    refresh_token: str,
    client_id: str,
    client_secret: str,
    base_url: str | None,
    transport: httpx.AsyncBaseTransport | None = None,
) -> StoredCredential:
    body = await _lwa(
        {
            "grant_type": "refresh_token",
            "refresh_token": refresh_token,
            "client_id": client_id,
            "client_secret": client_secret,
        },
        base_url,
        transport,
    )
    return _access(body)


async def grantless_token(
    *,
    scope: str,
    client_id: str,
    client_secret: str,
    base_url: str | None,
    transport: httpx.AsyncBaseTransport | None = None,
) -> StoredCredential:
    """A client_credentials token for grantless operations (notifications, secret rotation)."""
    body = await _lwa(
        {
            "grant_type": "client_credentials",
            "scope": scope,
            "client_id": client_id,
            "client_secret": client_secret,
        },
        base_url,
        transport,
    )
    return _access(body)
