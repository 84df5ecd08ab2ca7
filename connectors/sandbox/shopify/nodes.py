"""Global ids: `node(id:)` and `nodes(ids:)` resolve every Node type the sandbox holds (as
Shopify resolves every Node), and the by-id and top-level fields the peers read
(`productVariant`, `location`, `productVariants`, `currentAppInstallation`)."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import parse_qs

from graphql import GraphQLSchema

from connectors.sandbox.shopify import resolvers, search
from connectors.sandbox.shopify.data import ID_BASE, ShopData
from connectors.sandbox.shopify.paging import (
    RESOURCE_FIELDS,
    _connection,
    decode_cursor,
    updated_window,
)

_GID = re.compile(r"gid://shopify/(?P<type>\w+)/(?P<number>\d+)(?:\?(?P<params>.*))?")

# Shopify's published descriptions of the scopes it lists in its AppInstallation example
# (shopify.dev, admin-graphql queries/appinstallation); other handles describe themselves.
SCOPE_DESCRIPTIONS = {
    "read_content": "Read store content like articles, blogs, comments, pages, and redirects",
    "write_content": "Modify store content like articles, blogs, comments, pages, and redirects",
    "read_themes": "Read theme templates and theme assets",
    "write_themes": "Modify theme templates and theme assets",
    "read_products": "Read products, variants, and collections",
    "write_products": "Modify products, variants, and collections",
    "read_customers": "Read customer details and customer groups",
    "write_customers": "Modify customer details and customer groups",
    "read_orders": "Read orders, transactions, and fulfillments",
    "write_orders": "Modify orders, transactions, and fulfillments",
    "read_script_tags": "Read script tags in your store's theme template files",
    "write_script_tags": "Modify script tags in your store's theme template files",
    "write_shipping": "Modify shipping rates, countries, and provinces",
}


def _variant_position(shop: ShopData, number: int) -> tuple[int, int] | None:
    """(product index, variant index) of a live variant numbered from ``ID_BASE[base]``."""
    variant = number
    product = variant // max(1, shop.variants_per_product)
    if variant < 0 or not shop.is_live("product", product):
        return None
    if variant not in shop.variant_ids(product):
        return None
    return product, variant


def lookup(info: Any, id: str) -> dict[str, Any] | None:
    """The object a global id names, if this shop holds it; None otherwise (as Shopify)."""
    match = _GID.fullmatch(id or "")
    if match is None:
        return None
    shop: ShopData = info.context["shop"]
    sandbox = info.context["sandbox"]
    kind, number = match.group("type"), int(match.group("number"))
    by_kind = {"Product": "product", "Order": "order", "Customer": "customer"}
    if kind in by_kind:
        index = number - ID_BASE[by_kind[kind]]
        if not shop.is_live(by_kind[kind], index):
            return None
        build = {"product": resolvers.product, "order": resolvers.order}
        return build.get(by_kind[kind], resolvers.customer)(shop, index)
    if kind in ("ProductVariant", "InventoryItem"):
        base = ID_BASE["variant" if kind == "ProductVariant" else "inventory_item"]
        position = _variant_position(shop, number - base)
        if position is None:
            return None
        build_variant = resolvers.variant if kind == "ProductVariant" else resolvers.inventory_item
        return build_variant(shop, *position)
    if kind == "Location":
        location = number - ID_BASE["location"]
        return shop.location_node(location) if 0 <= location < shop.locations else None
    if kind == "InventoryLevel":
        location = number - ID_BASE["location"]
        params = parse_qs(match.group("params") or "")
        try:
            item = int(params["inventory_item_id"][0]) - ID_BASE["inventory_item"]
        except (KeyError, ValueError):
            return None
        position = _variant_position(shop, item)
        if position is None or not 0 <= location < shop.locations:
            return None
        return resolvers.inventory_level(shop, *position, location)
    if kind == "LineItem":
        per = max(10, shop.lines_per_order)
        order, line = divmod(number - ID_BASE["line_item"], per)
        if not shop.is_live("order", order) or line not in shop.lines(order):
            return None
        return resolvers.line_item(shop, order, line)
    if kind == "BulkOperation":
        op = sandbox.bulk.operations.get(id)
        if op is None or op.shop != shop.shop:
            return None
        return op.node(sandbox.state.clock.now())
    if kind == "WebhookSubscription":
        subscription = sandbox.subscriptions.get(shop.shop, {}).get(id)
        return subscription.node() if subscription is not None else None
    if kind == "BasicEvent":
        return next((e for e in resolvers.product_events(shop) if e["id"] == id), None)
    if kind == "Shop":
        own = resolvers.shop_node(shop)
        return own if own["id"] == id else None
    if kind == "AppInstallation":
        own = _installation(info)
        return own if own["id"] == id else None
    return None


def _typed(typename: str) -> Callable[[Any, Any, str], dict[str, Any] | None]:
    def resolve(_: Any, info: Any, id: str) -> dict[str, Any] | None:
        found = lookup(info, id)
        return found if found is not None and found["__typename"] == typename else None

    return resolve


def _installation(info: Any) -> dict[str, Any]:
    """The installation of the app whose token made the request, with the scopes it granted."""
    shop: ShopData = info.context["shop"]
    grant = info.context.get("grant")
    handles = [s for s in (grant.scopes if grant else "").split(",") if s]
    return {
        "__typename": "AppInstallation",
        "id": f"gid://shopify/AppInstallation/{shop.shop_id}",
        "accessScopes": [
            {"handle": h, "description": SCOPE_DESCRIPTIONS.get(h, h)} for h in handles
        ],
    }


def variants_in_order(
    shop: ShopData, after: str | None, query: str | None, base: str
) -> Iterator[tuple[int, int]]:
    """(product, variant) by the product's updated_at then variant, after the cursor, that
    match the search query: updated_at and created_at are the product's, id is the variant's
    own number (or its inventory item's, ``base``)."""
    start = decode_cursor(after) if after else None
    floor, stop = updated_window(query)
    tree = search.parse(query)
    per = max(1, shop.variants_per_product)
    product_after = (start[0], start[1] // per - 1) if start is not None else None
    if floor is not None:
        product_after = max(product_after, floor) if product_after else floor
    for index in shop.ordered("product", product_after):
        updated = shop.updated_at("product", index)
        if stop is not None and updated > stop:
            return
        for v in shop.variant_ids(index):
            if start is not None and (updated, v) <= start:
                continue
            own = {"updated_at": updated, "created_at": shop.created_at("product", index),
                   "id": ID_BASE[base] + v}  # fmt: skip
            if search.evaluate(tree, search.field_matcher(RESOURCE_FIELDS, own.__getitem__)):
                yield index, v


def _variant_connection(base: str, build: Callable[[ShopData, int, int], dict]) -> Callable:
    def resolve(
        _: Any,
        info: Any,
        first: int | None = None,
        after: str | None = None,
        query: str | None = None,
        **__: Any,
    ) -> dict[str, Any]:
        shop: ShopData = info.context["shop"]
        return _connection(
            variants_in_order(shop, after, query, base),
            first,
            lambda pv: build(shop, *pv),
            lambda pv: (shop.updated_at("product", pv[0]), pv[1]),
        )

    return resolve


def _locations(
    _: Any, info: Any, first: int | None = None, after: str | None = None, **__: Any
) -> dict[str, Any]:
    shop: ShopData = info.context["shop"]
    epoch = shop.base_time("product", 0)
    start = decode_cursor(after)[1] + 1 if after else 0
    return _connection(
        iter(range(start, shop.locations)), first, shop.location_node, lambda loc: (epoch, loc)
    )


def attach(schema: GraphQLSchema) -> None:
    query = schema.query_type
    assert query is not None
    query.fields["node"].resolve = lambda _, info, id: lookup(info, id)
    query.fields["nodes"].resolve = lambda _, info, ids: [lookup(info, i) for i in ids]
    query.fields["productVariant"].resolve = _typed("ProductVariant")
    query.fields["inventoryItem"].resolve = _typed("InventoryItem")
    query.fields["location"].resolve = _typed("Location")
    query.fields["currentAppInstallation"].resolve = lambda _, info: _installation(info)
    query.fields["productVariants"].resolve = _variant_connection("variant", resolvers.variant)
    query.fields["inventoryItems"].resolve = _variant_connection(
        "inventory_item", resolvers.inventory_item
    )
    query.fields["locations"].resolve = _locations
    from connectors.sandbox.shopify import versions

    query.fields["publicApiVersions"].resolve = lambda *_: versions.public_versions()
