"""Shopify Admin GraphQL client: one per shop, cost-aware, retried, typed errors.

Throttling follows Shopify's calculated query cost: every response reports the bucket
(``extensions.cost.throttleStatus``); before sending, the client waits until the bucket can
pay the query's expected cost, so a sync that stays in budget never meets ``THROTTLED``.
The bucket estimate is shared by every stream of the same shop in this process.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Awaitable, Callable
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
from connectors.http import build_client, raise_for_transient, with_retries
from connectors.shopify.queries import API_VERSION

log = logging.getLogger("connectors.shopify")


@dataclass
class ShopifyThrottle:
    """Our estimate of a shop's cost bucket, refreshed from every response."""

    maximum: float = 1000.0
    available: float = 1000.0
    restore_rate: float = 50.0
    updated: float = field(default_factory=time.monotonic)
    expected_cost: dict[str, float] = field(default_factory=dict)
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    throttled: int = 0
    waited: float = 0.0
    learned_rate: float = 0.0
    _last: tuple[float, float] | None = None

    def estimate(self, now: float) -> float:
        return min(self.maximum, self.available + (now - self.updated) * self.restore_rate)

    def wait_time(self, cost: float, now: float) -> float:
        missing = cost - self.estimate(now)
        return 0.0 if missing <= 0 else missing / self.restore_rate

    def spend(self, cost: float, now: float) -> None:
        self.available = self.estimate(now) - cost
        self.updated = now

    def observe(self, status: dict[str, Any], actual_cost: float | None, now: float) -> None:
        """Take the bucket as reported; learn how fast it really refills.

        Between two of our responses the bucket went from ``last`` to ``current + cost``: when
        that is faster than the documented restore rate (a shop on a faster clock, another
        plan), trust the measurement, so the client never waits longer than it must.
        """
        maximum = float(status.get("maximumAvailable", self.maximum))
        current = float(status.get("currentlyAvailable", self.available))
        documented = float(status.get("restoreRate", self.restore_rate)) or 1.0
        rate = max(documented, self.learned_rate)  # keep what was learned before
        if self._last is not None and actual_cost is not None:
            last_available, last_time = self._last
            elapsed = now - last_time
            refilled = current + actual_cost - last_available
            if elapsed > 0.005 and refilled > 0:
                measured = min(refilled / elapsed, documented * 1000)
                if current + actual_cost < maximum * 0.95:
                    rate = max(documented, measured)
                else:  # the bucket hit its top: it refills at least this fast
                    rate = max(rate, measured)
                self.learned_rate = rate
        self.maximum, self.available, self.restore_rate, self.updated = (
            maximum,
            current,
            rate,
            now,
        )
        self._last = (current, now)


_throttles: dict[str, ShopifyThrottle] = {}


def throttle_for(shop: str) -> ShopifyThrottle:
    """The process-wide bucket estimate of ``shop`` (streams of one shop share its bucket)."""
    return _throttles.setdefault(shop, ShopifyThrottle())


class ShopifyClient:
    def __init__(
        self,
        *,
        shop: str,
        base_url: str,
        token: str,
        transport: httpx.AsyncBaseTransport | None = None,
        max_throttled_retries: int = 20,
        renew_token: Callable[[str], Awaitable[str]] | None = None,
    ) -> None:
        self.shop = shop
        self._token = token
        self._renew_token = renew_token
        self.endpoint = f"{base_url}/admin/api/{API_VERSION}/graphql.json"
        self._http = build_client(transport=transport, headers={"X-Shopify-Access-Token": token})
        self.throttle = throttle_for(shop)
        self._max_throttled = max_throttled_retries

    async def aclose(self) -> None:
        await self._http.aclose()

    async def query(
        self,
        name: str,
        document: str,
        variables: dict[str, Any] | None = None,
        *,
        expected_cost: float | None = None,
    ) -> dict[str, Any]:
        """Run a query and return ``data``; raises the typed errors of connectors.errors."""
        throttle = self.throttle
        renewed = False
        for _ in range(self._max_throttled):
            cost = expected_cost or throttle.expected_cost.get(name, 50.0)
            async with throttle.lock:  # queries of one shop take turns at the bucket
                delay = throttle.wait_time(cost, time.monotonic())
                if delay > 0:
                    throttle.waited += delay
                    await asyncio.sleep(delay)
                throttle.spend(cost, time.monotonic())
            try:
                body = await with_retries(lambda: self._post(name, document, variables))
            except AuthRevoked:
                if renewed or self._renew_token is None:
                    raise
                # An expiring token may have lapsed early (drifting clocks, a refresh by
                # another process): refresh once; a token that cannot be renewed re-raises.
                renewed = True
                self._token = await self._renew_token(self._token)
                self._http.headers["X-Shopify-Access-Token"] = self._token
                continue
            extensions = (body.get("extensions") or {}).get("cost") or {}
            if extensions.get("throttleStatus"):
                throttle.observe(
                    extensions["throttleStatus"],
                    extensions.get("actualQueryCost"),
                    time.monotonic(),
                )
            if extensions.get("requestedQueryCost"):
                throttle.expected_cost[name] = float(extensions["requestedQueryCost"])
            errors = body.get("errors") or []
            if any((e.get("extensions") or {}).get("code") == "THROTTLED" for e in errors):
                throttle.throttled += 1
                throttle.learned_rate = 0.0  # what we learned was too optimistic: unlearn it
                log.info("%s throttled on %s; waiting for the bucket", name, self.shop)
                continue  # the next turn waits for the refreshed estimate
            if errors:
                messages = "; ".join(str(e.get("message")) for e in errors)
                raise PlatformError(f"{name}: {messages}", details=errors)
            data = body.get("data")
            if not isinstance(data, dict):
                raise MalformedResponse(f"{name}: response without data")
            return data
        raise RateLimited(f"{name}: still throttled after {self._max_throttled} attempts")

    async def _post(
        self, name: str, document: str, variables: dict[str, Any] | None
    ) -> dict[str, Any]:
        try:
            response = await self._http.post(
                self.endpoint, json={"query": document, "variables": variables or {}}
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
