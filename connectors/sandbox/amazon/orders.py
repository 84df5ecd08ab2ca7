"""Sandbox Orders API: v2026-01-01 (searchOrders, getOrder with ``includedData``) and the
deprecated v0 (getOrders, getOrderItems), from the seeded sellers' orders."""

from __future__ import annotations

import random
from datetime import datetime
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from connectors.amazon.regions import MARKETPLACES
from connectors.sandbox.amazon.data import SellerData, iso
from connectors.sandbox.amazon.responses import (
    ApiError,
    _check_before,
    _decode_token,
    _encode_token,
    _int_param,
    _list_param,
    _ok,
    _time_param,
)
from connectors.sandbox.amazon.sandbox import AmazonSandbox

# --- Orders v2026-01-01 ---------------------------------------------------------------------


ORDER_DATASETS = ("PROCEEDS", "FULFILLMENT")  # the includedData sets the sandbox fills in
# Personal data: answered only to an app holding Amazon's restricted roles ("Access Orders
# PII", https://developer-docs.amazon.com/sp-api/docs/access-orders-pii).
PERSONAL_DATASETS = frozenset({"BUYER", "RECIPIENT"})
_FIRST_NAMES = ("Ana", "Björn", "Chloé", "Dmitri", "Émile", "Fatima", "Grace", "Hiro", "Inés")
_LAST_NAMES = ("Álvarez", "Berg", "Cohen", "Dubois", "Eriksen", "Fontaine", "García", "Hoshino")
_STREETS = ("Elm Street", "Rue de la Paix", "Hauptstraße", "Calle Mayor", "Sakura-dori")


def _person(seller: SellerData, index: int) -> dict[str, str]:
    """A buyer's made-up name, address and phone, the same for an order every time."""
    rng = random.Random(f"{seller.seed}:{seller.seller_id}:buyer:{index}")
    first, last = rng.choice(_FIRST_NAMES), rng.choice(_LAST_NAMES)
    return {
        "name": f"{first} {last}",
        "email": f"{rng.getrandbits(40):010x}@marketplace.amazon.com",  # anonymized, as Amazon's
        "line1": f"{rng.randint(1, 999)} {rng.choice(_STREETS)}",
        "city": rng.choice(("Springfield", "Lyon", "Köln", "Sevilla", "Sapporo")),
        "postal": f"{rng.randint(10000, 99999)}",
        "phone": f"+1 555 {rng.randint(1000000, 9999999)}",
    }


def _personal(
    seller: SellerData, index: int, order: dict[str, Any], included: frozenset[str]
) -> dict[str, Any]:
    """``buyer`` and ``recipient`` as the model shapes them, with Amazon's conditions: the
    email only for merchant-fulfilled orders once unshipped or shipped, no phone for FBA."""
    person = _person(seller, index)
    merchant = order["fulfilledBy"] == "MERCHANT"
    body: dict[str, Any] = {}
    if "BUYER" in included:
        body["buyer"] = {"buyerName": person["name"]}
        if merchant and order["status"] in ("UNSHIPPED", "PARTIALLY_SHIPPED", "SHIPPED"):
            body["buyer"]["buyerEmail"] = person["email"]
    if "RECIPIENT" in included:
        address = {
            "name": person["name"],
            "addressLine1": person["line1"],
            "city": person["city"],
            "postalCode": person["postal"],
            "countryCode": MARKETPLACES[order["marketplace"]].country,
            "addressType": "RESIDENTIAL",
        }
        if merchant:
            address["phone"] = person["phone"]
        body["recipient"] = {"deliveryAddress": address}
    return body


