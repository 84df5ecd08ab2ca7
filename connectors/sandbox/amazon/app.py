"""Sandbox Amazon routes: Seller Central consent, LWA token endpoint, SP-API and the static
sandbox, each below the sandbox base as Amazon lays them out on its hosts:

``https://api.amazon.com`` -> ``{BASE}/amazon/lwa``;
``https://sellercentral[-europe].amazon.*`` -> ``{BASE}/amazon/sellercentral/{region}``;
``https://sellingpartnerapi-{region}.amazon.com`` -> ``{BASE}/amazon/sp/{region}``;
``https://sandbox.sellingpartnerapi-{region}.amazon.com`` -> ``{BASE}/amazon/sp-sandbox/{region}``.
"""

from __future__ import annotations

import asyncio
import base64
import html
import json
import random
import uuid
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlencode

from starlette.requests import Request
from starlette.responses import (
    HTMLResponse,
    JSONResponse,
    RedirectResponse,
    Response,
    StreamingResponse,
)
from starlette.routing import BaseRoute, Route

from connectors.amazon.regions import MARKETPLACES, REGIONS
from connectors.sandbox.amazon import spec
from connectors.sandbox.amazon.data import SellerData, iso
from connectors.sandbox.amazon.sandbox import (
    DEMO_SELLER,
    DEMO_SIZES,
    FBA_TOKEN_LIFETIME,
    FBA_TOKEN_MIN_REAL_SECONDS,
    GRANTLESS_SCOPES,
    AmazonSandbox,
    Grant,
)

Handler = Callable[[Request, AmazonSandbox, SellerData, dict[str, str]], Awaitable[Response]]
TWO_MINUTES = timedelta(minutes=2)


class ApiError(Exception):
    def __init__(self, status: int, code: str, message: str, details: str = "") -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.details = status, code, message, details


def errors_body(code: str, message: str, details: str = "") -> dict[str, Any]:
    return {"errors": [{"code": code, "message": message, "details": details}]}


def _request_id() -> str:
    return str(uuid.uuid4())


# --- query parameters, the way the models declare them --------------------------------------


def _param(request: Request, name: str, *, required: bool = False) -> str | None:
    value = request.query_params.get(name)
    if required and not value:
        raise ApiError(400, "InvalidInput", f"Missing required parameter: {name}.")
    return value


def _list_param(request: Request, name: str, *, required: bool = False) -> list[str]:
    values = [v for raw in request.query_params.getlist(name) for v in raw.split(",") if v]
    if required and not values:
        raise ApiError(400, "InvalidInput", f"Missing required parameter: {name}.")
    return values


def _time_param(request: Request, name: str) -> datetime | None:
    value = request.query_params.get(name)
    if value is None:
        return None
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise ApiError(400, "InvalidInput", f"Invalid {name}: {value} is not ISO 8601.") from None
    if moment.tzinfo is None:
        raise ApiError(400, "InvalidInput", f"Invalid {name}: a time zone is required.")
    return moment


def _int_param(request: Request, name: str, default: int, low: int, high: int) -> int:
    value = request.query_params.get(name)
    if value is None:
        return default
    try:
        number = int(value)
    except ValueError:
        raise ApiError(400, "InvalidInput", f"Invalid {name}: {value}.") from None
    if not low <= number <= high:
        raise ApiError(400, "InvalidInput", f"{name} must be between {low} and {high}.")
    return number


def _encode_token(data: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(data, separators=(",", ":")).encode()).decode()


def _decode_token(token: str, name: str) -> dict[str, Any]:
    try:
        data: dict[str, Any] = json.loads(base64.urlsafe_b64decode(token.encode()))
    except (ValueError, TypeError):
        raise ApiError(400, "InvalidInput", f"We could not decode your {name}.") from None
    return data


def _check_before(before: datetime | None, now: datetime, name: str) -> datetime:
    latest = now - TWO_MINUTES
    if before is None:
        return latest
    if before > latest:
        raise ApiError(
            400,
            "InvalidInput",
            "The most updated data is 2 minutes after an order is created or last updated. "
            f"{name} must be a date that is at least 2 minutes before current time.",
        )
    return before


# --- Orders v2026-01-01 ---------------------------------------------------------------------


ORDER_DATASETS = ("PROCEEDS", "FULFILLMENT")  # the includedData sets the sandbox fills in


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
    return body


