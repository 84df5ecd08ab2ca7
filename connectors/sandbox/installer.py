"""Approve the sandbox's apps without a browser: the merchant's clicks, done over HTTP.

Used by the demo profile (connected demo integrations on ``make run``), by tests and by
benchmarks. Never talks to a real platform: only the sandbox has an approve form like this.
The app's credentials are those the sandbox derives from its control token
(``access.sandbox_apps``); ``redirect_uri`` must be one the app registered (the sandbox's
default, or the hub's callback for a sandbox the hub made). The redirect is never followed:
the code is read off its Location header.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qs, urlparse

import httpx

from connectors.amazon.regions import MARKETPLACES, REGION_MARKETPLACES
from connectors.sandbox.access import SandboxApps
from connectors.sandbox.app import DEFAULT_REDIRECT_URI
from connectors.sandbox.consent import form_fields


def _redirect_params(response: httpx.Response) -> dict[str, str]:
    if response.status_code != 302:
        raise RuntimeError(f"the sandbox refused the approval ({response.status_code})")
    return {k: v[0] for k, v in parse_qs(urlparse(response.headers["location"]).query).items()}


def _consent_fields(page: httpx.Response) -> dict[str, str]:
    """The hidden fields a click on the consent page posts (its consent token among them)."""
    if page.status_code != 200:
        raise RuntimeError(f"the sandbox refused the consent page ({page.status_code})")
    return form_fields(page.text)


def install_shopify(
    client: httpx.Client,
    shop: str,
    apps: SandboxApps,
    *,
    scopes: str = "read_products",
    expiring: bool = False,
    redirect_uri: str = DEFAULT_REDIRECT_URI,
) -> dict[str, Any]:
    """Approve the sandbox app on ``shop`` (creating the shop, as its consent page offers,
    when the sandbox has none of that name); returns the token endpoint's answer."""
    url = f"/shopify/{shop}/admin/oauth/authorize"
    page = client.get(
        url,
        params={
            "client_id": apps.shopify_client_id,
            "scope": scopes,
            "redirect_uri": redirect_uri,
            "state": "installer",
        },
    )
    # "Create store and install app" when the sandbox has no store of that name yet.
    decision = "create" if "value='create'" in page.text else "approve"
    approved = client.post(url, data={**_consent_fields(page), "decision": decision})
    body = {
        "client_id": apps.shopify_client_id,
        "client_secret": apps.shopify_client_secret,
        "code": _redirect_params(approved)["code"],
    }
    if expiring:
        body["expiring"] = "1"
    token = client.post(f"/shopify/{shop}/admin/oauth/access_token", json=body)
    token.raise_for_status()
    return dict(token.json())


def install_amazon(
    client: httpx.Client,
    seller: str,
    apps: SandboxApps,
    region: str = "na",
    *,
    redirect_uri: str = DEFAULT_REDIRECT_URI,
) -> str:
    """Authorize the sandbox app for ``seller`` (chosen on the consent page); returns its
    refresh token."""
    host = MARKETPLACES[REGION_MARKETPLACES[region][0]].seller_central_host
    url = f"/amazon/sellercentral/{host}/apps/authorize/consent"
    params = {
        "application_id": apps.amazon_app_id,
        "state": "installer",
        "redirect_uri": redirect_uri,
    }
    fields = _consent_fields(client.get(url, params=params))
    approved = client.post(
        url,
        params=params,
        data={**fields, "decision": "approve", "selling_partner_id": seller},
    )
    token = client.post(
        "/amazon/lwa/auth/o2/token",
        data={
            "grant_type": "authorization_code",
            "code": _redirect_params(approved)["spapi_oauth_code"],
            "redirect_uri": redirect_uri,
            "client_id": apps.amazon_client_id,
            "client_secret": apps.amazon_client_secret,
        },
    )
    token.raise_for_status()
    return str(token.json()["refresh_token"])
