"""Amazon streams: orders (Orders API 2026-01-01 or v0), listings (Reports API); FBA inventory
lives beside them (``inventory``).

Each yields ``Batch``es whose cursor resumes exactly where the batch ended:
- orders: ``{"last_updated_after", "pagination_token"}``; a window ends at the
  ``lastUpdatedBefore`` Amazon answers (its own now minus two minutes), which becomes the
  next window's start, so no clock of ours is trusted. An order comes with all its items
  (``orderItems``, or every page of v0 getOrderItems), so its stored lines it no longer
  lists are gone (``ChildrenComplete``);
- listings: ``{"marketplace", "report_id", "rows_done", "done", "rows"}`` (``rows``: each finished
  marketplace's report rows, the platform's count at the end), so a crash mid-report
  resumes on the same report and skips the rows already stored;
- inventory: ``{"since", "done"}``; nextTokens live 30 s and are never checkpointed.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from connectors.amazon import reports
from connectors.amazon.client import SpApiClient
from connectors.amazon.regions import MARKETPLACES
from connectors.base import (
    Batch,
    ChildrenComplete,
    RecordError,
    RecordKind,
    SnapshotComplete,
    UnifiedRecord,
)
from connectors.errors import AuthError, PlatformError

log = logging.getLogger("connectors.amazon")
LISTINGS_REPORT = "GET_MERCHANT_LISTINGS_ALL_DATA"
ROWS_PER_BATCH = 1000
ORDER_DATASETS = ["PROCEEDS", "FULFILLMENT"]
# Buyer (name, email, company) and recipient (delivery address): personal data Amazon returns
# only to apps holding its restricted roles ("Access Orders PII", developer-docs), asked for
# only when HUB_AMAZON_BUYER_DATA=encrypted and never kept in ``raw``.
PERSONAL_DATASETS = {"BUYER": "buyer", "RECIPIENT": "recipient"}
ROLE_REFUSED = (
    "Amazon refused the buyer and recipient data (includedData BUYER, RECIPIENT): the app "
    "lacks the restricted roles for them (Direct-to-Consumer Delivery; Tax Invoicing or Tax "
    "Remittance). Get them approved in the developer profile, or set HUB_AMAZON_BUYER_DATA=off"
)


@dataclass(frozen=True)
class StreamOptions:
    backfill_days: int = 365
    orders_api: str = "v2026-01-01"
    report_reuse_minutes: float = 30.0  # 0: always a new report (a full resync asks for one)
    buyer_data: bool = False  # ask for BUYER and RECIPIENT (HUB_AMAZON_BUYER_DATA=encrypted)
    polling: reports.ReportPolling = field(default_factory=reports.ReportPolling)


def parse_time(value: Any) -> datetime | None:
    if not value or not isinstance(value, str):
        return None
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _iso_precise(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat()


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


# --- orders ---------------------------------------------------------------------------------


def order_records(order: dict[str, Any]) -> list[UnifiedRecord]:
    """An Orders API 2026-01-01 order and its items in the unified shape; its ``buyer`` and
    ``recipient``, when Amazon sent them, go to the order's ``protected`` part, not ``raw``."""
    personal = {
        key: order[key] for key in PERSONAL_DATASETS.values() if isinstance(order.get(key), dict)
    }
    order = {key: value for key, value in order.items() if key not in PERSONAL_DATASETS.values()}
    order_id = order["orderId"]
    updated = parse_time(order.get("lastUpdatedTime"))
    marketplace = (order.get("salesChannel") or {}).get("marketplaceId")
    total = ((order.get("proceeds") or {}).get("grandTotal")) or {}
    status = (order.get("fulfillment") or {}).get("fulfillmentStatus")
    records = [
        UnifiedRecord(
            RecordKind.ORDER,
            order_id,
            {
                "name": order_id,
                "fulfillment_status": status,
                "currency": total.get("currencyCode"),
                "total_price": total.get("amount"),
                "marketplace_id": marketplace,
                "placed_at": parse_time(order.get("createdTime")),
                "cancelled_at": updated if status == "CANCELLED" else None,
            },
            order,
            updated,
            protected=personal or None,
        )
    ]
    for item in order.get("orderItems") or []:
        product = item.get("product") or {}
        price = ((product.get("price") or {}).get("unitPrice")) or {}
        sku = product.get("sellerSku")
        records.append(
            UnifiedRecord(
                RecordKind.ORDER_LINE,
                str(item["orderItemId"]),
                {
                    "order_external_id": order_id,
                    "sku": sku,
                    "title": product.get("title"),
                    "quantity": int(item.get("quantityOrdered") or 0),
                    "price": price.get("amount"),
                    "product_external_id": f"{sku}@{marketplace}" if sku and marketplace else None,
                },
                item,
                updated,
            )
        )
    return records


