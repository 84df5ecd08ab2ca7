"""Resolvers of the sandbox's Admin GraphQL API: node builders (with their nested
connections) and the root fields the hub and its peers read."""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator
from datetime import datetime
from typing import Any

from graphql import GraphQLSchema

from connectors.sandbox.shopify import search
from connectors.sandbox.shopify.data import EPOCH, ID_BASE, ShopData, gid, iso
from connectors.sandbox.shopify.paging import (
    RESOURCE_FIELDS,
    _connection,
    _ordered,
    decode_cursor,
    resource_filter,
)
from connectors.sandbox.shopify.search import parse_moment

# --- node builders with nested connections --------------------------------------------------


def product(shop: ShopData, index: int) -> dict[str, Any]:
    node = shop.product_node(index)
    node["variants"] = lambda info, first=None, after=None, **_: _connection(
        (v for v in shop.variant_ids(index) if after is None or v > decode_cursor(after)[1]),
        first,
        lambda v: variant(shop, index, v),
        lambda v: (shop.updated_at("product", index), v),
    )
    node.update(_product_details(shop, index))
    return node


def _product_details(shop: ShopData, index: int) -> dict[str, Any]:
    """The Product fields the schema makes non-null, derived from the product's variants, for
    peers that select them (Airbyte's products export, tap-shopify): a product of the sandbox
    has no description, images, media, SEO overrides or selling plans, and one option
    (Shopify names a lone default variant's option "Title", its value "Default Title").
    Those read from the variants are resolved only when selected (the hub selects none)."""
    number = ID_BASE["product"] + index
    default_only = shop.variants_per_product == 1

    @functools.cache
    def variants() -> list[dict[str, Any]]:
        return [shop.variant_node(index, v) for v in shop.variant_ids(index)]

    def price_range(info: Any, **_: Any) -> dict[str, Any]:
        prices = sorted((float(v["price"]), v["price"]) for v in variants()) or [(0.0, "0.00")]
        return {
            "minVariantPrice": {"amount": prices[0][1], "currencyCode": "USD"},
            "maxVariantPrice": {"amount": prices[-1][1], "currencyCode": "USD"},
        }  # USD: the sandbox's shop currency

    def options(info: Any, **_: Any) -> list[dict[str, Any]]:
        values = [v["title"] for v in variants()]
        return [
            {
                "__typename": "ProductOption",
                "id": f"gid://shopify/ProductOption/{number}",
                "name": "Title" if default_only else "Size",
                "position": 1,
                "values": values,
                "optionValues": [
                    {
                        "__typename": "ProductOptionValue",
                        "id": f"gid://shopify/ProductOptionValue/{number}{k}",
                        "name": value,
                        "hasVariants": True,
                        "translations": [],
                    }
                    for k, value in enumerate(values)
                ],
                "translations": [],
            }
        ]

    def nothing(info: Any, first: int | None = None, **_: Any) -> dict[str, Any]:
        return _connection(iter(()), first, lambda _: {}, lambda _: (EPOCH, 0))

    return {
        "description": "",
        "descriptionHtml": "",
        "isGiftCard": False,
        "tracksInventory": True,  # every variant's inventory item is tracked
        "hasOnlyDefaultVariant": default_only,
        "hasOutOfStockVariants": lambda info, **_: any(
            v["inventoryQuantity"] <= 0 for v in variants()
        ),
        "hasVariantsThatRequiresComponents": lambda info, **_: any(
            v["requiresComponents"] for v in variants()
        ),
        "requiresSellingPlan": False,
        "priceRangeV2": price_range,
        "seo": {"title": None, "description": None},
        "options": options,
        "images": nothing,
        "media": nothing,
        "variantsCount": lambda info, **_: {"count": len(variants()), "precision": "EXACT"},
        "mediaCount": {"count": 0, "precision": "EXACT"},
    }


def variant(shop: ShopData, product_index: int, variant_index: int) -> dict[str, Any]:
    node = shop.variant_node(product_index, variant_index)
    node["inventoryItem"] = inventory_item(shop, product_index, variant_index)
    node["product"] = lambda info, **_: product(shop, product_index)
    return node


