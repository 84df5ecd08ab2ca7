"""The Shopify client's cost-based throttling and error handling, with respx at the HTTP
boundary and a fake clock: every wait the client computes is asserted, none is slept."""

from __future__ import annotations

import asyncio
import heapq
import itertools
import json
from collections.abc import AsyncIterator, Awaitable, Iterator
from types import SimpleNamespace
from typing import Any

import httpx
import pytest
import respx

from connectors import errors
from connectors.shopify import client as client_module
from connectors.shopify.client import ShopifyClient, ShopifyThrottle
from connectors.shopify.queries import API_VERSION, PRODUCTS, SHOP

BASE = "https://acme.myshopify.com"
ENDPOINT = f"{BASE}/admin/api/{API_VERSION}/graphql.json"
TOKEN = "shpat_test_token_never_logged"
PAGE = {"products": {"nodes": [], "pageInfo": {"hasNextPage": False, "endCursor": None}}}
SHOP_DATA = {"shop": {"name": "Acme", "myshopifyDomain": "acme.myshopify.com"}}
THROTTLED = [{"message": "Throttled", "extensions": {"code": "THROTTLED"}}]


class FakeClock:
    """Stands in for time.monotonic and asyncio.sleep: sleeping advances it instantly."""

    def __init__(self) -> None:
        self.now = 5_000.0
        self.sleeps: list[float] = []

    def monotonic(self) -> float:
        return self.now

    async def sleep(self, seconds: float, *_: Any) -> None:
        self.sleeps.append(seconds)
        self.now += seconds
        await REAL_SLEEP(0)


REAL_SLEEP = asyncio.sleep


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeClock]:
    fake = FakeClock()
    monkeypatch.setattr(client_module, "time", SimpleNamespace(monotonic=fake.monotonic))
    # asyncio.sleep is looked up at call time by the client's bucket wait and by tenacity's
    # retry back-off alike, so one patch covers both.
    monkeypatch.setattr(asyncio, "sleep", fake.sleep)
    monkeypatch.setattr(client_module, "_throttles", {})
    yield fake


@pytest.fixture
async def shopify(clock: FakeClock) -> AsyncIterator[ShopifyClient]:
    client = ShopifyClient(shop="acme.myshopify.com", base_url=BASE, token=TOKEN)
    client.throttle.updated = clock.now  # a fresh, full bucket estimate at the fake time
    yield client
    await client.aclose()


def answer(
    data: dict[str, Any] | None = None,
    *,
    available: float,
    maximum: float = 2000.0,
    restore: float = 100.0,
    requested: float = 50.0,
    actual: float | None = 50.0,
    errors_: list[dict[str, Any]] | None = None,
) -> httpx.Response:
    """A GraphQL response shaped like Shopify's, with its ``extensions.cost``."""
    body: dict[str, Any] = {
        "extensions": {
            "cost": {
                "requestedQueryCost": requested,
                "actualQueryCost": actual,
                "throttleStatus": {
                    "maximumAvailable": maximum,
                    "currentlyAvailable": available,
                    "restoreRate": restore,
                },
            }
        }
    }
    if data is not None:
        body["data"] = data
    if errors_:
        body["errors"] = errors_
    return httpx.Response(200, json=body)


def serve(clock: FakeClock, *responses: httpx.Response) -> tuple[respx.Route, list[float]]:
    """Route the endpoint to ``responses`` in turn; returns the route and each send time."""
    sent_at: list[float] = []
    queue = list(responses)

    def reply(_: httpx.Request) -> httpx.Response:
        sent_at.append(clock.now)
        return queue.pop(0) if len(queue) > 1 else queue[0]

    return respx.post(ENDPOINT).mock(side_effect=reply), sent_at


# --- the bucket ---------------------------------------------------------------------------


