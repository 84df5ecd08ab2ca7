"""The Shopify sandbox follows Shopify's contracts: OAuth, GraphQL cost, pagination, faults."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse

import httpx
import pytest
from graphql import parse, validate

from connectors.sandbox.access import sandbox_apps
from connectors.sandbox.app import create_sandbox_app
from connectors.sandbox.consent import form_fields
from connectors.sandbox.core import FaultConfig, FaultInjector, checksum
from connectors.sandbox.shopify.graphql_api import SCHEMA_PATH, admin_schema, document_cost
from connectors.sandbox.shopify.webhooks_api import sign
from tests.sandbox_server import shopify_consent

SHOP = "acme.myshopify.com"
TOKEN = "test-control-token"
CLIENT = {
    "client_id": "sandbox-shopify-client-id",
    "client_secret": sandbox_apps(TOKEN).shopify_client_secret,
}
REDIRECTS = ["http://hub/api/oauth/shopify/callback", "http://hub/cb"]
PUBLISHED_SHA256 = "f3b522f264556925eada700e795e4a002a9cba83444ebcc6c0d724254a0c6593"
PRODUCTS = """query Products($after: String) {
  products(first: 50, after: $after, sortKey: UPDATED_AT) {
    nodes { id title updatedAt variants(first: 5) { nodes { id sku price } } }
    pageInfo { hasNextPage endCursor }
  }
}"""


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


def test_vendored_schema_is_shopifys_published_file() -> None:
    assert hashlib.sha256(Path(SCHEMA_PATH).read_bytes()).hexdigest() == PUBLISHED_SHA256
    shared = Path(__file__).resolve().parents[2] / "shared/platform-specs/shopify"
    if (shared / SCHEMA_PATH.name).exists():
        assert (shared / SCHEMA_PATH.name).read_bytes() == Path(SCHEMA_PATH).read_bytes()


@pytest.mark.parametrize("shop", ["evil.example.com", "shop.myshopify.com.evil.example", "x.com"])
async def test_consent_happens_only_on_a_myshopify_store(shop: str) -> None:
    app = sandbox_app(seed=1)
    async with client(app) as c:
        page = await c.get(
            f"/shopify/{shop}/admin/oauth/authorize",
            params={"client_id": CLIENT["client_id"], "scope": "read_products",
                    "redirect_uri": "http://hub/cb", "state": "xyz"},
        )  # fmt: skip
        assert page.status_code == 404 and "no store at this address" in page.text
        assert "Install app" not in page.text and "Create store" not in page.text


async def test_oauth_redirect_is_signed_and_codes_are_single_use() -> None:
    app = sandbox_app(seed=1)
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
        r = await consent(
            c,
            SHOP,
            {
                "client_id": CLIENT["client_id"],
                "scope": "read_products",
                "redirect_uri": "http://hub/cb",
                "state": "xyz",
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


async def test_consent_on_a_shop_that_does_not_exist_offers_to_create_it() -> None:
    app = sandbox_app(seed=1)
    new_shop = "brand-new.myshopify.com"
    url = f"/shopify/{new_shop}/admin/oauth/authorize"
    params = {"client_id": CLIENT["client_id"], "scope": "read_products",
              "redirect_uri": "http://hub/cb", "state": "st"}  # fmt: skip
    async with client(app) as c:
        page = await c.get(url, params=params)
        assert page.status_code == 200 and f"no store at <strong>{new_shop}" in page.text
        assert "Create store and install app" in page.text and ">Install app<" not in page.text
        # Looking is not creating.
        assert (await c.get(f"/_sandbox/shopify/shops/{new_shop}/truth")).status_code == 404
        fields = form_fields(page.text)
        # Approving a store that does not exist is refused, token or not.
        missing = await c.post(url, data={**fields, "decision": "approve"})
        assert missing.status_code == 404 and "no store at this address" in missing.text
        # A form from elsewhere (no token, or another request's) creates nothing.
        for forged in ({**params, "decision": "create"},
                       {**fields, "state": "other", "decision": "create"}):  # fmt: skip
            refused = await c.post(url, data=forged)
            assert refused.status_code == 403 and "location" not in refused.headers
        assert (await c.get(f"/_sandbox/shopify/shops/{new_shop}/truth")).status_code == 404
        created = await c.post(url, data={**fields, "decision": "create"})
        assert created.status_code == 302
        assert created.headers["location"].startswith("http://hub/cb?")
        truth = (await c.get(f"/_sandbox/shopify/shops/{new_shop}/truth")).json()
        assert truth["streams"]["products"]["count"] == 50  # a small store
        # From now on the store exists: its owner is asked to install, nothing else.
        again = await c.get(url, params=params)
        assert ">Install app<" in again.text and "Create store" not in again.text


async def test_a_cancel_sends_nothing_to_the_app_and_leads_back_to_where_it_came_from() -> None:
    """As on Shopify, a cancel sends the app no redirect and no code; the sandbox, which has no
    admin to land in, leads back to the app's page the merchant came from (only ever a page
    of the app's own site)."""
    app = sandbox_app(seed=1)
    url = f"/shopify/{SHOP}/admin/oauth/authorize"
    params = {"client_id": CLIENT["client_id"], "scope": "read_products",
              "redirect_uri": "http://hub/cb", "state": "st"}  # fmt: skip
    async with client(app) as c:
        for referer, link in (
            ("http://hub/connect/link-token", "http://hub/connect/link-token"),
            ("http://evil.example/phish", None),
            (None, None),
        ):
            headers = {"referer": referer} if referer else {}
            page = await c.get(url, params=params, headers=headers)
            cancelled = await c.post(url, data={**form_fields(page.text), "decision": "deny"})
            assert cancelled.status_code == 200 and "location" not in cancelled.headers
            assert "Installation cancelled" in cancelled.text and "code=" not in cancelled.text
            if link:
                assert f"<a href='{link}'>Back to the app</a>" in cancelled.text
            else:
                assert "Back to the app" not in cancelled.text
        # A forged way back in the form is held to the same rule.
        page = await c.get(url, params=params)
        forged = {**form_fields(page.text), "return_to": "javascript:alert(1)", "decision": "deny"}
        assert "Back to the app" not in (await c.post(url, data=forged)).text


