"""What every platform call of a hub process shares: rate limits and HTTP clients.

- With ``REDIS_URL`` the rate-limit buckets of each platform account (a Shopify shop's cost
  bucket, an SP-API seller's per-operation buckets) live in Redis, so every worker and host
  calling the account keeps to one limit; without it, each process keeps its own.
- One HTTP client (connection pool, TLS) per account and process
  (``connectors.http.CLIENTS``), reused by syncs and webhook processing, closed at shutdown.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator

from connectors.http import CLIENTS
from connectors.ratelimit import shared_store, use_store
from connectors.shared_limits import RedisLimits
from dashboard.settings import Settings

log = logging.getLogger("hub.platform")


@contextlib.asynccontextmanager
async def platform_clients_lifespan(settings: Settings) -> AsyncIterator[None]:
    """Rate limits in Redis when ``settings.redis_url`` is set, for the process's life; at
    shutdown the shared clients and the Redis connections are closed."""
    store = RedisLimits(settings.redis_url) if settings.redis_url else None
    previous = shared_store()
    use_store(store)
    if store is not None:
        log.info("rate limits: one per platform account, shared by every process (Redis)")
    try:
        yield
    finally:
        use_store(previous)
        await CLIENTS.aclose()
        if store is not None:
            await store.aclose()