def order_2026(
    seller: SellerData, index: int, included: frozenset[str] = frozenset(ORDER_DATASETS)
) -> dict[str, Any]:
    """An Orders 2026-01-01 order; ``proceeds`` and ``fulfillment`` only when asked for."""
    order = seller.order(index)
    marketplace = MARKETPLACES[order["marketplace"]]
    currency = order["currency"]
    body: dict[str, Any] = {
        "orderId": order["orderId"],
        "createdTime": iso(order["created"]),
        "lastUpdatedTime": iso(order["updated"]),
        "programs": [],
        "salesChannel": {
            "channelName": "AMAZON",
            "marketplaceId": marketplace.id,
            "marketplaceName": marketplace.name,
        },
        "orderItems": [
            {
                "orderItemId": item["orderItemId"],
                "quantityOrdered": item["quantity"],
                "product": {
                    "asin": item["asin"],
                    "title": item["title"],
                    "sellerSku": item["sku"],
                    "price": {"unitPrice": {"amount": item["price"], "currencyCode": currency}},
                },
            }
            for item in order["items"]
        ],
    }
    if "PROCEEDS" in included:
        body["proceeds"] = {"grandTotal": {"amount": order["total"], "currencyCode": currency}}
    if "FULFILLMENT" in included:
        body["fulfillment"] = {
            "fulfillmentStatus": order["status"],
            "fulfilledBy": order["fulfilledBy"],
        }
    if included & PERSONAL_DATASETS:
        body.update(_personal(seller, index, order, included))
    return body


def _included(request: Request, sandbox: AmazonSandbox) -> frozenset[str]:
    """The datasets asked for; personal ones are refused (403, as for any operation the app
    holds no role for) unless the app has the restricted roles."""
    included = frozenset(_list_param(request, "includedData"))
    if included & PERSONAL_DATASETS and not sandbox.app.restricted_roles:
        raise ApiError(403, "Unauthorized", "Access to requested resource is denied.")
    return included


async def search_orders(
    request: Request, sandbox: AmazonSandbox, seller: SellerData, _: dict[str, str]
) -> Response:
    now = sandbox.state.clock.now()
    page_size = _int_param(request, "maxResultsPerPage", 100, 1, 100)
    token = request.query_params.get("paginationToken")
    created_after = _time_param(request, "createdAfter")
    updated_after = _time_param(request, "lastUpdatedAfter")
    if (created_after is None) == (updated_after is None):
        raise ApiError(
            400, "InvalidInput", "Exactly one of createdAfter or lastUpdatedAfter is required."
        )
    marketplaces = set(_list_param(request, "marketplaceIds")) or set(seller.marketplaces)
    statuses = set(_list_param(request, "fulfillmentStatuses"))
    fulfilled_by = set(_list_param(request, "fulfilledBy"))
    start_key = None
    before_value = None
    if token:
        state = _decode_token(token, "paginationToken")
        try:
            start_key = (state["t"], state["id"])
            before_value = datetime.fromisoformat(state["before"])
        except (KeyError, TypeError, ValueError):
            raise ApiError(
                400, "InvalidInput", "We could not decode your paginationToken."
            ) from None
    if updated_after is not None:
        before = before_value or _check_before(
            _time_param(request, "lastUpdatedBefore"), now, "lastUpdatedBefore"
        )
        indexes = seller.orders_between(updated_after, before, start_key)
        before_key = "lastUpdatedBefore"
    else:
        assert created_after is not None
        before = before_value or _check_before(
            _time_param(request, "createdBefore"), now, "createdBefore"
        )
        indexes = sorted(
            seller.orders_created_between(created_after, before),
            key=lambda i: (seller.order_updated(i), seller.order_id(i)),
        )
        if start_key is not None:
            moment = datetime.fromisoformat(start_key[0])
            indexes = [
                i
                for i in indexes
                if (seller.order_updated(i), seller.order_id(i)) > (moment, start_key[1])
            ]
        before_key = "createdBefore"
    page: list[dict[str, Any]] = []
    last_index = None
    more = False
    included = _included(request, sandbox)
    for index in indexes:
        facts = seller.order(index)
        if facts["marketplace"] not in marketplaces:
            continue
        if statuses and facts["status"] not in statuses:
            continue
        if fulfilled_by and facts["fulfilledBy"] not in fulfilled_by:
            continue
        if len(page) == page_size:
            more = True
            break
        page.append(order_2026(seller, index, included))
        last_index = index
    body: dict[str, Any] = {"orders": page, before_key: iso(before)}
    if more and last_index is not None:
        body["pagination"] = {
            "nextToken": _encode_token(
                {
                    "t": seller.order_updated(last_index).isoformat(),
                    "id": seller.order_id(last_index),
                    "before": before.isoformat(),
                }
            )
        }
    return _ok(sandbox, request, body)