def order_records_v0(order: dict[str, Any], items: list[dict[str, Any]]) -> list[UnifiedRecord]:
    """A deprecated Orders v0 order and its getOrderItems in the same unified shape."""
    order_id = order["AmazonOrderId"]
    updated = parse_time(order.get("LastUpdateDate"))
    marketplace = order.get("MarketplaceId")
    total = order.get("OrderTotal") or {}
    status = order.get("OrderStatus")
    records = [
        UnifiedRecord(
            RecordKind.ORDER,
            order_id,
            {
                "name": order_id,
                "fulfillment_status": status,
                "currency": total.get("CurrencyCode"),
                "total_price": total.get("Amount"),
                "marketplace_id": marketplace,
                "placed_at": parse_time(order.get("PurchaseDate")),
                "cancelled_at": updated if status == "Canceled" else None,
            },
            {**order, "OrderItems": items},
            updated,
        )
    ]
    for item in items:
        quantity = int(item.get("QuantityOrdered") or 0)
        amount = (item.get("ItemPrice") or {}).get("Amount")
        unit = f"{float(amount) / quantity:.2f}" if amount and quantity else amount
        sku = item.get("SellerSKU")
        records.append(
            UnifiedRecord(
                RecordKind.ORDER_LINE,
                str(item["OrderItemId"]),
                {
                    "order_external_id": order_id,
                    "sku": sku,
                    "title": item.get("Title"),
                    "quantity": quantity,
                    "price": unit,
                    "product_external_id": f"{sku}@{marketplace}" if sku and marketplace else None,
                },
                item,
                updated,
            )
        )
    return records


def _normalize(
    make: Any, raw: dict[str, Any], *args: Any
) -> tuple[list[UnifiedRecord], list[RecordError]]:
    try:
        return make(raw, *args), []
    except (KeyError, TypeError, ValueError) as error:
        external = raw.get("orderId") or raw.get("AmazonOrderId") if isinstance(raw, dict) else None
        return [], [RecordError(external, f"order could not be read: {error!r}", raw)]


