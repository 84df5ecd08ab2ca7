"""Token buckets: the rate-limit model of SP-API (and of the sandbox that imitates it).

One class serves both sides: the sandbox asks ``try_take`` and answers 429 when it fails;
the connector ``acquire``s, which waits until a token is there, so a backlog runs at the
limit instead of into 429s.
"""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import itertools
import math
import time
import weakref
from collections.abc import Awaitable, Callable, Iterator
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any, Protocol

from connectors.metrics import record_throttle_wait


class LoopLock:
    """An ``asyncio.Lock`` per event loop, for state a process keeps per platform account.

    An asyncio lock belongs to the loop that first waits on it, and a process may run more
    than one loop (a test serving the hub's routes in a thread beside its own): a second
    loop waiting on the same lock failed the run ("bound to a different event loop"). Takers
    on one loop take turns; loops do not exclude each other (a hub process runs one).
    """

    def __init__(self) -> None:
        self._locks: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Lock] = (
            weakref.WeakKeyDictionary()
        )

    def _of_this_loop(self) -> asyncio.Lock:
        return self._locks.setdefault(asyncio.get_running_loop(), asyncio.Lock())

    async def __aenter__(self) -> None:
        await self._of_this_loop().acquire()

    async def __aexit__(self, *exc_info: object) -> None:
        self._of_this_loop().release()


# A query someone waits on (a webhook's look-up, a person connecting a shop) is placed in
# line as if it had come this many seconds earlier: ahead of a sync's pages, which wait for
# the bucket anyway, while a page that has waited longer than this goes ahead of newer urgent
# queries, so that a stream of webhooks slows a sync down but never stops it.
URGENT_HEAD_START = 30.0


@dataclass(frozen=True, order=True)
class Place:
    """A query's place in a ``WaitingLine``: when it came (less any head start), then who
    joined first."""

    at: float
    seq: int

    def ahead(self, now: float) -> float:
        """Seconds this place is ahead of a query joining at ``now`` without a head start."""
        return now - self.at


class WaitingLine:
    """The queries of one platform account waiting for its bucket in this process.

    Only the first in line may take from the bucket; the others wait until they are first.
    The first is woken when an answer changes the bucket (``wake_first``) and when someone
    goes ahead of it, so an urgent query does not wait behind a sync page sleeping for a
    refill. One line per event loop, as ``LoopLock``: a process may run more than one (tests),
    and a line's waiters and wakers belong to their loop.
    """

    def __init__(self) -> None:
        self._lines: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _LoopLine] = (
            weakref.WeakKeyDictionary()
        )
        self._seq = itertools.count()

    def _of_this_loop(self) -> _LoopLine:
        return self._lines.setdefault(asyncio.get_running_loop(), _LoopLine())

    def join(self, now: float, *, urgent: bool = False) -> Place:
        """Join the line at ``now`` (the caller's monotonic clock); leave it with ``leave``."""
        place = Place(now - (URGENT_HEAD_START if urgent else 0.0), next(self._seq))
        self._of_this_loop().join(place)
        return place

    def first(self, place: Place) -> bool:
        return self._of_this_loop().first(place)

    def leave(self, place: Place) -> None:
        self._of_this_loop().leave(place)

    async def wait(self, place: Place, delay: float) -> None:
        """Sleep ``delay`` seconds (infinite: until woken), or until woken. A wake that came
        since the last wait ends this one at once: nothing is missed between a check of the
        line and the wait."""
        await self._of_this_loop().wait(place, delay)

    def wake_first(self) -> None:
        """The bucket changed: the first in line looks again (on every loop)."""
        current = _running_loop()
        for loop, line in list(self._lines.items()):
            if loop is current:
                line.wake_first()
            elif not loop.is_closed():
                loop.call_soon_threadsafe(line.wake_first)


class _LoopLine:
    """A ``WaitingLine`` on one event loop."""

    def __init__(self) -> None:
        self._places: list[Place] = []  # sorted: the first in line is [0]
        self._wakers: dict[Place, asyncio.Future[None]] = {}

    def join(self, place: Place) -> None:
        self._wakers[place] = asyncio.get_running_loop().create_future()
        before = self._places[0] if self._places else None
        bisect.insort(self._places, place)
        if before is not None and place < before:
            self._wake(before)  # it is no longer first: it stops taking

    def first(self, place: Place) -> bool:
        return bool(self._places) and self._places[0] == place

    def leave(self, place: Place) -> None:
        was_first = self.first(place)
        with contextlib.suppress(ValueError):
            self._places.remove(place)
        self._wakers.pop(place, None)
        if was_first:
            self.wake_first()

    def wake_first(self) -> None:
        if self._places:
            self._wake(self._places[0])

    async def wait(self, place: Place, delay: float) -> None:
        woken = self._wakers[place]
        if not woken.done():
            if math.isinf(delay):
                await asyncio.shield(woken)
            else:
                sleeper = asyncio.ensure_future(asyncio.sleep(max(delay, 0.0)))
                try:
                    await asyncio.wait({sleeper, woken}, return_when=asyncio.FIRST_COMPLETED)
                finally:
                    sleeper.cancel()
        if woken.done():
            self._wakers[place] = asyncio.get_running_loop().create_future()

    def _wake(self, place: Place) -> None:
        woken = self._wakers.get(place)
        if woken is not None and not woken.done():
            woken.set_result(None)


