"""One rate limit per platform account across processes: the buckets in Redis.

Against the machine's Redis (``REDIS_URL``, else 127.0.0.1:6379); skipped, with the reason,
when none answers. Each ``RedisLimits`` below stands for one hub process: what one takes from
an account's bucket the other no longer has. The last test runs real OS processes syncing one
sandbox shop and one seller (bench/shared_limits.py, shorter).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import sys
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import redis

from connectors import shared_limits
from connectors.amazon.client import BucketRegistry
from connectors.limit_scripts import IN_FLIGHT_TTL
from connectors.ratelimit import observe
from connectors.shared_limits import RedisLimits

REDIS_URL = os.environ.get("REDIS_URL") or "redis://127.0.0.1:6379/0"


def _redis_reason() -> str | None:
    try:
        redis.Redis.from_url(REDIS_URL, socket_connect_timeout=1).ping()
    except redis.RedisError as error:
        return f"no Redis at {REDIS_URL} ({type(error).__name__})"
    return None


REASON = _redis_reason()
needs_redis = pytest.mark.skipif(REASON is not None, reason=REASON or "")


@pytest.fixture
async def prefix() -> AsyncIterator[str]:
    name = f"hub:limits:test:{uuid.uuid4().hex[:8]}"
    yield name
    store = RedisLimits(REDIS_URL, prefix=name)
    await store.clear()
    await store.aclose()


def _cost(requested: float, actual: float, available: float) -> dict[str, object]:
    """An answer's ``extensions.cost`` on a 1,000-point bucket refilling 50 points/s."""
    return {
        "requestedQueryCost": requested,
        "actualQueryCost": actual,
        "throttleStatus": {
            "maximumAvailable": 1000.0,
            "currentlyAvailable": available,
            "restoreRate": 50.0,
        },
    }


@needs_redis
async def test_a_shops_points_spent_by_one_process_are_gone_for_the_other(prefix: str) -> None:
    first, second = RedisLimits(REDIS_URL, prefix=prefix), RedisLimits(REDIS_URL, prefix=prefix)
    shop = "shared.myshopify.com"
    key = ("Products", ("first", 250))
    ticket = await first.cost_bucket(shop).reserve(key, 900)
    # 900 of the 1,000 points are held by the first process's query: the second one's
    # 900-point query waits (alone in its process it would have gone out at once).
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(second.cost_bucket(shop).reserve(key, 900), timeout=0.5)
    # Answered: 50 points kept, the rest refunded; now the second one's query goes out.
    await first.cost_bucket(shop).answered(ticket, _cost(900, 50, 950), key=key, throttled=False)
    await asyncio.wait_for(second.cost_bucket(shop).reserve(key, 900), timeout=2)
    await first.aclose()
    await second.aclose()


@needs_redis
async def test_a_sellers_operation_tokens_are_shared_by_processes(prefix: str) -> None:
    first = BucketRegistry(store=RedisLimits(REDIS_URL, prefix=prefix))
    second = BucketRegistry(store=RedisLimits(REDIS_URL, prefix=prefix))
    # getOrder: 0.5 requests/s, burst 30. Once the burst is spent the next token is 2 s after
    # the first take: a second apart leaves room for a slow machine between the two checks.
    bucket = first.get("A1SELLER", "na", "getOrder")
    for _ in range(30):
        waited, take = await bucket.take()
        assert waited == pytest.approx(0, abs=0.05)
        await bucket.answered(take)
    other = second.get("A1SELLER", "na", "getOrder")
    assert await other.expected_wait() > 1.0  # the burst is spent, by the other process
    waited, _ = await other.take()
    assert waited > 1.0
    # Another seller's bucket is its own.
    assert await second.get("A2OTHER", "na", "getOrder").expected_wait() == 0


@needs_redis
async def test_a_429_slows_every_process(prefix: str) -> None:
    first = BucketRegistry(store=RedisLimits(REDIS_URL, prefix=prefix))
    second = BucketRegistry(store=RedisLimits(REDIS_URL, prefix=prefix))
    await first.get("A1SELLER", "na", "getOrder").refused(0.8)
    assert second.get("A1SELLER", "na", "getOrder").rate == 0.5  # the documented plan
    assert await second.get("A1SELLER", "na", "getOrder").expected_wait() > 0
    assert second.get("A1SELLER", "na", "getOrder").rate == pytest.approx(0.4)


async def test_without_redis_each_process_limits_itself_and_says_so(
    caplog: pytest.LogCaptureFixture,
) -> None:
    store = RedisLimits("redis://127.0.0.1:1/0")  # nothing listens there
    key = ("Shop",)
    with caplog.at_level(logging.WARNING, logger="connectors.limits"):
        bucket = store.cost_bucket("down.myshopify.com")
        ticket = await bucket.reserve(key, 2)
        await bucket.answered(ticket, _cost(2, 2, 998), key=key, throttled=False)
        await bucket.reserve(key, 2)
        waited, _ = await store.operation_bucket("A1", "na", "getOrder", 0.5, 30).take()
    assert waited < 1
    warnings = [r.getMessage() for r in caplog.records]
    assert sum("Redis unreachable" in m for m in warnings) == 2  # once per bucket, not per call
    assert all("redis://" not in m for m in warnings)  # no URL (it may carry a password)


