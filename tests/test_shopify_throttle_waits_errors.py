"""The Shopify client's cost-based throttling and error handling one query at a time: the
waits the bucket calls for, the back-off on THROTTLED and the HTTP errors, with respx at the
HTTP boundary and a fake clock: every wait the client computes is asserted, none is slept.
Concurrent queries sharing the bucket: tests/test_shopify_throttle_concurrent.py."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import httpx
import pytest
import respx

from connectors import errors
from connectors.shopify.client import ShopifyClient, ShopifyThrottle
from connectors.shopify.queries import PRODUCTS, SHOP
from tests.shopify_throttle_helpers import (
    BASE,
    ENDPOINT,
    PAGE,
    THROTTLED,
    TOKEN,
    FakeClock,
    answer,
    clock,
)

__all__ = ["clock"]  # the fake clock fixture, imported for this module's tests

SHOP_DATA = {"shop": {"name": "Acme", "myshopifyDomain": "acme.myshopify.com"}}


@pytest.fixture
async def shopify(clock: FakeClock) -> AsyncIterator[ShopifyClient]:
    client = ShopifyClient(shop="acme.myshopify.com", base_url=BASE, token=TOKEN)
    client.throttle.updated = clock.now  # a fresh, full bucket estimate at the fake time
    yield client
    await client.aclose()


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
