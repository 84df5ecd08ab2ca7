"""LEGACY REST endpoints the peers call first (Airbyte's connection check): `shop.json` and
`oauth/access_scopes.json`, with REST's own leaky bucket of requests and its header."""

from __future__ import annotations

from tests.sandbox_shopify_helpers import SHOP, client, install, sandbox_app


async def test_airbyte_connection_check_calls_answer() -> None:
    app = sandbox_app(seed=1)
    async with client(app) as c:
        await c.post("/_sandbox/shopify/shops", json={"shop": SHOP, "products": 1})
        token = await install(c)
        headers = {"X-Shopify-Access-Token": token}
        shop = await c.get(f"/shopify/{SHOP}/admin/api/2026-10/shop.json", headers=headers)
        scopes = await c.get(f"/shopify/{SHOP}/admin/oauth/access_scopes.json", headers=headers)
        old = await c.get(f"/shopify/{SHOP}/admin/api/2025-07/shop.json", headers=headers)
        denied = await c.get(f"/shopify/{SHOP}/admin/api/2026-10/shop.json")
    assert shop.status_code == 200
    assert shop.json()["shop"]["myshopify_domain"] == SHOP
    assert shop.headers["x-shopify-api-version"] == "2026-10"
    assert shop.headers["x-shopify-shop-api-call-limit"] == "1/40"
    assert scopes.json() == {"access_scopes": [{"handle": "read_products"},
                                               {"handle": "read_orders"}]}  # fmt: skip
    assert scopes.headers["x-shopify-shop-api-call-limit"] == "2/40"
    assert old.status_code == 200 and old.headers["x-shopify-api-version"] == "2026-01"
    assert denied.status_code == 401


async def test_rest_bucket_holds_forty_requests_then_answers_429() -> None:
    app = sandbox_app(seed=1, time_scale=0.001)  # the bucket barely leaks during the test
    async with client(app) as c:
        await c.post("/_sandbox/shopify/shops", json={"shop": SHOP, "products": 1})
        token = await install(c)
        headers = {"X-Shopify-Access-Token": token}
        url = f"/shopify/{SHOP}/admin/api/2026-10/shop.json"
        answers = [await c.get(url, headers=headers) for _ in range(41)]
        graphql = await c.post(
            f"/shopify/{SHOP}/admin/api/2026-10/graphql.json",
            json={"query": "{ shop { id } }"},
            headers=headers,
        )
    assert [a.status_code for a in answers] == [200] * 40 + [429]
    assert answers[39].headers["x-shopify-shop-api-call-limit"] == "40/40"
    assert answers[40].headers["retry-after"] == "2.0"
    assert "Exceeded 2 calls per second" in answers[40].json()["errors"]
    assert graphql.status_code == 200  # GraphQL's cost bucket is a separate one


async def rest_all(c, token: str, path: str, params: dict) -> tuple[list[dict], int]:
    """Follow the Link header's rel="next" to the end; returns the records and the pages."""
    headers = {"X-Shopify-Access-Token": token}
    r = await c.get(f"/shopify/{SHOP}/admin/api/2025-07/{path}", params=params, headers=headers)
    key = path.removesuffix(".json")
    records, pages = [], 0
    while True:
        assert r.status_code == 200, r.text
        records += r.json()[key]
        pages += 1
        link = r.headers.get("link")
        if link is None:
            return records, pages
        assert link.endswith('; rel="next"')
        r = await c.get(link[1 : link.index(">")], headers=headers)


async def test_customers_and_orders_page_by_link_header_to_the_truth() -> None:
    app = sandbox_app(seed=1)
    async with client(app) as c:
        await c.post("/_sandbox/shopify/shops", json={"shop": SHOP, "products": 5, "orders": 30,
                                                     "customers": 23})  # fmt: skip
        token = await install(c)
        truth = (await c.get(f"/_sandbox/shopify/shops/{SHOP}/truth")).json()["streams"]
        customers, pages = await rest_all(c, token, "customers.json", {"limit": 10})
        orders, _ = await rest_all(c, token, "orders.json", {"status": "any", "limit": 7})
        open_orders, _ = await rest_all(c, token, "orders.json", {"limit": 250})
        since = customers[14]["updated_at"]
        recent, _ = await rest_all(c, token, "customers.json", {"updated_at_min": since})
        mixed = await c.get(
            f"/shopify/{SHOP}/admin/api/2026-10/customers.json",
            params={"page_info": "x", "updated_at_min": since},
            headers={"X-Shopify-Access-Token": token},
        )
    assert len(customers) == truth["customers"]["count"] == 23 and pages == 3
    assert len({c["id"] for c in customers}) == 23
    assert len(orders) == truth["orders"]["count"] == 30
    assert all(o["line_items"] and o["admin_graphql_api_id"].endswith(str(o["id"])) for o in orders)
    assert [o["id"] for o in open_orders] == [o["id"] for o in orders if o["cancelled_at"] is None]
    assert [c["id"] for c in recent] == [c["id"] for c in customers if c["updated_at"] >= since]
    assert mixed.status_code == 400