@needs_redis
def test_processes_syncing_one_shop_and_one_seller_share_the_limits() -> None:
    """Real processes, one sandbox shop and seller: nobody throttled, the rate used."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))
    import shared_limits as bench

    figures = bench.measure(processes=3, seconds=12, redis_url=REDIS_URL)
    assert figures["shopify_throttled"] == 0
    assert figures["amazon_throttled"] == 0
    # The refill of each account's bucket that nobody used stays small. The goal is 0.95
    # (the benchmark prints it); this machine's shared CPUs delay answers, hence the floor.
    assert figures["shopify_refill_used"] >= 0.85, figures
    assert figures["amazon_refill_used"] >= 0.85, figures


@needs_redis
async def test_the_hub_keeps_its_limits_in_redis_when_redis_url_is_set(
    hub_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from connectors.ratelimit import shared_store
    from dashboard.services.platform_clients import platform_clients_lifespan
    from dashboard.settings import get_settings

    monkeypatch.setenv("REDIS_URL", REDIS_URL)
    monkeypatch.setenv("GRANIAN_WORKERS", "1")  # with the sandbox mounted (hub_env)
    get_settings.cache_clear()
    async with platform_clients_lifespan(get_settings()):
        assert isinstance(shared_store(), RedisLimits)
    assert shared_store() is None
    monkeypatch.delenv("REDIS_URL")
    get_settings.cache_clear()
    async with platform_clients_lifespan(get_settings()):
        assert shared_store() is None  # each process keeps its own


@needs_redis
async def test_a_caller_that_gives_up_while_the_store_connects_stops_waiting(prefix: str) -> None:
    """A sync cancelled (stopped, timed out) while its query waits for room must leave at
    once, wherever the cancellation lands, even in redis-py's connecting, which can swallow
    it: the wait would otherwise go on until the held points expire (minutes)."""
    shop, key = "shared.myshopify.com", ("Products", ("first", 250))
    holder = RedisLimits(REDIS_URL, prefix=prefix)
    await holder.cost_bucket(shop).reserve(key, 900)
    still_waiting = []
    for step in range(60):  # cancel 0 to 15 ms in: while connecting, asking, sleeping
        waiter = RedisLimits(REDIS_URL, prefix=prefix)  # a new connection each time
        task = asyncio.create_task(waiter.cost_bucket(shop).reserve(key, 900))
        await asyncio.sleep(step * 0.00025)
        task.cancel()
        done, _ = await asyncio.wait({task}, timeout=2)
        if not done:
            still_waiting.append(step)
            task.cancel()  # once more, so the test ends
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await waiter.aclose()
    await holder.aclose()
    assert still_waiting == []


class _Run:
    """What a run's observer is told (``connectors.ratelimit.WaitObserver``)."""

    def __init__(self) -> None:
        self.waits: list[tuple[float, str]] = []

    async def waiting(self, *, seconds: float, reason: str) -> None:
        self.waits.append((seconds, reason))

    async def throttled(self, *, reason: str, retry_after: float | None) -> None:
        raise AssertionError(reason)

    def quota(self, *, words: str) -> None:
        pass

    async def preparing(self, *, seconds: float, what: str, status: str) -> None:
        raise AssertionError(what)


@needs_redis
async def test_points_held_by_a_process_that_died_mid_query_are_let_go(
    prefix: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A worker killed while its query was out never settles it. Its points must come back
    once its client would have given up (not minutes later), or the run resumed elsewhere
    waits for room nobody holds."""
    assert IN_FLIGHT_TTL <= 45  # the client's connect and read timeouts, not minutes
    monkeypatch.setattr(shared_limits, "IN_FLIGHT_TTL", 1.5)
    monkeypatch.setattr(shared_limits, "HELD_SHOWN_AFTER", 0.2)
    shop, key = "shared.myshopify.com", ("Products", ("first", 250))
    dead = RedisLimits(REDIS_URL, prefix=prefix)
    await dead.cost_bucket(shop).reserve(key, 900)
    await dead.aclose()  # killed: no answer, no settle
    # 200 points: more than the 100 the dead query left, so it waits for the held 900 to go;
    # then the bucket refills at 50 points/s as usual (the dead query was charged).
    survivor = RedisLimits(REDIS_URL, prefix=prefix)
    run = _Run()
    with observe(run):
        await asyncio.wait_for(survivor.cost_bucket(shop).reserve(key, 200), timeout=5)
    # The run said what it waited for, once, and until when at the latest; then the refill.
    assert [reason for _, reason in run.waits] == [
        "Shopify points held by a query still unanswered",
        "Shopify query cost bucket refills (200 pts)",
    ]
    assert 0.8 < run.waits[0][0] <= 1.5
    await survivor.aclose()


@needs_redis
@pytest.mark.parametrize("where", ["this process", "another process"])
async def test_a_webhooks_look_up_goes_ahead_of_a_sync_page_waiting_for_points(
    prefix: str, where: str
) -> None:
    """A sync page waits ~10 s for 500 points of an empty bucket. A webhook's 20-point
    look-up asked after it, in its process or another, used to wait behind it in the line:
    now it goes first, once the bucket has its 20 points."""
    shop, page, look_up = "shared.myshopify.com", ("Products", ("first", 250)), ("Nodes",)
    syncing = RedisLimits(REDIS_URL, prefix=prefix)
    webhooks = syncing if where == "this process" else RedisLimits(REDIS_URL, prefix=prefix)
    drained = await syncing.cost_bucket(shop).reserve(page, 990)
    await syncing.cost_bucket(shop).answered(
        drained, _cost(990, 990, 10), key=page, throttled=False
    )
    waiting_page = asyncio.create_task(syncing.cost_bucket(shop).reserve(page, 500))
    await asyncio.sleep(0.3)  # the page is first in line, waiting for the refill
    await asyncio.wait_for(webhooks.cost_bucket(shop).reserve(look_up, 20, urgent=True), 2)
    assert not waiting_page.done()  # and the page still waits its turn, next
    waiting_page.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await waiting_page
    for store in {syncing, webhooks}:
        await store.aclose()