def inventory_item(shop: ShopData, product_index: int, variant_index: int) -> dict[str, Any]:
    number = shop.inventory_item_number(variant_index)
    updated = shop.updated_at("product", product_index)
    return {
        "__typename": "InventoryItem",
        "id": gid("inventory_item", number),
        "legacyResourceId": str(number),
        "sku": f"SKU-{product_index:06d}-{variant_index % shop.variants_per_product}",
        "tracked": True,
        "measurement": {"id": f"gid://shopify/InventoryItemMeasurement/{number}", "weight": None},
        "createdAt": iso(shop.created_at("product", product_index)),
        "updatedAt": iso(updated),
        "inventoryLevels": lambda info, first=None, after=None, **_: _connection(
            (
                loc
                for loc in range(shop.locations)
                if after is None or loc > decode_cursor(after)[1]
            ),
            first,
            lambda loc: inventory_level(shop, product_index, variant_index, loc),
            lambda loc: (updated, loc),
        ),
        "variant": lambda info, **_: variant(shop, product_index, variant_index),
    }


def inventory_level(
    shop: ShopData, product_index: int, variant_index: int, location: int
) -> dict[str, Any]:
    available = shop.quantity(variant_index, location)

    def quantities(info: Any, names: list[str] | None = None, **_: Any) -> list[dict[str, Any]]:
        values = {
            "available": available,
            "on_hand": available + 2,
            "committed": 2,
            "incoming": 0,
            "reserved": 0,
        }
        return [
            {"name": n, "quantity": values.get(n, 0), "updatedAt": None}
            for n in (names or ["available"])
        ]

    return {
        "__typename": "InventoryLevel",
        "id": shop.inventory_level_id(variant_index, location),
        "location": shop.location_node(location),
        "quantities": quantities,
        "createdAt": iso(shop.created_at("product", product_index)),
        "updatedAt": iso(shop.updated_at("product", product_index)),
        "canDeactivate": False,
        "item": lambda info, **_: inventory_item(shop, product_index, variant_index),
    }


def order(shop: ShopData, index: int) -> dict[str, Any]:
    node = shop.order_node(index)
    customer_index = node["_customer"]
    node["customer"] = (
        customer(shop, customer_index) if shop.is_live("customer", customer_index) else None
    )
    lines = shop.lines(index)
    node["lineItems"] = lambda info, first=None, after=None, **_: _connection(
        (k for k in lines if after is None or k > decode_cursor(after)[1]),
        first,
        lambda k: line_item(shop, index, k),
        lambda k: (shop.updated_at("order", index), k),
    )
    return node


def line_item(shop: ShopData, order_index: int, line: int) -> dict[str, Any]:
    node = shop.line_node(order_index, line)
    product_index, variant_index = node["_product"], node["_variant"]
    node["product"] = (
        product(shop, product_index) if shop.is_live("product", product_index) else None
    )
    node["variant"] = (
        variant(shop, product_index, variant_index)
        if shop.is_live("product", product_index)
        else None
    )
    return node


def customer(shop: ShopData, index: int) -> dict[str, Any]:
    node = shop.customer_node(index)
    created = shop.created_at("customer", index)
    # The Customer fields the schema makes non-null that a peer selects (tap-shopify's
    # customers stream): a customer the sandbox made through the API, no addresses, no tax
    # exemptions, never subscribed (the schema's descriptions give these defaults).
    node.update(
        {
            "displayName": f"{node['firstName']} {node['lastName']}",
            "verifiedEmail": True,  # "Defaults to true if created through the admin or API"
            "validEmailAddress": True,
            "productSubscriberStatus": "NEVER_SUBSCRIBED",
            "dataSaleOptOut": False,
            "taxExempt": False,
            "taxExemptions": [],
            "tags": [],
            "addresses": [],
            "locale": "en",
            "lifetimeDuration": lambda info, **_: lifetime(
                created, info.context["sandbox"].state.clock.now()
            ),
        }
    )
    return node


