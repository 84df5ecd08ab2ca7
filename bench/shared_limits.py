"""Benchmark: several processes syncing the same Shopify shop and the same Amazon seller.

Each process (a real OS process, as hub workers are) reads the shop's products stream and the
seller's FBA inventory stream over and over, through the real connectors, against one
sandbox at real time (in a server thread of the parent, which only waits). With ``--store
redis`` (the hub with REDIS_URL) they share one rate limit per account through Redis; with
``--store process`` each keeps its own, as before issue 16. Prints the share of each
account's rate-limit bound the processes used together, and the THROTTLED / 429 answers the
sandbox gave:

    python bench/shared_limits.py [--processes 4] [--seconds 20] [--store redis|process]
                                  [--redis-url redis://127.0.0.1:6379/0]

The bound over the T seconds from the common start (what was answered by then counts): Shopify's
``maximumAvailable + restoreRate * T`` points; getInventorySummaries' ``burst + rate * T``
calls. Figures only, no assertions (tests/test_shared_limits.py asserts).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # `python bench/x.py` puts bench/, not the root, on the path

from connectors import metrics  # noqa: E402
from connectors.amazon.client import USAGE_PLANS, BucketRegistry  # noqa: E402
from connectors.amazon.connector import AmazonConfig, AmazonConnector  # noqa: E402
from connectors.base import IntegrationRef, MemoryCredentialStore, StoredCredential  # noqa: E402
from connectors.errors import RateLimited  # noqa: E402
from connectors.ratelimit import (  # noqa: E402
    TokenBucket,
    use_store,
)
from connectors.sandbox.amazon.spec import find_operation  # noqa: E402
from connectors.sandbox.shopify.data import PLANS  # noqa: E402
from connectors.sandbox.shopify.graphql_api import admin_schema  # noqa: E402
from connectors.sandbox.shopify.sandbox import Bucket  # noqa: E402
from connectors.shared_limits import RedisLimits  # noqa: E402
from connectors.shopify.connector import ShopifyConfig, ShopifyConnector  # noqa: E402
from tests.sandbox_server import (  # noqa: E402
    amazon_install,
    apps,
    control_headers,
    running_sandbox,
    shopify_install,
)

SHOP = "bench-shared.myshopify.com"
SELLER = "A1BENCHSHARED"
SCOPES = "read_products"
FBA_MARKETPLACES = ("ATVPDKIKX0DER", "A2EUQ1WTGCTBG2", "A1AM78C64UM0Y8")  # US, CA, MX
FIGURES = "FIGURES "
READY = "READY"
PLAN = "standard"
OPERATION = "getInventorySummaries"


# --- one worker process --------------------------------------------------------------------------


def _counter(counter: Any, **labels: str) -> float:
    """The sum of a prometheus counter's samples whose labels match."""
    total = 0.0
    for family in counter.collect():
        for sample in family.samples:
            if sample.name.endswith("_total") and all(
                sample.labels.get(k) == v for k, v in labels.items()
            ):
                total += sample.value
    return total


async def _keep_reading(read: Any, deadline: float) -> int:
    """Read a stream from the start again and again until ``deadline``; how many reads gave
    up, throttled too often (as a sync run would fail)."""
    gave_up = 0
    while time.time() < deadline:
        try:
            async for _ in read():
                if time.time() >= deadline:
                    break
        except RateLimited:
            gave_up += 1
    return gave_up


async def work(spec: dict[str, Any]) -> dict[str, Any]:
    store = RedisLimits(spec["redis_url"], prefix=spec["prefix"]) if spec["redis_url"] else None
    use_store(store)
    base = spec["base"]
    shopify = ShopifyConnector(
        ShopifyConfig(spec["shopify_client_id"], spec["shopify_client_secret"], (SCOPES,),
                      f"{base}/shopify", reconcile_every=None),
    )  # fmt: skip
    amazon = AmazonConnector(
        AmazonConfig(spec["amazon_app_id"], spec["amazon_client_id"],
                     spec["amazon_client_secret"], f"{base}/amazon"),
        buckets=BucketRegistry(),
    )  # fmt: skip
    shop = IntegrationRef("bench-shop", "shopify", shop_domain=SHOP)
    shop_store = MemoryCredentialStore(StoredCredential("access_token", spec["token"], [SCOPES]))
    seller = IntegrationRef("bench-seller", "amazon", selling_partner_id=SELLER, region="na",
                            marketplaces=FBA_MARKETPLACES)  # fmt: skip
    seller_store = MemoryCredentialStore(StoredCredential("refresh_token", spec["refresh"]))
    # The access token first (the token endpoint is not the limit under test), and a
    # connection to each platform; their points and calls are not the run's.
    await amazon.token_flow(seller_store).access_token()
    await shopify.fetch_shop(SHOP, shop_store)
    points_before = _counter(metrics.SHOPIFY_COST_POINTS)
    # Ready: the parent answers with the common start once every worker is.
    print(READY, flush=True)
    start_at = float(await asyncio.to_thread(sys.stdin.readline))
    await asyncio.sleep(max(0.0, start_at - time.time()))
    deadline = start_at + spec["seconds"]

    async def at_deadline() -> tuple[float, float]:
        """What was answered by the deadline (the readers then finish their pages)."""
        await asyncio.sleep(max(0.0, deadline - time.time()))
        return (
            _counter(metrics.SHOPIFY_COST_POINTS) - points_before,
            _counter(metrics.PLATFORM_REQUESTS, operation=OPERATION, status="200"),
        )

    snapshot = asyncio.ensure_future(at_deadline())
    gave_up = await asyncio.gather(
        _keep_reading(lambda: shopify.read_stream(shop, shop_store, "products", None), deadline),
        _keep_reading(
            lambda: amazon.read_stream(seller, seller_store, "inventory", None), deadline
        ),
    )
    if store is not None:
        await store.aclose()
    points, calls = await snapshot
    return {"points": points, "calls": calls, "gave_up": sum(gave_up)}


