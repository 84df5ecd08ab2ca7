"""Approve the sandbox's apps without a browser: the merchant's clicks, done over HTTP.

Used by the demo profile (connected demo integrations on ``make run``), by tests and by
benchmarks. Never talks to a real platform: only the sandbox has an approve form like this.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qs, urlparse

import httpx

SHOPIFY_APP = {
    "client_id": "sandbox-shopify-client-id",
    "client_secret": "sandbox-shopify-client-secret",
}
AMAZON_APP = {
    "app_id": "amzn1.sp.solution.sandbox-app",
    "client_id": "amzn1.application-oa2-client.sandbox",
    "client_secret": "sandbox-amazon-client-secret",
}
REDIRECT = "http://hub.invalid/callback"  # never followed: the code is read off the redirect


def _redirect_params(response: httpx.Response) -> dict[str, str]:
    if response.status_code != 302:
        raise RuntimeError(f"the sandbox refused the approval ({response.status_code})")
    return {k: v[0] for k, v in parse_qs(urlparse(response.headers["location"]).query).items()}


def install_shopify(
    client: httpx.Client, shop: str, *, scopes: str = "read_products", expiring: bool = False
) -> dict[str, Any]:
    """Approve the sandbox app on ``shop``; returns the token endpoint's answer."""
    approved = client.post(
        f"/shopify/{shop}/admin/oauth/authorize",
        data={
            "client_id": SHOPIFY_APP["client_id"],
            "scope": scopes,
            "redirect_uri": REDIRECT,
            "state": "installer",
            "decision": "approve",
        },
    )
    body = {**SHOPIFY_APP, "code": _redirect_params(approved)["code"]}
    if expiring:
        body["expiring"] = "1"
    token = client.post(f"/shopify/{shop}/admin/oauth/access_token", json=body)
    token.raise_for_status()
    return dict(token.json())


def install_amazon(client: httpx.Client, seller: str, region: str = "na") -> str:
    """Authorize the sandbox app for ``seller``; returns its refresh token."""
    approved = client.post(
        f"/amazon/sellercentral/{region}/apps/authorize/consent",
        params={
            "application_id": AMAZON_APP["app_id"],
            "state": "installer",
            "redirect_uri": REDIRECT,
        },
        data={"decision": "approve", "selling_partner_id": seller},
    )
    token = client.post(
        "/amazon/lwa/auth/o2/token",
        data={
            "grant_type": "authorization_code",
            "code": _redirect_params(approved)["spapi_oauth_code"],
            "redirect_uri": REDIRECT,
            "client_id": AMAZON_APP["client_id"],
            "client_secret": AMAZON_APP["client_secret"],
        },
    )
    token.raise_for_status()
    return str(token.json()["refresh_token"])