def lifetime(since: datetime, now: datetime) -> str:
    """``Customer.lifetimeDuration``: time since the customer was added, in words (the
    schema's example: 'about 12 years')."""
    days = max(0, (now - since).days)
    if days < 1:
        return "less than a day"
    if days < 30:
        return f"{days} day{'s' if days > 1 else ''}"
    if days < 365:
        months = days // 30
        return "about 1 month" if months == 1 else f"{months} months"
    years = round(days / 365.25)
    return f"about {years} year{'s' if years > 1 else ''}"


# --- root resolvers ------------------------------------------------------------------------------


def _shop_of(info: Any) -> ShopData:
    return info.context["shop"]


def _resolve_shop(_: Any, info: Any) -> dict[str, Any]:
    return shop_node(_shop_of(info))


def shop_node(shop: ShopData) -> dict[str, Any]:
    from connectors.sandbox.shopify.data import PLANS

    display = PLANS.get(shop.plan, PLANS["standard"])[0]
    return {
        "__typename": "Shop",
        "id": f"gid://shopify/Shop/{shop.shop_id}",
        "name": shop.shop.split(".")[0].replace("-", " ").title(),
        "email": f"owner@{shop.shop}",
        "myshopifyDomain": shop.shop,
        "currencyCode": "USD",
        "ianaTimezone": "America/New_York",
        "timezoneAbbreviation": "EST",
        "plan": {
            "displayName": display,
            "partnerDevelopment": False,
            "shopifyPlus": shop.plan in ("plus", "enterprise"),
            "publicDisplayName": display,
        },
    }


def _id_bounds(kind: str, query: str | None) -> tuple[int, int]:
    """The index range (inclusive) that the ``id`` terms every match satisfies allow."""
    low, high = 0, 2**62
    for term in search.conjuncts(search.parse(query)):
        if term.field != "id":
            continue
        index = RESOURCE_FIELDS["id"](term.value) - ID_BASE[kind]
        if term.operator in (">", ">=", ""):
            low = max(low, index + (term.operator == ">"))
        if term.operator in ("<", "<=", ""):
            high = min(high, index - (term.operator == "<"))
    return low, high


def _by_id(shop: ShopData, kind: str, after: str | None, query: str | None) -> Iterator[int]:
    """Live indices in ascending id order (``sortKey: ID``) matching the search query."""
    low, high = _id_bounds(kind, query)
    if after:
        low = max(low, decode_cursor(after)[1] + 1)
    matches = resource_filter(shop, kind, query)
    for index in range(low, min(high + 1, shop.total(kind))):
        if shop.is_live(kind, index) and matches(index):
            yield index


def _root_connection(kind: str, build: Callable[[ShopData, int], dict[str, Any]]) -> Callable:
    def resolve(
        _: Any,
        info: Any,
        first: int | None = None,
        after: str | None = None,
        query: str | None = None,
        sortKey: str | None = None,
        **__: Any,
    ) -> dict[str, Any]:
        shop = _shop_of(info)
        items = (
            _by_id(shop, kind, after, query)
            if sortKey == "ID"
            else _ordered(shop, kind, after, query)
        )
        return _connection(
            items,
            first,
            lambda i: build(shop, i),
            lambda i: (shop.updated_at(kind, i), i),
        )

    return resolve


def _count(kind: str) -> Callable:
    def resolve(
        _: Any, info: Any, query: str | None = None, limit: int | None = 10_000, **__: Any
    ) -> dict[str, Any]:
        shop = _shop_of(info)
        total = sum(1 for _ in _ordered(shop, kind, None, query))
        if limit is not None and total > limit:
            return {"count": limit, "precision": "AT_LEAST"}
        return {"count": total, "precision": "EXACT"}

    return resolve


def _resolve_variants_count(
    _: Any, info: Any, query: str | None = None, limit: int | None = 10_000, **__: Any
) -> dict[str, Any]:
    from connectors.sandbox.shopify.nodes import variants_in_order

    total = sum(1 for _ in variants_in_order(_shop_of(info), None, query, "variant"))
    if limit is not None and total > limit:
        return {"count": limit, "precision": "AT_LEAST"}
    return {"count": total, "precision": "EXACT"}


# --- events: the sandbox records one, `destroy` of a product ---------------------------------

EVENT_BASE = 10_000_000
_EVENT_FIELDS: dict[str, Callable[[str], Any]] = {
    "action": str,
    "subject_type": str.upper,
    "created_at": parse_moment,
    "id": RESOURCE_FIELDS["id"],
}


