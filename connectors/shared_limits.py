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
import uuid
import weakref
from dataclasses import dataclass, field
from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from connectors.metrics import record_throttle_wait
from connectors.ratelimit import Take, TokenBucket, report_wait
from connectors.shopify.client import SINGLE_QUERY_MAX_COST, ShopifyThrottle

log = logging.getLogger("connectors.limits")

PREFIX = "hub:limits"
KEY_TTL_MS = 3_600_000  # an account nobody called for an hour starts from a full bucket again
IN_FLIGHT_TTL = 120.0  # seconds: a reservation unanswered this long belongs to a dead process
# While only an answer to a query in flight (maybe another process's) can make room, or
# another process's query is first in line: ask again after this long.
POLL = 0.02
MAX_SLEEP = 0.5  # a waiter asks at least this often, so that the queue knows it is alive
WAITER_TTL = 3.0  # seconds: a waiter silent this long died; the next one goes first
FREEZE_TTL = 30.0  # seconds: see TOKENS

# Redis's clock in seconds, less an epoch, so that Lua's doubles (printed with 14 digits)
# keep microseconds.
_CLOCK = """
local t = redis.call('TIME')
local now = (tonumber(t[1]) - 1700000000) + tonumber(t[2]) / 1e6
"""

_HELD = """
local function held_points()
  local stale = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', now - tonumber(ARGV[#ARGV]))
  for _, ticket in ipairs(stale) do
    redis.call('ZREM', KEYS[2], ticket)
    redis.call('HDEL', KEYS[3], ticket)
  end
  local held = 0
  for _, points in ipairs(redis.call('HVALS', KEYS[3])) do held = held + tonumber(points) end
  return held
end
local function touch()
  for i = 1, #KEYS do redis.call('PEXPIRE', KEYS[i], KEY_TTL_MS) end
end
""".replace("KEY_TTL_MS", str(KEY_TTL_MS))

# KEYS: state, in-flight (ticket -> sent), points (ticket -> points), settled ("t:kept" -> at),
# queue (ticket -> arrival), seen (ticket -> last asked). ARGV: cost, ticket, default maximum,
# default restore rate, in-flight ttl.
# Queries take turns across processes (the queue), as they do within one: otherwise a large
# query waiting for room would starve while other processes' small ones keep taking it.
RESERVE = (
    _CLOCK
    + _HELD
    + """
for _, waiter in ipairs(redis.call('ZRANGE', KEYS[5], 0, -1)) do
  local seen = tonumber(redis.call('HGET', KEYS[6], waiter) or '0')
  if seen < now - WAITER_TTL then
    redis.call('ZREM', KEYS[5], waiter)
    redis.call('HDEL', KEYS[6], waiter)
  end
end
redis.call('ZADD', KEYS[5], 'NX', now, ARGV[2])
redis.call('HSET', KEYS[6], ARGV[2], tostring(now))
touch()
if redis.call('ZRANGE', KEYS[5], 0, 0)[1] ~= ARGV[2] then return {'wait', '-1'} end
local s = redis.call('HMGET', KEYS[1], 'available', 'updated', 'maximum', 'rate')
local maximum = tonumber(s[3]) or tonumber(ARGV[3])
local rate = tonumber(s[4]) or tonumber(ARGV[4])
local available = tonumber(s[1]) or maximum
local updated = tonumber(s[2]) or now
local top = maximum - held_points()
local estimate = math.min(top, available + (now - updated) * rate)
local cost = math.min(tonumber(ARGV[1]), maximum)
local missing = cost - estimate
if missing > 1e-3 then
  if cost > top + 1e-3 then return {'wait', '-1'} end
  return {'wait', tostring(missing / rate)}
end
redis.call('HSET', KEYS[1], 'available', tostring(estimate - cost), 'updated', tostring(now),
            'maximum', tostring(maximum), 'rate', tostring(rate))
redis.call('ZADD', KEYS[2], now, ARGV[2])
redis.call('HSET', KEYS[3], ARGV[2], tostring(cost))
redis.call('ZREM', KEYS[5], ARGV[2])
redis.call('HDEL', KEYS[6], ARGV[2])
return {'ok', tostring(cost)}
""".replace("WAITER_TTL", str(WAITER_TTL))
)

# ARGV: ticket, has status (0/1), kept points, reported available, maximum, restore rate, ttl
SETTLE = (
    _CLOCK
    + _HELD
    + """
local s = redis.call('HMGET', KEYS[1], 'available', 'updated', 'maximum', 'rate')
if not s[2] then
  redis.call('ZREM', KEYS[2], ARGV[1])
  redis.call('HDEL', KEYS[3], ARGV[1])
  return 0
end
local maximum, rate = tonumber(s[3]), tonumber(s[4])
local held = held_points()
local own = math.min(maximum - held, tonumber(s[1]) + (now - tonumber(s[2])) * rate)
local points = tonumber(redis.call('HGET', KEYS[3], ARGV[1]) or '0')
local sent = tonumber(redis.call('ZSCORE', KEYS[2], ARGV[1]) or tostring(now))
redis.call('ZREM', KEYS[2], ARGV[1])
redis.call('HDEL', KEYS[3], ARGV[1])
local available = own
if ARGV[2] == '1' then
  local kept = tonumber(ARGV[3])
  own = own + points - kept
  maximum, rate = tonumber(ARGV[5]), tonumber(ARGV[6])
  local reported = tonumber(ARGV[4])
  -- The snapshot was taken while this query ran: the queries of every process still in
  -- flight, and those answered since this one was sent, may be charged after it.
  local later = held - points
  for _, entry in ipairs(redis.call('ZRANGEBYSCORE', KEYS[4], '(' .. sent, '+inf')) do
    later = later + tonumber(string.match(entry, ':(.*)$'))
  end
  local highest = math.min(maximum, reported + (now - sent) * rate)
  available = math.min(math.max(own, reported - later), highest)
  redis.call('ZADD', KEYS[4], now, ARGV[1] .. ':' .. ARGV[3])
end
local oldest = redis.call('ZRANGE', KEYS[2], 0, 0, 'WITHSCORES')
local horizon = oldest[2] and tonumber(oldest[2]) or now
redis.call('ZREMRANGEBYSCORE', KEYS[4], '-inf', '(' .. tostring(horizon))
redis.call('HSET', KEYS[1], 'available', tostring(available), 'updated', tostring(now),
            'maximum', tostring(maximum), 'rate', tostring(rate))
touch()
return 1
"""
)

