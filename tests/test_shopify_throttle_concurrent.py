"""The Shopify client's cost-based throttling when queries are in flight together: streams
of one shop sharing its bucket, on virtual time, against a shop that charges and refunds
points as Shopify documents; every wait is exact, none is slept. One query at a time, and
the errors: tests/test_shopify_throttle_waits_errors.py."""

from __future__ import annotations

import asyncio
import heapq
import itertools
import json
import threading
import time
from collections.abc import Awaitable, Iterator
from types import SimpleNamespace
from typing import Any

import httpx
import pytest
import respx

from connectors.base import MemoryCredentialStore, StoredCredential
from connectors.ratelimit import URGENT_HEAD_START
from connectors.shopify import client as client_module
from connectors.shopify.client import ShopifyClient, ShopifyThrottle
from connectors.shopify.connector import ShopifyConfig, ShopifyConnector
from connectors.shopify.queries import PRODUCTS
from tests.shopify_throttle_helpers import (
    BASE,
    ENDPOINT,
    PAGE,
    REAL_SLEEP,
    THROTTLED,
    TOKEN,
    FakeClock,
    answer,
    clock,
)

__all__ = ["clock"]  # the fake clock fixture, imported for this module's tests


# --- streams of one shop sharing its bucket, on virtual time ------------------------------


class VirtualClock:
    """Discrete-event time for concurrent queries: ``sleep`` parks the caller until the
    clock reaches its wake-up time; the clock jumps to the next wake-up once every task
    waits. Latency, refill and waits are all exact, and nothing is slept for real."""

    def __init__(self) -> None:
        self.now = 0.0
        self._timers: list[tuple[float, int, asyncio.Future[None]]] = []
        self._order = itertools.count()

    def monotonic(self) -> float:
        return self.now

    async def sleep(self, seconds: float, *_: Any) -> None:
        wake: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        heapq.heappush(self._timers, (self.now + max(0.0, seconds), next(self._order), wake))
        await wake

    async def run(self, *work: Awaitable[Any]) -> list[Any]:
        tasks = [asyncio.ensure_future(w) for w in work]
        while not all(task.done() for task in tasks):
            for _ in range(50):  # let every runnable task run until it waits
                await REAL_SLEEP(0)
            while self._timers and self._timers[0][2].done():  # cancelled sleeps
                heapq.heappop(self._timers)
            if all(task.done() for task in tasks):
                break
            assert self._timers, "deadlock: every task waits and no timer is due"
            when, _, wake = heapq.heappop(self._timers)
            self.now = max(self.now, when)
            wake.set_result(None)
        return [task.result() for task in tasks]


class LeakyBucketShop:
    """A shop as Shopify documents its bucket: a query is charged its requested cost when
    it arrives (THROTTLED, free, if the bucket cannot pay), refunded down to its actual
    cost once it has run, and answered with the bucket as it then is.

    A query of ``{"first": n}`` requests ``8n`` points and uses ``used`` of them.
    ``uplinks``, ``downlinks``: the seconds each query travels to Shopify and its answer
    back, in the order the queries are sent.
    """

    def __init__(
        self,
        clock: VirtualClock,
        *,
        maximum: float = 2000.0,
        restore: float = 100.0,
        uplinks: list[float] | None = None,
        run: float = 0.3,
        downlink: float = 0.1,
        used: float = 0.5,
        downlinks: list[float] | None = None,
    ) -> None:
        self.clock, self.maximum, self.restore = clock, maximum, restore
        self.available, self.updated = maximum, clock.now
        self.uplinks = list(uplinks or [])
        self.downlinks = list(downlinks or [])
        self.run, self.downlink, self.used = run, downlink, used
        self.throttled = 0
        self.kept = 0.0  # points the shop's bucket really paid

    def refill(self) -> float:
        now = self.clock.now
        self.available = min(self.maximum, self.available + (now - self.updated) * self.restore)
        self.updated = now
        return self.available

    async def answer(self, request: httpx.Request) -> httpx.Response:
        await self.clock.sleep(self.uplinks.pop(0) if self.uplinks else 0.1)
        downlink = self.downlinks.pop(0) if self.downlinks else self.downlink
        first = json.loads(request.content)["variables"]["first"]
        requested = 8.0 * first
        actual = requested * self.used
        if self.refill() < requested:
            self.throttled += 1
            await self.clock.sleep(downlink)
            return answer(
                available=self.refill(), maximum=self.maximum, restore=self.restore,
                requested=requested, actual=None, errors_=THROTTLED,
            )  # fmt: skip
        self.available -= requested
        await self.clock.sleep(self.run)
        self.refill()
        self.available += requested - actual
        self.kept += actual
        status = self.available
        await self.clock.sleep(downlink)
        return answer(PAGE, available=status, maximum=self.maximum, restore=self.restore,
                      requested=requested, actual=actual)  # fmt: skip


