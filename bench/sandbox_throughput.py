"""Benchmark: how many Admin GraphQL requests the Shopify sandbox serves, and how fast.

The sandbox runs in its own process (uvicorn, as in the tests), with cost throttling on and
its clock ``--time-scale`` times faster, so the bucket refills fast enough not to be the
limit. Concurrent httpx clients post a small query and a page query in turn, each for
``--seconds``. Prints requests/s served, p50/p95 latency, THROTTLED answers, and the CPU the
server and the load generator used (a load generator near 100% means the figure is its own).
Figures only, no assertions:

    python bench/sandbox_throughput.py [--concurrency 32 --seconds 5 --time-scale 1000]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import resource
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # `python bench/x.py` puts bench/, not the root, on the path

from connectors.sandbox.access import new_control_token  # noqa: E402
from connectors.shopify.queries import API_VERSION, PRODUCTS, SHOP  # noqa: E402
from tests.sandbox_server import (  # noqa: E402
    adopt,
    control_headers,
    running_sandbox,
    shopify_install,
)

SHOP_DOMAIN = "bench-load.myshopify.com"
SCENARIOS = {
    "Shop (2 points)": (SHOP, {}),
    "Products page, 25 x 2 variants": (PRODUCTS, {"first": 25}),
}


@dataclass
class Tally:
    latencies: list[float] = field(default_factory=list)
    served: int = 0
    throttled: int = 0
    failed: int = 0


async def hammer(
    client: httpx.AsyncClient, url: str, body: dict[str, Any], concurrency: int, seconds: float
) -> tuple[Tally, float]:
    tally = Tally()
    deadline = time.perf_counter() + seconds

    async def worker() -> None:
        while time.perf_counter() < deadline:
            started = time.perf_counter()
            try:
                response = await client.post(url, json=body)
                answer = response.json() if response.status_code == 200 else {}
            except (httpx.HTTPError, ValueError):
                tally.failed += 1
                continue
            tally.latencies.append(time.perf_counter() - started)
            codes = {(e.get("extensions") or {}).get("code") for e in answer.get("errors") or []}
            if "THROTTLED" in codes:
                tally.throttled += 1
            elif response.status_code == 200 and answer.get("data") and not codes:
                tally.served += 1
            else:
                tally.failed += 1

    began = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return tally, time.perf_counter() - began


async def run(base: str, token: str, concurrency: int, seconds: float) -> None:
    url = f"{base}/shopify/{SHOP_DOMAIN}/admin/api/{API_VERSION}/graphql.json"
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(
        headers={"X-Shopify-Access-Token": token}, limits=limits, timeout=60
    ) as client:
        # The first request builds the sandbox's schema: keep it out of the figures.
        (await client.post(url, json={"query": SHOP})).raise_for_status()
        print(f"{'query':<32} {'served/s':>9} {'p50 ms':>8} {'p95 ms':>8} {'throttled':>9}")
        for name, (document, variables) in SCENARIOS.items():
            body = {"query": document, "variables": variables}
            tally, elapsed = await hammer(client, url, body, concurrency, seconds)
            cuts = statistics.quantiles(tally.latencies, n=100) if len(tally.latencies) > 1 else []
            p50, p95 = (cuts[49] * 1000, cuts[94] * 1000) if cuts else (float("nan"),) * 2
            print(
                f"{name:<32} {tally.served / elapsed:>9,.0f} {p50:>8.1f} {p95:>8.1f} "
                f"{tally.throttled:>9}" + (f"  ({tally.failed} failed)" if tally.failed else "")
            )
        stats = (
            await client.get(f"{base}/_sandbox/shopify/stats", headers=control_headers(base))
        ).json()
        print(f"sandbox counted {stats['requests']:,} requests, {stats['throttled']} THROTTLED")


def serve(time_scale: float) -> None:
    """Child process: run the sandbox, print its base URL, serve until stdin closes."""
    with running_sandbox(seed=11, time_scale=time_scale) as (base, _app):
        print(base, flush=True)
        sys.stdin.read()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--seconds", type=float, default=5.0, help="per query")
    parser.add_argument("--time-scale", type=float, default=1000.0)
    parser.add_argument("--plan", default="standard")
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(args.time_scale)
        return 0

    token = new_control_token()  # the child's sandbox takes it from its environment
    server = subprocess.Popen(
        [sys.executable, __file__, "--serve", "--time-scale", str(args.time_scale)],
        cwd=ROOT,
        env={**os.environ, "HUB_SANDBOX_CONTROL_TOKEN": token},
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert server.stdin is not None and server.stdout is not None
    try:
        base = server.stdout.readline().strip()
        if not base:
            print("the sandbox did not start", file=sys.stderr)
            return 1
        adopt(base, token)
        httpx.post(
            f"{base}/_sandbox/shopify/shops",
            headers=control_headers(base),
            json={"shop": SHOP_DOMAIN, "products": 500, "plan": args.plan},
        ).raise_for_status()
        token = shopify_install(base, SHOP_DOMAIN, scopes="read_products")
        print(
            f"{args.concurrency} concurrent clients, {args.seconds:g} s per query, "
            f"plan {args.plan}, sandbox time x{args.time_scale:g}"
        )
        began = time.perf_counter()
        asyncio.run(run(base, token, args.concurrency, args.seconds))
        wall = time.perf_counter() - began
    finally:
        server.stdin.close()
        server.wait(timeout=15)
    own = resource.getrusage(resource.RUSAGE_SELF)
    child = resource.getrusage(resource.RUSAGE_CHILDREN)
    print(
        f"CPU over {wall:.1f} s: sandbox {(child.ru_utime + child.ru_stime) / wall:.0%}, "
        f"load generator {(own.ru_utime + own.ru_stime) / wall:.0%} (of one core); "
        f"sandbox peak RSS {child.ru_maxrss / 1024:,.0f} MiB"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