def _included(request: Request) -> frozenset[str]:
    return frozenset(_list_param(request, "includedData"))


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
    included = _included(request)
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
    return _ok(sandbox, request, {"order": order_2026(seller, index, _included(request))})


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


# --- Reports --------------------------------------------------------------------------------

SUPPORTED_REPORTS = ("GET_MERCHANT_LISTINGS_ALL_DATA",)


async def create_report(
    request: Request, sandbox: AmazonSandbox, seller: SellerData, _: dict[str, str]
) -> Response:
    try:
        body = await request.json()
    except ValueError:
        raise ApiError(400, "InvalidInput", "The request body is not valid JSON.") from None
    report_type = body.get("reportType") if isinstance(body, dict) else None
    marketplace_ids = body.get("marketplaceIds") if isinstance(body, dict) else None
    if (
        not report_type
        or not isinstance(marketplace_ids, list)
        or not 1 <= len(marketplace_ids) <= 25
    ):
        raise ApiError(400, "InvalidInput", "reportType and 1 to 25 marketplaceIds are required.")
    if report_type not in SUPPORTED_REPORTS:
        raise ApiError(400, "InvalidInput", f"Report type {report_type} is not supported.")
    foreign = [m for m in marketplace_ids if m not in seller.marketplaces]
    if foreign:
        raise ApiError(
            400, "InvalidInput", f"Invalid marketplaceIds for this seller: {', '.join(foreign)}."
        )
    report = sandbox.create_report(seller.seller_id, seller.region, report_type, marketplace_ids)
    return _ok(sandbox, request, {"reportId": report.report_id}, status=202)


def _own_report(sandbox: AmazonSandbox, seller: SellerData, report_id: str) -> Any:
    report = sandbox.reports.get(report_id)
    if report is None or report.seller_id != seller.seller_id:
        raise ApiError(404, "NotFound", f"Report {report_id} was not found.")
    return report


async def get_report(
    request: Request, sandbox: AmazonSandbox, seller: SellerData, params: dict[str, str]
) -> Response:
    report = _own_report(sandbox, seller, params["reportId"])
    return _ok(sandbox, request, sandbox.report_body(report))


async def cancel_report(
    request: Request, sandbox: AmazonSandbox, seller: SellerData, params: dict[str, str]
) -> Response:
    report = _own_report(sandbox, seller, params["reportId"])
    if report.status(sandbox.state.clock.monotonic()) != "IN_QUEUE":
        raise ApiError(400, "InvalidInput", "Only reports that are IN_QUEUE can be cancelled.")
    report.cancelled = True
    return _ok(sandbox, request, None)


async def get_reports(
    request: Request, sandbox: AmazonSandbox, seller: SellerData, _: dict[str, str]
) -> Response:
    token = request.query_params.get("nextToken")
    if token:
        if len(request.query_params) > 1:
            raise ApiError(
                400, "InvalidInput", "When nextToken is given, no other parameter may be sent."
            )
        state = _decode_token(token, "nextToken")
        types, statuses, marketplaces = state["types"], state["statuses"], state["mps"]
        since, page_size, offset = state["since"], state["size"], state["offset"]
    else:
        types = _list_param(request, "reportTypes")
        statuses = _list_param(request, "processingStatuses")
        marketplaces = _list_param(request, "marketplaceIds")
        since_time = _time_param(request, "createdSince")
        since = (since_time or sandbox.state.clock.now() - timedelta(days=90)).isoformat()
        page_size = _int_param(request, "pageSize", 10, 1, 100)
        offset = 0
    now = sandbox.state.clock.monotonic()
    since_moment = datetime.fromisoformat(since)
    matching = [
        report
        for report in sorted(sandbox.reports.values(), key=lambda r: r.created_at, reverse=True)
        if report.seller_id == seller.seller_id
        and (not types or report.report_type in types)
        and (not statuses or report.status(now) in statuses)
        and (not marketplaces or set(report.marketplace_ids) & set(marketplaces))
        and report.created >= since_moment
    ]
    page = matching[offset : offset + page_size]
    body: dict[str, Any] = {"reports": [sandbox.report_body(r) for r in page]}
    if offset + page_size < len(matching):
        body["nextToken"] = _encode_token(
            {
                "types": types,
                "statuses": statuses,
                "mps": marketplaces,
                "since": since,
                "size": page_size,
                "offset": offset + page_size,
            }
        )
    return _ok(sandbox, request, body)