@pytest.fixture
def virtual(monkeypatch: pytest.MonkeyPatch) -> Iterator[VirtualClock]:
    fake = VirtualClock()
    monkeypatch.setattr(client_module, "time", SimpleNamespace(monotonic=fake.monotonic))
    monkeypatch.setattr(asyncio, "sleep", fake.sleep)
    monkeypatch.setattr(client_module, "_throttles", {})
    yield fake


def shop_client(clock: VirtualClock) -> ShopifyClient:
    client = ShopifyClient(shop="acme.myshopify.com", base_url=BASE, token=TOKEN)
    client.throttle.updated = clock.now
    return client


@respx.mock
async def test_concurrent_streams_share_the_bucket_without_throttled(
    virtual: VirtualClock,
) -> None:
    """Four streams page through at once, each page's cost unknown until Shopify prices it.

    Before: the first pages went out at an assumed 50 points each (3 of 4 THROTTLED);
    every answer's snapshot replaced the estimate while other pages were still on their
    way (not charged yet), and interleaved answers taught a refill hundreds of times the
    real one: THROTTLED throughout the run.
    """
    shop = LeakyBucketShop(virtual)
    respx.post(ENDPOINT).mock(side_effect=shop.answer)
    client = shop_client(virtual)

    async def stream(first: int) -> None:
        for _ in range(10):
            await client.query("Products", PRODUCTS, {"first": first})

    await virtual.run(*(stream(first) for first in (100, 90, 100, 80)))
    await client.aclose()
    assert shop.throttled == 0 and client.throttle.throttled == 0
    assert client.throttle.restore_rate == 100.0  # nothing faster was "learned"
    # The streams kept Shopify's bucket busy: what it paid is close to all it could give.
    bound = shop.maximum + shop.restore * virtual.now
    assert shop.kept / bound >= 0.95


def spent(points: float, available: float) -> dict[str, Any]:
    """``extensions.cost`` of an answer that used ``points``, leaving ``available``."""
    status = {"maximumAvailable": 2000.0, "currentlyAvailable": available, "restoreRate": 100.0}
    return {"requestedQueryCost": points, "actualQueryCost": points, "throttleStatus": status}


async def test_answers_of_overlapping_queries_teach_no_refill_rate(clock: FakeClock) -> None:
    """Two queries in flight, both charged before the first answer's snapshot: the second
    answer, 10 ms later, reports one point more. Read as "801 points came back in 10 ms"
    (the second query's 800 plus one), that taught 80,000 points/s: the bench's THROTTLED."""
    throttle = ShopifyThrottle(maximum=2000.0, available=2000.0, restore_rate=100.0)
    throttle.updated = clock.now
    for _ in range(4):
        first = await throttle.reserve(("Products", ("first", 100)))
        second = await throttle.reserve(("Orders", ("first", 100)))
        clock.now += 0.5
        reported = throttle.estimate(clock.now)  # both charged: 2,000 - 1,600 + 50
        throttle.settle(first, spent(800.0, reported), clock.now)
        clock.now += 0.01
        throttle.settle(second, spent(800.0, reported + 1.0), clock.now)
        assert throttle.restore_rate == 100.0
        clock.now += 20.0  # the bucket fills up again


@respx.mock
async def test_an_answer_does_not_hide_a_query_still_on_its_way(virtual: VirtualClock) -> None:
    # A and B, 800 points each, leave at once. A's answer (1,250 points) comes back before
    # B reaches Shopify: that snapshot does not know B yet.
    shop = LeakyBucketShop(virtual, uplinks=[0.1, 1.0, 0.1], run=0.5, downlink=0.0, used=1.0)
    respx.post(ENDPOINT).mock(side_effect=shop.answer)
    client = shop_client(virtual)
    client.throttle.maximum = client.throttle.available = 2000.0
    client.throttle.restore_rate = 100.0
    sent: list[float] = []

    async def page(delay: float) -> None:
        await asyncio.sleep(delay)
        await client.query("Products", PRODUCTS, {"first": 100}, expected_cost=800)
        sent.append(virtual.now)

    await virtual.run(page(0.0), page(0.0), page(0.65))
    await client.aclose()
    # C may not spend the 800 points B is about to be charged: it waits for the refill
    # (450 points after A's answer: 1,250 reported less B's 800 in flight).
    assert shop.throttled == 0 and client.throttle.throttled == 0
    assert sent[-1] == pytest.approx(0.6 + 3.5 + 0.1 + 0.5)