@respx.mock
async def test_waits_before_a_query_the_bucket_cannot_afford(
    shopify: ShopifyClient, clock: FakeClock
) -> None:
    route, sent_at = serve(
        clock,
        answer(PAGE, available=40.0, requested=500.0, actual=500.0),
        answer(PAGE, available=0.0, requested=500.0, actual=500.0),
    )
    await shopify.query("Products", PRODUCTS, {"first": 25})
    # The bucket holds 40 points, the next page costs 500, it refills 100 points a second.
    await shopify.query("Products", PRODUCTS, {"first": 25})
    assert clock.sleeps == [pytest.approx(4.6)]
    assert sent_at[1] - sent_at[0] == pytest.approx(4.6)
    assert shopify.throttle.waited == pytest.approx(4.6)
    assert shopify.throttle.throttled == 0
    request = route.calls[0].request
    assert request.headers["X-Shopify-Access-Token"] == TOKEN
    assert json.loads(request.content) == {"query": PRODUCTS, "variables": {"first": 25}}


@respx.mock
async def test_does_not_wait_when_the_bucket_can_pay(
    shopify: ShopifyClient, clock: FakeClock
) -> None:
    serve(clock, answer(PAGE, available=1900.0, requested=500.0, actual=500.0))
    for _ in range(3):
        await shopify.query("Products", PRODUCTS, {"first": 25})
    assert clock.sleeps == []


@respx.mock
async def test_the_wait_counts_the_refill_since_the_last_response(
    shopify: ShopifyClient, clock: FakeClock
) -> None:
    serve(clock, answer(PAGE, available=100.0, requested=500.0, actual=500.0))
    await shopify.query("Products", PRODUCTS, {"first": 25})
    clock.now += 3.0  # 300 points came back while the caller did other work
    await shopify.query("Products", PRODUCTS, {"first": 25})
    assert clock.sleeps == [pytest.approx(1.0)]


@respx.mock
async def test_learns_a_restore_rate_faster_than_documented(
    shopify: ShopifyClient, clock: FakeClock
) -> None:
    # Each second the bucket gains 500 points (400 net of the 100 each query costs).
    serve(
        clock,
        *(
            answer(SHOP_DATA, available=200.0 + 400.0 * n, requested=100.0, actual=100.0)
            for n in range(4)
        ),
    )
    await shopify.query("Shop", SHOP)
    for _ in range(3):  # the slowest of three clean measurements counts
        clock.now += 1.0
        await shopify.query("Shop", SHOP)
    assert shopify.throttle.restore_rate == pytest.approx(500.0)
    # 1,900 points wanted, 1,400 there: 500 missing at the measured 500/s is one second,
    # not the five the documented 100/s would make it.
    await shopify.query("Big", SHOP, expected_cost=1900.0)
    assert clock.sleeps == [pytest.approx(1.0)]


@respx.mock
async def test_a_slow_apparent_refill_never_lowers_the_documented_rate(
    shopify: ShopifyClient, clock: FakeClock
) -> None:
    serve(
        clock,
        answer(SHOP_DATA, available=1000.0, requested=100.0, actual=100.0),
        # Another app of the shop spent points meanwhile: only 50 came back in a second.
        answer(SHOP_DATA, available=950.0, requested=100.0, actual=100.0),
    )
    await shopify.query("Shop", SHOP)
    clock.now += 1.0
    await shopify.query("Shop", SHOP)
    assert shopify.throttle.restore_rate == 100.0


def test_the_estimate_refills_at_the_restore_rate_up_to_the_maximum() -> None:
    throttle = ShopifyThrottle(maximum=2000.0, available=0.0, restore_rate=100.0, updated=0.0)
    assert throttle.estimate(5.0) == 500.0
    assert throttle.wait_time(700.0, 5.0) == pytest.approx(2.0)
    assert throttle.estimate(60.0) == 2000.0
    assert throttle.wait_time(700.0, 60.0) == 0.0


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
                available=self.refill(), requested=requested, actual=None, errors_=THROTTLED
            )
        self.available -= requested
        await self.clock.sleep(self.run)
        self.refill()
        self.available += requested - actual
        self.kept += actual
        status = self.available
        await self.clock.sleep(downlink)
        return answer(PAGE, available=status, maximum=self.maximum, requested=requested,
                      actual=actual)  # fmt: skip


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


# --- THROTTLED --------------------------------------------------------------------------


