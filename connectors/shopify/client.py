"""Shopify Admin GraphQL client: one per shop, cost-aware, retried, typed errors.

Throttling follows Shopify's calculated query cost: before sending, the client reserves the
query's requested cost from its estimate of the shop's bucket, waiting until the estimate can
pay it, so a sync that stays in budget never meets ``THROTTLED``. Every response's
``extensions.cost`` settles the reservation and bounds the estimate. The estimate is shared
by every stream of the same shop in this process; with a shared ``LimitStore`` (Redis, when
the hub has REDIS_URL) by every process calling the shop instead.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
import math
import time
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx

from connectors.errors import (
    AuthRevoked,
    MalformedResponse,
    PlatformError,
    RateLimited,
    TransientError,
)
from connectors.http import CLIENTS, ClientPool, build_client, raise_for_transient, with_retries
from connectors.metrics import record_throttle_wait
from connectors.ratelimit import (
    CostBucket,
    WaitingLine,
    report_quota,
    report_throttled,
    report_wait,
    shared_store,
)
from connectors.shopify.auth import TOKEN_HEADER
from connectors.shopify.queries import API_VERSION

log = logging.getLogger("connectors.shopify")


# Shopify refuses any single query requesting more (MAX_COST_EXCEEDED, nothing charged).
SINGLE_QUERY_MAX_COST = 1000.0
# A refill measured within this margin of the documented restore rate is that rate plus
# noise (two snapshots a fraction of a second apart, each taken some milliseconds before
# its answer arrives), not a faster bucket.
LEARN_MARGIN = 1.25
RATE_SAMPLES = 3  # the learned rate is the slowest of the last few clean measurements
NEAR_FULL = 0.95  # a bucket this full may have capped the refill: a measurement is a floor


def cost_key(name: str, variables: dict[str, Any] | None) -> tuple[Any, ...]:
    """What a query's requested cost depends on: the document (by name), its page sizes and
    the number of ids it asks for (``nodes(ids:)``).

    Shopify prices a query before running it from its connections' ``first``/``last``;
    cursors and search strings change what it returns, not what it requests.
    """
    sizes = sorted(
        (key, len(value) if isinstance(value, list) else value)
        for key, value in (variables or {}).items()
        if isinstance(value, list) or (isinstance(value, int) and not isinstance(value, bool))
    )
    return (name, *sizes)


@dataclass(frozen=True)
class Reservation:
    points: float
    sent: float


@dataclass
class ShopifyThrottle:
    """Our estimate of a shop's cost bucket: our own account, bounded by every response.

    A query reserves its expected cost before it is sent and settles when its answer comes
    back. An answer's ``throttleStatus`` is a snapshot Shopify took while other queries of
    the shop may still be on their way; they are charged after it, or before it, we cannot
    tell. So the snapshot is not taken as the bucket: the estimate stays our own account
    (reservations, refunds, refill), kept between what the snapshot proves: at least the
    reported points minus every query still in flight and every one answered since this
    query was sent, at most the reported points plus the refill since it was sent.

    Our account never refills beyond the bucket's maximum less the points still in flight:
    until Shopify charges them (after a slow network, a busy client), its bucket holds them
    and overflows at the top, while ours has already taken them away.
    """

    maximum: float = 1000.0
    available: float = 1000.0
    restore_rate: float = 50.0
    updated: float = field(default_factory=time.monotonic)
    # Shopify's ``requestedQueryCost`` of the last answer, by ``cost_key``.
    expected_cost: dict[tuple[Any, ...], float] = field(default_factory=dict)
    line: WaitingLine = field(default_factory=WaitingLine)
    throttled: int = 0
    waited: float = 0.0
    in_flight: dict[int, Reservation] = field(default_factory=dict)
    # (when, points kept) of answers received while other queries were in flight: a slower
    # answer's snapshot may predate their charge.
    settled: list[tuple[float, float]] = field(default_factory=list)
    rate_samples: deque[float] = field(default_factory=lambda: deque(maxlen=RATE_SAMPLES))
    rate_floor: float = 0.0  # the last refill measured while the bucket may have been full
    _tickets: Iterator[int] = field(default_factory=itertools.count)
    # The last snapshot taken with nothing else in flight (reported points, and when its
    # query was sent: the snapshot is no older), and how many queries were sent since: with
    # exactly one, the refill between the two snapshots is that query's cost plus the
    # difference, nothing else.
    _mark: tuple[float, float] | None = None
    _sent_since_mark: int = 0

    def estimate(self, now: float) -> float:
        top = self.maximum - sum(r.points for r in self.in_flight.values())
        return min(top, self.available + (now - self.updated) * self.restore_rate)

    def wait_time(self, cost: float, now: float) -> float:
        """Seconds until the estimate can pay ``cost``; infinite while only an answer to a
        query in flight can make room."""
        cost = min(cost, self.maximum)
        missing = cost - self.estimate(now)
        # A thousandth of a point is float rounding of the refill, not a reason to sleep.
        if missing <= 1e-3:
            return 0.0
        if cost > self.maximum - sum(r.points for r in self.in_flight.values()) + 1e-3:
            return math.inf
        return missing / self.restore_rate

    def cost_of(self, key: tuple[Any, ...], hint: float | None) -> float:
        """Points to reserve: Shopify's last requested cost of this query, else the
        caller's hint, else the most any query may request, so none overdraws the bucket."""
        known = self.expected_cost.get(key)
        if known is not None:
            return known
        return hint if hint is not None else SINGLE_QUERY_MAX_COST

    async def reserve(
        self, key: tuple[Any, ...], hint: float | None = None, *, urgent: bool = False
    ) -> int:
        """Wait until the bucket can pay the query's cost, take it; returns the ticket.

        Queries of one shop take turns (the line; ``urgent`` ones, that someone waits on,
        go ahead of sync pages). The first in line wakes early when an answer shows the
        bucket fuller than estimated (a refund) or prices the query.
        """
        line = self.line
        start = now = time.monotonic()
        place = line.join(now, urgent=urgent)
        try:
            while True:
                cost = self.cost_of(key, hint)
                delay = self.wait_time(cost, now) if line.first(place) else math.inf
                if delay <= 0:
                    break
                if line.first(place) and not math.isinf(delay):
                    await report_wait(delay, f"Shopify query cost bucket refills ({cost:.0f} pts)")
                await line.wait(place, delay)
                now = time.monotonic()
            self.waited += now - start
            record_throttle_wait("shopify", now - start)
            self.available = self.estimate(now) - cost
            self.updated = now
            ticket = next(self._tickets)
            self.in_flight[ticket] = Reservation(cost, now)
            self._sent_since_mark += 1
            return ticket
        finally:
            line.leave(place)

    def settle(
        self,
        ticket: int,
        cost: dict[str, Any] | None,
        now: float,
        *,
        key: tuple[Any, ...] | None = None,
    ) -> None:
        """Account for the answer to ``ticket``, whose ``extensions.cost`` is ``cost``.

        No cost (no answer, an answer without it): the reservation stays spent, as it may
        have been. Shopify charges the requested cost up front and refunds the difference
        to ``actualQueryCost``; a THROTTLED answer (``actualQueryCost`` null) costs nothing.
        """
        own = self.estimate(now)  # with this query's points still held out of the top
        reservation = self.in_flight.pop(ticket, Reservation(0.0, now))
        status = (cost or {}).get("throttleStatus")
        if cost and cost.get("requestedQueryCost") and key is not None:
            self.expected_cost[key] = float(cost["requestedQueryCost"])
        if not status:
            self.available, self.updated = own, now
            self._mark = None
            self.line.wake_first()
            return
        actual = cost.get("actualQueryCost") if cost else None
        kept = float(actual) if actual is not None else 0.0
        own += reservation.points - kept
        self.maximum = float(status.get("maximumAvailable", self.maximum))
        reported = float(status.get("currentlyAvailable", own))
        documented = float(status.get("restoreRate", self.restore_rate)) or 1.0
        others = sum(r.points for r in self.in_flight.values())
        since = sum(points for when, points in self.settled if when > reservation.sent)
        if actual is not None and not others:
            self._learn_rate(reported, kept, now)
        self.restore_rate = self._rate(documented)
        highest = min(self.maximum, reported + (now - reservation.sent) * self.restore_rate)
        self.available = min(max(own, reported - others - since), highest)
        self.updated = now
        if others:
            self._mark = None
            oldest = min(r.sent for r in self.in_flight.values())
            self.settled = [(when, points) for when, points in self.settled if when > oldest]
            self.settled.append((now, kept))
        else:
            self._mark, self._sent_since_mark = (reported, reservation.sent), 0
            self.settled.clear()
        self.line.wake_first()

    def _learn_rate(self, reported: float, kept: float, now: float) -> None:
        """Measure the refill since the mark when this query was the only one in between.

        Each snapshot was taken somewhere between its query's sending and its answer; how
        long an answer then takes to arrive varies (a busy Shopify, a busy network). Over
        the longest the two snapshots can be apart, from the mark's sending to now, the
        measure is a rate the bucket refills at least at, never an overestimate.
        """
        if self._mark is None or self._sent_since_mark != 1:
            return
        last_reported, last_sent = self._mark
        elapsed = now - last_sent
        refilled = reported + kept - last_reported
        if elapsed <= 0 or refilled <= 0:
            return
        measured = refilled / elapsed
        if reported + kept >= self.maximum * NEAR_FULL:
            self.rate_floor = measured  # the bucket topped out: it refills at least this fast
        else:
            self.rate_samples.append(measured)

    def _rate(self, documented: float) -> float:
        """The documented restore rate, or a clearly faster one we measured (a shop on a
        faster clock, another plan)."""
        samples = self.rate_samples
        steady = min(samples) if len(samples) == samples.maxlen else 0.0
        measured = max(self.rate_floor, steady)
        return measured if measured > documented * LEARN_MARGIN else documented

    def unlearn(self) -> None:
        """A THROTTLED answer: what we measured was too optimistic; forget it."""
        self.rate_samples.clear()
        self.rate_floor = 0.0
        self.throttled += 1

    # --- the ``CostBucket`` face, which a bucket shared across processes also has -------------

    async def answered(
        self, ticket: int, cost: dict[str, Any] | None, *, key: tuple[Any, ...], throttled: bool
    ) -> None:
        if throttled:
            self.unlearn()
        self.settle(ticket, cost, time.monotonic(), key=key)

    async def abandoned(self, ticket: int) -> None:
        self.settle(ticket, None, time.monotonic())