async def read_orders(
    client: SpApiClient,
    marketplaces: list[str],
    cursor: dict[str, Any] | None,
    options: StreamOptions,
) -> AsyncIterator[Batch]:
    cursor = cursor or {}
    after = cursor.get("last_updated_after") or _iso(
        datetime.now(UTC) - timedelta(days=options.backfill_days)
    )
    token = cursor.get("pagination_token")
    done = 0
    v0 = options.orders_api == "v0"
    while True:
        if v0:
            params: dict[str, Any] = {"MarketplaceIds": marketplaces, "MaxResultsPerPage": 100}
            params.update({"NextToken": token} if token else {"LastUpdatedAfter": after})
        else:
            params = {
                "lastUpdatedAfter": after,
                "marketplaceIds": marketplaces,
                "maxResultsPerPage": 100,
                # Totals and status come only in these datasets; buyer and recipient only
                # when the hub is set to keep them (encrypted).
                "includedData": ORDER_DATASETS
                + (list(PERSONAL_DATASETS) if options.buyer_data else []),
            }
            if token:
                params["paginationToken"] = token
        try:
            if v0:
                body = (
                    await client.call("getOrders", "GET", "/orders/v0/orders", params=params)
                ).get("payload") or {}
            else:
                body = await client.call(
                    "searchOrders", "GET", "/orders/2026-01-01/orders", params=params
                )
        except AuthError as error:
            if options.buyer_data and not v0 and "lacks the role" in str(error):
                raise PlatformError(ROLE_REFUSED, status=403) from None
            raise
        except PlatformError as error:
            if token and error.status == 400:
                # Pagination tokens expire (24 h); the window restarts, upserts dedupe.
                log.warning("pagination token refused, restarting window from %s", after)
                token = None
                continue
            raise
        records: list[UnifiedRecord] = []
        errors: list[RecordError] = []
        complete: list[str] = []  # orders that came with every item
        orders = body.get("Orders" if v0 else "orders")
        if not isinstance(orders, list):
            raise PlatformError("orders response without an orders list")
        for order in orders:
            if v0:
                items = await _order_items_v0(client, order.get("AmazonOrderId", ""))
                found, failed = _normalize(order_records_v0, order, items)
            else:
                found, failed = _normalize(order_records, order)
            records.extend(found)
            errors.extend(failed)
            # searchOrders lists "all order items included in this order"; v0 read every page.
            if found and (v0 or isinstance(order.get("orderItems"), list)):
                complete.append(found[0].external_id)
        done += len(orders)
        token = body.get("NextToken") if v0 else (body.get("pagination") or {}).get("nextToken")
        if token:
            next_cursor: dict[str, Any] = {"last_updated_after": after, "pagination_token": token}
        else:
            window_end = body.get("LastUpdatedBefore" if v0 else "lastUpdatedBefore")
            next_cursor = {"last_updated_after": window_end or after}
        lines = ChildrenComplete(RecordKind.ORDER_LINE, tuple(complete)) if complete else None
        yield Batch(records, next_cursor, errors=errors, done=done, children_complete=lines)
        if not token:
            return


async def _order_items_v0(client: SpApiClient, order_id: str) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    token = None
    while True:
        body = await client.call(
            "getOrderItems",
            "GET",
            f"/orders/v0/orders/{order_id}/orderItems",
            params={"NextToken": token} if token else None,
        )
        payload = body.get("payload") or {}
        items.extend(payload.get("OrderItems") or [])
        token = payload.get("NextToken")
        if not token:
            return items


# --- listings (Reports API) -----------------------------------------------------------------


def listing_record(row: dict[str, str], marketplace: str) -> UnifiedRecord:
    sku = row["seller-sku"]
    if not sku:
        raise ValueError("row without seller-sku")
    quantity = (row.get("quantity") or "").strip()
    return UnifiedRecord(
        RecordKind.PRODUCT,
        f"{sku}@{marketplace}",
        {
            "title": row.get("item-name") or "",
            "sku": sku,
            "asin": row.get("asin1") or None,
            "price": row.get("price") or None,
            "currency": MARKETPLACES[marketplace].currency if marketplace in MARKETPLACES else None,
            "quantity": int(quantity) if quantity.isascii() and quantity.isdigit() else None,
            "status": (row.get("status") or "").lower() or None,
            "product_type": row.get("fulfillment-channel") or None,
        },
        dict(row),
    )


