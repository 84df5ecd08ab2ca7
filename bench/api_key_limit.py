"""Benchmark: what checking a Hub API key's rate limit costs per request, and that several
processes together keep to the key's limit.

Each of ``--processes`` OS processes (as hub workers are) asks the key's bucket
``--requests`` times as fast as it can, for one key with a limit of ``--limit`` requests a
minute. With ``--store redis`` (the hub with REDIS_URL) the bucket is in Redis; with
``--store process`` each process keeps its own (the hub without Redis). Prints the checks per
second and the median and p99 time of one check in each process, and how many requests the
processes let through together against the key's limit:

    python bench/api_key_limit.py [--processes 4] [--requests 5000] [--limit 600]
                                  [--store redis|process] [--redis-url redis://127.0.0.1:6379/0]

Figures only, no assertions (tests/api/test_api_key_shared_limit.py asserts).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import subprocess
import sys
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


async def one_process(store: str, url: str, prefix: str, key_id: str, limit: int, n: int) -> dict:
    from connectors.ratelimit import use_store
    from connectors.shared_limits import RedisLimits
    from dashboard.services.api_keys import ApiClient, RateLimiter

    shared = RedisLimits(url, prefix=prefix) if store == "redis" else None
    use_store(shared)
    client = ApiClient(
        key_id=uuid.UUID(key_id), name="bench", prefix="bench", scopes=frozenset(),
        integration_ids=frozenset(), rate_limit_per_minute=limit,
    )  # fmt: skip
    limiter, allowed, took = RateLimiter(), 0, []
    began = time.perf_counter()
    for _ in range(n):
        start = time.perf_counter()
        allowed += await limiter.retry_after(client) == 0
        took.append(time.perf_counter() - start)
    elapsed = time.perf_counter() - began
    if shared is not None:
        await shared.aclose()
    took.sort()
    return {
        "allowed": allowed,
        "per_second": n / elapsed,
        "median_us": statistics.median(took) * 1e6,
        "p99_us": took[int(len(took) * 0.99)] * 1e6,
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--processes", type=int, default=4)
    parser.add_argument("--requests", type=int, default=5000)
    parser.add_argument("--limit", type=int, default=600)
    parser.add_argument("--store", choices=["redis", "process"], default="redis")
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/0")
    parser.add_argument("--child", nargs=3, help=argparse.SUPPRESS)  # prefix key_id
    args = parser.parse_args()
    if args.child:
        prefix, key_id, _ = args.child
        figures = asyncio.run(
            one_process(args.store, args.redis_url, prefix, key_id, args.limit, args.requests)
        )
        print(json.dumps(figures))
        return
    prefix, key_id = f"hub:limits:bench:{uuid.uuid4().hex[:8]}", str(uuid.uuid4())
    command = [sys.executable, __file__, "--store", args.store, "--redis-url", args.redis_url,
               "--limit", str(args.limit), "--requests", str(args.requests)]  # fmt: skip
    children = [
        subprocess.Popen([*command, "--child", prefix, key_id, str(i)], stdout=subprocess.PIPE)
        for i in range(args.processes)
    ]
    results = [
        json.loads(child.communicate()[0].decode().strip().splitlines()[-1]) for child in children
    ]
    print(f"store={args.store} processes={args.processes} requests/process={args.requests} "
          f"key limit={args.limit}/min (bursts up to {args.limit})")  # fmt: skip
    for i, result in enumerate(results):
        print(f"  process {i}: {result['per_second']:,.0f} checks/s, median "
              f"{result['median_us']:.0f} µs, p99 {result['p99_us']:.0f} µs, "
              f"let through {result['allowed']}")  # fmt: skip
    total = sum(result["allowed"] for result in results)
    print(
        f"let through together: {total} (the key's burst is {args.limit}; a few more may "
        f"refill during the run)"
    )
    if args.store == "redis":
        import redis

        client = redis.Redis.from_url(args.redis_url)
        for key in client.scan_iter(match=f"{prefix}:*"):
            client.delete(key)


if __name__ == "__main__":
    main()
