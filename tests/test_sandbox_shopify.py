"""The Shopify sandbox follows Shopify's contracts: OAuth, GraphQL cost, pagination, faults."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import httpx
import pytest
from graphql import parse, validate

from connectors.sandbox.app import create_sandbox_app
from connectors.sandbox.core import FaultConfig, FaultInjector, checksum
from connectors.sandbox.shopify.graphql_api import SCHEMA_PATH, admin_schema, document_cost
from connectors.sandbox.shopify.webhooks_api import sign

SHOP = "acme.myshopify.com"
CLIENT = {
    "client_id": "sandbox-shopify-client-id",
    "client_secret": "sandbox-shopify-client-secret",
}
PUBLISHED_SHA256 = "f3b522f264556925eada700e795e4a002a9cba83444ebcc6c0d724254a0c6593"
PRODUCTS = """query Products($after: String) {
  products(first: 50, after: $after, sortKey: UPDATED_AT) {
    nodes { id title updatedAt variants(first: 5) { nodes { id sku price } } }
    pageInfo { hasNextPage endCursor }
  }
}"""


def client(app) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://sandbox")


async def install(c: httpx.AsyncClient, shop: str = SHOP, **token_params: str) -> str:
    r = await c.post(
        f"/shopify/{shop}/admin/oauth/authorize",
        data={
            "client_id": CLIENT["client_id"],
            "scope": "read_products,read_orders",
            "redirect_uri": "http://hub/api/oauth/shopify/callback",
            "state": "st",
            "decision": "approve",
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


def test_vendored_schema_is_shopifys_published_file() -> None:
    assert hashlib.sha256(Path(SCHEMA_PATH).read_bytes()).hexdigest() == PUBLISHED_SHA256
    shared = Path(__file__).resolve().parents[2] / "shared/platform-specs/shopify"
    if (shared / SCHEMA_PATH.name).exists():
        assert (shared / SCHEMA_PATH.name).read_bytes() == Path(SCHEMA_PATH).read_bytes()


async def test_oauth_redirect_is_signed_and_codes_are_single_use() -> None:
    app = create_sandbox_app(seed=1)
    async with client(app) as c:
        page = await c.get(
            f"/shopify/{SHOP}/admin/oauth/authorize",
            params={
                "client_id": CLIENT["client_id"],
                "scope": "read_products",
                "redirect_uri": "http://hub/cb",
                "state": "xyz",
            },
        )
        assert page.status_code == 200 and "read_products" in page.text
        r = await c.post(
            f"/shopify/{SHOP}/admin/oauth/authorize",
            data={
                "client_id": CLIENT["client_id"],
                "scope": "read_products",
                "redirect_uri": "http://hub/cb",
                "state": "xyz",
                "decision": "approve",
            },
        )
        query = {k: v[0] for k, v in parse_qs(urlparse(r.headers["location"]).query).items()}
        assert set(query) == {"code", "hmac", "host", "shop", "state", "timestamp"}
        message = "&".join(f"{k}={v}" for k, v in sorted(query.items()) if k != "hmac")
        expected = hmac.new(
            CLIENT["client_secret"].encode(), message.encode(), hashlib.sha256
        ).hexdigest()
        assert query["hmac"] == expected and query["state"] == "xyz"

        token = await c.post(
            f"/shopify/{SHOP}/admin/oauth/access_token", json={**CLIENT, "code": query["code"]}
        )
        assert token.status_code == 200 and token.json()["scope"] == "read_products"
        again = await c.post(
            f"/shopify/{SHOP}/admin/oauth/access_token", json={**CLIENT, "code": query["code"]}
        )
        assert again.status_code == 400
        wrong_secret = await c.post(
            f"/shopify/{SHOP}/admin/oauth/access_token",
            json={**CLIENT, "client_secret": "x", "code": "y"},
        )
        assert wrong_secret.json()["error"] == "invalid_client"


async def test_codes_expire_on_the_platform_clock() -> None:
    app = create_sandbox_app(seed=1, time_scale=1000)  # 60 s of code life = 60 ms
    async with client(app) as c:
        r = await c.post(
            f"/shopify/{SHOP}/admin/oauth/authorize",
            data={
                "client_id": CLIENT["client_id"],
                "scope": "read_products",
                "redirect_uri": "http://hub/cb",
                "state": "s",
                "decision": "approve",
            },
        )
        code = parse_qs(urlparse(r.headers["location"]).query)["code"][0]
        import asyncio

        await asyncio.sleep(0.1)
        late = await c.post(
            f"/shopify/{SHOP}/admin/oauth/access_token", json={**CLIENT, "code": code}
        )
        assert late.status_code == 400


async def test_expiring_tokens_refresh_and_revocation_is_401() -> None:
    app = create_sandbox_app(seed=1)
    async with client(app) as c:
        r = await c.post(
            f"/shopify/{SHOP}/admin/oauth/authorize",
            data={
                "client_id": CLIENT["client_id"],
                "scope": "read_products",
                "redirect_uri": "http://hub/cb",
                "state": "s",
                "decision": "approve",
            },
        )
        code = parse_qs(urlparse(r.headers["location"]).query)["code"][0]
        body = (
            await c.post(
                f"/shopify/{SHOP}/admin/oauth/access_token",
                json={**CLIENT, "code": code, "expiring": "1"},
            )
        ).json()
        assert body["expires_in"] == 3600 and body["refresh_token"]
        refreshed = (
            await c.post(
                f"/shopify/{SHOP}/admin/oauth/access_token",
                json={
                    **CLIENT,
                    "grant_type": "refresh_token",
                    "refresh_token": body["refresh_token"],
                },
            )
        ).json()
        assert (await gql(c, refreshed["access_token"], "{ shop { name } }")).status_code == 200
        await c.post(f"/_sandbox/shopify/shops/{SHOP}/revoke")
        denied = await gql(c, refreshed["access_token"], "{ shop { name } }")
        assert denied.status_code == 401 and "Invalid API key" in denied.json()["errors"]


async def test_pages_cover_every_product_once_in_updated_order() -> None:
    app = create_sandbox_app(seed=7)
    async with client(app) as c:
        await c.post(
            "/_sandbox/shopify/shops", json={"shop": SHOP, "products": 130, "plan": "plus"}
        )
        token = await install(c)
        seen, after, stamps = [], None, []
        while True:
            body = (await gql(c, token, PRODUCTS, {"after": after})).json()
            page = body["data"]["products"]
            seen += [n["id"] for n in page["nodes"]]
            stamps += [n["updatedAt"] for n in page["nodes"]]
            if not page["pageInfo"]["hasNextPage"]:
                break
            after = page["pageInfo"]["endCursor"]
        truth = (await c.get(f"/_sandbox/shopify/shops/{SHOP}/truth")).json()["streams"]
        assert len(seen) == len(set(seen)) == truth["products"]["count"] == 130
        assert checksum(seen) == truth["products"]["checksum"]
        assert stamps == sorted(stamps)


async def test_updated_at_filter_and_mutations_move_records_to_the_end() -> None:
    app = create_sandbox_app(seed=7)
    async with client(app) as c:
        await c.post("/_sandbox/shopify/shops", json={"shop": SHOP, "products": 40})
        token = await install(c)
        result = (
            await c.post(
                f"/_sandbox/shopify/shops/{SHOP}/mutate", json={"updates": 3, "deletes": 2}
            )
        ).json()
        assert result["updated"] == 3 and result["deleted"] == 2
        query = """{ products(first: 50, sortKey: UPDATED_AT,
                    query: "updated_at:>'2025-06-01T00:00:00Z'") { nodes { id } } }"""
        recent = (await gql(c, token, query)).json()["data"]["products"]["nodes"]
        assert len(recent) == 3  # only the records changed just now
        truth = (await c.get(f"/_sandbox/shopify/shops/{SHOP}/truth")).json()["streams"]
        assert truth["products"]["count"] == 38


async def test_cost_is_calculated_charged_and_throttled() -> None:
    document = parse(PRODUCTS)
    assert document_cost(document, {}) == 2 + 50 * (1 + 2 + 5 * 1)
    app = create_sandbox_app(seed=1)
    async with client(app) as c:
        await c.post("/_sandbox/shopify/shops", json={"shop": SHOP, "products": 500})
        token = await install(c)
        first = (await gql(c, token, PRODUCTS)).json()
        cost = first["extensions"]["cost"]
        assert cost["requestedQueryCost"] == 402
        assert cost["actualQueryCost"] == 2 + 50 * (1 + 2 + 2)  # two variants each: refunded
        assert cost["throttleStatus"]["maximumAvailable"] == 2000.0
        assert cost["throttleStatus"]["restoreRate"] == 100.0
        statuses = []
        for _ in range(10):
            body = (await gql(c, token, PRODUCTS)).json()
            statuses.append(body.get("errors", [{}])[0].get("extensions", {}).get("code"))
        assert "THROTTLED" in statuses
        throttled = next(b for b in [body] if b.get("errors"))
        assert throttled["extensions"]["cost"]["actualQueryCost"] is None


async def test_too_expensive_and_invalid_documents_are_refused() -> None:
    app = create_sandbox_app(seed=1)
    async with client(app) as c:
        token = await install(c)
        big = "{ products(first: 250) { nodes { variants(first: 250) { nodes { id } } } } }"
        body = (await gql(c, token, big)).json()
        assert body["errors"][0]["extensions"]["code"] == "MAX_COST_EXCEEDED"
        body = (await gql(c, token, "{ products(first: 5) { nodes { nope } } }")).json()
        assert "Cannot query field 'nope'" in body["errors"][0]["message"]


async def test_faults_are_injected_per_shop() -> None:
    app = create_sandbox_app(seed=3)
    async with client(app) as c:
        token = await install(c)
        await c.put(f"/_sandbox/faults/shopify/{SHOP}", json={"error_rate": 1.0})
        assert (await gql(c, token, "{ shop { name } }")).status_code in (500, 502, 503)
        await c.put(f"/_sandbox/faults/shopify/{SHOP}", json={"malformed_rate": 1.0})
        with pytest.raises(json.JSONDecodeError):
            json.loads((await gql(c, token, "{ shop { name } }")).text)
        await c.put(f"/_sandbox/faults/shopify/{SHOP}", json={})
        assert (await gql(c, token, "{ shop { name } }")).status_code == 200
        bad = await c.put(f"/_sandbox/faults/shopify/{SHOP}", json={"error_rate": 2})
        assert bad.status_code == 400


def test_fault_picks_are_seeded() -> None:
    def picks(seed: int) -> list[str | None]:
        injector = FaultInjector(seed)
        injector.set("shopify", None, FaultConfig(error_rate=0.3, throttle_rate=0.2))
        return [injector.pick("shopify", SHOP) for _ in range(50)]

    assert picks(5) == picks(5)
    assert {"error", "throttle", None} <= set(picks(5))


async def test_same_seed_same_truth_and_100k_products_are_cheap() -> None:
    truths = []
    for _ in range(2):
        async with client(create_sandbox_app(seed=11)) as c:
            await c.post(
                "/_sandbox/shopify/shops", json={"shop": SHOP, "products": 100_000, "orders": 10}
            )
            truths.append((await c.get(f"/_sandbox/shopify/shops/{SHOP}/truth")).json()["streams"])
    assert truths[0] == truths[1]
    assert truths[0]["products"]["count"] == 100_000
    assert truths[0]["variants"]["count"] == 200_000


async def test_webhooks_carry_shopify_headers_and_signature() -> None:
    received: list[httpx.Request] = []

    def hub(request: httpx.Request) -> httpx.Response:
        received.append(request)
        return httpx.Response(200)

    app = create_sandbox_app(seed=1)
    sandbox = app.state.sandbox.extras["shopify"]
    async with client(app) as c:
        await c.post("/_sandbox/shopify/shops", json={"shop": SHOP, "products": 10})
        token = await install(c)
        created = (
            await gql(
                c,
                token,
                """mutation { webhookSubscriptionCreate(
            topic: PRODUCTS_UPDATE, webhookSubscription: {uri: "http://hub/api/webhooks/shopify"})
            { webhookSubscription { id topic } userErrors { message } } }""",
            )
        ).json()
        assert created["data"]["webhookSubscriptionCreate"]["userErrors"] == []
        await sandbox.mutate(SHOP, updates=2, transport=httpx.MockTransport(hub))
        import asyncio

        await asyncio.gather(*sandbox.background)
    assert len(received) == 2
    request = received[0]
    assert request.headers["X-Shopify-Topic"] == "products/update"
    assert request.headers["X-Shopify-Shop-Domain"] == SHOP
    assert request.headers["X-Shopify-API-Version"] == "2026-10"
    assert request.headers["X-Shopify-Webhook-Id"] and request.headers["X-Shopify-Event-Id"]
    digest = hmac.new(CLIENT["client_secret"].encode(), request.content, hashlib.sha256)
    assert (
        request.headers["X-Shopify-Hmac-Sha256"]
        == base64.b64encode(digest.digest()).decode()
        == sign(request.content, CLIENT["client_secret"])
    )
    assert json.loads(request.content)["admin_graphql_api_id"].startswith("gid://shopify/Product/")


def test_documents_used_here_validate_against_the_schema() -> None:
    assert validate(admin_schema(), parse(PRODUCTS)) == []
