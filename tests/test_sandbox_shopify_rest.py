"""LEGACY REST endpoints the peers call first (Airbyte's connection check): `shop.json` and
`oauth/access_scopes.json`, with REST's own leaky bucket of requests and its header."""

from __future__ import annotations

from tests.test_sandbox_shopify import SHOP, client, install, sandbox_app


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
