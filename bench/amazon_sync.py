"""Amazon connector at the SP-API's real limits (time-scaled): orders backfill throughput and
share of the rate-limit bound, 429s after warm-up, peak memory of a listings report, the
same orders backfill done by a plain python-amazon-sp-api loop as the peer, and the FBA
inventory stream (nextToken prefetch) at real time, as the demo runs it.

The sandbox runs as its own process (``hub sandbox serve``), so the peak RSS printed here is
the connector's alone. A time scale S makes every platform clock S times faster: searchOrders'
documented 0.0056 requests/s becomes 0.0056*S, with the burst of 20 unchanged.

    python bench/amazon_sync.py [--orders 6000] [--listings 1000000] [--time-scale 500]
                                [--fba-items 600]
"""

from __future__ import annotations

import argparse
import asyncio
import resource
import sys
import time
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from connectors.amazon.client import USAGE_PLANS, BucketRegistry  # noqa: E402
from connectors.amazon.connector import AmazonConfig, AmazonConnector  # noqa: E402
from connectors.amazon.reports import ReportPolling  # noqa: E402
from connectors.amazon.streams import StreamOptions  # noqa: E402
from connectors.base import (  # noqa: E402
    IntegrationRef,
    MemoryCredentialStore,
    StoredCredential,
)
from tests.sandbox_server import amazon_install, apps, control_headers, sandbox_process  # noqa: E402

US = "ATVPDKIKX0DER"
FBA_MARKETPLACES = (US, "A2EUQ1WTGCTBG2", "A1AM78C64UM0Y8")  # US, CA, MX


def seller(base: str, seller_id: str, **sizes: int) -> str:
    httpx.post(
        f"{base}/_sandbox/amazon/sellers",
        headers=control_headers(base),
        json={"selling_partner_id": seller_id, "marketplaces": [US], **sizes},
        timeout=60,
    ).raise_for_status()
    return amazon_install(base, seller_id)


def stats(base: str) -> dict[str, int]:
    return dict(httpx.get(f"{base}/_sandbox/amazon/stats", headers=control_headers(base)).json())


def connector(base: str) -> AmazonConnector:
    return AmazonConnector(
        AmazonConfig(
            apps(base).amazon_app_id, apps(base).amazon_client_id, apps(base).amazon_client_secret,
            f"{base}/amazon", options=StreamOptions(polling=ReportPolling(0.05, 1.0, 600)),
        ),
        buckets=BucketRegistry(),
    )  # fmt: skip


async def hub_orders(base: str, seller_id: str, refresh: str, scale: float) -> dict[str, Any]:
    amazon = connector(base)
    ref = IntegrationRef("bench", "amazon", selling_partner_id=seller_id, region="na",
                         marketplaces=(US,))  # fmt: skip
    store = MemoryCredentialStore(StoredCredential("refresh_token", refresh))
    before = stats(base)
    started = time.monotonic()
    orders = pages = 0
    warm_throttled = None
    rate, burst = USAGE_PLANS["searchOrders"]
    async for batch in amazon.read_stream(ref, store, "orders", None):
        pages += 1
        orders += sum(1 for r in batch.records if r.kind.value == "order")
        if pages == burst:
            warm_throttled = stats(base)["throttled"]
    elapsed = time.monotonic() - started
    after = stats(base)
    bound = burst + rate * scale * elapsed  # pages the bucket allows in that time
    return {
        "orders": orders,
        "pages": pages,
        "seconds": elapsed,
        "orders_per_s": orders / elapsed,
        "share_of_bound": min(pages, bound) / bound if pages > burst else 1.0,
        "throttled_after_warmup": after["throttled"] - (warm_throttled or before["throttled"]),
        "throttled_total": after["throttled"] - before["throttled"],
    }


