"""Amazon's FBA inventory stream (getInventorySummaries): one ``inventory`` record per SKU and
marketplace. The cursor is ``{"since", "done"}``; nextTokens live 30 s and are never
checkpointed, so an expired one restarts its marketplace."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

from connectors.amazon.client import SpApiClient
from connectors.amazon.regions import MARKETPLACES
from connectors.amazon.streams import StreamOptions, _iso, parse_time
from connectors.base import Batch, RecordError, RecordKind, UnifiedRecord
from connectors.errors import PlatformError

log = logging.getLogger("connectors.amazon")
INVENTORY_OVERLAP = timedelta(minutes=10)


def inventory_record(summary: dict[str, Any], marketplace: str) -> UnifiedRecord:
    sku = summary["sellerSku"]
    details = summary.get("inventoryDetails") or {}
    reserved = (details.get("reservedQuantity") or {}).get("totalReservedQuantity")
    inbound = sum(
        int(details.get(name) or 0)
        for name in ("inboundWorkingQuantity", "inboundShippedQuantity", "inboundReceivingQuantity")
    )
    market = MARKETPLACES.get(marketplace)
    return UnifiedRecord(
        RecordKind.INVENTORY_LEVEL,
        f"{sku}@{marketplace}",
        {
            "inventory_item_id": summary.get("fnSku") or summary.get("asin") or sku,
            "location_id": marketplace,
            "location_name": f"FBA {market.country}" if market else "FBA",
            "sku": sku,
            "available": details.get("fulfillableQuantity"),
            "on_hand": summary.get("totalQuantity"),
            "reserved": reserved,
            "inbound": inbound if details else None,
        },
        summary,
        parse_time(summary.get("lastUpdatedTime")),
    )


async def read_inventory(
    client: SpApiClient,
    marketplaces: list[str],
    cursor: dict[str, Any] | None,
    options: StreamOptions,
) -> AsyncIterator[Batch]:
    cursor = cursor or {}
    since = cursor.get("since")
    finished: list[str] = list(cursor.get("done") or [])
    started = datetime.now(UTC)
    done = 0

    async def fetch(marketplace: str, token: str | None) -> dict[str, Any]:
        params: dict[str, Any] = {
            "details": True,
            "granularityType": "Marketplace",
            "granularityId": marketplace,
            "marketplaceIds": [marketplace],
        }
        if since:
            params["startDateTime"] = since
        if token:
            params["nextToken"] = token
        return await client.call(
            "getInventorySummaries", "GET", "/fba/inventory/v1/summaries", params=params
        )

    for marketplace in marketplaces:
        if marketplace in finished:
            continue
        restarts = 0
        next_page: asyncio.Task[dict[str, Any]] | None = None
        body = await fetch(marketplace, None)
        while True:
            summaries = (body.get("payload") or {}).get("inventorySummaries")
            if not isinstance(summaries, list):
                raise PlatformError("getInventorySummaries answered without inventorySummaries")
            token = (body.get("pagination") or {}).get("nextToken")
            # A nextToken dies 30 s after it was issued: ask for the next page now, while
            # this one is being stored, never after.
            next_page = asyncio.create_task(fetch(marketplace, token)) if token else None
            records, errors = [], []
            for summary in summaries:
                try:
                    records.append(inventory_record(summary, marketplace))
                except (KeyError, TypeError, ValueError) as error:
                    errors.append(RecordError(None, f"inventory summary: {error!r}", summary))
            done += len(summaries)
            if next_page is None:
                finished = [*finished, marketplace]
            try:
                # The nextToken is never checkpointed: a resumed run restarts the
                # marketplace, which upserts make harmless.
                yield Batch(records, {"since": since, "done": finished}, errors=errors, done=done)
                if next_page is None:
                    break
                try:
                    body = await next_page
                except PlatformError as error:
                    if error.status != 400 or restarts >= 2:
                        raise
                    restarts += 1
                    log.warning("FBA nextToken expired for %s, restarting it", marketplace)
                    body = await fetch(marketplace, None)
            finally:
                if next_page is not None and not next_page.done():
                    next_page.cancel()
    next_since = _iso(started - INVENTORY_OVERLAP)
    yield Batch([], {"since": next_since, "done": []}, pages=0, done=done)
