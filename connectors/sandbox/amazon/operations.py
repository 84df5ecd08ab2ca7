"""Sandbox Amazon's Selling Partner API operations, served with data below
``{BASE}/amazon/sp/{region}`` (``https://sellingpartnerapi-{region}.amazon.com``): Orders,
Reports, Listings Items, FBA inventory and Sellers, with per-operation rate limits."""


from __future__ import annotations

import random
import uuid
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlencode

from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

from connectors.amazon.regions import MARKETPLACES, REGIONS
from connectors.sandbox.amazon import spec
from connectors.sandbox.amazon.data import SellerData, iso
from connectors.sandbox.amazon.orders import (
    get_order_2026,
    get_order_items_v0,
    get_orders_v0,
    search_orders,
)
from connectors.sandbox.amazon.responses import (
    ApiError,
    Handler,
    _decode_token,
    _encode_token,
    _error,
    _int_param,
    _list_param,
    _ok,
    _param,
    _time_param,
)
from connectors.sandbox.amazon.sandbox import (
    FBA_TOKEN_LIFETIME,
    FBA_TOKEN_MIN_REAL_SECONDS,
    AmazonSandbox,
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