@respx.mock
async def test_backs_off_on_throttled_then_succeeds(
    shopify: ShopifyClient, clock: FakeClock
) -> None:
    route, sent_at = serve(
        clock,
        answer(available=10.0, requested=500.0, actual=None, errors_=THROTTLED),
        answer(PAGE, available=0.0, requested=500.0, actual=500.0),
    )
    data = await shopify.query("Products", PRODUCTS, {"first": 25})
    assert data == PAGE
    assert route.call_count == 2
    assert shopify.throttle.throttled == 1
    # Retried once the reported bucket (10) had refilled to the query's cost (500) at 100/s.
    assert clock.sleeps == [pytest.approx(4.9)]
    assert sent_at[1] - sent_at[0] == pytest.approx(4.9)


@respx.mock
async def test_gives_up_with_rate_limited_when_throttled_throughout(clock: FakeClock) -> None:
    client = ShopifyClient(
        shop="busy.myshopify.com", base_url=BASE, token=TOKEN, max_throttled_retries=3
    )
    client.throttle.updated = clock.now
    route, _ = serve(clock, answer(available=0.0, requested=500.0, actual=None, errors_=THROTTLED))
    with pytest.raises(errors.RateLimited, match="Products: still throttled after 3 attempts"):
        await client.query("Products", PRODUCTS, {"first": 25})
    await client.aclose()
    assert route.call_count == 3
    assert client.throttle.throttled == 3
    assert clock.sleeps == [pytest.approx(5.0), pytest.approx(5.0)]


# --- HTTP errors --------------------------------------------------------------------------


@respx.mock
async def test_server_errors_are_retried_with_backoff(
    shopify: ShopifyClient, clock: FakeClock
) -> None:
    route, _ = serve(
        clock,
        httpx.Response(503, json={"errors": "Service Unavailable"}),
        httpx.Response(502, text="Bad Gateway"),
        answer(SHOP_DATA, available=1990.0, requested=2.0, actual=2.0),
    )
    assert await shopify.query("Shop", SHOP, expected_cost=2) == SHOP_DATA
    assert route.call_count == 3
    # Exponential back-off with jitter: 0.5 s then 1 s, each plus up to 0.5 s.
    first, second = clock.sleeps
    assert 0.5 <= first <= 1.0 and 1.0 <= second <= 1.5


@respx.mock
async def test_server_errors_throughout_end_in_a_transient_error(
    shopify: ShopifyClient, clock: FakeClock
) -> None:
    route, _ = serve(clock, httpx.Response(500, text="Internal Server Error"))
    with pytest.raises(errors.TransientError, match="answered 500"):
        await shopify.query("Shop", SHOP, expected_cost=2)
    assert route.call_count == 6
    assert len(clock.sleeps) == 5


@respx.mock
async def test_a_truncated_body_is_retried(shopify: ShopifyClient, clock: FakeClock) -> None:
    good = answer(SHOP_DATA, available=1990.0, requested=2.0, actual=2.0)
    route, _ = serve(clock, httpx.Response(200, content=good.content[:20]), good)
    assert await shopify.query("Shop", SHOP, expected_cost=2) == SHOP_DATA
    assert route.call_count == 2


@pytest.mark.parametrize("status", [401, 403])
@respx.mock
async def test_refused_credentials_raise_auth_revoked_at_once(
    shopify: ShopifyClient, clock: FakeClock, status: int
) -> None:
    route, _ = serve(
        clock,
        httpx.Response(
            status, json={"errors": "[API] Invalid API key or access token (unrecognized login)"}
        ),
    )
    with pytest.raises(errors.AuthRevoked) as raised:
        await shopify.query("Shop", SHOP, expected_cost=2)
    assert isinstance(raised.value, errors.AuthError)
    assert f"Shop: Shopify answered {status}" in str(raised.value)
    assert TOKEN not in str(raised.value)
    assert route.call_count == 1 and clock.sleeps == []


@respx.mock
async def test_graphql_errors_raise_platform_error_with_details(
    shopify: ShopifyClient, clock: FakeClock
) -> None:
    problem = [{"message": "Field 'nope' doesn't exist on type 'Shop'"}]
    serve(clock, answer(available=1990.0, requested=0.0, actual=0.0, errors_=problem))
    with pytest.raises(errors.PlatformError, match="Shop: Field 'nope'") as raised:
        await shopify.query("Shop", SHOP, expected_cost=2)
    assert raised.value.details == problem
