"""Rate-limit buckets in Redis: one limit per platform account for every process using it.

A Shopify shop's query-cost bucket and an SP-API seller's per-operation token buckets are
limits of the account, not of a process: two hub workers syncing the same shop, each with
its own estimate, spend the bucket twice and meet THROTTLED (issue 16: 32 % of requests).
Here each bucket is a Redis hash changed only by Lua scripts, which Redis runs atomically,
on Redis's clock (``TIME``), so processes on several hosts agree on it.

The accounting is the in-process one (``connectors.shopify.client.ShopifyThrottle``,
``connectors.ratelimit.TokenBucket``), shared: a query reserves its expected cost before it
is sent and settles with the answer's ``extensions.cost``; the points of queries still in
flight (of any process) are held out of the top of the bucket; an answer's snapshot bounds
the estimate. An in-flight reservation whose process died is let go after ``IN_FLIGHT_TTL``.

When Redis cannot be reached the bucket falls back to this process's own for that call and
logs it: the limit is then per process, as without Redis, and syncs go on.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
import uuid
import weakref
from dataclasses import dataclass, field
from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from connectors.limit_scripts import (
    HELD_SHOWN_AFTER,
    IN_FLIGHT_TTL,
    LEAVE,
    MAX_SLEEP,
    POLL,
    PREFIX,
    RESERVE,
    SETTLE,
    TOKENS,
)
from connectors.metrics import record_throttle_wait
from connectors.ratelimit import Place, Take, TokenBucket, WaitingLine, report_wait
from connectors.shopify.client import SINGLE_QUERY_MAX_COST, ShopifyThrottle

log = logging.getLogger("connectors.limits")


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


async def _wait(
    seconds: float, line: WaitingLine | None = None, place: Place | None = None
) -> None:
    """Sleep before asking the bucket again, or until someone of this process goes ahead of
    ``place`` in ``line``; first leave if this task was cancelled.

    redis-py can swallow a cancellation that lands while it connects and return the script's
    answer: without this check a bucket's wait loop would go on asking (up to IN_FLIGHT_TTL)
    for a caller that gave up. An answer that took points is kept (the caller got them)."""
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError
    if line is None or place is None:
        await asyncio.sleep(seconds)
    else:
        await line.wait(place, seconds)


class RedisLimits:
    """A ``connectors.ratelimit.LimitStore`` in Redis at ``url`` (``redis://host:6379/0``)."""

    def __init__(self, url: str, *, prefix: str = PREFIX) -> None:
        self.url = url
        self.prefix = prefix
        # A redis-py asyncio client belongs to the event loop it connected in.
        self._clients: weakref.WeakKeyDictionary[
            asyncio.AbstractEventLoop, tuple[aioredis.Redis, dict[str, Any]]
        ] = weakref.WeakKeyDictionary()
        self._cost: dict[str, RedisCostBucket] = {}
        self._operations: dict[tuple[str, str, str], RedisTokenBucket] = {}
        self._own: dict[str, RedisTokenBucket] = {}

    def _connection(self) -> tuple[aioredis.Redis, dict[str, Any]]:
        loop = asyncio.get_running_loop()
        found = self._clients.get(loop)
        if found is None:
            client = aioredis.Redis.from_url(
                self.url, socket_timeout=2.0, socket_connect_timeout=2.0
            )
            scripts = {
                name: client.register_script(source)
                for name, source in (
                    ("reserve", RESERVE),
                    ("settle", SETTLE),
                    ("leave", LEAVE),
                    ("tokens", TOKENS),
                )
            }
            found = self._clients[loop] = (client, scripts)
        return found

    async def run(self, script: str, keys: list[str], args: list[Any]) -> Any:
        """Run one of the scripts; raises redis' errors (the buckets fall back on them)."""
        _, scripts = self._connection()
        return await scripts[script](keys=keys, args=args)

    async def aclose(self) -> None:
        """Close this event loop's connections (at the process's shutdown)."""
        found = self._clients.pop(asyncio.get_running_loop(), None)
        if found is not None:
            await found[0].aclose()

    async def clear(self) -> None:
        """Forget every bucket under this store's prefix (tests and benchmarks start clean)."""
        client, _ = self._connection()
        async for key in client.scan_iter(match=f"{self.prefix}:*"):
            await client.delete(key)

    def cost_bucket(self, shop: str) -> RedisCostBucket:
        bucket = self._cost.get(shop)
        if bucket is None:
            bucket = self._cost[shop] = RedisCostBucket(self, f"{self.prefix}:shopify:{shop}")
        return bucket

    def operation_bucket(
        self, seller: str, region: str, operation: str, rate: float, burst: int
    ) -> RedisTokenBucket:
        key = (seller, region, operation)
        bucket = self._operations.get(key)
        if bucket is None:
            name = f"{self.prefix}:amazon:{seller}:{region}:{operation}"
            bucket = self._operations[key] = RedisTokenBucket(self, name, rate, burst)
        return bucket

    def own_bucket(self, name: str, rate: float, burst: int) -> RedisTokenBucket:
        """A token bucket of a limit the host enforces itself (``name``, e.g. an API key's),
        shared by every process; used with ``RedisTokenBucket.spend``."""
        bucket = self._own.get(name)
        if bucket is None or bucket.burst != burst:
            bucket = self._own[name] = RedisTokenBucket(self, f"{self.prefix}:{name}", rate, burst)
        return bucket


class _Fallback:
    """Logs the first Redis failure of a bucket and its recovery, not every call."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.down = False

    def failed(self, error: Exception) -> None:
        if not self.down:
            log.warning(
                "rate-limit bucket %s: Redis unreachable (%s); this process limits itself "
                "until it is back",
                self.name,
                type(error).__name__,
            )
        self.down = True

    def worked(self) -> None:
        if self.down:
            log.info("rate-limit bucket %s: Redis reachable again", self.name)
        self.down = False


class _FellBack(Exception):
    """Redis failed: the fallback bucket took the reservation (``ticket``)."""

    def __init__(self, ticket: int) -> None:
        super().__init__(ticket)
        self.ticket = ticket


@dataclass(frozen=True)
class _LocalTicket:
    """A reservation made in the fallback bucket while Redis was unreachable."""

    ticket: int


@dataclass
class RedisCostBucket:
    """A Shopify shop's query-cost bucket shared by every process (a ``CostBucket``)."""

    store: RedisLimits
    name: str
    throttled: int = 0
    waited: float = 0.0
    # Shopify's last ``requestedQueryCost`` of each query, as this process saw it.
    expected_cost: dict[tuple[Any, ...], float] = field(default_factory=dict)
    local: ShopifyThrottle = field(default_factory=ShopifyThrottle)
    line: WaitingLine = field(default_factory=WaitingLine)
    _fallback: _Fallback | None = None

    def _keys(self) -> list[str]:
        return [
            self.name,
            *(f"{self.name}:{part}" for part in ("sent", "points", "settled", "queue", "seen")),
        ]

    @property
    def fallback(self) -> _Fallback:
        if self._fallback is None:
            self._fallback = _Fallback(self.name)
        return self._fallback

    async def reserve(
        self, key: tuple[Any, ...], hint: float | None = None, *, urgent: bool = False
    ) -> Any:
        """Wait until the shared bucket can pay the query's cost, take it; the ticket.

        The queries of this process take turns (the line: only its first asks Redis, and an
        ``urgent`` one goes ahead of sync pages); those of other processes are served in
        the order of the queue in Redis, where each query keeps its place.
        """
        known = self.expected_cost.get(key)
        cost = known if known is not None else (hint if hint is not None else SINGLE_QUERY_MAX_COST)
        ticket = uuid.uuid4().hex
        loop = asyncio.get_running_loop()
        place = self.line.join(time.monotonic(), urgent=urgent)
        start = loop.time()
        try:
            await self._wait_turn(key, hint, cost, ticket, place, urgent=urgent)
        except asyncio.CancelledError:
            # Out of the line at once, or the next query would wait WAITER_TTL for it.
            with contextlib.suppress(RedisError, OSError):
                await asyncio.shield(self.store.run("leave", self._keys()[4:], [ticket]))
            raise
        except _FellBack as fallback:
            return _LocalTicket(fallback.ticket)
        finally:
            self.line.leave(place)
        waited = loop.time() - start
        self.waited += waited
        record_throttle_wait("shopify", waited)
        return ticket

    async def _wait_turn(
        self,
        key: tuple[Any, ...],
        hint: float | None,
        cost: float,
        ticket: str,
        place: Place,
        *,
        urgent: bool,
    ) -> None:
        loop = asyncio.get_running_loop()
        held_since: float | None = None
        shown = False
        queued = False  # in the queue in Redis
        while True:
            if not self.line.first(place):
                if queued:  # someone of this process went ahead: it asks Redis now
                    queued = False
                    with contextlib.suppress(RedisError, OSError):  # else gone in WAITER_TTL
                        await asyncio.shield(self.store.run("leave", self._keys()[4:], [ticket]))
                await self.line.wait(place, math.inf)
                continue
            try:
                verdict, value = await self.store.run(
                        "reserve",
                        self._keys(),
                        [cost, ticket, self.local.maximum, self.local.restore_rate,
                         place.ahead(time.monotonic()), IN_FLIGHT_TTL],
                    )  # fmt: skip
            except (RedisError, OSError) as error:
                self.fallback.failed(error)
                raise _FellBack(await self.local.reserve(key, hint, urgent=urgent)) from error
            self.fallback.worked()
            if _text(verdict) == "ok":
                return
            queued = True
            delay = float(_text(value))
            if _text(verdict) == "held":  # only an answer to a query in flight makes room
                held_since = held_since or loop.time()
                if not shown and loop.time() - held_since >= HELD_SHOWN_AFTER:
                    # Answers come in well under a second: this one may never come (its
                    # process died), and its points come back only when it is let go.
                    shown = True
                    await report_wait(delay, "Shopify points held by a query still unanswered")
                delay = POLL
            elif delay < 0:  # another query of the shop is first in line
                delay = POLL
            else:
                await report_wait(delay, f"Shopify query cost bucket refills ({cost:.0f} pts)")
            await _wait(min(max(delay, 1e-3), MAX_SLEEP), self.line, place)

    async def answered(
        self, ticket: Any, cost: dict[str, Any] | None, *, key: tuple[Any, ...], throttled: bool
    ) -> None:
        if throttled:
            self.throttled += 1
        if cost and cost.get("requestedQueryCost"):
            self.expected_cost[key] = float(cost["requestedQueryCost"])
        if isinstance(ticket, _LocalTicket):
            await self.local.answered(ticket.ticket, cost, key=key, throttled=throttled)
            return
        status = (cost or {}).get("throttleStatus")
        if isinstance(status, dict):
            actual = (cost or {}).get("actualQueryCost")
            args: list[Any] = [
                ticket, 1, float(actual) if actual is not None else 0.0,
                float(status.get("currentlyAvailable", 0.0)),
                float(status.get("maximumAvailable", self.local.maximum)),
                float(status.get("restoreRate", self.local.restore_rate)) or 1.0,
            ]  # fmt: skip
        else:
            args = [ticket, 0, 0, 0, 0, 0]
        await self._settle([*args, IN_FLIGHT_TTL])

    async def abandoned(self, ticket: Any) -> None:
        if isinstance(ticket, _LocalTicket):
            await self.local.abandoned(ticket.ticket)
            return
        await self._settle([ticket, 0, 0, 0, 0, 0, IN_FLIGHT_TTL])

    async def _settle(self, args: list[Any]) -> None:
        try:
            await self.store.run("settle", self._keys(), args)
        except (RedisError, OSError) as error:
            # The reservation is let go after IN_FLIGHT_TTL; until then it holds its points.
            self.fallback.failed(error)


@dataclass(frozen=True)
class _LocalTake:
    """A token taken from the fallback bucket (on this process's clock)."""

    take: Take | None


@dataclass
class RedisTokenBucket:
    """An SP-API operation's token bucket shared by every process (an ``OperationBucket``)."""

    store: RedisLimits
    name: str
    rate: float
    burst: int
    local: TokenBucket = field(init=False)
    _lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    _fallback: _Fallback | None = None

    def __post_init__(self) -> None:
        self.local = TokenBucket(self.rate, self.burst)

    @property
    def fallback(self) -> _Fallback:
        if self._fallback is None:
            self._fallback = _Fallback(self.name)
        return self._fallback

    async def _call(self, action: str, *extra: Any) -> list[str] | None:
        """Run the bucket's script; None when Redis is unreachable (the fallback decides)."""
        try:
            answer = await self.store.run(
                "tokens", [self.name], [action, self.local.rate, self.burst, *extra]
            )
        except (RedisError, OSError) as error:
            self.fallback.failed(error)
            return None
        self.fallback.worked()
        values = [_text(value) for value in answer]
        self.rate = float(values[4])
        return values

    async def spend(self) -> float | None:
        """Take a token now if there is one: 0.0, else the seconds until there is one (nothing
        taken); None when Redis is unreachable (the caller limits in process)."""
        answer = await self._call("spend")
        if answer is None:
            return None
        return 0.0 if answer[0] == "ok" else max(float(answer[1]), 1e-3)

    async def expected_wait(self) -> float:
        answer = await self._call("wait")
        return float(answer[1]) if answer is not None else self.local.wait_time()

    async def take(self) -> tuple[float, Any]:
        loop = asyncio.get_running_loop()
        async with self._lock:  # this process's callers in arrival order
            start = loop.time()
            while True:
                answer = await self._call("take")
                if answer is None:
                    await self.local.take()
                    return loop.time() - start, _LocalTake(self.local.last_take)
                if answer[0] == "ok":
                    break
                await _wait(max(float(answer[1]), 1e-3))
        waited = loop.time() - start
        record_throttle_wait("amazon", waited)
        return waited, Take(float(answer[1]), int(answer[2]), answer[3] == "1")

    async def answered(self, take: Any) -> None:
        if isinstance(take, _LocalTake):
            await self.local.answered(take.take)
        elif isinstance(take, Take) and take.from_full:
            await self._call("arrived", take.at, take.count)

    async def refused(self, slowdown: float) -> None:
        if await self._call("refused", slowdown) is None:
            await self.local.refused(slowdown)

    async def told_rate(self, rate: float) -> None:
        if math.isfinite(rate) and rate > 0 and await self._call("rate", rate) is None:
            await self.local.told_rate(rate)