def product_events(shop: ShopData) -> list[dict[str, Any]]:
    """A BasicEvent per deleted product, numbered in the order of deletion."""
    events = []
    for ordinal, ((kind, index), moment) in enumerate(list(shop.deleted.items())):
        if kind != "product":
            continue
        title = shop.product_title(index)
        events.append({
            "__typename": "BasicEvent", "id": f"gid://shopify/BasicEvent/{EVENT_BASE + ordinal}",
            "action": "destroy", "message": f"{title} was deleted.", "secondaryMessage": None,
            "createdAt": iso(moment), "subjectId": gid("product", ID_BASE["product"] + index),
            "subjectType": "PRODUCT", "subject": None, "appTitle": None, "author": None,
            "attributeToApp": False, "attributeToUser": True, "criticalAlert": False,
            "hasAdditionalContent": False, "additionalContent": None, "additionalData": None,
            "arguments": [title], "_number": EVENT_BASE + ordinal,
            "_moment": moment.replace(microsecond=0),  # what createdAt shows
        })  # fmt: skip
    return events


def _event_matches(event: dict[str, Any], query: str | None) -> bool:
    """Shopify's events search fields: action, subject_type, created_at, id."""
    own = {
        "action": event["action"],
        "subject_type": event["subjectType"],
        "created_at": event["_moment"],
        "id": event["_number"],
    }
    decide = search.field_matcher(_EVENT_FIELDS, own.__getitem__)
    return search.evaluate(search.parse(query), decide)


def _resolve_events(
    _: Any,
    info: Any,
    first: int | None = None,
    after: str | None = None,
    query: str | None = None,
    sortKey: str = "ID",
    reverse: bool = False,
    **__: Any,
) -> dict[str, Any]:
    shop = _shop_of(info)
    events = [e for e in product_events(shop) if _event_matches(e, query)]
    if sortKey == "CREATED_AT":
        events.sort(key=lambda e: (e["_moment"], e["_number"]))
    if reverse:
        events.reverse()
    if after:
        _, number = decode_cursor(after)
        position = next((i for i, e in enumerate(events) if e["_number"] == number), -1)
        events = events[position + 1 :]
    return _connection(iter(events), first, dict, lambda e: (e["_moment"], e["_number"]))


def _resolve_events_count(_: Any, info: Any, query: str | None = None, **__: Any) -> dict:
    events = [e for e in product_events(_shop_of(info)) if _event_matches(e, query)]
    return {"count": len(events), "precision": "EXACT"}


def _resolve_node_by_id(kind: str) -> Callable:
    def resolve(_: Any, info: Any, id: str) -> dict[str, Any] | None:
        shop = _shop_of(info)
        try:
            index = int(id.rsplit("/", 1)[1]) - ID_BASE[kind]
        except (ValueError, IndexError):
            return None
        if not shop.is_live(kind, index):
            return None
        return {"product": product, "order": order, "customer": customer}[kind](shop, index)

    return resolve


def attach_resolvers(schema: GraphQLSchema) -> None:
    query = schema.query_type
    assert query is not None
    query.fields["shop"].resolve = _resolve_shop
    query.fields["products"].resolve = _root_connection("product", product)
    query.fields["orders"].resolve = _root_connection("order", order)
    query.fields["customers"].resolve = _root_connection("customer", customer)
    query.fields["productsCount"].resolve = _count("product")
    query.fields["ordersCount"].resolve = _count("order")
    query.fields["customersCount"].resolve = _count("customer")
    query.fields["productVariantsCount"].resolve = _resolve_variants_count
    query.fields["events"].resolve = _resolve_events
    query.fields["eventsCount"].resolve = _resolve_events_count
    query.fields["product"].resolve = _resolve_node_by_id("product")
    query.fields["order"].resolve = _resolve_node_by_id("order")
    query.fields["customer"].resolve = _resolve_node_by_id("customer")
    from connectors.sandbox.shopify import bulk, nodes, webhooks_api

    webhooks_api.attach(schema)
    bulk.attach(schema)
    nodes.attach(schema)