@respx.mock
async def test_a_late_answer_does_not_undo_a_query_answered_before_it(
    virtual: VirtualClock,
) -> None:
    # A (800 points) is charged first, but its answer (1,200 left) takes 3 s to come back;
    # B, charged just after A, is answered long before: A's snapshot predates B's charge.
    shop = LeakyBucketShop(virtual, run=0.0, used=1.0, downlinks=[3.0, 0.1, 0.1])
    respx.post(ENDPOINT).mock(side_effect=shop.answer)
    client = shop_client(virtual)
    client.throttle.maximum = client.throttle.available = 2000.0
    client.throttle.restore_rate = 100.0

    async def page() -> None:
        await client.query("Products", PRODUCTS, {"first": 100}, expected_cost=800)

    async def after(delay: float, first: Awaitable[None] | None = None) -> None:
        if first is not None:
            await first
        await asyncio.sleep(delay)
        await page()

    await virtual.run(after(0.0, page()), after(0.01))
    await client.aclose()
    # C, sent after A's answer, waited for the 700 points there (689 by our account, which
    # held B's 800 out from the moment it was sent) to become 800.
    assert shop.throttled == 0 and client.throttle.throttled == 0
    assert virtual.now == pytest.approx(3.1 + 1.11 + 0.2)


@respx.mock
async def test_a_full_bucket_overflows_while_the_first_query_travels(
    virtual: VirtualClock,
) -> None:
    # The bucket is full; the first query takes 2 s to reach Shopify, whose bucket stays
    # full (its refill overflowing) until it charges it; the next travels 0.1 s.
    shop = LeakyBucketShop(virtual, maximum=1000.0, uplinks=[2.0, 0.1], run=0.0, downlink=0.0)
    respx.post(ENDPOINT).mock(side_effect=shop.answer)
    client = shop_client(virtual)
    client.throttle.restore_rate = 100.0
    await virtual.run(client.query("Products", PRODUCTS, {"first": 110}, expected_cost=880))
    await virtual.run(client.query("Products", PRODUCTS, {"first": 110}))
    await client.aclose()
    assert shop.throttled == 0


def test_one_shop_s_bucket_serves_queries_from_two_event_loops_of_one_process() -> None:
    """A process may run a second event loop (a test serving the hub's webhook routes in a
    thread beside its syncs): queries of one shop from both wait their turn on their own
    loop instead of failing the run ("bound to a different event loop"), and an answer on
    one loop wakes a query waiting on the other."""
    throttle = ShopifyThrottle(available=0.0, restore_rate=2_000.0)
    tickets: list[int] = []
    failures: list[BaseException] = []

    async def queries() -> None:
        async def one() -> None:
            ticket = await throttle.reserve(("products",), 50.0)
            await asyncio.sleep(0.001)
            throttle.settle(ticket, None, time.monotonic())
            tickets.append(ticket)

        await asyncio.gather(*(one() for _ in range(5)))

    def loop_of_its_own() -> None:
        try:
            asyncio.run(queries())
        except BaseException as error:  # reported by the assertion below
            failures.append(error)

    threads = [threading.Thread(target=loop_of_its_own) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=20)
    assert failures == []
    assert sorted(tickets) == list(range(10))  # every query reserved once, none twice


# --- queries someone waits on go ahead of sync pages ---------------------------------------