def _running_loop() -> asyncio.AbstractEventLoop | None:
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None


@dataclass(frozen=True)
class Take:
    """One token taken: when, how many were taken up to it, and whether the bucket was full.

    A platform's bucket, full as ours, keeps overflowing until the call reaches it, while
    ours counts the refill from the moment we took the token: see ``TokenBucket.arrived``.
    """

    at: float
    count: int
    from_full: bool


class TokenBucket:
    """``rate`` tokens per second, at most ``burst`` stored; starts full as the platform does."""

    def __init__(
        self,
        rate: float,
        burst: float,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[object]] = asyncio.sleep,
    ) -> None:
        if rate <= 0 or burst < 1:
            raise ValueError("rate must be positive and burst at least 1")
        self.rate = rate
        self.burst = float(burst)
        self.tokens = float(burst)
        self._clock = clock
        self._sleep = sleep
        self._updated = clock()
        self._lock = LoopLock()
        self.taken = 0
        self.last_take: Take | None = None

    def _refill(self) -> None:
        now = self._clock()
        self.tokens = min(self.burst, self.tokens + (now - self._updated) * self.rate)
        self._updated = now

    def try_take(self) -> bool:
        self._refill()
        if self.tokens >= 1.0:
            self.taken += 1
            self.last_take = Take(self._updated, self.taken, self.tokens >= self.burst)
            self.tokens -= 1.0
            return True
        return False

    def wait_time(self) -> float:
        """Seconds until one token is available (0 when one is)."""
        self._refill()
        return max(0.0, (1.0 - self.tokens) / self.rate)

    async def acquire(self) -> float:
        """Take one token, waiting for it first; returns the seconds waited.

        The lock keeps callers in arrival order, so streams sharing a bucket share it fairly.
        """
        waited = 0.0
        async with self._lock:
            while not self.try_take():
                # At least a microsecond: a wait of float dust would not move the clock.
                delay = max(self.wait_time(), 1e-6)
                waited += delay
                await self._sleep(delay)
        record_throttle_wait("amazon", waited)  # only the SP-API client acquires
        return waited

    def set_rate(self, rate: float) -> None:
        """The platform told us the actual rate (``x-amzn-RateLimit-Limit``)."""
        if rate > 0 and abs(rate - self.rate) > 1e-9:
            self._refill()
            self.rate = rate

    def arrived(self, take: Take) -> None:
        """The call of ``take`` was answered: it reached the platform by now.

        Taken from a full bucket, it left ours refilling from ``take.at``, while the
        platform's stayed full (its refill overflowing) until the call arrived: up to now,
        after an access-token refresh or a slow connection. Count our refill from now
        instead, never below what the takes since then leave of a full bucket.
        """
        if not take.from_full:
            return
        self._refill()
        counted = (self._updated - take.at) * self.rate
        floor = self.burst - (self.taken - take.count + 1)
        self.tokens = min(self.tokens, max(self.tokens - counted, floor))

    def drain(self) -> None:
        """The platform said the bucket is empty (a 429): believe it."""
        self._refill()
        self.tokens = min(self.tokens, 0.0)

    # --- the ``OperationBucket`` face, which a bucket shared across processes also has ------

    async def expected_wait(self) -> float:
        return self.wait_time()

    async def take(self) -> tuple[float, Take | None]:
        waited = await self.acquire()
        return waited, self.last_take

    async def answered(self, take: Take | None) -> None:
        if take is not None:
            self.arrived(take)

    async def refused(self, slowdown: float) -> None:
        self.drain()
        self.set_rate(self.rate * slowdown)

    async def told_rate(self, rate: float) -> None:
        self.set_rate(rate)


# --- one limit per platform account, whichever process calls -----------------------------------
#
# In one process the buckets above (and the Shopify client's cost estimate) are the account's
# limit. Several processes calling the same account each need the same bucket: a
# ``LimitStore`` (``connectors.shared_limits.RedisLimits``) holds them where every process
# reaches them; the host injects it with ``use_store`` (the hub does when REDIS_URL is set).


