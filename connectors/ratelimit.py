"""Token buckets: the rate-limit model of SP-API (and of the sandbox that imitates it).

One class serves both sides: the sandbox asks ``try_take`` and answers 429 when it fails;
the connector ``acquire``s, which waits until a token is there, so a backlog runs at the
limit instead of into 429s.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable


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
        self._lock = asyncio.Lock()

    def _refill(self) -> None:
        now = self._clock()
        self.tokens = min(self.burst, self.tokens + (now - self._updated) * self.rate)
        self._updated = now

    def try_take(self) -> bool:
        self._refill()
        if self.tokens >= 1.0:
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
                delay = self.wait_time()
                waited += delay
                await self._sleep(delay)
        return waited

    def set_rate(self, rate: float) -> None:
        """The platform told us the actual rate (``x-amzn-RateLimit-Limit``)."""
        if rate > 0 and abs(rate - self.rate) > 1e-9:
            self._refill()
            self.rate = rate

    def drain(self) -> None:
        """The platform said the bucket is empty (a 429): believe it."""
        self._refill()
        self.tokens = min(self.tokens, 0.0)