def peer_orders(base: str, seller_id: str, refresh: str, scale: float) -> dict[str, Any] | str:
    """python-amazon-sp-api as its users write it: a page loop with ``@throttle_retry()``.

    Its defaults (10 tries, 5 s growing by 1.3x) are scaled by the time scale like every
    platform clock, so the peer meets the same ratios it meets against Amazon.
    """
    try:
        from sp_api.api import OrdersV20260101
        from sp_api.auth import AccessTokenClient, access_token_client
        from sp_api.base import SellingApiForbiddenException, SellingApiRequestThrottledException
        from sp_api.util import throttle_retry
    except ImportError:
        return "python-amazon-sp-api is not installed (pip install -e .[bench])"
    host = base.removeprefix("http://")

    class SandboxToken(AccessTokenClient):  # only the LWA host differs
        scheme, path = "http://", "/amazon/lwa/auth/o2/token"

    SandboxToken.host = host

    class Orders(OrdersV20260101):
        @property
        def headers(self) -> dict[str, str]:
            return {**super().headers, "host": host}

    client = Orders(
        refresh_token=refresh,
        credentials={"lwa_app_id": apps(base).amazon_client_id,
                     "lwa_client_secret": apps(base).amazon_client_secret},
        auth_token_client_class=SandboxToken,
    )  # fmt: skip
    client.endpoint = f"{base}/amazon/sp/na"

    @throttle_retry(tries=10, delay=5 / scale, rate=1.3)
    def page(**params: Any) -> Any:
        return client.search_orders(**params)

    before = stats(base)
    started = time.monotonic()
    orders = pages = 0
    token = None
    while True:
        params: dict[str, Any] = {"lastUpdatedAfter": "2020-01-01T00:00:00Z",
                                  "marketplaceIds": [US], "maxResultsPerPage": 100}  # fmt: skip
        if token:
            params["paginationToken"] = token
        try:
            response = page(**params)
        except SellingApiForbiddenException:
            # Its token cache keeps tokens 3200 real seconds; the scaled sandbox expires
            # them sooner. Drop the cache and go on, as a user of it would.
            access_token_client.cache.clear()
            continue
        except SellingApiRequestThrottledException:
            return f"gave up after 10 throttled retries on page {pages + 1}"
        pages += 1
        orders += len(response.payload.get("orders", []))
        token = response.next_token
        if not token:
            break
    elapsed = time.monotonic() - started
    return {
        "orders": orders,
        "pages": pages,
        "seconds": elapsed,
        "orders_per_s": orders / elapsed,
        "throttled_total": stats(base)["throttled"] - before["throttled"],
    }


async def listings_memory(base: str, seller_id: str, refresh: str) -> dict[str, Any]:
    amazon = connector(base)
    ref = IntegrationRef("bench-l", "amazon", selling_partner_id=seller_id, region="na",
                         marketplaces=(US,))  # fmt: skip
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    started = time.monotonic()
    rows = 0
    async for batch in amazon.read_stream(
        ref, MemoryCredentialStore(StoredCredential("refresh_token", refresh)), "listings", None
    ):
        rows += len(batch.records)
    elapsed = time.monotonic() - started
    return {
        "rows": rows,
        "seconds": elapsed,
        "rows_per_s": rows / elapsed,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "rss_before_mb": rss_before,
    }


