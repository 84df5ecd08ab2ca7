"""A key's rate limit holds across hub processes when ``REDIS_URL`` is set: its bucket lives in
Redis, so N workers do not give a key N times its limit.

Against the machine's Redis (``REDIS_URL``, else 127.0.0.1:6379); skipped, with the reason,
when none answers. The other worker is a real OS process spending from the same key.
"""

from __future__ import annotations

import asyncio
import sys
import uuid
from collections.abc import AsyncIterator, Iterator

import httpx
import pytest

from connectors.ratelimit import shared_store, use_store
from connectors.shared_limits import RedisLimits
from dashboard.db import session_scope
from dashboard.services.api_keys import ApiClient, RateLimiter, list_api_keys
from tests.api.conftest import MakeKey, bearer
from tests.test_shared_limits import REDIS_URL, needs_redis

pytestmark = needs_redis

# The other worker: spends ``attempts`` requests of key ``key_id`` (limit ``per_minute``) from
# the store at ``prefix``, prints how many were let through.
OTHER_WORKER = """
import asyncio, sys, uuid
from connectors.ratelimit import use_store
from connectors.shared_limits import RedisLimits
from dashboard.services.api_keys import ApiClient, RateLimiter

async def main(url, prefix, key_id, per_minute, attempts):
    store = RedisLimits(url, prefix=prefix)
    use_store(store)
    client = ApiClient(key_id=uuid.UUID(key_id), name="erp", prefix="p", scopes=frozenset(),
                       integration_ids=frozenset(), rate_limit_per_minute=int(per_minute))
    limiter = RateLimiter()
    print("ready", flush=True)
    sys.stdin.readline()  # spend only once the test says go: start-up time is not spending time
    allowed = sum([await limiter.retry_after(client) == 0 for _ in range(int(attempts))])
    await store.aclose()
    print(allowed)

asyncio.run(main(*sys.argv[1:]))
"""


@pytest.fixture
async def shared(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[RedisLimits]:
    """This process's limit store in Redis (as ``platform_clients_lifespan`` sets it)."""
    store = RedisLimits(REDIS_URL, prefix=f"hub:limits:test:{uuid.uuid4().hex[:8]}")
    previous = shared_store()
    use_store(store)
    # This process's in-memory buckets start empty: what it lets through comes from Redis.
    monkeypatch.setattr("dashboard.services.api_keys.RATE_LIMITER", RateLimiter())
    try:
        yield store
    finally:
        use_store(previous)
        await store.clear()
        await store.aclose()


async def start_other_worker(
    store: RedisLimits, key_id: uuid.UUID, per_minute: int, attempts: int
) -> asyncio.subprocess.Process:
    """The other worker, imported and connected, waiting for ``go`` on its stdin.

    Python's start-up takes seconds on a loaded machine; spending only after it keeps the test's
    spending inside one token's refill time.
    """
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-c", OTHER_WORKER, store.url, store.prefix, str(key_id),
        str(per_minute), str(attempts),
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    assert process.stdout is not None
    ready = await process.stdout.readline()
    if ready.strip() != b"ready":
        _, err = await process.communicate()
        raise AssertionError(err.decode())
    return process


async def go_and_count(process: asyncio.subprocess.Process) -> int:
    """Let the waiting worker spend; how many of its attempts were let through."""
    out, err = await process.communicate(b"go\n")
    assert process.returncode == 0, err.decode()
    return int(out.decode().strip().splitlines()[-1])


async def other_worker(
    store: RedisLimits, key_id: uuid.UUID, per_minute: int, attempts: int
) -> int:
    return await go_and_count(await start_other_worker(store, key_id, per_minute, attempts))


def client_of(key_id: uuid.UUID, per_minute: int) -> ApiClient:
    return ApiClient(
        key_id=key_id, name="erp", prefix="p", scopes=frozenset(), integration_ids=frozenset(),
        rate_limit_per_minute=per_minute,
    )  # fmt: skip


async def test_two_processes_together_get_only_the_keys_limit(shared: RedisLimits) -> None:
    key_id, per_minute = uuid.uuid4(), 5  # a token comes back every 12 s: none during the test
    mine = RateLimiter()
    waiting = await start_other_worker(shared, key_id, per_minute, per_minute)
    elsewhere = asyncio.ensure_future(go_and_count(waiting))
    here = 0
    for _ in range(per_minute):
        here += await mine.retry_after(client_of(key_id, per_minute)) == 0
        await asyncio.sleep(0.01)
    there = await elsewhere
    assert here + there == per_minute, (here, there)
    # Both sides are now told to wait, for about one token's refill.
    assert 0 < await mine.retry_after(client_of(key_id, per_minute)) <= 12


@pytest.fixture
def limited_key(hub_db: object, make_key: MakeKey) -> Iterator[tuple[str, uuid.UUID]]:
    key = make_key(rate_limit_per_minute=3)
    with session_scope() as session:
        [row] = list_api_keys(session=session)
    yield key, row.id


async def test_a_key_spent_by_another_worker_gets_429_here(
    shared: RedisLimits, limited_key: tuple[str, uuid.UUID], hub: httpx.AsyncClient
) -> None:
    key, key_id = limited_key
    assert await other_worker(shared, key_id, 3, 2) == 2
    codes = [(await hub.get("/api/v1/integrations", headers=bearer(key))).status_code for _ in "ab"]
    assert codes == [200, 429]
    limited = await hub.get("/api/v1/integrations", headers=bearer(key))
    assert limited.json()["error"]["code"] == "rate_limited"
    assert 1 <= int(limited.headers["retry-after"]) <= 20  # a token comes back every 20 s


async def test_without_redis_each_process_keeps_its_own_bucket() -> None:
    """The fallback (no REDIS_URL, or Redis down): this process alone holds the limit."""
    assert shared_store() is None
    limiter, client = RateLimiter(), client_of(uuid.uuid4(), 2)
    assert [await limiter.retry_after(client) == 0 for _ in range(3)] == [True, True, False]