async def get_report_document(
    request: Request, sandbox: AmazonSandbox, seller: SellerData, params: dict[str, str]
) -> Response:
    report = sandbox.document_report(params["reportDocumentId"])
    if report is None or report.seller_id != seller.seller_id:
        raise ApiError(404, "NotFound", "The report document was not found.")
    expires, signature = sandbox.sign_document(params["reportDocumentId"])
    query = urlencode({"X-Amz-Expires": "300", "expires": expires, "signature": signature})
    # The pre-signed URL points at the sandbox's stand-in for S3, next to /sp/{region}.
    own_url = str(request.url).split("?", 1)[0]
    base = own_url[: own_url.rindex(f"/sp/{request.path_params['region']}/")]
    url = f"{base}/documents/{params['reportDocumentId']}"
    return _ok(
        sandbox,
        request,
        {
            "reportDocumentId": params["reportDocumentId"],
            "url": f"{url}?{query}",
            "compressionAlgorithm": "GZIP",
        },
    )


async def download_document(request: Request, sandbox: AmazonSandbox) -> Response:
    document_id = request.path_params["document_id"]
    problem = sandbox.check_document_signature(
        document_id,
        request.query_params.get("expires", ""),
        request.query_params.get("signature", ""),
    )
    report = sandbox.document_report(document_id)
    if problem or report is None:
        reason = problem or "The specified key does not exist."
        code = "NoSuchKey" if not problem else "AccessDenied"
        xml = (
            "<?xml version='1.0' encoding='UTF-8'?>"
            f"<Error><Code>{code}</Code><Message>{reason}</Message></Error>"
        )
        return Response(xml, status_code=403 if problem else 404, media_type="application/xml")
    charset, _ = sandbox.report_charset(report)
    return StreamingResponse(
        sandbox.report_chunks(report), media_type=f"text/plain;charset={charset}"
    )


# --- Listings Items -------------------------------------------------------------------------


def listing_item(seller: SellerData, index: int) -> dict[str, Any]:
    item = seller.listing(index)
    return {
        "sku": item["sku"],
        "summaries": [
            {
                "marketplaceId": item["marketplace"],
                "asin": item["asin"],
                "productType": "PRODUCT",
                "conditionType": "new_new",
                "status": ["BUYABLE", "DISCOVERABLE"] if item["status"] == "Active" else [],
                "itemName": item["title"],
                "createdDate": iso(item["opened"]),
                "lastUpdatedDate": iso(item["updated"]),
            }
        ],
    }


async def search_listings(
    request: Request, sandbox: AmazonSandbox, seller: SellerData, params: dict[str, str]
) -> Response:
    if params["sellerId"] != seller.seller_id:
        raise ApiError(403, "Unauthorized", "Access to requested resource is denied.")
    marketplaces = _list_param(request, "marketplaceIds", required=True)
    page_size = _int_param(request, "pageSize", 10, 1, 20)
    offset = (
        int(_decode_token(request.query_params["pageToken"], "pageToken")["o"])
        if request.query_params.get("pageToken")
        else 0
    )
    indexes = [i for m in marketplaces[:1] for i in seller.listings_in(m)]
    page = indexes[offset : offset + page_size]
    body: dict[str, Any] = {
        "numberOfResults": len(indexes),
        "items": [listing_item(seller, i) for i in page],
    }
    if offset + page_size < len(indexes):
        body["pagination"] = {"nextToken": _encode_token({"o": offset + page_size})}
    return _ok(sandbox, request, body)


async def get_listing(
    request: Request, sandbox: AmazonSandbox, seller: SellerData, params: dict[str, str]
) -> Response:
    if params["sellerId"] != seller.seller_id:
        raise ApiError(403, "Unauthorized", "Access to requested resource is denied.")
    _list_param(request, "marketplaceIds", required=True)
    sku = params["sku"]
    if sku.startswith("SKU-") and sku[4:].isdigit() and seller.listing_exists(int(sku[4:])):
        return _ok(sandbox, request, listing_item(seller, int(sku[4:])))
    raise ApiError(404, "NOT_FOUND", f"SKU '{sku}' not found in marketplace.")


# --- FBA inventory --------------------------------------------------------------------------