def _find_order(seller: SellerData, order_id: str) -> int:
    for index in range(seller.orders):
        if seller.order_id(index) == order_id:
            return index
    raise ApiError(404, "NotFound", f"Order {order_id} was not found.")


async def get_order_2026(
    request: Request, sandbox: AmazonSandbox, seller: SellerData, params: dict[str, str]
) -> Response:
    index = _find_order(seller, params["orderId"])
    return _ok(sandbox, request, {"order": order_2026(seller, index, _included(request, sandbox))})


# --- Orders v0 (deprecated, still served) ---------------------------------------------------


def order_v0(seller: SellerData, index: int) -> dict[str, Any]:
    order = seller.order(index)
    shipped = order["status"] == "SHIPPED"
    count = sum(item["quantity"] for item in order["items"])
    return {
        "AmazonOrderId": order["orderId"],
        "PurchaseDate": iso(order["created"]),
        "LastUpdateDate": iso(order["updated"]),
        "OrderStatus": seller.status_v0(order["status"]),
        "FulfillmentChannel": "AFN" if order["fulfilledBy"] == "AMAZON" else "MFN",
        "SalesChannel": MARKETPLACES[order["marketplace"]].name,
        "OrderTotal": {"CurrencyCode": order["currency"], "Amount": order["total"]},
        "NumberOfItemsShipped": count if shipped else 0,
        "NumberOfItemsUnshipped": 0 if shipped else count,
        "MarketplaceId": order["marketplace"],
        "IsBusinessOrder": False,
        "IsPrime": False,
    }


async def get_orders_v0(
    request: Request, sandbox: AmazonSandbox, seller: SellerData, _: dict[str, str]
) -> Response:
    now = sandbox.state.clock.now()
    marketplaces = set(_list_param(request, "MarketplaceIds", required=True))
    page_size = _int_param(request, "MaxResultsPerPage", 100, 1, 100)
    token = request.query_params.get("NextToken")
    start_key = None
    if token:
        state = _decode_token(token, "NextToken")
        start_key = (state["t"], state["id"])
        after = datetime.fromisoformat(state["after"])
        before = datetime.fromisoformat(state["before"])
    else:
        found = _time_param(request, "LastUpdatedAfter")
        if found is None or _time_param(request, "CreatedAfter") is not None:
            raise ApiError(
                400, "InvalidInput", "Exactly one of CreatedAfter or LastUpdatedAfter is required."
            )
        after = found
        before = _check_before(_time_param(request, "LastUpdatedBefore"), now, "LastUpdatedBefore")
    page: list[dict[str, Any]] = []
    last_index = None
    more = False
    for index in seller.orders_between(after, before, start_key):
        if seller.order(index)["marketplace"] not in marketplaces:
            continue
        if len(page) == page_size:
            more = True
            break
        page.append(order_v0(seller, index))
        last_index = index
    payload: dict[str, Any] = {"Orders": page, "LastUpdatedBefore": iso(before)}
    if more and last_index is not None:
        payload["NextToken"] = _encode_token(
            {
                "t": seller.order_updated(last_index).isoformat(),
                "id": seller.order_id(last_index),
                "after": after.isoformat(),
                "before": before.isoformat(),
            }
        )
    return _ok(sandbox, request, {"payload": payload})


async def get_order_items_v0(
    request: Request, sandbox: AmazonSandbox, seller: SellerData, params: dict[str, str]
) -> Response:
    order = seller.order(_find_order(seller, params["orderId"]))
    items = [
        {
            "ASIN": item["asin"],
            "SellerSKU": item["sku"],
            "OrderItemId": item["orderItemId"],
            "Title": item["title"],
            "QuantityOrdered": item["quantity"],
            "QuantityShipped": item["quantity"] if order["status"] == "SHIPPED" else 0,
            "ItemPrice": {
                "CurrencyCode": order["currency"],
                "Amount": f"{float(item['price']) * item['quantity']:.2f}",
            },
        }
        for item in order["items"]
    ]
    return _ok(
        sandbox,
        request,
        {"payload": {"AmazonOrderId": order["orderId"], "OrderItems": items}},
    )