@respx.mock
async def test_a_webhooks_look_up_goes_ahead_of_sync_pages_waiting_for_the_bucket(
    virtual: VirtualClock,
) -> None:
    """Two syncs keep the shop's bucket empty, each page waiting 8 s for its 800 points. A
    webhook's look-up (8 points) used to wait behind them in the shop's line: the demo's
    webhooks were applied 5-24 s after they came. It goes first now, as soon as the bucket
    has its 8 points, and Shopify still throttles nothing."""
    shop = LeakyBucketShop(virtual, used=1.0)
    respx.post(ENDPOINT).mock(side_effect=shop.answer)
    sync = shop_client(virtual)
    look_up = ShopifyClient(shop="acme.myshopify.com", base_url=BASE, token=TOKEN, urgent=True)
    waited: list[float] = []

    async def pages() -> None:
        for _ in range(8):
            await sync.query("Products", PRODUCTS, {"first": 100}, expected_cost=800)

    async def webhook_look_ups() -> None:
        for _ in range(5):
            await asyncio.sleep(4.0)  # a sync page is waiting for the refill by then
            asked = virtual.now
            await look_up.query("Products", PRODUCTS, {"first": 1}, expected_cost=8)
            waited.append(virtual.now - asked)

    await virtual.run(pages(), pages(), webhook_look_ups())
    await sync.aclose()
    await look_up.aclose()
    assert shop.throttled == 0 and sync.throttle.throttled == 0
    # Each answered within its own refill (8 points at 100/s) and the round trip (0.5 s),
    # not after a sync page's 8 s.
    assert len(waited) == 5 and max(waited) <= 0.1 + 0.5 + 0.01


@respx.mock
async def test_a_stream_of_urgent_queries_slows_a_sync_page_but_never_stops_it(
    virtual: VirtualClock,
) -> None:
    """Urgent look-ups asking for more than the bucket refills would keep a sync page
    waiting for ever if urgent simply meant first: urgent queries asked more than
    URGENT_HEAD_START after the page go after it."""
    shop = LeakyBucketShop(virtual, maximum=1000.0, restore=50.0, used=1.0)
    respx.post(ENDPOINT).mock(side_effect=shop.answer)
    sync = shop_client(virtual)
    look_up = ShopifyClient(shop="acme.myshopify.com", base_url=BASE, token=TOKEN, urgent=True)
    look_ups: list[tuple[float, float]] = []  # (asked, answered)
    page_answered: list[float] = []

    async def one() -> None:
        asked = virtual.now
        await look_up.query("Products", PRODUCTS, {"first": 2}, expected_cost=16)
        look_ups.append((asked, virtual.now))

    async def flood() -> None:  # 80 points/s asked, 50 refilled
        tasks = []
        while not page_answered and virtual.now < 300.0:  # a page that starves fails
            tasks.append(asyncio.ensure_future(one()))
            await asyncio.sleep(0.2)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def page() -> None:
        await asyncio.sleep(40.0)  # the flood has emptied the bucket by then
        await sync.query("Products", PRODUCTS, {"first": 100}, expected_cost=800)
        page_answered.append(virtual.now)

    await virtual.run(flood(), page())
    await sync.aclose()
    await look_up.aclose()
    assert shop.throttled == 0
    assert page_answered and page_answered[0] < 300.0, "the sync page starved"
    # Look-ups asked up to 30 s after the page went ahead of it; none asked later did.
    cut = 40.0 + URGENT_HEAD_START
    assert any(asked > 40.0 and done < page_answered[0] for asked, done in look_ups)
    assert all(done > page_answered[0] for asked, done in look_ups if asked > cut + 1e-6)


@respx.mock
async def test_the_connector_marks_webhook_look_ups_and_connecting_urgent(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Which queries go ahead is the connector's to say: the look-ups behind webhooks and
    what a person connecting a shop waits on (a sync's pages are not: ``read_stream``)."""
    monkeypatch.setattr(client_module, "_throttles", {})
    asked: list[tuple[str, bool]] = []
    reserve = ShopifyThrottle.reserve

    async def recorded(
        self: ShopifyThrottle, key: tuple[Any, ...], hint: float | None = None, *,
        urgent: bool = False,
    ) -> int:  # fmt: skip
        asked.append((key[0], urgent))
        return await reserve(self, key, hint, urgent=urgent)

    monkeypatch.setattr(ShopifyThrottle, "reserve", recorded)
    data = {"nodes": [None], "shop": {"name": "Acme"}}
    respx.post(url__regex=r".*/graphql\.json$").mock(
        side_effect=lambda _: answer(data, available=990.0, requested=10.0, actual=10.0)
    )
    connector = ShopifyConnector(
        ShopifyConfig(client_id="id", client_secret="secret", scopes=(), base_url=BASE)
    )
    credentials = MemoryCredentialStore(StoredCredential("access_token", TOKEN))
    shop = "acme.myshopify.com"
    await connector.fetch_nodes(shop, credentials, "product", ["gid://shopify/Product/1"])
    await connector.fetch_shop(shop, credentials)
    assert asked == [("ProductsByIds", True), ("Shop", True)]
