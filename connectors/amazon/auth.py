"""Amazon authorization: the Seller Central website workflow and Login with Amazon tokens.

Consent URL -> the seller approves -> our callback gets ``spapi_oauth_code`` (lives five
minutes, single use) and ``selling_partner_id`` -> we exchange the code at LWA at once for a
refresh token, which is the integration's lasting credential. Access tokens (one hour) are
minted from it by the token flow (``connectors.auth.TokenFlow``) and stored beside it.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

import httpx
from authlib.common.urls import add_params_to_uri

from connectors.amazon.client import TOKEN_HEADER, token_expired
from connectors.amazon.regions import (
    SELLER_CENTRAL_HOSTS,
    Marketplace,
    lwa_token_url,
    seller_central_base,
)
from connectors.auth import (
    ACCESS_TOKEN,
    REFRESH_TOKEN,
    TokenEndpoint,
    TokenFlow,
    fetch_token,
    lifetime_end,
)
from connectors.base import CredentialStore, StoredCredential
from connectors.errors import ConsentCancelled, OAuthError

DEFAULT_LIFETIME = timedelta(hours=1)  # LWA access tokens live an hour
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
    marketplace: str,
    app_id: str,
    state: str,
    redirect_uri: str,
    draft: bool,
    base_url: str | None,
) -> str:
    """The consent page on the Seller Central host of ``marketplace`` (the integration's
    primary one): a seller of amazon.com.au signs in at sellercentral.amazon.com.au."""
    params = [("application_id", app_id), ("state", state), ("redirect_uri", redirect_uri)]
    if draft:  # only while the app is in draft; a published app must not send it
        params.append(("version", "beta"))
    return add_params_to_uri(
        f"{seller_central_base(marketplace, base_url)}/apps/authorize/consent", params
    )


@dataclass(frozen=True)
class AppstoreLogin:
    """What Amazon sent to the app's Login URI when a seller authorized it in the Appstore."""

    callback_uri: str  # amazon_callback_uri: back to Amazon, on the seller's Seller Central
    amazon_state: str
    selling_partner_id: str
    marketplace: Marketplace  # of that Seller Central host: its region is the authorization's
    beta: bool  # version=beta: a draft app's test workflow


CONFIRM_PATH = "/apps/authorize/confirm/"
def _marketplace_of_host(host: str) -> Marketplace | None:
    host = host.lower()
    # Amazon's example callback is on amazon.com itself: the marketplace's own domain.
    return SELLER_CENTRAL_HOSTS.get(host) or SELLER_CENTRAL_HOSTS.get(
        "sellercentral." + host.removeprefix("www.")
    )


def verify_login_uri(
    params: Mapping[str, str], *, app_id: str, base_url: str | None
) -> AppstoreLogin:
    """Amazon's parameters at the Login URI, or OAuthError. ``amazon_callback_uri`` must be
    this app's confirm page on an Amazon Seller Central host (the hub redirects there, so
    anything else would make it an open redirector)."""
    retry = "Start again from the app's page in the Selling Partner Appstore."
    callback = params.get("amazon_callback_uri", "")
    amazon_state = params.get("amazon_state", "")
    seller = params.get("selling_partner_id", "")
    if not callback or not amazon_state or not seller:
        raise OAuthError(
            "login uri without amazon parameters",
            user_message="This address is where Amazon sends sellers who authorize the hub in "
            f"the Selling Partner Appstore; the request had none of Amazon's parameters. {retry}",
        )
    parsed = urlsplit(callback)
    if base_url:  # the sandbox: {base}/sellercentral/{host}/apps/authorize/confirm/{app}
        prefix = f"{base_url}/sellercentral/"
        rest = callback.removeprefix(prefix) if callback.startswith(prefix) else ""
        host, _, path = rest.partition("/")
        path = "/" + path.split("?", 1)[0]
    else:
        plain = parsed.scheme == "https" and not (parsed.port or parsed.username)
        host = (parsed.hostname or "") if plain else ""
        path = parsed.path
    marketplace = _marketplace_of_host(host)
    if marketplace is None or path != CONFIRM_PATH + app_id or len(amazon_state) > 2000:
        raise OAuthError(
            "login uri with a foreign amazon_callback_uri",
            user_message=f"The request did not come from Amazon for this hub's app. {retry}",
        )
    if not SELLER_ID.fullmatch(seller):
        raise OAuthError(
            "login uri with invalid selling_partner_id",
            user_message=f"Amazon's request named no valid selling partner. {retry}",
        )
    return AppstoreLogin(
        callback, amazon_state, seller, marketplace, params.get("version") == "beta"
    )


