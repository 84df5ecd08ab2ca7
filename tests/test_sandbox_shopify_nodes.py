"""What the peers (Airbyte's source-shopify, tap-shopify) read from the sandbox: `node` and
`nodes` for every Node type it holds, `currentAppInstallation`, and the top-level
`productVariants`, `locations` and `inventoryItems` connections, paged and bulk-exported."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import httpx

from tests.sandbox_shopify_helpers import (
    SHOP,
    client,
    gql,
    install,
    sandbox_app,
    start_bulk,
    subscribe,
    wait_bulk,
)

NODE = """query N($id: ID!) { node(id: $id) { __typename id
  ... on BulkOperation { status objectCount rootObjectCount url } } }"""
NODES = """query N($ids: [ID!]!) { nodes(ids: $ids) { __typename id } }"""
SAMPLE = """{
  products(first: 1) { nodes { id variants(first: 1) { nodes { id inventoryItem { id
    inventoryLevels(first: 1) { nodes { id location { id } } } } } } } }
  orders(first: 1) { nodes { id lineItems(first: 1) { nodes { id } } } }
  customers(first: 1) { nodes { id } }
  webhookSubscriptions(first: 1) { nodes { id } }
  shop { id }
  currentAppInstallation { id }
}"""


async def data(c: httpx.AsyncClient, token: str, query: str, variables: Any = None) -> Any:
    body = (await gql(c, token, query, variables)).json()
    assert "errors" not in body, body
    return body["data"]


async def test_node_polls_a_bulk_operation_the_way_airbyte_does() -> None:
    app = sandbox_app(seed=5, time_scale=100)
    async with client(app) as c:
        await c.post("/_sandbox/shopify/shops", json={"shop": SHOP, "products": 30})
        token = await install(c)
        started = await start_bulk(c, token)
        gid = started["bulkOperation"]["id"]
        first = (await data(c, token, NODE, {"id": gid}))["node"]
        assert first["__typename"] == "BulkOperation" and first["id"] == gid
        assert first["status"] in ("CREATED", "RUNNING", "COMPLETED")
        finished, _ = await wait_bulk(c, token, gid)
        polled = (await data(c, token, NODE, {"id": gid}))["node"]
        assert polled["status"] == "COMPLETED" == finished["status"]
        assert polled["url"] == finished["url"] and polled["rootObjectCount"] == "30"


async def test_nodes_resolves_every_node_type_the_sandbox_holds() -> None:
    app = sandbox_app(seed=5)
    async with client(app) as c:
        await c.post("/_sandbox/shopify/shops", json={"shop": SHOP, "products": 5, "orders": 5,
                                                     "customers": 5})  # fmt: skip
        token = await install(c)
        await subscribe(c, token, "PRODUCTS_UPDATE")
        sample = await data(c, token, SAMPLE)
        started = await start_bulk(c, token)
        product = sample["products"]["nodes"][0]
        variant = product["variants"]["nodes"][0]
        item = variant["inventoryItem"]
        level = item["inventoryLevels"]["nodes"][0]
        order = sample["orders"]["nodes"][0]
        expected = {
            product["id"]: "Product",
            variant["id"]: "ProductVariant",
            item["id"]: "InventoryItem",
            level["id"]: "InventoryLevel",
            level["location"]["id"]: "Location",
            order["id"]: "Order",
            order["lineItems"]["nodes"][0]["id"]: "LineItem",
            sample["customers"]["nodes"][0]["id"]: "Customer",
            sample["webhookSubscriptions"]["nodes"][0]["id"]: "WebhookSubscription",
            sample["shop"]["id"]: "Shop",
            sample["currentAppInstallation"]["id"]: "AppInstallation",
            started["bulkOperation"]["id"]: "BulkOperation",
        }
        ids = [*expected, "gid://shopify/Product/999999999", "gid://shopify/Nope/1", "junk"]
        found = (await data(c, token, NODES, {"ids": ids}))["nodes"]
        assert [n and (n["id"], n["__typename"]) for n in found] == [
            *expected.items(),
            None,
            None,
            None,
        ]
        # A deleted product is gone from node as from products.
        await c.post(f"/_sandbox/shopify/shops/{SHOP}/mutate", json={"deletes": 5})
        again = (await data(c, token, NODES, {"ids": [product["id"], variant["id"]]}))["nodes"]
        assert again == [None, None]


async def test_current_app_installation_lists_the_scopes_the_merchant_granted() -> None:
    app = sandbox_app(seed=5)
    async with client(app) as c:
        await c.post("/_sandbox/shopify/shops", json={"shop": SHOP, "products": 1})
        token = await install(c)  # grants read_products,read_orders
        query = "{ currentAppInstallation { accessScopes { handle description } } }"
        scopes = (await data(c, token, query))["currentAppInstallation"]["accessScopes"]
    assert scopes == [
        {"handle": "read_products", "description": "Read products, variants, and collections"},
        {"handle": "read_orders", "description": "Read orders, transactions, and fulfillments"},
    ]


VARIANTS = """query V($after: String, $q: String) {
  productVariants(first: 7, after: $after, query: $q) {
    nodes { id updatedAt product { id } } pageInfo { hasNextPage endCursor } } }"""


async def page_all(c: httpx.AsyncClient, token: str, query: str, key: str, q: Any = None):
    nodes, after = [], None
    while True:
        page = (await data(c, token, query, {"after": after, "q": q}))[key]
        nodes += page["nodes"]
        if not page["pageInfo"]["hasNextPage"]:
            return nodes
        after = page["pageInfo"]["endCursor"]


async def test_product_variants_page_through_every_variant_and_filter_by_update() -> None:
    app = sandbox_app(seed=5)
    async with client(app) as c:
        await c.post("/_sandbox/shopify/shops", json={"shop": SHOP, "products": 10,
                                                     "variants_per_product": 3})  # fmt: skip
        token = await install(c)
        products = (
            await data(
                c,
                token,
                """{ products(first: 50) { nodes { id updatedAt
            variants(first: 10) { nodes { id } } } } }""",
            )
        )["products"]["nodes"]
        truth = [v["id"] for p in products for v in p["variants"]["nodes"]]
        every = await page_all(c, token, VARIANTS, "productVariants")
        assert [v["id"] for v in every] == truth and len(truth) == 30
        since = products[6]["updatedAt"]
        recent = await page_all(c, token, VARIANTS, "productVariants", f"updated_at:>='{since}'")
        assert [v["id"] for v in recent] == truth[18:]
        count = await data(c, token, "query C($q: String) { productVariantsCount(query: $q) "
                                     "{ count } }", {"q": f"updated_at:>='{since}'"})  # fmt: skip
        assert count["productVariantsCount"]["count"] == 12


async def test_locations_page_with_a_cursor() -> None:
    app = sandbox_app(seed=5)
    async with client(app) as c:
        await c.post("/_sandbox/shopify/shops", json={"shop": SHOP, "products": 1,
                                                     "locations": 5})  # fmt: skip
        token = await install(c)
        query = """query L($after: String, $q: String) { locations(first: 2, after: $after,
            query: $q) { nodes { id name } pageInfo { hasNextPage endCursor } } }"""
        every = await page_all(c, token, query, "locations")
    assert len({loc["id"] for loc in every}) == 5 == len(every)


async def test_bulk_exports_product_variants_and_locations() -> None:
    app = sandbox_app(seed=5, time_scale=100)
    async with client(app) as c:
        await c.post("/_sandbox/shopify/shops", json={"shop": SHOP, "products": 20,
                                                     "variants_per_product": 2,
                                                     "locations": 3})  # fmt: skip
        token = await install(c)
        exported: dict[str, list[dict[str, Any]]] = {}
        for root in ("productVariants", "locations"):
            fields = "id sku product { id }" if root == "productVariants" else "id name"
            started = await start_bulk(
                c, token, f"{{ {root} {{ edges {{ node {{ {fields} }} }} }} }}"
            )
            assert started["userErrors"] == [], started
            operation, _ = await wait_bulk(c, token, started["bulkOperation"]["id"])
            assert operation["status"] == "COMPLETED"
            text = (await c.get(operation["url"])).text
            exported[root] = [json.loads(line) for line in text.splitlines()]
    assert len({v["id"] for v in exported["productVariants"]}) == 40
    assert all(
        v["product"]["id"].startswith("gid://shopify/Product/") for v in exported["productVariants"]
    )
    assert (
        sorted(loc["name"] for loc in exported["locations"])
        == sorted({loc["name"] for loc in exported["locations"]})
        and len(exported["locations"]) == 3
    )


# The non-null ProductVariant fields tap-shopify 3.13.0 selects in its productVariants stream.
TAP_VARIANTS = """query V($first: Int!, $after: String, $query: String) {
  productVariants(first: $first, after: $after, query: $query) {
    edges { node { id createdAt updatedAt barcode sku title displayName price compareAtPrice
      availableForSale inventoryPolicy inventoryQuantity sellableOnlineQuantity position
      requiresComponents taxable taxCode image { id url } product { id }
      inventoryItem { id measurement { weight { unit value } } } } }
    pageInfo { hasNextPage endCursor } } }"""


async def test_a_peers_product_variant_document_gets_every_non_null_field() -> None:
    app = sandbox_app(seed=5)
    async with client(app) as c:
        await c.post("/_sandbox/shopify/shops", json={"shop": SHOP, "products": 4,
                                                     "variants_per_product": 2})  # fmt: skip
        token = await install(c)
        variables = {"first": 50, "query": "updated_at:>='2020-01-01 00:00:00+00:00'"}
        page = (await data(c, token, TAP_VARIANTS, variables))["productVariants"]
        products = await data(c, token, "{ products(first: 10) { nodes { id title } } }")
    titles = {p["id"]: p["title"] for p in products["products"]["nodes"]}
    nodes = [e["node"] for e in page["edges"]]
    assert len(nodes) == 8 and page["pageInfo"]["hasNextPage"] is False
    for node in nodes:
        assert node["displayName"] == f"{titles[node['product']['id']]} - {node['title']}"
        assert node["availableForSale"] == (node["inventoryQuantity"] > 0)
        assert node["inventoryPolicy"] == "DENY" and node["taxable"] is True
    assert sorted(n["position"] for n in nodes) == [1, 1, 1, 1, 2, 2, 2, 2]


async def test_bulk_lines_keep_the_typename_airbyte_composes_records_by() -> None:
    app = sandbox_app(seed=5, time_scale=100)
    async with client(app) as c:
        await c.post("/_sandbox/shopify/shops", json={"shop": SHOP, "products": 3,
                                                     "variants_per_product": 2})  # fmt: skip
        token = await install(c)
        window = "updated_at:>='2020-01-01T00:00:00+00:00' AND updated_at:<='2099-01-01'"
        fields = "__typename id product_updated_at: updatedAt"
        variants = "variants { edges { node { __typename id } } }"
        query = (
            f'{{ products(query: "{window}", sortKey: UPDATED_AT) '
            f"{{ edges {{ node {{ {fields} {variants} }} }} }} }}"
        )
        started = await start_bulk(c, token, query)
        assert started["userErrors"] == [], started
        operation, _ = await wait_bulk(c, token, started["bulkOperation"]["id"])
        lines = [json.loads(line) for line in (await c.get(operation["url"])).text.splitlines()]
    kinds = [line["__typename"] for line in lines]
    assert kinds.count("Product") == 3 and kinds.count("ProductVariant") == 6
    assert all("product_updated_at" in line for line in lines if line["__typename"] == "Product")


# The products document of Airbyte's source-shopify 4.3.0 (its bulk products export), whose
# non-null Product fields failed the export when the sandbox lacked them.
AIRBYTE_PRODUCT = """__typename id publishedAt createdAt status vendor updatedAt bodyHtml
  productType tags handle templateSuffix title description descriptionHtml isGiftCard
  legacyResourceId onlineStorePreviewUrl onlineStoreUrl totalInventory tracksInventory
  hasOnlyDefaultVariant hasOutOfStockVariants requiresSellingPlan
  priceRangeV2 { max_variant_price: maxVariantPrice { amount currency_code: currencyCode }
                 min_variant_price: minVariantPrice { amount currency_code: currencyCode } }
  featuredImage { height id url width alt_text: altText }
  seo { description title }
  featuredMedia { alt id status }
  feedback { summary }
  category { id name full_name: fullName }
  total_variants: variantsCount { total_variants: count }
  media_count: mediaCount { media_count: count }
  options { id name values position }
  images { edges { node { __typename id } } }
  variants { edges { node { __typename id price title } } }"""


async def test_airbytes_products_export_completes_with_every_non_null_field() -> None:
    app = sandbox_app(seed=5, time_scale=100)
    async with client(app) as c:
        await c.post("/_sandbox/shopify/shops", json={"shop": SHOP, "products": 4,
                                                     "variants_per_product": 3})  # fmt: skip
        token = await install(c)
        window = "updated_at:>='2025-01-01T00:00:00+00:00' AND updated_at:<='2099-01-01'"
        started = await start_bulk(
            c, token, f'{{ products(query: "{window}", sortKey: UPDATED_AT) '
            f"{{ edges {{ node {{ {AIRBYTE_PRODUCT} }} }} }} }}",
        )  # fmt: skip
        assert started["userErrors"] == [], started
        operation, _ = await wait_bulk(c, token, started["bulkOperation"]["id"])
        download = await c.get(operation["url"])
        # The same fields paged (connections need first: outside a bulk export).
        paged_fields = AIRBYTE_PRODUCT.replace("images {", "images(first: 5) {").replace(
            "variants {", "variants(first: 5) {"
        )
        paged = await gql(c, token, f"{{ products(first: 4) {{ nodes {{ {paged_fields} }} }} }}")
    assert operation["status"] == "COMPLETED"
    assert "errors" not in paged.json(), paged.json()
    lines = [json.loads(line) for line in download.text.splitlines()]
    products = [line for line in lines if line["__typename"] == "Product"]
    variants = [line for line in lines if line["__typename"] == "ProductVariant"]
    assert len(products) == 4 and len(variants) == 12
    for product in products:
        own = [v for v in variants if v["__parentId"] == product["id"]]
        prices = sorted(float(v["price"]) for v in own)
        span = product["priceRangeV2"]
        assert float(span["min_variant_price"]["amount"]) == prices[0]
        assert float(span["max_variant_price"]["amount"]) == prices[-1]
        assert product["total_variants"] == {"total_variants": 3}
        assert product["options"][0]["values"] == [v["title"] for v in own]
        assert product["hasOnlyDefaultVariant"] is False and product["description"] == ""
    # Shopify's result urls name the file; Airbyte takes its local copy's name from there.
    number = started["bulkOperation"]["id"].rsplit("/", 1)[1]
    disposition = dict(parse_qsl(urlsplit(operation["url"]).query))["response-content-disposition"]
    assert f'filename="bulk-{number}.jsonl"' in disposition
    assert f'filename="bulk-{number}.jsonl"' in download.headers["content-disposition"]


# The non-null Customer and Product fields tap-shopify 3.13.0 selects with every field of
# its customers and products streams (its page of 100: 250 would exceed the cost maximum).
TAP_CUSTOMERS = """query C($first: Int!) { customers(first: $first, sortKey: UPDATED_AT) {
  edges { node { id email firstName lastName displayName verifiedEmail validEmailAddress
    productSubscriberStatus dataSaleOptOut taxExempt taxExemptions tags state locale
    numberOfOrders lifetimeDuration createdAt updatedAt amountSpent { amount currencyCode }
    addresses(first: 250) { id city } defaultAddress { id } lastOrder { id } } } } }"""
TAP_PRODUCTS = """query P($first: Int!) { products(first: $first, sortKey: UPDATED_AT) {
  edges { node { id hasVariantsThatRequiresComponents hasOnlyDefaultVariant isGiftCard
    compareAtPriceRange { maxVariantCompareAtPrice { amount } }
    media(first: 250) { edges { node { id } } } } } } }"""


async def test_tap_shopifys_customers_and_products_get_every_non_null_field() -> None:
    app = sandbox_app(seed=5)
    async with client(app) as c:
        await c.post("/_sandbox/shopify/shops", json={"shop": SHOP, "products": 3,
                                                     "customers": 4})  # fmt: skip
        token = await install(c)
        customers = (await data(c, token, TAP_CUSTOMERS, {"first": 100}))["customers"]["edges"]
        # media(first: 250) in each product: 3 a page keep the cost under 1,000 points
        products = (await data(c, token, TAP_PRODUCTS, {"first": 3}))["products"]["edges"]
    assert len(customers) == 4 and len(products) == 3
    for edge in customers:
        node = edge["node"]
        assert node["displayName"] == f"{node['firstName']} {node['lastName']}"
        assert node["verifiedEmail"] is True
        assert node["productSubscriberStatus"] == "NEVER_SUBSCRIBED"
        assert node["addresses"] == [] and node["taxExemptions"] == []
        # created 2025-01-01 on, read on the sandbox's clock (today): a year or more ago
        assert node["lifetimeDuration"].startswith("about ") and "year" in node["lifetimeDuration"]
    for edge in products:
        assert edge["node"]["hasVariantsThatRequiresComponents"] is False
        assert edge["node"]["media"] == {"edges": []}
        assert edge["node"]["compareAtPriceRange"] is None  # no variant has a compare-at price


def test_lifetime_duration_reads_like_shopifys() -> None:
    from datetime import UTC, datetime, timedelta

    from connectors.sandbox.shopify.resolvers import lifetime

    start = datetime(2025, 1, 1, tzinfo=UTC)
    assert lifetime(start, start + timedelta(hours=5)) == "less than a day"
    assert lifetime(start, start + timedelta(days=1)) == "1 day"
    assert lifetime(start, start + timedelta(days=12)) == "12 days"
    assert lifetime(start, start + timedelta(days=40)) == "about 1 month"
    assert lifetime(start, start + timedelta(days=200)) == "6 months"
    assert lifetime(start, start + timedelta(days=370)) == "about 1 year"
    assert lifetime(start, start + timedelta(days=12 * 365)) == "about 12 years"