_throttles: dict[str, ShopifyThrottle] = {}


def throttle_for(shop: str) -> ShopifyThrottle:
    """The process-wide bucket estimate of ``shop`` (streams of one shop share its bucket)."""
    return _throttles.setdefault(shop, ShopifyThrottle())


def cost_bucket_for(shop: str) -> CostBucket:
    """The bucket every query of ``shop`` goes through: the shared store's when the host set
    one (every process of the hub), else this process's estimate."""
    store = shared_store()
    return store.cost_bucket(shop) if store is not None else throttle_for(shop)


class ShopifyClient:
    def __init__(
        self,
        *,
        shop: str,
        base_url: str,
        token: str | httpx.Auth,
        transport: httpx.AsyncBaseTransport | None = None,
        max_throttled_retries: int = 20,
        clients: ClientPool = CLIENTS,
        urgent: bool = False,
    ) -> None:
        """``token``: a fixed access token, or the flow that supplies and renews one
        (``connectors.auth.TokenFlow``: a 401 on an expiring token refreshes it once).
        ``urgent``: someone waits on these queries (a webhook's look-up, a person connecting
        the shop); they go ahead of sync pages waiting for the shop's cost bucket."""
        self.shop = shop
        self.endpoint = f"{base_url}/admin/api/{API_VERSION}/graphql.json"
        # The token goes with each request, not into the client: the client (connections,
        # TLS) is the shop's in this process, shared by its syncs and webhooks (``clients``).
        self._auth: httpx.Auth | None = None if isinstance(token, str) else token
        self._headers = {TOKEN_HEADER: token} if isinstance(token, str) else {}
        shared = clients.client(
            ("shopify", shop, transport), lambda: build_client(transport=transport)
        )
        self._own = shared is None
        self._http = shared or build_client(transport=transport)
        self.throttle = cost_bucket_for(shop)
        self._max_throttled = max_throttled_retries
        self.urgent = urgent

    async def aclose(self) -> None:
        """Close the client unless it is the shop's shared one (the pool closes that)."""
        if self._own:
            await self._http.aclose()

    async def query(
        self,
        name: str,
        document: str,
        variables: dict[str, Any] | None = None,
        *,
        expected_cost: float | None = None,
    ) -> dict[str, Any]:
        """Run a query and return ``data``; raises the typed errors of connectors.errors.

        ``expected_cost``: the caller's guess of the requested cost, used until Shopify has
        priced this query once.
        """
        throttle = self.throttle
        key = cost_key(name, variables)
        for _ in range(self._max_throttled):
            ticket = await throttle.reserve(key, expected_cost, urgent=self.urgent)
            body = await self._post_reserved(ticket, name, document, variables)
            errors = body.get("errors") or []
            throttled = any((e.get("extensions") or {}).get("code") == "THROTTLED" for e in errors)
            cost = (body.get("extensions") or {}).get("cost")
            await throttle.answered(
                ticket, cost if isinstance(cost, dict) else None, key=key, throttled=throttled
            )
            status = cost.get("throttleStatus") if isinstance(cost, dict) else None
            if isinstance(cost, dict) and isinstance(status, dict) and not throttled:
                spent = round(float(cost.get("actualQueryCost") or 0))
                report_quota(
                    f"{name} cost {spent} point{'' if spent == 1 else 's'}, "
                    f"{float(status.get('currentlyAvailable') or 0):.0f} of "
                    f"{float(status.get('maximumAvailable') or 0):.0f} left"
                )
            if throttled:
                log.info("%s throttled on %s; waiting for the bucket", name, self.shop)
                await report_throttled(f"Shopify answered THROTTLED to {name}")
                continue  # the next turn waits for the refreshed estimate
            if errors:
                messages = "; ".join(str(e.get("message")) for e in errors)
                raise PlatformError(f"{name}: {messages}", details=errors)
            data = body.get("data")
            if not isinstance(data, dict):
                raise MalformedResponse(f"{name}: response without data")
            return data
        raise RateLimited(f"{name}: still throttled after {self._max_throttled} attempts")

    async def _post_reserved(
        self, ticket: Any, name: str, document: str, variables: dict[str, Any] | None
    ) -> dict[str, Any]:
        """POST with retries; without an answer the reservation stays spent (it may be)."""
        try:
            return await with_retries(lambda: self._post(name, document, variables))
        except BaseException:
            await asyncio.shield(self.throttle.abandoned(ticket))
            raise

    async def _post(
        self, name: str, document: str, variables: dict[str, Any] | None
    ) -> dict[str, Any]:
        try:
            response = await self._http.post(
                self.endpoint,
                json={"query": document, "variables": variables or {}},
                headers=self._headers,
                auth=self._auth or httpx.USE_CLIENT_DEFAULT,
            )
        except httpx.TimeoutException as error:
            raise TransientError(f"{name}: timed out") from error
        if response.status_code in (401, 403):
            raise AuthRevoked(
                f"{name}: Shopify answered {response.status_code} "
                "(token revoked or app uninstalled)"
            )
        if response.status_code == 429:
            raise TransientError(f"{name}: 429 Too Many Requests")
        raise_for_transient(response)
        if response.status_code >= 400:
            raise PlatformError(
                f"{name}: Shopify answered {response.status_code}", status=response.status_code
            )
        try:
            body = response.json()
        except (json.JSONDecodeError, UnicodeDecodeError) as error:
            raise MalformedResponse(f"{name}: malformed JSON body") from error
        if not isinstance(body, dict):
            raise MalformedResponse(f"{name}: unexpected body")
        return body
