"""Expiring offline tokens: a 401 on an expiring token refreshes it once (saved before use)
and the query goes on; a token that cannot be refreshed means reconnect."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qsl

import httpx
import pytest
import respx

from connectors.base import MemoryCredentialStore, StoredCredential
from connectors.errors import AuthRevoked
from connectors.shopify.client import _throttles
from connectors.shopify.connector import ShopifyConfig, ShopifyConnector
from connectors.shopify.queries import API_VERSION

DOMAIN = "tokens.myshopify.com"
GRAPHQL = f"https://{DOMAIN}/admin/api/{API_VERSION}/graphql.json"
TOKEN_URL = f"https://{DOMAIN}/admin/oauth/access_token"


def shop_body() -> dict:
    return {"data": {"shop": {"name": "Tokens", "currencyCode": "EUR"}}}


def connector() -> ShopifyConnector:
    _throttles.clear()
    return ShopifyConnector(ShopifyConfig("id", "secret", ("read_products",), None))


@respx.mock
async def test_401_on_an_expiring_token_refreshes_once_and_goes_on() -> None:
    later = datetime.now(UTC) + timedelta(hours=1)  # we believe it is still valid
    store = MemoryCredentialStore(
        StoredCredential("access_token", "shpat_old", ["read_products"], later),
        StoredCredential("refresh_token", "shprt_one"),
    )
    graphql = respx.post(GRAPHQL).mock(
        side_effect=[
            httpx.Response(401, json={"errors": "expired"}),
            httpx.Response(200, json=shop_body()),
        ]
    )
    refresh = respx.post(TOKEN_URL).mock(
        return_value=httpx.Response(
            200,
            json={"access_token": "shpat_new", "scope": "read_products", "expires_in": 3600,
                  "refresh_token": "shprt_two", "refresh_token_expires_in": 7776000},
        )
    )  # fmt: skip
    info = await connector().fetch_shop(DOMAIN, store)
    assert info["name"] == "Tokens" and refresh.call_count == 1
    assert [c.request.headers["x-shopify-access-token"] for c in graphql.calls] == [
        "shpat_old",
        "shpat_new",
    ]
    assert store.items["access_token"].secret == "shpat_new"
    assert store.items["refresh_token"].secret == "shprt_two"  # rotated, saved before use
    sent = dict(parse_qsl(refresh.calls[0].request.content.decode()))
    assert sent == {
        "grant_type": "refresh_token",
        "refresh_token": "shprt_one",
        "client_id": "id",
        "client_secret": "secret",
    }


@respx.mock
async def test_401_without_a_refresh_token_means_reconnect() -> None:
    store = MemoryCredentialStore(
        StoredCredential("access_token", "shpat_forever", ["read_products"])
    )
    respx.post(GRAPHQL).mock(return_value=httpx.Response(401, json={"errors": "bad"}))
    with pytest.raises(AuthRevoked):
        await connector().fetch_shop(DOMAIN, store)


@respx.mock
async def test_a_second_401_after_refreshing_is_final() -> None:
    later = datetime.now(UTC) + timedelta(hours=1)
    store = MemoryCredentialStore(
        StoredCredential("access_token", "shpat_old", [], later),
        StoredCredential("refresh_token", "shprt_one"),
    )
    graphql = respx.post(GRAPHQL).mock(return_value=httpx.Response(401, json={"errors": "no"}))
    respx.post(TOKEN_URL).mock(
        return_value=httpx.Response(200, json={"access_token": "shpat_new", "expires_in": 3600})
    )
    with pytest.raises(AuthRevoked):
        await connector().fetch_shop(DOMAIN, store)
    assert graphql.call_count == 2