# --- the parent: a sandbox, the accounts, N workers ---------------------------------------------


class OverflowMeter:
    """Refill a sandbox bucket discarded because it was full, between ``start`` and ``end``
    (on the sandbox's clock): the share of the account's rate that nobody used."""

    def __init__(
        self,
        refill: Callable[..., None],
        *,
        now: Callable[[tuple[Any, ...]], float],
        level: Callable[[], float],
        capacity: float,
        rate: Callable[[], float],
        updated: Callable[[], float],
    ) -> None:
        self.start: float | None = None
        self.end = float("inf")
        self.overflow = 0.0

        def metered(*args: Any) -> None:
            at = now(args)
            if self.start is not None and updated() < self.end:
                counted_from = max(updated(), self.start)
                restored = max(0.0, min(at, self.end) - counted_from) * rate()
                self.overflow += max(0.0, restored - (capacity - level()))
            refill(*args)

        self.metered = metered

    @classmethod
    def of_shop(cls, bucket: Bucket) -> OverflowMeter:
        meter = cls(
            bucket.refill, now=lambda args: float(args[0]), level=lambda: bucket.available,
            capacity=bucket.maximum, rate=lambda: bucket.restore_rate,
            updated=lambda: bucket.updated,
        )  # fmt: skip
        bucket.refill = meter.metered  # type: ignore[method-assign,assignment]
        return meter

    @classmethod
    def of_operation(cls, bucket: TokenBucket, clock: Callable[[], float]) -> OverflowMeter:
        meter = cls(
            bucket._refill, now=lambda _: clock(), level=lambda: bucket.tokens,
            capacity=bucket.burst, rate=lambda: bucket.rate, updated=lambda: bucket._updated,
        )  # fmt: skip
        bucket._refill = meter.metered  # type: ignore[method-assign]
        return meter


def _stats(base: str, platform: str) -> dict[str, int]:
    response = httpx.get(f"{base}/_sandbox/{platform}/stats", headers=control_headers(base))
    return dict(response.raise_for_status().json())