# A waiter gives up its place (cancelled). KEYS: queue, seen. ARGV: ticket.
LEAVE = """
redis.call('ZREM', KEYS[1], ARGV[1])
redis.call('HDEL', KEYS[2], ARGV[1])
return 1
"""

# The SP-API token bucket. KEYS: state. ARGV: action, default rate, burst, then per action.
# A token taken from a full bucket freezes the refill until its call is answered: Amazon's
# bucket stays full (its refill overflowing) until the call arrives, which under load or
# after a slow connection is long after we took the token, and other processes would spend
# that refill in the meantime (a 429). Frozen at most FREEZE_TTL (an answer that never came).
TOKENS = (
    _CLOCK
    + """
local s = redis.call('HMGET', KEYS[1], 'tokens', 'updated', 'rate', 'taken', 'frozen', 'frozen_at')
local burst = tonumber(ARGV[3])
local rate = tonumber(s[3]) or tonumber(ARGV[2])
local tokens = tonumber(s[1]) or burst
local taken = tonumber(s[4]) or 0
local frozen = tonumber(s[5] or '0')
if frozen > 0 and now - tonumber(s[6]) > FREEZE_TTL then frozen = 0 end
if s[2] and frozen == 0 then tokens = math.min(burst, tokens + (now - tonumber(s[2])) * rate) end
local frozen_at = s[6] or '0'
local action = ARGV[1]
local answer = {'ok', '0', '0', '0'}
local function wait_time()
  if tokens >= 1 then return 0 end
  if frozen > 0 then return FREEZE_POLL end
  return (1 - tokens) / rate
end
if action == 'take' then
  if tokens >= 1 then
    taken = taken + 1
    local full = tokens >= burst and '1' or '0'
    if full == '1' then frozen, frozen_at = taken, tostring(now) end
    tokens = tokens - 1
    answer = {'ok', tostring(now), tostring(taken), full}
  else
    answer = {'wait', tostring(wait_time()), '0', '0'}
  end
elseif action == 'wait' then
  answer = {'ok', tostring(wait_time()), '0', '0'}
elseif action == 'arrived' then
  if frozen == tonumber(ARGV[5]) then frozen = 0 end
elseif action == 'refused' then
  tokens = math.min(tokens, 0)
  rate = rate * tonumber(ARGV[4])
elseif action == 'rate' then
  local told = tonumber(ARGV[4])
  if told > 0 then rate = told end
end
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'updated', tostring(now),
           'rate', tostring(rate), 'taken', tostring(taken), 'frozen', tostring(frozen),
           'frozen_at', frozen_at)
redis.call('PEXPIRE', KEYS[1], KEY_TTL_MS)
answer[5] = tostring(rate)
return answer
""".replace("KEY_TTL_MS", str(KEY_TTL_MS))
    .replace("FREEZE_TTL", str(FREEZE_TTL))
    .replace("FREEZE_POLL", str(POLL))
)


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


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
    _lock: asyncio.Lock = field(default_factory=asyncio.Lock)
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

    async def reserve(self, key: tuple[Any, ...], hint: float | None = None) -> Any:
        """Wait until the shared bucket can pay the query's cost, take it; the ticket.

        The queries of this process take turns (the lock); those of other processes are
        served as Redis runs their scripts.
        """
        known = self.expected_cost.get(key)
        cost = known if known is not None else (hint if hint is not None else SINGLE_QUERY_MAX_COST)
        ticket = uuid.uuid4().hex
        loop = asyncio.get_running_loop()
        async with self._lock:
            start = loop.time()
            try:
                await self._wait_turn(key, hint, cost, ticket)
            except asyncio.CancelledError:
                # Out of the line at once, or the next query would wait WAITER_TTL for it.
                with contextlib.suppress(RedisError, OSError):
                    await asyncio.shield(self.store.run("leave", self._keys()[4:], [ticket]))
                raise
            except _FellBack as fallback:
                return _LocalTicket(fallback.ticket)
            waited = loop.time() - start
        self.waited += waited
        record_throttle_wait("shopify", waited)
        return ticket

    async def _wait_turn(
        self, key: tuple[Any, ...], hint: float | None, cost: float, ticket: str
    ) -> None:
        while True:
            try:
                verdict, value = await self.store.run(
                        "reserve",
                        self._keys(),
                        [cost, ticket, self.local.maximum, self.local.restore_rate,
                         IN_FLIGHT_TTL],
                    )  # fmt: skip
            except (RedisError, OSError) as error:
                self.fallback.failed(error)
                raise _FellBack(await self.local.reserve(key, hint)) from error
            self.fallback.worked()
            if _text(verdict) == "ok":
                return
            delay = float(_text(value))
            if delay < 0:  # only an answer to a query in flight makes room
                delay = POLL
            else:
                await report_wait(delay, f"Shopify query cost bucket refills ({cost:.0f} pts)")
            await asyncio.sleep(min(max(delay, 1e-3), MAX_SLEEP))

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
                await asyncio.sleep(max(float(answer[1]), 1e-3))
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