class OperationBucket(Protocol):
    """An SP-API operation's token bucket for one seller, as the client uses it."""

    rate: float

    async def expected_wait(self) -> float:
        """Seconds until a token is there (0: now), to tell the caller about the wait."""

    async def take(self) -> tuple[float, Any]:
        """Take one token, waiting for it; (seconds waited, what ``answered`` needs)."""

    async def answered(self, take: Any) -> None:
        """The call of ``take`` was answered: it reached the platform by now."""

    async def refused(self, slowdown: float) -> None:
        """A 429: the bucket is empty and the real rate lower, by ``slowdown``."""

    async def told_rate(self, rate: float) -> None:
        """The platform named the operation's rate (``x-amzn-RateLimit-Limit``)."""


class CostBucket(Protocol):
    """A Shopify shop's query-cost bucket, as the GraphQL client uses it."""

    throttled: int
    waited: float

    async def reserve(
        self, key: tuple[Any, ...], hint: float | None = None, *, urgent: bool = False
    ) -> Any:
        """Wait until the bucket can pay the query's cost and take it; returns the ticket.
        ``urgent``: someone waits on the answer; it goes ahead of sync pages (``WaitingLine``)."""

    async def answered(
        self, ticket: Any, cost: dict[str, Any] | None, *, key: tuple[Any, ...], throttled: bool
    ) -> None:
        """Settle ``ticket`` with the answer's ``extensions.cost`` (None: none came)."""

    async def abandoned(self, ticket: Any) -> None:
        """No answer came: the reservation stays spent, as it may have been."""


class LimitStore(Protocol):
    """Where the buckets of every platform account live for all the processes using it."""

    def cost_bucket(self, shop: str) -> CostBucket:
        """The cost bucket of ``shop``."""

    def operation_bucket(
        self, seller: str, region: str, operation: str, rate: float, burst: int
    ) -> OperationBucket:
        """The bucket of one SP-API operation of a seller (an application's grant) in a
        region, starting from the documented ``rate`` and ``burst``."""


_store: LimitStore | None = None


def use_store(store: LimitStore | None) -> None:
    """Keep every account's buckets in ``store`` from now on (None: in this process)."""
    global _store
    _store = store


def shared_store() -> LimitStore | None:
    """The store set with ``use_store``; None when the buckets live in this process."""
    return _store


# --- telling the caller about waits and throttles ----------------------------------------------
#
# A client that waits for a known rate-limit window, is throttled, or waits while the platform
# prepares something (a report), says so here; whoever runs the read (the sync engine) listens
# through ``observe``. The engine shows "waiting for the rate limit (next call 10:14)" or
# "waiting for Amazon to prepare the report (checked 10:14)" instead of a silent run, and
# counts throttled attempts (it may raise from ``throttled`` to stop a read that stays
# throttled). No listener: no-ops.


class WaitObserver(Protocol):
    async def waiting(self, *, seconds: float, reason: str) -> None:
        """The next request goes out in ``seconds`` because of a known rate limit."""

    async def throttled(self, *, reason: str, retry_after: float | None) -> None:
        """The platform answered a request with a throttle (429, THROTTLED). May raise."""

    def quota(self, *, words: str) -> None:
        """What the platform's last answer said of the rate limit: cost and points left
        (Shopify), the operation's rate (SP-API). Kept for the run's next page line."""

    async def preparing(self, *, seconds: float, what: str, status: str) -> None:
        """The platform prepares ``what`` the read waits for (an Amazon report): asked just
        now, it answered ``status``; it is asked again in ``seconds`` (0: it is ready)."""


_observer: ContextVar[WaitObserver | None] = ContextVar("rate_limit_observer", default=None)


@contextlib.contextmanager
def observe(observer: WaitObserver) -> Iterator[None]:
    """Send the waits and throttles of the code run in this context to ``observer``."""
    token = _observer.set(observer)
    try:
        yield
    finally:
        _observer.reset(token)


async def report_wait(seconds: float, reason: str) -> None:
    observer = _observer.get()
    if observer is not None and seconds > 0:
        await observer.waiting(seconds=seconds, reason=reason)


async def report_throttled(reason: str, *, retry_after: float | None = None) -> None:
    observer = _observer.get()
    if observer is not None:
        await observer.throttled(reason=reason, retry_after=retry_after)


async def report_preparing(seconds: float, *, what: str, status: str) -> None:
    observer = _observer.get()
    if observer is not None:
        await observer.preparing(seconds=seconds, what=what, status=status)


def report_quota(words: str) -> None:
    observer = _observer.get()
    if observer is not None:
        observer.quota(words=words)