async def hub_inventory(base: str, seller_id: str, refresh: str) -> dict[str, Any]:
    """The FBA stream over the seller's three NA marketplaces, 50 SKUs a page, each next page
    requested while the current one is handled (getInventorySummaries: 2/s, burst 2)."""
    amazon = connector(base)
    ref = IntegrationRef("bench-fba", "amazon", selling_partner_id=seller_id, region="na",
                         marketplaces=FBA_MARKETPLACES)  # fmt: skip
    before = stats(base)
    started = time.monotonic()
    rows = pages = 0
    async for batch in amazon.read_stream(
        ref, MemoryCredentialStore(StoredCredential("refresh_token", refresh)), "inventory", None
    ):
        rows += len(batch.records)
        pages += 1
    elapsed = time.monotonic() - started
    calls = stats(base)["requests"] - before["requests"]
    rate, burst = USAGE_PLANS["getInventorySummaries"]
    bound = burst + rate * elapsed
    return {
        "rows": rows,
        "calls": calls,
        "seconds": elapsed,
        "share_of_bound": min(calls, bound) / bound,
        "throttled": stats(base)["throttled"] - before["throttled"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--orders", type=int, default=6000)
    parser.add_argument("--listings", type=int, default=1_000_000)
    parser.add_argument("--time-scale", type=float, default=500.0)
    parser.add_argument("--fba-items", type=int, default=600, help="0 skips the FBA run")
    args = parser.parse_args()
    with sandbox_process(args.time_scale, seed=21) as base:
        hub_refresh = seller(base, "A1BENCHHUB", orders=args.orders, listings=10, fba_items=1)
        peer_refresh = seller(base, "A1BENCHPEER", orders=args.orders, listings=10, fba_items=1)
        big_refresh = seller(base, "A1BENCHLIST", orders=1, listings=args.listings, fba_items=1)
        time.sleep(300 / args.time_scale)  # the 2-minute rule: let every order become visible
        rate, burst = USAGE_PLANS["searchOrders"]
        print(f"time scale {args.time_scale:g}: searchOrders {rate * args.time_scale:.2f} "
              f"requests/s after a burst of {burst}")  # fmt: skip
        hub = asyncio.run(hub_orders(base, "A1BENCHHUB", hub_refresh, args.time_scale))
        print(f"hub orders backfill:  {hub['orders']} orders in {hub['pages']} pages, "
              f"{hub['seconds']:.1f} s, {hub['orders_per_s']:.0f} orders/s, "
              f"{hub['share_of_bound']:.1%} of the rate-limit bound, "
              f"429s after warm-up {hub['throttled_after_warmup']} "
              f"(total {hub['throttled_total']})")  # fmt: skip
        peer = peer_orders(base, "A1BENCHPEER", peer_refresh, args.time_scale)
        if isinstance(peer, str):
            print(f"peer (python-amazon-sp-api): {peer}")
        else:
            print(f"peer python-amazon-sp-api loop: {peer['orders']} orders in {peer['pages']} "
                  f"pages, {peer['seconds']:.1f} s, {peer['orders_per_s']:.0f} orders/s, "
                  f"429s {peer['throttled_total']}")  # fmt: skip
        listing = asyncio.run(listings_memory(base, "A1BENCHLIST", big_refresh))
        print(f"listings report:      {listing['rows']} rows in {listing['seconds']:.1f} s "
              f"({listing['rows_per_s']:.0f} rows/s incl. the sandbox generating it), "
              f"peak RSS {listing['peak_rss_mb']:.0f} MB "
              f"(before the report {listing['rss_before_mb']:.0f} MB)")  # fmt: skip

    if args.fba_items:
        # At real time, as `make run` serves it: at 500x its 2 requests/s never bind.
        with sandbox_process(1.0, seed=21) as base:
            httpx.post(
                f"{base}/_sandbox/amazon/sellers", headers=control_headers(base),
                json={"selling_partner_id": "A1BENCHFBA", "marketplaces": list(FBA_MARKETPLACES),
                      "orders": 1, "listings": args.fba_items, "fba_items": args.fba_items},
                timeout=60,
            ).raise_for_status()  # fmt: skip
            fba = asyncio.run(hub_inventory(base, "A1BENCHFBA", amazon_install(base, "A1BENCHFBA")))
        print(f"FBA inventory (1x):   {fba['rows']} rows in {fba['calls']} calls, "
              f"{fba['seconds']:.1f} s, {fba['share_of_bound']:.0%} of getInventorySummaries' "
              f"bound, 429s {fba['throttled']}")  # fmt: skip


if __name__ == "__main__":
    main()
