"""The Shopify sandbox's Admin GraphQL API follows Shopify's contracts: the published schema,
pagination and search, cost and throttling, faults and seeds, webhooks, events, nested
connections, and a clear 400 for control requests it cannot carry out."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from pathlib import Path

import httpx
import pytest
from graphql import parse, validate

from connectors.sandbox.core import FaultConfig, FaultInjector, checksum
from connectors.sandbox.shopify.graphql_api import SCHEMA_PATH, admin_schema, document_cost
from connectors.sandbox.shopify.webhooks_api import sign
from tests.sandbox_shopify_helpers import (
    CLIENT,
    SHOP,
    client,
    gql,
    install,
    sandbox_app,
    subscribe,
)

PUBLISHED_SHA256 = "f3b522f264556925eada700e795e4a002a9cba83444ebcc6c0d724254a0c6593"
PRODUCTS = """query Products($after: String) {
  products(first: 50, after: $after, sortKey: UPDATED_AT) {
    nodes { id title updatedAt variants(first: 5) { nodes { id sku price } } }
    pageInfo { hasNextPage endCursor }
  }
}"""


def test_vendored_schema_is_shopifys_published_file() -> None:
    assert hashlib.sha256(Path(SCHEMA_PATH).read_bytes()).hexdigest() == PUBLISHED_SHA256
    shared = Path(__file__).resolve().parents[2] / "shared/platform-specs/shopify"
    if (shared / SCHEMA_PATH.name).exists():
        assert (shared / SCHEMA_PATH.name).read_bytes() == Path(SCHEMA_PATH).read_bytes()


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