def measure(
    *, processes: int, seconds: float, redis_url: str | None, products: int = 300
) -> dict[str, Any]:
    """Run ``processes`` workers for ``seconds`` on one shop and one seller; the figures."""
    prefix = f"hub:limits:bench:{uuid.uuid4().hex[:8]}"
    # In a server thread of this process, which only waits for the workers meanwhile.
    with running_sandbox(seed=16, time_scale=1.0) as (base, app):
        httpx.post(
            f"{base}/_sandbox/shopify/shops", headers=control_headers(base),
            json={"shop": SHOP, "products": products, "variants_per_product": 2, "orders": 1,
                  "customers": 1, "plan": PLAN},
            timeout=60,
        ).raise_for_status()  # fmt: skip
        token = shopify_install(base, SHOP, scopes=SCOPES)
        admin_schema()  # built on first use: not part of the run
        clock = app.state.sandbox.clock
        inventory = find_operation("GET", "/fba/inventory/v1/summaries")
        assert inventory is not None
        meters = {
            "shopify": OverflowMeter.of_shop(app.state.sandbox.extras["shopify"].buckets[SHOP]),
            "amazon": OverflowMeter.of_operation(
                app.state.sandbox.extras["amazon"].bucket(SELLER, inventory[0]),
                clock.monotonic,
            ),
        }
        httpx.post(
            f"{base}/_sandbox/amazon/sellers", headers=control_headers(base),
            json={"selling_partner_id": SELLER, "marketplaces": list(FBA_MARKETPLACES),
                  "orders": 1, "listings": 600, "fba_items": 600},
            timeout=60,
        ).raise_for_status()  # fmt: skip
        refresh = amazon_install(base, SELLER)
        sandbox_apps = apps(base)
        before = {p: _stats(base, p) for p in ("shopify", "amazon")}
        spec = {
            "base": base, "token": token, "refresh": refresh, "redis_url": redis_url,
            "prefix": prefix, "seconds": seconds,
            "shopify_client_id": sandbox_apps.shopify_client_id,
            "shopify_client_secret": sandbox_apps.shopify_client_secret,
            "amazon_app_id": sandbox_apps.amazon_app_id,
            "amazon_client_id": sandbox_apps.amazon_client_id,
            "amazon_client_secret": sandbox_apps.amazon_client_secret,
        }  # fmt: skip
        workers = [
            subprocess.Popen(  # this very script, as a worker
                [sys.executable, __file__, "--worker", json.dumps(spec)],
                cwd=ROOT,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
                env={**os.environ, "PYTHONPATH": str(ROOT)},
            )
            for _ in range(processes)
        ]
        for worker in workers:  # imported, signed in: the start is the same for all
            assert worker.stdout is not None
            if worker.stdout.readline().strip() != READY:
                raise RuntimeError(f"a worker failed to start: {worker.communicate()[1][-2000:]}")
        start_at = time.time() + 0.2
        for meter in meters.values():
            meter.start = clock.monotonic() + 0.2
            meter.end = meter.start + seconds
        for worker in workers:
            assert worker.stdin is not None
            worker.stdin.write(f"{start_at}\n")
            worker.stdin.flush()
        figures = []
        for worker in workers:
            out, err = worker.communicate(timeout=seconds + 120)
            found = [ln for ln in out.splitlines() if ln.startswith(FIGURES)]
            if worker.returncode or not found:
                raise RuntimeError(f"a worker failed ({worker.returncode}): {err[-2000:]}")
            figures.append(json.loads(found[-1].removeprefix(FIGURES)))
        after = {p: _stats(base, p) for p in ("shopify", "amazon")}
    if redis_url:
        asyncio.run(_clear(redis_url, prefix))
    restore = PLANS[PLAN][1]
    maximum = restore * 20  # the sandbox's bucket size, as Shopify's: 20 s of refill
    rate, burst = USAGE_PLANS[OPERATION]
    shopify_window = amazon_window = seconds
    points = sum(f["points"] for f in figures)
    calls = sum(f["calls"] for f in figures)
    shopify_bound = maximum + restore * shopify_window
    amazon_bound = burst + rate * amazon_window
    return {
        "processes": processes,
        "store": "redis" if redis_url else "process",
        "shopify_points": points,
        "shopify_bound": shopify_bound,
        "shopify_share": points / shopify_bound,
        # Shopify charges the requested cost up front and refunds the rest: a bucket never
        # runs below the next query's requested cost, so over a short window that much of
        # the bound stays unspent however well the processes share. The refill nobody
        # used (overflow of a full bucket) is what sharing it well must keep near zero.
        "shopify_refill_used": 1 - meters["shopify"].overflow / (restore * seconds),
        "shopify_requests": after["shopify"]["requests"] - before["shopify"]["requests"],
        "shopify_throttled": after["shopify"]["throttled"] - before["shopify"]["throttled"],
        "amazon_calls": calls,
        "amazon_bound": amazon_bound,
        "amazon_share": calls / amazon_bound,
        # Calls in flight at the deadline are the processes' too: the refill nobody used is
        # what sharing the bucket well must keep near zero.
        "amazon_refill_used": 1 - meters["amazon"].overflow / (rate * seconds),
        "amazon_throttled": after["amazon"]["throttled"] - before["amazon"]["throttled"],
        "seconds": seconds,
        "reads_gave_up": sum(f["gave_up"] for f in figures),
    }


async def _clear(redis_url: str, prefix: str) -> None:
    store = RedisLimits(redis_url, prefix=prefix)
    await store.clear()
    await store.aclose()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--processes", type=int, default=4)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--store", choices=("redis", "process"), default="redis")
    parser.add_argument(
        "--redis-url", default=os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")
    )
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        print(FIGURES + json.dumps(asyncio.run(work(json.loads(args.worker)))))
        return 0
    f = measure(
        processes=args.processes,
        seconds=args.seconds,
        redis_url=args.redis_url if args.store == "redis" else None,
    )
    print(f"{f['processes']} processes, buckets in {f['store']}, {f['seconds']:.1f} s")
    print(
        f"Shopify {SHOP} ({PLAN}): {f['shopify_points']:,.0f} points of a {f['shopify_bound']:,.0f}"
        f"-point bound = {f['shopify_share']:.1%}, {f['shopify_refill_used']:.1%} of the "
        f"refill used; {f['shopify_requests']} requests, "
        f"{f['shopify_throttled']} THROTTLED"
    )
    print(
        f"SP-API {SELLER} {OPERATION}: {f['amazon_calls']:.0f} calls of a "
        f"{f['amazon_bound']:.1f}-call bound = {f['amazon_share']:.1%}, "
        f"{f['amazon_refill_used']:.1%} of the refill used; "
        f"{f['amazon_throttled']} answered 429"
    )
    print(f"stream reads that gave up, throttled too often: {f['reads_gave_up']}")
    print(FIGURES + json.dumps(f))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
