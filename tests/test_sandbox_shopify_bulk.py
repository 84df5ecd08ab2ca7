"""The Shopify sandbox's bulk operations follow Shopify's contract: they run on the platform
clock, refuse the queries Shopify refuses, serve a JSONL file (grouped or not) and send a finish
webhook, fail with partial data when a fault is injected, and can be canceled."""

from __future__ import annotations

import json

import httpx

from connectors.sandbox.core import checksum
from connectors.sandbox.shopify.webhooks_api import sign
from tests.sandbox_shopify_helpers import (
    BULK_POLL,
    BULK_PRODUCTS,
    CLIENT,
    SHOP,
    client,
    gql,
    install,
    sandbox_app,
    start_bulk,
    subscribe,
    wait_bulk,
)


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