def appstore_redirect(
    login: AppstoreLogin, *, state: str, redirect_uri: str, draft: bool
) -> str:
    """Back to Amazon: ``amazon_callback_uri`` with ``redirect_uri``, ``amazon_state`` and the
    hub's own ``state``; ``version=beta`` while the app is a draft."""
    params = [("redirect_uri", redirect_uri), ("amazon_state", login.amazon_state),
              ("state", state)]  # fmt: skip
    if draft or login.beta:
        params.append(("version", "beta"))
    return add_params_to_uri(login.callback_uri, params)


def verify_callback(params: Mapping[str, str]) -> tuple[str, str]:
    """(selling_partner_id, spapi_oauth_code) from the redirect, or OAuthError saying why."""
    retry = "Start the connection again from the hub or your connect link."
    error = params.get("error") or params.get("error_code")
    if error == "access_denied":
        raise ConsentCancelled(
            "amazon consent cancelled",
            user_message="You cancelled on Amazon's page, so nothing was shared and nothing "
            "was connected.",
        )
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


def token_endpoint(
    *,
    client_id: str,
    client_secret: str,
    base_url: str | None,
    transport: httpx.AsyncBaseTransport | None = None,
    previous_secret: str | None = None,
) -> TokenEndpoint:
    """Login with Amazon's token endpoint; it takes the app's credentials in the body.
    ``previous_secret``: the secret a rotation replaces, tried on ``invalid_client``."""
    return TokenEndpoint(
        "Login with Amazon", lwa_token_url(base_url), client_id, client_secret, transport,
        previous_secret or None,
    )  # fmt: skip


def token_credentials(body: Mapping[str, Any]) -> list[StoredCredential]:
    """The refresh token (when the answer has one) and the access token of an LWA answer."""
    lifetime = lifetime_end(body, "expires_in") or datetime.now(UTC) + DEFAULT_LIFETIME
    result = [StoredCredential(ACCESS_TOKEN, str(body["access_token"]), [], lifetime)]
    refresh = body.get("refresh_token")
    if isinstance(refresh, str) and refresh:
        result.insert(0, StoredCredential(REFRESH_TOKEN, refresh))
    return result


async def exchange_code(
    *,
    code: str,
    redirect_uri: str,
    client_id: str,
    client_secret: str,
    base_url: str | None,
    transport: httpx.AsyncBaseTransport | None = None,
    previous_secret: str | None = None,
) -> list[StoredCredential]:
    """The refresh token (the lasting credential) and a first access token."""
    refused = (
        "Amazon refused the authorization code: it may have expired (codes live five "
        "minutes) or been used already. Start the connection again."
    )
    endpoint = token_endpoint(
        client_id=client_id, client_secret=client_secret, base_url=base_url,
        transport=transport, previous_secret=previous_secret,
    )  # fmt: skip
    token = await fetch_token(
        endpoint,
        grant_type="authorization_code",
        refused=refused,
        code=code,
        redirect_uri=redirect_uri,
    )
    credentials = token_credentials(token)
    if credentials[0].kind != REFRESH_TOKEN:
        raise OAuthError("Login with Amazon answered without a refresh token", user_message=refused)
    return credentials


def token_flow(endpoint: TokenEndpoint, credentials: CredentialStore) -> TokenFlow:
    """SP-API's token header; the access token refreshed ahead of expiry, or when Amazon
    calls it expired (403), once across processes and saved for the other processes."""
    return TokenFlow(
        endpoint,
        credentials,
        header=TOKEN_HEADER,
        credentials_of=token_credentials,
        rejects=token_expired,
    )


async def grantless_token(
    *,
    scope: str,
    client_id: str,
    client_secret: str,
    base_url: str | None,
    transport: httpx.AsyncBaseTransport | None = None,
    previous_secret: str | None = None,
) -> StoredCredential:
    """A client_credentials token for grantless operations (notifications, secret rotation)."""
    endpoint = token_endpoint(
        client_id=client_id, client_secret=client_secret, base_url=base_url,
        transport=transport, previous_secret=previous_secret,
    )  # fmt: skip
    token = await fetch_token(
        endpoint,
        grant_type="client_credentials",
        refused="Login with Amazon refused the app's credentials for a grantless operation.",
        scope=scope,
    )
    return token_credentials(token)[-1]