async def test_codes_expire_on_the_platform_clock() -> None:
    app = sandbox_app(seed=1, time_scale=1000)  # 60 s of code life = 60 ms
    async with client(app) as c:
        r = await consent(
            c,
            SHOP,
            {
                "client_id": CLIENT["client_id"],
                "scope": "read_products",
                "redirect_uri": "http://hub/cb",
                "state": "s",
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
    app = sandbox_app(seed=1)
    async with client(app) as c:
        r = await consent(
            c,
            SHOP,
            {
                "client_id": CLIENT["client_id"],
                "scope": "read_products",
                "redirect_uri": "http://hub/cb",
                "state": "s",
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


async def test_reinstall_after_uninstall_gives_access_again_but_not_to_old_tokens() -> None:
    app = sandbox_app(seed=1)
    async with client(app) as c:
        old = await install(c, expiring="1")
        assert (await gql(c, old, "{ shop { name } }")).status_code == 200
        assert (await c.post(f"/_sandbox/shopify/shops/{SHOP}/revoke")).status_code == 200
        assert (await gql(c, old, "{ shop { name } }")).status_code == 401

        new = await install(c)  # the merchant installs the app again on the consent page

        assert (await gql(c, new, "{ shop { name } }")).status_code == 200
        # Uninstalling destroyed the earlier token for good; only the new install counts.
        assert (await gql(c, old, "{ shop { name } }")).status_code == 401


async def test_pages_cover_every_product_once_in_updated_order() -> None:
    app = sandbox_app(seed=7)
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
    app = sandbox_app(seed=7)
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
    app = sandbox_app(seed=1)
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
    app = sandbox_app(seed=1)
    async with client(app) as c:
        token = await install(c)
        big = "{ products(first: 250) { nodes { variants(first: 250) { nodes { id } } } } }"
        body = (await gql(c, token, big)).json()
        assert body["errors"][0]["extensions"]["code"] == "MAX_COST_EXCEEDED"
        body = (await gql(c, token, "{ products(first: 5) { nodes { nope } } }")).json()
        assert "Cannot query field 'nope'" in body["errors"][0]["message"]


async def test_faults_are_injected_per_shop() -> None:
    app = sandbox_app(seed=3)
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
        async with client(sandbox_app(seed=11)) as c:
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

    app = sandbox_app(seed=1)
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


async def test_bulk_query_runs_on_the_clock_and_serves_a_grouped_jsonl() -> None:
    import asyncio

    received: list[httpx.Request] = []

    def hub(request: httpx.Request) -> httpx.Response:
        received.append(request)
        return httpx.Response(200)

    app = sandbox_app(seed=4, time_scale=100)
    sandbox = app.state.sandbox.extras["shopify"]
    sandbox.webhook_transport = httpx.MockTransport(hub)
    async with client(app) as c:
        await c.post("/_sandbox/shopify/shops", json={"shop": SHOP, "products": 230})
        token = await install(c)
        await subscribe(c, token, "BULK_OPERATIONS_FINISH")
        started = await start_bulk(c, token)
        assert started["userErrors"] == []
        assert started["bulkOperation"]["status"] == "CREATED"
        assert started["bulkOperation"]["url"] is None
        operation, seen = await wait_bulk(c, token, started["bulkOperation"]["id"])
        assert seen[0] == "CREATED" and seen[-1] == "COMPLETED"
        assert set(seen) <= {"CREATED", "RUNNING", "COMPLETED"}
        assert operation["objectCount"] == str(230 * 3) and operation["rootObjectCount"] == "230"
        assert operation["type"] == "QUERY" and operation["query"] == BULK_PRODUCTS
        assert operation["completedAt"] >= operation["createdAt"]
        # The url is signed, like Shopify's storage urls: no access token needed.
        download = await c.get(operation["url"])
        assert download.status_code == 200
        assert int(operation["fileSize"]) == len(download.content)
        lines = [json.loads(line) for line in download.text.splitlines()]
        truth = (await c.get(f"/_sandbox/shopify/shops/{SHOP}/truth")).json()["streams"]
        await asyncio.gather(*sandbox.background)
    products = [line for line in lines if "__parentId" not in line]
    variants = [line for line in lines if "__parentId" in line]
    assert checksum(p["id"] for p in products) == truth["products"]["checksum"]
    assert checksum(v["id"] for v in variants) == truth["variants"]["checksum"]
    assert "variants" not in products[0] and set(products[0]) == {"id", "title", "updatedAt"}
    assert list(variants[0]) == ["id", "sku", "__parentId"]  # __parentId comes last
    parent = None
    for line in lines:  # grouped: children right after their parent
        if "__parentId" in line:
            assert line["__parentId"] == parent
        else:
            parent = line["id"]
    [finish] = received
    assert finish.headers["X-Shopify-Topic"] == "bulk_operations/finish"
    assert finish.headers["X-Shopify-Hmac-Sha256"] == sign(finish.content, CLIENT["client_secret"])
    payload = json.loads(finish.content)
    assert payload == {
        "admin_graphql_api_id": operation["id"],
        "completed_at": payload["completed_at"],
        "created_at": operation["createdAt"],
        "error_code": None,
        "status": "completed",
        "type": "query",
    }


async def test_ungrouped_children_follow_their_parents_and_the_export_is_a_snapshot() -> None:
    app = sandbox_app(seed=4, time_scale=100)
    async with client(app) as c:
        await c.post("/_sandbox/shopify/shops", json={"shop": SHOP, "orders": 150, "products": 20})
        token = await install(c)
        query = """{ orders { edges { node { id name
          lineItems { edges { node { id quantity } } } } } } }"""
        started = await start_bulk(c, token, query, group=False)
        before = (await c.get(f"/_sandbox/shopify/shops/{SHOP}/truth")).json()["streams"]
        await c.post(f"/_sandbox/shopify/shops/{SHOP}/mutate", json={"new_orders": 3})
        operation, _ = await wait_bulk(c, token, started["bulkOperation"]["id"])
        lines = [json.loads(line) for line in (await c.get(operation["url"])).text.splitlines()]
    orders = [line["id"] for line in lines if "__parentId" not in line]
    line_items = [line for line in lines if "__parentId" in line]
    # Orders created after the operation started are not in it.
    assert checksum(orders) == before["orders"]["checksum"]
    assert checksum(li["id"] for li in line_items) == before["order_lines"]["checksum"]
    position = {line["id"]: n for n, line in enumerate(lines)}
    assert all(position[li["__parentId"]] < position[li["id"]] for li in line_items)
    # Without grouping a child need not follow its parent directly.
    assert any(
        "__parentId" in lines[n] and lines[n]["__parentId"] != lines[n - 1].get("id")
        and "__parentId" not in lines[n - 1]
        for n in range(1, len(lines))
    )  # fmt: skip


async def test_bulk_queries_are_validated_like_shopify_does() -> None:
    app = sandbox_app(seed=1, time_scale=1)
    async with client(app) as c:
        await c.post("/_sandbox/shopify/shops", json={"shop": SHOP, "products": 5})
        token = await install(c)
        refused = {
            "{ products { edges { node { id } }": "Syntax Error",
            "{ products { edges { node { nope } } } }": "Cannot query field 'nope'",
            "{ shop { name } }": "must be a connection",
            '{ nodes(ids: ["gid://shopify/Product/1"]) { id } }': "must be a connection",
            "query Q($q: String) { products(query: $q) { edges { node { id } } } }": "variables",
            "{ collections { edges { node { id } } } }": "exports only",
            "{ products { edges { node { id } } } orders { nodes { id } } }": "exactly one",
            """{ products { edges { node { id variants { edges { node { id
               inventoryItem { inventoryLevels { edges { node { id } } } } } } } } } } }""": "nest",
        }
        for query, message in refused.items():
            result = await start_bulk(c, token, query)
            assert result["bulkOperation"] is None, query
            [error] = result["userErrors"]
            assert error["code"] == "INVALID" and error["field"] == ["query"], query
            assert message in error["message"], (query, error["message"])
        # `first` on nested connections is ignored, fragments are inlined.
        accepted = await start_bulk(
            c,
            token,
            """query Export { products(query: "updated_at:>'2020-01-01'") { edges { node {
                ...P variants(first: 1) { nodes { id } } } } } }
               fragment P on Product { id handle }""",
        )
        assert accepted["userErrors"] == []
        # Five bulk queries may run at once per shop (API 2026-01 and later); a sixth waits.
        for _ in range(4):
            assert (await start_bulk(c, token))["userErrors"] == []
        sixth = await start_bulk(c, token)
        assert sixth["bulkOperation"] is None
        assert sixth["userErrors"][0]["code"] == "LIMIT_REACHED"
        listed = (
            await gql(
                c, token, '{ bulkOperations(first: 10, query: "status:created") { nodes { id } } }'
            )
        ).json()["data"]["bulkOperations"]["nodes"]
        assert len(listed) == 5


async def test_bulk_export_reads_every_nested_node_and_exports_inventory() -> None:
    app = sandbox_app(seed=2, time_scale=100)
    async with client(app) as c:
        await c.post(
            "/_sandbox/shopify/shops",
            json={"shop": SHOP, "products": 3, "variants_per_product": 260, "locations": 1},
        )
        token = await install(c)
        started = await start_bulk(c, token)  # 260 variants each: more than a page of 250
        operation, _ = await wait_bulk(c, token, started["bulkOperation"]["id"])
        assert operation["objectCount"] == str(3 + 3 * 260)
        query = """{ inventoryItems { edges { node { id sku
          inventoryLevels { edges { node { id quantities(names: ["available"]) { quantity }
          location { name } } } } } } } }"""
        started = await start_bulk(c, token, query)
        operation, _ = await wait_bulk(c, token, started["bulkOperation"]["id"])
        lines = [json.loads(line) for line in (await c.get(operation["url"])).text.splitlines()]
        truth = (await c.get(f"/_sandbox/shopify/shops/{SHOP}/truth")).json()["streams"]
    levels = [line["id"] for line in lines if "__parentId" in line]
    assert checksum(levels) == truth["inventory_levels"]["checksum"]


async def test_injected_bulk_failure_gives_partial_data_and_a_failed_webhook() -> None:
    import asyncio

    received: list[dict] = []

    def hub(request: httpx.Request) -> httpx.Response:
        received.append(json.loads(request.content))
        return httpx.Response(200)

    app = sandbox_app(seed=4, time_scale=100)
    sandbox = app.state.sandbox.extras["shopify"]
    sandbox.webhook_transport = httpx.MockTransport(hub)
    async with client(app) as c:
        await c.post("/_sandbox/shopify/shops", json={"shop": SHOP, "products": 250})
        token = await install(c)
        await subscribe(c, token, "BULK_OPERATIONS_FINISH")
        bad = await c.put(f"/_sandbox/shopify/shops/{SHOP}/bulk_faults", json={"error_code": "X"})
        assert bad.status_code == 400
        bad = await c.put(f"/_sandbox/shopify/shops/{SHOP}/bulk_faults", json={"bogus": 1})
        assert bad.status_code == 400
        assert (
            await c.put("/_sandbox/shopify/shops/nope.myshopify.com/bulk_faults", json={})
        ).status_code == 404
        set_fault = await c.put(
            f"/_sandbox/shopify/shops/{SHOP}/bulk_faults",
            json={"error_code": "INTERNAL_SERVER_ERROR", "count": 1},
        )
        assert set_fault.json() == {
            "shop": SHOP, "error_code": "INTERNAL_SERVER_ERROR", "count": 1
        }  # fmt: skip
        started = await start_bulk(c, token)
        failed, seen = await wait_bulk(c, token, started["bulkOperation"]["id"])
        assert seen[-1] == "FAILED" and failed["errorCode"] == "INTERNAL_SERVER_ERROR"
        assert failed["url"] is None and failed["completedAt"] is None
        partial = (await c.get(failed["partialDataUrl"])).text.splitlines()
        assert 0 < len(partial) == int(failed["objectCount"]) < 250 * 3
        # The fault was for one operation: the next completes.
        started = await start_bulk(c, token)
        completed, _ = await wait_bulk(c, token, started["bulkOperation"]["id"])
        assert completed["status"] == "COMPLETED"
        await asyncio.gather(*sandbox.background)
    assert [(r["status"], r["error_code"]) for r in received] == [
        ("failed", "internal_server_error"),
        ("completed", None),
    ]


async def test_bulk_operation_can_be_canceled() -> None:
    app = sandbox_app(seed=4, time_scale=10)
    async with client(app) as c:
        await c.post("/_sandbox/shopify/shops", json={"shop": SHOP, "products": 30})
        token = await install(c)
        started = await start_bulk(c, token)
        cancel = """mutation C($id: ID!) { bulkOperationCancel(id: $id) {
            bulkOperation { status } userErrors { message } } }"""
        body = (await gql(c, token, cancel, {"id": started["bulkOperation"]["id"]})).json()
        assert body["data"]["bulkOperationCancel"]["bulkOperation"]["status"] == "CANCELING"
        operation, _ = await wait_bulk(c, token, started["bulkOperation"]["id"])
        assert operation["status"] == "CANCELED" and operation["url"] is None
        again = (await gql(c, token, cancel, {"id": started["bulkOperation"]["id"]})).json()
        assert again["data"]["bulkOperationCancel"]["userErrors"]
        other = await gql(c, token, BULK_POLL, {"id": "gid://shopify/BulkOperation/1"})
        assert other.json()["data"]["bulkOperation"] is None
        # An export that finds nothing completes without a file, as on Shopify.
        nothing = await start_bulk(
            c,
            token,
            """{ products(query: "updated_at:>'2099-01-01T00:00:00Z'") {
            edges { node { id } } } }""",
        )
        empty, _ = await wait_bulk(c, token, nothing["bulkOperation"]["id"])
        assert empty["status"] == "COMPLETED" and empty["objectCount"] == "0"
        assert empty["url"] is None


async def test_events_record_product_deletions() -> None:
    app = sandbox_app(seed=9)
    async with client(app) as c:
        await c.post("/_sandbox/shopify/shops", json={"shop": SHOP, "products": 40})
        token = await install(c)
        await c.post(f"/_sandbox/shopify/shops/{SHOP}/mutate", json={"deletes": 3, "updates": 2})
        query = """query E($query: String, $after: String) {
          events(first: 2, after: $after, query: $query, sortKey: CREATED_AT) {
            nodes { id action createdAt message ... on BasicEvent { subjectId subjectType } }
            pageInfo { hasNextPage endCursor }
          }
        }"""
        events, after = [], None
        while True:
            body = await gql(
                c, token, query, {"query": "subject_type:PRODUCT action:destroy", "after": after}
            )
            page = body.json()["data"]["events"]
            events += page["nodes"]
            if not page["pageInfo"]["hasNextPage"]:
                break
            after = page["pageInfo"]["endCursor"]
        truth = (await c.get(f"/_sandbox/shopify/shops/{SHOP}/truth")).json()["streams"]
        later = (
            await gql(c, token, query, {"query": f"created_at:>'{events[-1]['createdAt']}'"})
        ).json()["data"]["events"]["nodes"]
        count = (await gql(c, token, '{ eventsCount(query: "action:destroy") { count } }')).json()[
            "data"
        ]["eventsCount"]["count"]
    assert len(events) == 3 == count and later == []
    assert {e["action"] for e in events} == {"destroy"}
    assert {e["subjectType"] for e in events} == {"PRODUCT"}
    deleted = {e["subjectId"] for e in events}
    all_ids = [f"gid://shopify/Product/{1_000_000 + i}" for i in range(40)]
    assert checksum(set(all_ids) - deleted) == truth["products"]["checksum"]


def test_rest_topics_of_multi_word_resources() -> None:
    from connectors.sandbox.shopify.webhooks_api import rest_topic

    assert rest_topic("PRODUCTS_UPDATE") == "products/update"
    assert rest_topic("BULK_OPERATIONS_FINISH") == "bulk_operations/finish"
    assert rest_topic("INVENTORY_LEVELS_UPDATE") == "inventory_levels/update"
    assert rest_topic("APP_UNINSTALLED") == "app/uninstalled"
    assert rest_topic("CUSTOMERS_DATA_REQUEST") == "customers/data_request"


async def test_orders_and_customers_can_be_deleted_with_their_webhooks() -> None:
    received: list[httpx.Request] = []

    def hub(request: httpx.Request) -> httpx.Response:
        received.append(request)
        return httpx.Response(200)

    app = sandbox_app(seed=4)
    sandbox = app.state.sandbox.extras["shopify"]
    async with client(app) as c:
        await c.post("/_sandbox/shopify/shops", json={"shop": SHOP, "orders": 30, "customers": 80})
        token = await install(c)
        await subscribe(c, token, "ORDERS_DELETE")
        await subscribe(c, token, "CUSTOMERS_DELETE")
        before = (await c.get(f"/_sandbox/shopify/shops/{SHOP}/truth")).json()["streams"]
        changed = await sandbox.mutate(
            SHOP, delete_orders=4, delete_customers=3, transport=httpx.MockTransport(hub)
        )
        import asyncio

        await asyncio.gather(*sandbox.background)
        after = (await c.get(f"/_sandbox/shopify/shops/{SHOP}/truth")).json()["streams"]
        ids = """query Ids($query: String) {
          orders(first: 250, query: $query, sortKey: ID) { nodes { id } }
          customers(first: 250, sortKey: ID) { nodes { id } }
        }"""
        listed = (await gql(c, token, ids)).json()["data"]
        above = (await gql(c, token, ids, {"query": "id:>5000020"})).json()["data"]
        counted = (await gql(c, token, "{ ordersCount { count } }")).json()["data"]
    assert changed["deleted_orders"] == 4 and changed["deleted_customers"] == 3
    assert changed["webhooks"] == 7 == len(received)
    topics = sorted(r.headers["X-Shopify-Topic"] for r in received)
    assert topics == ["customers/delete"] * 3 + ["orders/delete"] * 4
    gone = {json.loads(r.content)["id"] for r in received}
    assert (
        after["orders"]["count"] == before["orders"]["count"] - 4 == counted["ordersCount"]["count"]
    )
    assert after["customers"]["count"] == before["customers"]["count"] - 3
    order_ids = [n["id"] for n in listed["orders"]["nodes"]]
    assert order_ids == sorted(order_ids) and len(order_ids) == 26  # ascending ids, live only
    assert checksum(order_ids) == after["orders"]["checksum"]
    customer_ids = [n["id"] for n in listed["customers"]["nodes"]]
    assert checksum(customer_ids) == after["customers"]["checksum"]
    assert not {int(i.rsplit("/", 1)[1]) for i in order_ids + customer_ids} & gone
    assert all(int(n["id"].rsplit("/", 1)[1]) > 5_000_020 for n in above["orders"]["nodes"])
    # Shopify refuses to delete a customer who has orders: none of theirs was deleted.
    shop = sandbox.shops[SHOP]
    deleted_customers = {i for kind, i in shop.deleted if kind == "customer"}
    assert len(deleted_customers) == 3
    assert not deleted_customers & {shop.customer_of_order(i) for i in range(30)}


async def test_long_orders_and_products_page_their_nested_connections() -> None:
    app = sandbox_app(seed=4)
    async with client(app) as c:
        await c.post(
            "/_sandbox/shopify/shops",
            json={"shop": SHOP, "products": 2, "variants_per_product": 30, "orders": 3,
                  "lines_per_order": 25, "locations": 12},
        )  # fmt: skip
        token = await install(c)
        lines_query = """query L($id: ID!, $after: String) {
          order(id: $id) { lineItems(first: 10, after: $after) {
            nodes { id } pageInfo { hasNextPage endCursor } } }
        }"""
        levels_query = """query V($id: ID!, $after: String) {
          inventoryItem(id: $id) { inventoryLevels(first: 5, after: $after) {
            nodes { id location { id } } pageInfo { hasNextPage endCursor } } }
        }"""
        pages: dict[str, list[str]] = {"lines": [], "levels": []}
        for name, query, node_id, field in (
            ("lines", lines_query, "gid://shopify/Order/5000001", "order"),
            ("levels", levels_query, "gid://shopify/InventoryItem/3000031", "inventoryItem"),
        ):
            after = None
            while True:
                body = (await gql(c, token, query, {"id": node_id, "after": after})).json()
                connection = next(iter(body["data"][field].values()))
                pages[name] += [n["id"] for n in connection["nodes"]]
                if not connection["pageInfo"]["hasNextPage"]:
                    break
                after = connection["pageInfo"]["endCursor"]
        truth = (await c.get(f"/_sandbox/shopify/shops/{SHOP}/truth")).json()["streams"]
        missing = (
            await gql(c, token, levels_query, {"id": "gid://shopify/InventoryItem/3999999"})
        ).json()["data"]
    assert len(pages["lines"]) == len(set(pages["lines"])) == 25
    assert len(pages["levels"]) == len(set(pages["levels"])) == 12
    assert truth["order_lines"]["count"] == 75 and truth["variants"]["count"] == 60
    assert missing == {"inventoryItem": None}
    for query in (lines_query, levels_query):
        assert validate(admin_schema(), parse(query)) == []


async def test_control_requests_it_cannot_carry_out_get_a_clear_400() -> None:
    """Bad JSON, unknown fields and values of the wrong type are refused, saying what is
    wrong, before anything changes; an unknown shop is a 404."""
    app = sandbox_app(seed=4)
    async with client(app) as c:
        await c.post("/_sandbox/shopify/shops", json={"shop": SHOP, "products": 5})
        mutate = f"/_sandbox/shopify/shops/{SHOP}/mutate"
        cases = [
            ({"content": b"{not json"}, "body must be JSON"),
            ({"json": [1, 2]}, "body must be a JSON object"),
            ({"json": {"updates": "many"}}, "updates must be an integer >= 0"),
            ({"json": {"deletes": -1}}, "deletes must be an integer >= 0"),
            ({"json": {"updtes": 1}}, "unknown fields: updtes"),
        ]
        for request, message in cases:
            answer = await c.post(mutate, **request)
            assert (answer.status_code, answer.json()) == (400, {"error": message})
        truth = (await c.get(f"/_sandbox/shopify/shops/{SHOP}/truth")).json()["streams"]
        assert truth["products"]["count"] == 5  # nothing changed
        unknown = await c.post("/_sandbox/shopify/shops/nope.myshopify.com/mutate", json={})
        assert (unknown.status_code, unknown.json()) == (404, {"error": "unknown shop"})
        applied = await c.post(mutate, json={"deletes": 2})
        assert applied.status_code == 200 and applied.json()["deleted"] == 2


async def test_a_new_webhook_subscription_never_takes_a_kept_ones_id() -> None:
    app = sandbox_app(seed=1)
    async with client(app) as c:
        token = await install(c)

        async def subscribe(topic: str) -> str:
            created = await gql(
                c, token,
                f"""mutation {{ webhookSubscriptionCreate(topic: {topic},
                webhookSubscription: {{uri: "http://hub/api/webhooks/shopify"}})
                {{ webhookSubscription {{ id }} userErrors {{ message }} }} }}""",
            )  # fmt: skip
            return str(
                created.json()["data"]["webhookSubscriptionCreate"]["webhookSubscription"]["id"]
            )

        first, second = await subscribe("PRODUCTS_UPDATE"), await subscribe("PRODUCTS_DELETE")
        deleted = await gql(
            c,
            token,
            f'mutation {{ webhookSubscriptionDelete(id: "{first}") {{ userErrors {{ field }} }} }}',
        )
        assert deleted.json()["data"]["webhookSubscriptionDelete"]["userErrors"] == []
        third = await subscribe("ORDERS_CREATE")
        listed = await gql(c, token, "{ webhookSubscriptions(first: 10) { nodes { id topic } } }")
    nodes = listed.json()["data"]["webhookSubscriptions"]["nodes"]
    assert third not in (first, second)
    assert {(n["id"], n["topic"]) for n in nodes} == {
        (second, "PRODUCTS_DELETE"), (third, "ORDERS_CREATE")
    }  # fmt: skip