async def read_listings(
    client: SpApiClient,
    marketplaces: list[str],
    cursor: dict[str, Any] | None,
    options: StreamOptions,
) -> AsyncIterator[Batch]:
    """One GET_MERCHANT_LISTINGS_ALL_DATA report per marketplace: a full snapshot each run."""
    cursor = dict(cursor or {})
    # A complete snapshot starts over; an interrupted one skips marketplaces already stored.
    finished: list[str] = [] if cursor.get("complete") else list(cursor.get("done") or [])
    # Each finished marketplace's report rows (the platform's own count), kept across a resume.
    report_rows: dict[str, int] = {} if cursor.get("complete") else dict(cursor.get("rows") or {})
    done_rows = 0
    for marketplace in marketplaces:
        if marketplace in finished:
            continue
        resume = cursor.get("report_id") if cursor.get("marketplace") == marketplace else None
        skip = int(cursor.get("rows_done") or 0) if resume else 0
        report_id = resume
        report: dict[str, Any] | None = None
        if resume:
            try:
                report = await reports.wait_for_report(client, resume, options.polling)
            except PlatformError as error:
                if error.status != 404:
                    raise
                # The interrupted run's report is gone (expired on Amazon, or a restarted
                # sandbox): this marketplace starts over on a new report.
                log.warning("listings report %s for %s is gone (%s); starting over",
                            resume, marketplace, error)  # fmt: skip
                resume, report_id, skip = None, None, 0
        if report_id is None and options.report_reuse_minutes > 0:
            report_id = await reports.find_recent_report(
                client,
                LISTINGS_REPORT,
                marketplace,
                reports.reuse_since(options.report_reuse_minutes),
            )
        if report_id is None:
            report_id = await reports.create_report(client, LISTINGS_REPORT, marketplace)
            log.info("listings report %s requested for %s", report_id, marketplace)
        if report is None:
            report = await reports.wait_for_report(client, report_id, options.polling)
        status = report.get("processingStatus")
        if status == "FATAL":
            raise reports.ReportFailed(
                f"Amazon could not produce the listings report for {marketplace} (FATAL, "
                f"report {report_id}); the next scheduled run requests a new one"
            )
        rows_done = skip
        # When this marketplace's snapshot began being stored; a resumed run keeps it, so
        # rows stored before the crash still count as seen.
        started = (resume and cursor.get("started_at")) or _iso_precise(datetime.now(UTC))
        if status == "DONE" and report.get("reportDocumentId"):
            url, gzipped = await reports.document_url(client, report["reportDocumentId"])
            records: list[UnifiedRecord] = []
            errors: list[RecordError] = []
            async for row in reports.stream_rows(client, url, gzipped=gzipped, skip=skip):
                rows_done += 1
                try:
                    records.append(listing_record(row, marketplace))
                except (KeyError, ValueError) as error:
                    errors.append(RecordError(row.get("seller-sku"), f"listing row: {error}", row))
                if len(records) + len(errors) >= ROWS_PER_BATCH:
                    done_rows += len(records)
                    yield Batch(
                        records,
                        {
                            "marketplace": marketplace,
                            "report_id": report_id,
                            "rows_done": rows_done,
                            "done": finished,
                            "rows": report_rows,
                            "started_at": started,
                        },
                        errors=errors,
                        done=done_rows,
                    )
                    records, errors = [], []
            done_rows += len(records)
            finished = [*finished, marketplace]
            report_rows = {**report_rows, marketplace: rows_done}
            # The report lists every listing of the marketplace: the ones it did not store
            # again are gone from Amazon.
            snapshot = SnapshotComplete(
                RecordKind.PRODUCT, parse_time(started) or datetime.now(UTC), f"@{marketplace}"
            )
            yield Batch(
                records, {"done": finished, "rows": report_rows}, errors=errors, done=done_rows,
                snapshot=snapshot,
            )  # fmt: skip
        else:  # CANCELLED: Amazon had no listings to report for this marketplace
            finished = [*finished, marketplace]
            report_rows = {**report_rows, marketplace: 0}
            yield Batch([], {"done": finished, "rows": report_rows}, done=done_rows)
    # Every marketplace's report read to its end: a full pass, counted by Amazon's own rows.
    yield Batch(
        [], {"complete": True, "at": _iso(datetime.now(UTC))}, pages=0, done=done_rows,
        platform_count=sum(report_rows.values()),
    )  # fmt: skip
