"""What the Shopify sandbox's tests share: a sandbox with their control token and redirect
URIs, a client for it, consent and install through OAuth, GraphQL calls, and bulk operations
started and waited for, with webhook subscriptions."""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qs, urlparse

import httpx

from connectors.sandbox.access import sandbox_apps
from connectors.sandbox.app import create_sandbox_app
from tests.sandbox_server import shopify_consent

SHOP = "acme.myshopify.com"
TOKEN = "test-control-token"
CLIENT = {
    "client_id": "sandbox-shopify-client-id",
    "client_secret": sandbox_apps(TOKEN).shopify_client_secret,
}
REDIRECTS = ["http://hub/api/oauth/shopify/callback", "http://hub/cb"]


def sandbox_app(**options: Any) -> Any:
    """A sandbox with this file's control token and the redirect URIs its tests use."""
    return create_sandbox_app(
        control_token=TOKEN, redirect_uris={"shopify": REDIRECTS, "amazon": REDIRECTS}, **options
    )


def client(app) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app),
        base_url="http://sandbox",
        headers={"Authorization": f"Bearer {TOKEN}"},
    )


async def consent(
    c: httpx.AsyncClient, shop: str, params: dict[str, str], decision: str = "approve"
) -> httpx.Response:
    return await shopify_consent(c, f"/shopify/{shop}/admin/oauth/authorize", params, decision)


async def install(c: httpx.AsyncClient, shop: str = SHOP, **token_params: str) -> str:
    r = await consent(
        c,
        shop,
        {
            "client_id": CLIENT["client_id"],
            "scope": "read_products,read_orders",
            "redirect_uri": "http://hub/api/oauth/shopify/callback",
            "state": "st",
        },
    )
    code = parse_qs(urlparse(r.headers["location"]).query)["code"][0]
    r = await c.post(
        f"/shopify/{shop}/admin/oauth/access_token", json={**CLIENT, "code": code, **token_params}
    )
    return r.json()["access_token"]


async def gql(c: httpx.AsyncClient, token: str, query: str, variables=None, shop=SHOP):
    return await c.post(
        f"/shopify/{shop}/admin/api/2026-10/graphql.json",
        json={"query": query, "variables": variables or {}},
        headers={"X-Shopify-Access-Token": token},
    )


# --- bulk operations ----------------------------------------------------------------------------

BULK_RUN = """mutation Run($query: String!, $group: Boolean!) {
  bulkOperationRunQuery(query: $query, groupObjects: $group) {
    bulkOperation { id status createdAt objectCount url }
    userErrors { field message code }
  }
}"""
BULK_POLL = """query Poll($id: ID!) {
  bulkOperation(id: $id) {
    id status errorCode createdAt completedAt objectCount rootObjectCount fileSize url
    partialDataUrl query type
  }
}"""
BULK_PRODUCTS = """{ products { edges { node { id title updatedAt
  variants { edges { node { id sku } } } } } } }"""


async def start_bulk(c, token, query=BULK_PRODUCTS, group=True, shop=SHOP) -> dict:
    body = (await gql(c, token, BULK_RUN, {"query": query, "group": group}, shop=shop)).json()
    return body["data"]["bulkOperationRunQuery"]


async def wait_bulk(c, token, operation_id: str, shop=SHOP) -> tuple[dict, list[str]]:
    """Poll until the operation finishes; returns it and every status seen."""
    import asyncio

    seen: list[str] = []
    for _ in range(1000):
        body = (await gql(c, token, BULK_POLL, {"id": operation_id}, shop=shop)).json()
        operation = body["data"]["bulkOperation"]
        if not seen or seen[-1] != operation["status"]:
            seen.append(operation["status"])
        if operation["status"] not in ("CREATED", "RUNNING", "CANCELING"):
            return operation, seen
        await asyncio.sleep(0.01)
    raise AssertionError(f"bulk operation stuck at {seen}")


async def subscribe(c, token, topic: str, shop=SHOP) -> None:
    body = (
        await gql(
            c,
            token,
            f"""mutation {{ webhookSubscriptionCreate(topic: {topic},
            webhookSubscription: {{uri: "http://hub/api/webhooks/shopify"}})
            {{ userErrors {{ message }} }} }}""",
            shop=shop,
        )
    ).json()
    assert body["data"]["webhookSubscriptionCreate"]["userErrors"] == []