async def inventory_summaries(
    request: Request, sandbox: AmazonSandbox, seller: SellerData, _: dict[str, str]
) -> Response:
    if _param(request, "granularityType", required=True) != "Marketplace":
        raise ApiError(400, "InvalidInput", "granularityType must be Marketplace.")
    granularity_id = _param(request, "granularityId", required=True) or ""
    marketplaces = _list_param(request, "marketplaceIds", required=True)
    if len(marketplaces) != 1 or marketplaces[0] != granularity_id:
        raise ApiError(
            400, "InvalidInput", "One marketplaceId, equal to granularityId, is required."
        )
    details = request.query_params.get("details") == "true"
    now = sandbox.state.clock.monotonic()
    token = request.query_params.get("nextToken")
    if token:
        stored = sandbox.fba_tokens.pop(token, None)
        if stored is None or stored[0] < now:
            raise ApiError(400, "InvalidInput", "Next token is invalid or expired.")
        offset, since = stored[1]["offset"], stored[1]["since"]
    else:
        offset = 0
        start = _time_param(request, "startDateTime")
        since = start.isoformat() if start else None
    indexes = seller.fba_in(granularity_id)
    skus = set(_list_param(request, "sellerSkus"))
    summaries = [seller.inventory_summary(i) for i in indexes]
    if since is not None:
        moment = datetime.fromisoformat(since)
        summaries = [
            s
            for s in summaries
            if datetime.fromisoformat(s["lastUpdatedTime"].replace("Z", "+00:00")) >= moment
        ]
    elif skus:
        summaries = [s for s in summaries if s["sellerSku"] in skus]
    page = summaries[offset : offset + 50]
    if not details:
        for summary in page:
            summary.pop("inventoryDetails", None)
    body: dict[str, Any] = {
        "payload": {
            "granularity": {"granularityType": "Marketplace", "granularityId": granularity_id},
            "inventorySummaries": page,
        }
    }
    if offset + 50 < len(summaries):
        next_token = str(uuid.uuid4())
        sandbox.fba_tokens[next_token] = (
            now
            + max(FBA_TOKEN_LIFETIME, FBA_TOKEN_MIN_REAL_SECONDS * sandbox.state.clock.time_scale),
            {"offset": offset + 50, "since": since},
        )
        body["pagination"] = {"nextToken": next_token}
    return _ok(sandbox, request, body)


# --- Sellers --------------------------------------------------------------------------------


async def marketplace_participations(
    request: Request, sandbox: AmazonSandbox, seller: SellerData, _: dict[str, str]
) -> Response:
    payload = [
        {
            "marketplace": {
                "id": market.id,
                "name": market.name,
                "countryCode": market.country,
                "defaultCurrencyCode": market.currency,
                "defaultLanguageCode": market.language,
                "domainName": market.domain,
            },
            "participation": {"isParticipating": True, "hasSuspendedListings": False},
            "storeName": seller.store_name,
        }
        for market in (MARKETPLACES[m] for m in seller.marketplaces)
    ]
    return _ok(sandbox, request, {"payload": payload})


HANDLERS: dict[tuple[str, str], Handler] = {
    ("orders_2026-01-01", "searchOrders"): search_orders,
    ("orders_2026-01-01", "getOrder"): get_order_2026,
    ("ordersV0", "getOrders"): get_orders_v0,
    ("ordersV0", "getOrderItems"): get_order_items_v0,
    ("reports_2021-06-30", "createReport"): create_report,
    ("reports_2021-06-30", "getReport"): get_report,
    ("reports_2021-06-30", "getReports"): get_reports,
    ("reports_2021-06-30", "cancelReport"): cancel_report,
    ("reports_2021-06-30", "getReportDocument"): get_report_document,
    ("listingsItems_2021-08-01", "searchListingsItems"): search_listings,
    ("listingsItems_2021-08-01", "getListingsItem"): get_listing,
    ("fbaInventory", "getInventorySummaries"): inventory_summaries,
    ("sellers", "getMarketplaceParticipations"): marketplace_participations,
}


def _handler(operation: spec.Operation) -> Handler | None:
    model = operation.model.rsplit("/", 1)[-1].removesuffix(".json")
    return HANDLERS.get((model, operation.operation_id))