async def test_events_list_product_deletions_and_no_order_deletions() -> None:
    app = sandbox_app(seed=1)
    async with client(app) as c:
        await c.post("/_sandbox/shopify/shops", json={"shop": SHOP, "products": 10})
        token = await install(c)
        await c.post(f"/_sandbox/shopify/shops/{SHOP}/mutate", json={"deletes": 3})
        products, _ = await rest_all(
            c, token, "events.json", {"filter": "Product", "verb": "destroy"}
        )
        orders, _ = await rest_all(c, token, "events.json", {"filter": "Order", "verb": "destroy"})
    assert len(products) == 3 and {e["verb"] for e in products} == {"destroy"}
    assert orders == []  # the sandbox deletes no orders


async def test_shop_usage_counts_what_each_api_was_asked_and_paid() -> None:
    """A benchmark reads a shop's usage beside its limits: GraphQL requests, THROTTLED and the
    points really paid (requested minus refunded), REST requests and 429s; a shop created
    again starts from zero."""
    app = sandbox_app(seed=1, time_scale=0.001)  # neither bucket refills during the test
    async with client(app) as c:
        await c.post("/_sandbox/shopify/shops", json={"shop": SHOP, "products": 30})
        token = await install(c)
        headers = {"X-Shopify-Access-Token": token}
        query = "{ products(first: 50) { edges { node { id title } } } }"  # 30 exist
        answers = [
            (await c.post(f"/shopify/{SHOP}/admin/api/2026-10/graphql.json",
                          json={"query": query}, headers=headers)).json()
            for _ in range(3)
        ]  # fmt: skip
        for _ in range(41):
            await c.get(f"/shopify/{SHOP}/admin/api/2026-10/shop.json", headers=headers)
        usage = (await c.get(f"/_sandbox/shopify/shops/{SHOP}/usage")).json()
        await c.post("/_sandbox/shopify/shops", json={"shop": SHOP, "products": 1})
        fresh = (await c.get(f"/_sandbox/shopify/shops/{SHOP}/usage")).json()
        unknown = await c.get("/_sandbox/shopify/shops/nobody.myshopify.com/usage")
    paid = sum(a["extensions"]["cost"]["actualQueryCost"] for a in answers)
    requested = sum(a["extensions"]["cost"]["requestedQueryCost"] for a in answers)
    assert paid < requested  # the refund of the unused part is not counted as spent
    assert usage["graphql_requests"] == 3 and usage["throttled"] == 0
    assert usage["points"] == paid
    assert usage["rest_requests"] == 40 and usage["rest_throttled"] == 1
    assert (usage["restore_rate"], usage["maximum"]) == (100, 2000)
    assert (usage["rest_rate"], usage["rest_bucket"]) == (2, 40)
    assert fresh["graphql_requests"] == fresh["rest_requests"] == 0 and fresh["points"] == 0
    assert unknown.status_code == 404


async def test_a_query_over_the_maximum_cost_refunds_nothing_it_was_not_charged() -> None:
    """Refused before it is charged, a query requesting more than 1,000 points must not put
    its requested cost back into a half-drained bucket."""
    app = sandbox_app(seed=1, time_scale=0.001)  # the bucket barely refills during the test
    async with client(app) as c:
        await c.post("/_sandbox/shopify/shops", json={"shop": SHOP, "products": 300})
        token = await install(c)
        url = f"/shopify/{SHOP}/admin/api/2026-10/graphql.json"
        headers = {"X-Shopify-Access-Token": token}
        price = "priceRangeV2 { minVariantPrice { amount } }"  # 2 points a product
        drain = f"{{ products(first: 250) {{ nodes {{ id {price} }} }} }}"  # 752 requested
        before = (await c.post(url, json={"query": drain}, headers=headers)).json()
        too_big = f"{{ products(first: 250) {{ nodes {{ id seo {{ title }} {price} }} }} }}"
        refused = (await c.post(url, json={"query": too_big}, headers=headers)).json()
        usage = (await c.get(f"/_sandbox/shopify/shops/{SHOP}/usage")).json()
    assert refused["errors"][0]["extensions"]["code"] == "MAX_COST_EXCEEDED"
    left = before["extensions"]["cost"]["throttleStatus"]["currentlyAvailable"]
    assert left < 2000 - 500  # the first query really drained the bucket
    assert refused["extensions"]["cost"]["throttleStatus"]["currentlyAvailable"] == left
    assert usage["points"] == before["extensions"]["cost"]["actualQueryCost"]
