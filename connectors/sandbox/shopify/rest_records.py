"""LEGACY REST listings the peers read: ``customers.json``, ``orders.json``, ``events.json``,
paged Shopify's REST way (cursor-based: ``limit`` up to 250, then the ``page_info`` of the
``Link: <…>; rel="next"`` header, which carries the filters; a request with ``page_info``
takes no other filter). Records are the sandbox's, in REST's snake_case shape."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable, Iterator
from datetime import datetime
from functools import partial
from typing import Any
from urllib.parse import urlencode

from connectors.sandbox.shopify import resolvers
from connectors.sandbox.shopify.data import ID_BASE, ShopData
from connectors.sandbox.shopify.search import SearchSyntaxError, parse_moment

MAX_LIMIT = 250
DEFAULT_LIMIT = 50
FILTERS = ("since_id", "updated_at_min", "updated_at_max", "created_at_min", "created_at_max",
           "status", "filter", "verb")  # fmt: skip
_FULFILLMENT = {"FULFILLED": "fulfilled", "PARTIALLY_FULFILLED": "partial", "UNFULFILLED": None}


class RestError(ValueError):
    """A request REST answers with 400 (``{"errors": …}``)."""


def customer(shop: ShopData, index: int) -> dict[str, Any]:
    node = shop.customer_node(index)
    return {
        "id": int(node["legacyResourceId"]), "admin_graphql_api_id": node["id"],
        "email": node["email"], "first_name": node["firstName"], "last_name": node["lastName"],
        "state": node["state"].lower(), "orders_count": int(node["numberOfOrders"]),
        "total_spent": node["amountSpent"]["amount"], "currency": "USD",
        "created_at": node["createdAt"], "updated_at": node["updatedAt"],
    }  # fmt: skip


def order(shop: ShopData, index: int) -> dict[str, Any]:
    node = resolvers.order(shop, index)
    lines = [resolvers.line_item(shop, index, k) for k in shop.lines(index)]
    owner = node["customer"]
    return {
        "id": int(node["legacyResourceId"]), "admin_graphql_api_id": node["id"],
        "name": node["name"], "order_number": 1001 + index, "email": node["email"],
        "created_at": node["createdAt"], "processed_at": node["processedAt"],
        "updated_at": node["updatedAt"], "cancelled_at": node["cancelledAt"],
        "currency": node["currencyCode"],
        "total_price": node["totalPriceSet"]["shopMoney"]["amount"],
        "financial_status": node["displayFinancialStatus"].lower(),
        "fulfillment_status": _FULFILLMENT[node["displayFulfillmentStatus"]],
        "customer": {"id": int(owner["legacyResourceId"]),
                     "admin_graphql_api_id": owner["id"]} if owner else None,
        "line_items": [{
            "id": int(line["id"].rsplit("/", 1)[1]), "admin_graphql_api_id": line["id"],
            "sku": line["sku"], "title": line["title"], "quantity": line["quantity"],
            "price": line["originalUnitPriceSet"]["shopMoney"]["amount"],
            "product_id": ID_BASE["product"] + line["_product"],
            "variant_id": ID_BASE["variant"] + line["_variant"],
        } for line in lines],
    }  # fmt: skip


def event(raw: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": raw["_number"], "subject_id": int(raw["subjectId"].rsplit("/", 1)[1]),
        "subject_type": "Product", "verb": raw["action"], "arguments": raw["arguments"],
        "message": raw["message"], "created_at": raw["createdAt"],
    }  # fmt: skip


def _moment(params: dict[str, str], name: str) -> datetime | None:
    if name not in params:
        return None
    try:
        return parse_moment(params[name])
    except SearchSyntaxError as error:
        raise RestError(f"{name} is invalid") from error


def _within(params: dict[str, str], updated: datetime, created: datetime) -> bool:
    bounds = [
        (updated, _moment(params, "updated_at_min"), _moment(params, "updated_at_max")),
        (created, _moment(params, "created_at_min"), _moment(params, "created_at_max")),
    ]
    return all((low is None or value >= low) and (high is None or value <= high)
               for value, low, high in bounds)  # fmt: skip


def _records(
    shop: ShopData, kind: str, params: dict[str, str]
) -> Iterator[tuple[int, Callable[[], dict[str, Any]]]]:
    """(id, record) in ascending id order, within the filters."""
    since = int(params.get("since_id", "0") or 0)
    if kind == "events":
        wanted = params.get("filter", "Product").lower() == "product"
        verb = params.get("verb")
        for raw in resolvers.product_events(shop) if wanted else []:
            if (
                raw["_number"] > since
                and verb in (None, raw["action"])
                and _within(params, raw["_moment"], raw["_moment"])
            ):
                yield raw["_number"], partial(event, raw)
        return
    single = kind[:-1]
    status = params.get("status", "open") if kind == "orders" else "any"
    for index in range(max(0, since - ID_BASE[single] + 1), shop.total(single)):
        if not shop.is_live(single, index):
            continue
        if not _within(params, shop.updated_at(single, index), shop.created_at(single, index)):
            continue
        if status != "any":
            cancelled = shop.order_node(index)["cancelledAt"] is not None
            if status == "closed" or (status == "open") == cancelled:
                continue  # the sandbox closes no orders; cancelled ones are "cancelled"
        build = customer if kind == "customers" else order
        yield ID_BASE[single] + index, partial(build, shop, index)


def page(shop: ShopData, kind: str, params: dict[str, str], url: str) -> tuple[list, str | None]:
    """One page of ``kind`` and the ``Link`` header of the next, if any."""
    try:
        limit = int(params.get("limit", DEFAULT_LIMIT))
    except ValueError as error:
        raise RestError("limit is invalid") from error
    if not 1 <= limit <= MAX_LIMIT:
        raise RestError(f"limit must be between 1 and {MAX_LIMIT}")
    if "page_info" in params:
        if set(params) - {"page_info", "limit", "fields"}:
            raise RestError("page_info - Invalid value: other parameters are not allowed")
        try:
            filters = json.loads(base64.urlsafe_b64decode(params["page_info"].encode()))
            assert isinstance(filters, dict)
        except (ValueError, AssertionError) as error:
            raise RestError("page_info - Invalid value.") from error
    else:
        filters = {k: v for k, v in params.items() if k in FILTERS}
    taken: list[tuple[int, dict[str, Any]]] = []
    more = False
    for number, build in _records(shop, kind, filters):
        if len(taken) == limit:
            more = True
            break
        taken.append((number, build()))
    if not more:
        return [r for _, r in taken], None
    following = {**filters, "since_id": str(taken[-1][0])}
    token = base64.urlsafe_b64encode(json.dumps(following).encode()).decode()
    return [
        r for _, r in taken
    ], f'<{url}?{urlencode({"limit": limit, "page_info": token})}>; rel="next"'