def _ok(sandbox: AmazonSandbox, request: Request, body: Any, status: int = 200) -> Response:
    headers = {"x-amzn-RequestId": _request_id()}
    operation = request.scope.get("sp_operation")
    if operation is not None:
        headers["x-amzn-RateLimit-Limit"] = sandbox.rate_header(operation)
    text = "" if body is None else json.dumps(body)
    if request.scope.get("sp_fault") == "malformed" and text:
        text = text[: max(1, len(text) // 2)]
    return Response(text, status_code=status, media_type="application/json", headers=headers)


def _error(error: ApiError, sandbox: AmazonSandbox, request: Request) -> Response:
    headers = {"x-amzn-RequestId": _request_id()}
    operation = request.scope.get("sp_operation")
    if operation is not None and error.status in (400, 404):  # never on 429/401/403
        headers["x-amzn-RateLimit-Limit"] = sandbox.rate_header(operation)
    return JSONResponse(
        errors_body(error.code, error.message, error.details),
        status_code=error.status,
        headers=headers,
    )


# --- the SP-API front door ------------------------------------------------------------------


async def sp_api(request: Request, sandbox: AmazonSandbox) -> Response:
    region = request.path_params["region"]
    path = "/" + request.path_params["path"]
    sandbox.stats["requests"] += 1
    try:
        if region not in REGIONS:
            raise ApiError(404, "NotFound", "Resource not found.")
        found = spec.find_operation(request.method, path)
        if found is None:
            raise ApiError(404, "NotFound", "Resource not found.")
        operation, params = found
        grant, problem = sandbox.token_problem(request.headers.get("x-amz-access-token"), region)
        if grant is None or grant.seller_id not in sandbox.sellers:
            sandbox.stats["refused"] += 1
            raise ApiError(
                403, "Unauthorized", "Access to requested resource is denied.", problem or ""
            )
        seller = sandbox.sellers[grant.seller_id]
        fault = sandbox.state.faults.pick("amazon", seller.seller_id)
        if fault == "error":
            status = random.Random(sandbox.stats["requests"]).choice((500, 502, 503))
            raise ApiError(
                status, "InternalFailure", "We encountered an internal error. Please try again."
            )
        if fault == "timeout":
            await sandbox.state.clock.sleep(120)
        if fault == "slow":
            await sandbox.state.clock.sleep(
                sandbox.state.faults.config("amazon", seller.seller_id).slow_seconds
            )
        bucket = sandbox.bucket(seller.seller_id, operation)
        if fault == "throttle":
            bucket.drain()
        if not bucket.try_take():
            sandbox.stats["throttled"] += 1
            raise ApiError(
                429, "QuotaExceeded", "You exceeded your quota for the requested resource."
            )
        request.scope["sp_operation"] = operation
        request.scope["sp_fault"] = fault
        handler = _handler(operation)
        if handler is None:  # the sandbox app holds no role for this operation
            raise ApiError(403, "Unauthorized", "Access to requested resource is denied.")
        return await handler(request, sandbox, seller, params)
    except ApiError as error:
        return _error(error, sandbox, request)


# --- the static sandbox (sandbox.sellingpartnerapi-*.amazon.com) ----------------------------


def _normalize(value: Any) -> Any:
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, list):
        return [_normalize(v) for v in value]
    if isinstance(value, dict):
        return {k: _normalize(v) for k, v in value.items()}
    return str(value)


async def _request_values(
    request: Request, operation: spec.Operation, path_params: dict[str, str]
) -> dict[str, Any]:
    values: dict[str, Any] = dict(path_params)
    for parameter in operation.parameters:
        name, where = str(parameter.get("name")), parameter.get("in")
        if where == "query" and name in request.query_params:
            given = request.query_params.getlist(name)
            if parameter.get("type") == "array":
                values[name] = [v for item in given for v in item.split(",")]
            else:
                values[name] = given[0]
        elif where == "header" and name.lower() in request.headers:
            values[name] = request.headers[name.lower()]
    raw = await request.body()
    if raw:
        try:
            body: Any = json.loads(raw)
        except ValueError:
            body = raw.decode(errors="replace")
        # Examples name the body by its declared parameter or, in some models, "body".
        for parameter in operation.parameters:
            if parameter.get("in") == "body":
                values[str(parameter.get("name"))] = body
        values.setdefault("body", body)
    return values


async def static_sandbox(request: Request) -> Response:
    """Answer as Amazon's static sandbox does: the model example whose request matches."""
    path = "/" + request.path_params["path"]
    found = spec.find_operation(request.method, path)
    if found is None or request.path_params["region"] not in REGIONS:
        return JSONResponse(errors_body("NotFound", "Resource not found."), status_code=404)
    operation, path_params = found
    values = _normalize(await _request_values(request, operation, path_params))
    best: tuple[int, int, Any] | None = None  # (matched parameters, status, response)
    for status, parameters, response in operation.static_examples():
        wanted = {  # a parameter given without a value constrains nothing
            name: _normalize(holder["value"])
            for name, holder in parameters.items()
            if "value" in holder
        }
        matches = all(values.get(name) == value for name, value in wanted.items())
        # The most specific example wins, as several may match a request; between equally
        # specific ones (getAccount has a 200 and a 400 without parameters) the first.
        if matches and (best is None or len(wanted) > best[0]):
            best = (len(wanted), status, response)
    if best is not None:
        _, status, response = best
        headers = {"x-amzn-RequestId": _request_id()}
        if 200 <= status < 300:
            headers["x-amzn-RateLimit-Limit"] = "5"
        if response is None:
            return Response(status_code=status, headers=headers)
        return JSONResponse(response, status_code=status, headers=headers)
    return JSONResponse(
        errors_body(
            "InvalidInput",
            "Could not match input arguments with any of the sandbox responses.",
        ),
        status_code=400,
    )


# --- Login with Amazon and Seller Central consent -------------------------------------------


def _oauth_error(error: str, description: str, status: int = 400) -> Response:
    return JSONResponse({"error": error, "error_description": description}, status_code=status)


async def lwa_token(request: Request, sandbox: AmazonSandbox) -> Response:
    form = await request.form()
    grant_type = str(form.get("grant_type", ""))
    if (
        form.get("client_id") != sandbox.app.client_id
        or form.get("client_secret") != sandbox.app.client_secret
    ):
        return _oauth_error("invalid_client", "Client authentication failed", 401)
    now = sandbox.state.clock.monotonic()
    if grant_type == "authorization_code":
        code = sandbox.codes.get(str(form.get("code", "")))
        if code is None or code.used or code.expires_at <= now:
            return _oauth_error(
                "invalid_grant", "The request has an invalid grant parameter : code"
            )
        if code.redirect_uri and form.get("redirect_uri") != code.redirect_uri:
            return _oauth_error(
                "invalid_grant", "The redirect_uri does not match the consent request"
            )
        code.used = True
        return JSONResponse(sandbox.issue_tokens(code, with_refresh=True))
    if grant_type == "refresh_token":
        refresh = sandbox.refresh_tokens.get(str(form.get("refresh_token", "")))
        if refresh is None or refresh.seller_id in sandbox.revoked:
            return _oauth_error(
                "invalid_grant",
                "The request has an invalid grant parameter : refresh_token. "
                "User may have revoked or didn't grant the permission.",
            )
        return JSONResponse(sandbox.issue_tokens(refresh, with_refresh=False))
    if grant_type == "client_credentials":
        scope = str(form.get("scope", ""))
        if not scope or not set(scope.split()) <= GRANTLESS_SCOPES:
            return _oauth_error("invalid_scope", "The requested scope is invalid or unknown")
        return JSONResponse(
            sandbox.issue_tokens(Grant(None, None, 0.0, scope=scope), with_refresh=False)
        )
    return _oauth_error("unsupported_grant_type", "The grant type is not supported")


CONSENT_PAGE = """<!doctype html><html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Authorize {app} - Seller Central (sandbox)</title>
<style>body{{font-family:system-ui,sans-serif;max-width:34rem;margin:2rem auto;padding:0 1rem}}
button{{font-size:1rem;padding:.6rem 1.2rem;margin-right:.5rem}}.box{{border:1px solid #ccc;
border-radius:8px;padding:1rem}}</style></head><body>
<p><small>Amazon Seller Central &middot; sandbox &middot; region {region}</small></p>
<div class="box"><h1>Authorize {app}</h1>
<p>Signed in as <strong>{store}</strong> (selling partner {seller}).</p>
<p>{app} asks to access your selling partner data in this region through the Selling
Partner API: orders, listings, reports and FBA inventory.</p>
<form method="post"><input type="hidden" name="selling_partner_id" value="{seller}">
<button name="decision" value="approve" type="submit">Confirm</button>
<button name="decision" value="deny" type="submit">Cancel</button></form></div></body></html>"""


def _consent_error(code: str, message: str) -> Response:
    return HTMLResponse(
        f"<!doctype html><html lang='en'><meta charset='utf-8'><title>Error {code}</title>"
        f"<body><h1>We could not authorize the application</h1><p>Error code: <strong>{code}"
        f"</strong></p><p>{html.escape(message)}</p></body></html>",
        status_code=400,
    )


async def consent(request: Request, sandbox: AmazonSandbox) -> Response:
    region = request.path_params["region"]
    params = request.query_params
    if region not in REGIONS:
        return _consent_error("MD9100", "Unknown Seller Central region.")
    if params.get("application_id") != sandbox.app.app_id:
        return _consent_error("MD1100", "The application id is not valid.")
    if sandbox.app.draft and params.get("version") != "beta":
        return _consent_error(
            "MD1000", "The application is in draft state: the request must include version=beta."
        )
    redirect_uri = params.get("redirect_uri")
    registered = sandbox.app.redirect_uris
    if redirect_uri is None and registered:
        redirect_uri = registered[0]
    if redirect_uri is None or (registered is not None and redirect_uri not in registered):
        return _consent_error(
            "MD5101", "The redirect URI is not one of the application's registered redirect URIs."
        )
    seller = sandbox.default_seller(region)
    if request.method == "GET":
        page = CONSENT_PAGE.format(
            app="Connector Hub",
            region=region.upper(),
            store=html.escape(seller.store_name),
            seller=html.escape(seller.seller_id),
        )
        return HTMLResponse(page)
    form = await request.form()
    seller_id = str(form.get("selling_partner_id") or seller.seller_id)
    if seller_id not in sandbox.sellers or sandbox.sellers[seller_id].region != region:
        return _consent_error("MD9100", "Unknown selling partner for this region.")
    if form.get("decision") != "approve":
        return HTMLResponse(
            "<!doctype html><html lang='en'><meta charset='utf-8'><title>Not authorized</title>"
            "<body><h1>You did not authorize the application</h1><p>You can close this page."
            "</p></body></html>"
        )
    sandbox.authorize(seller_id)
    code = sandbox.issue_code(seller_id, region, redirect_uri)
    query = urlencode(
        {
            "state": params.get("state", ""),
            "selling_partner_id": seller_id,
            "spapi_oauth_code": code,
        }
    )
    separator = "&" if "?" in redirect_uri else "?"
    return RedirectResponse(f"{redirect_uri}{separator}{query}", status_code=302)


def build_routes(sandbox: AmazonSandbox) -> list[BaseRoute]:
    """Routes below ``{BASE}/amazon``."""

    def bound(endpoint: Callable[[Request, AmazonSandbox], Awaitable[Response]]) -> Any:
        async def call(request: Request) -> Response:
            return await endpoint(request, sandbox)

        return call

    every = ["GET", "POST", "PUT", "PATCH", "DELETE"]
    return [
        Route("/lwa/auth/o2/token", bound(lwa_token), methods=["POST"]),
        Route(
            "/sellercentral/{region:str}/apps/authorize/consent",
            bound(consent),
            methods=["GET", "POST"],
        ),
        Route("/sp/{region:str}/{path:path}", bound(sp_api), methods=every),
        Route("/sp-sandbox/{region:str}/{path:path}", static_sandbox, methods=every),
        Route("/documents/{document_id:str}", bound(download_document), methods=["GET"]),
    ]


# --- control API ----------------------------------------------------------------------------


def control_routes(sandbox: AmazonSandbox) -> list[BaseRoute]:
    async def create_seller(request: Request) -> Response:
        body = await request.json()
        seller_id = str(body.pop("selling_partner_id", "") or "")
        if not seller_id.isalnum() or not 8 <= len(seller_id) <= 20:
            return JSONResponse(
                {"error": "selling_partner_id must be 8-20 letters/digits"}, status_code=400
            )
        try:
            seller = sandbox.create_seller(
                seller_id,
                body.pop("region", "na"),
                body.pop("marketplaces", None),
                **body,
            )
        except (TypeError, ValueError) as error:
            return JSONResponse({"error": str(error)}, status_code=400)
        return JSONResponse(
            {
                "selling_partner_id": seller.seller_id,
                "region": seller.region,
                "marketplaces": list(seller.marketplaces),
                "orders": seller.orders,
                "listings": seller.listings,
                "fba_items": seller.fba_items,
            },
            status_code=201,
        )

    def seller_or_404(request: Request) -> str | Response:
        seller_id = request.path_params["seller"]
        if seller_id not in sandbox.sellers:
            return JSONResponse({"error": "unknown seller"}, status_code=404)
        return seller_id

    async def truth(request: Request) -> Response:
        seller_id = seller_or_404(request)
        if isinstance(seller_id, Response):
            return seller_id
        streams = await asyncio.to_thread(sandbox.truth, seller_id)
        return JSONResponse({"selling_partner_id": seller_id, "streams": streams})

    async def mutate(request: Request) -> Response:
        seller_id = seller_or_404(request)
        if isinstance(seller_id, Response):
            return seller_id
        body = await request.json()
        return JSONResponse(
            sandbox.mutate(
                seller_id,
                updates=int(body.get("updates", 0)),
                new_orders=int(body.get("new_orders", 0)),
                delete_listings=int(body.get("delete_listings", 0)),
            )
        )

    async def revoke(request: Request) -> Response:
        seller_id = seller_or_404(request)
        if isinstance(seller_id, Response):
            return seller_id
        sandbox.revoke(seller_id)
        return JSONResponse({"revoked": seller_id})

    async def expire_tokens(request: Request) -> Response:
        seller_id = seller_or_404(request)
        if isinstance(seller_id, Response):
            return seller_id
        return JSONResponse({"expired": sandbox.expire_access_tokens(seller_id)})

    async def report_outcome(request: Request) -> Response:
        seller_id = seller_or_404(request)
        if isinstance(seller_id, Response):
            return seller_id
        outcome = (await request.json()).get("outcome")
        if outcome not in (None, "DONE", "CANCELLED", "FATAL"):
            return JSONResponse(
                {"error": "outcome must be DONE, CANCELLED, FATAL or null"}, status_code=400
            )
        if outcome is None:
            sandbox.report_outcomes.pop(seller_id, None)
        else:
            sandbox.report_outcomes[seller_id] = outcome
        return JSONResponse({"selling_partner_id": seller_id, "outcome": outcome})

    async def configure_app(request: Request) -> Response:
        body = await request.json()
        if "draft" in body:
            sandbox.app.draft = bool(body["draft"])
        if "redirect_uris" in body:
            uris = body["redirect_uris"]
            if uris is not None and not (
                isinstance(uris, list) and all(isinstance(u, str) for u in uris)
            ):
                return JSONResponse(
                    {"error": "redirect_uris must be a list of URLs or null"}, status_code=400
                )
            sandbox.app.redirect_uris = uris
        sandbox.state.remember()
        return JSONResponse(
            {
                "app_id": sandbox.app.app_id,
                "draft": sandbox.app.draft,
                "redirect_uris": sandbox.app.redirect_uris,
            }
        )

    async def stats(_: Request) -> Response:
        return JSONResponse(sandbox.stats)

    seller = "/amazon/sellers/{seller:str}"
    return [
        Route("/amazon/sellers", create_seller, methods=["POST"]),
        Route(f"{seller}/truth", truth, methods=["GET"]),
        Route(f"{seller}/mutate", mutate, methods=["POST"]),
        Route(f"{seller}/revoke", revoke, methods=["POST"]),
        Route(f"{seller}/expire-tokens", expire_tokens, methods=["POST"]),
        Route(f"{seller}/report-outcome", report_outcome, methods=["PUT"]),
        Route("/amazon/app", configure_app, methods=["PUT"]),
        Route("/amazon/stats", stats, methods=["GET"]),
    ]


def seed_demo(sandbox: AmazonSandbox) -> None:
    """Create the demo seller unless a restarted sandbox has it already (from its state file:
    same parameters and creation time, same data)."""
    if DEMO_SELLER not in sandbox.sellers:
        sandbox.create_seller(
            DEMO_SELLER, "na", None, store_name="Demo Outdoor Co. (Amazon)", **DEMO_SIZES
        )


async def run_demo_changes(sandbox: AmazonSandbox, stop: asyncio.Event) -> None:
    """A new order now and then and a few updates, so the dashboard shows activity."""
    while not stop.is_set():
        try:
            await asyncio.wait_for(stop.wait(), timeout=30)
        except TimeoutError:
            if DEMO_SELLER in sandbox.sellers:
                sandbox.mutate(DEMO_SELLER, updates=2, new_orders=1)
