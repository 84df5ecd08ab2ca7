"""A key revoked in one hub process is refused by the others at once, not after their cache of
checked keys expires: the revocation travels over the change feed (Redis pub/sub here).

Against the machine's Redis (``REDIS_URL``, else 127.0.0.1:6379); skipped, with the reason,
when none answers. Worker A is the API app under test with its own change feed; worker B,
which revokes, has the process's feed and a key cache of its own.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from dashboard.db import session_scope
from dashboard.services import api_keys
from dashboard.services.api_keys import list_api_keys, revoke_api_key
from dashboard.services.changefeed import API_KEYS, ChangeFeed, get_feed
from tests.api.conftest import MakeKey, bearer
from tests.test_cli import hub as run_hub
from tests.test_shared_limits import REDIS_URL, needs_redis

pytestmark = needs_redis


@pytest.fixture
async def worker_a_feed(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[ChangeFeed]:
    """Worker A's change feed (what its key cache listens to), and worker B's (this
    process's global feed), both over Redis."""
    feed_a, feed_b = ChangeFeed(), get_feed()
    await feed_a.start(redis_url=REDIS_URL, database_url="sqlite://")
    await feed_b.start(redis_url=REDIS_URL, database_url="sqlite://")
    monkeypatch.setattr(api_keys, "get_feed", lambda: feed_a)
    try:
        yield feed_a
    finally:
        await feed_a.stop()
        await feed_b.stop()


async def test_a_key_revoked_by_another_worker_is_refused_at_once(
    hub_db: object,
    worker_a_feed: ChangeFeed,
    hub: httpx.AsyncClient,
    make_key: MakeKey,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    key = make_key()
    assert (await hub.get("/api/v1/integrations", headers=bearer(key))).status_code == 200
    assert api_keys.cached_client(key) is not None  # worker A now answers from its cache
    seen = worker_a_feed.version(API_KEYS)
    with monkeypatch.context() as worker_b:
        worker_b.setattr(api_keys, "_CACHE", api_keys._ClientCache())
        with session_scope() as session:
            [row] = list_api_keys(session=session)
            revoke_api_key(session=session, key_id=row.id, actor="admin@example.com")
    revoked_at = time.monotonic()
    assert await worker_a_feed.wait(API_KEYS, seen, at_most=3.0) > seen
    refused = await hub.get("/api/v1/integrations", headers=bearer(key))
    assert refused.status_code == 401
    assert time.monotonic() - revoked_at < api_keys._ClientCache.TTL


async def test_a_revocation_rolled_back_tells_no_one(
    hub_db: object, worker_a_feed: ChangeFeed, hub: httpx.AsyncClient, make_key: MakeKey
) -> None:
    key = make_key()
    assert (await hub.get("/api/v1/integrations", headers=bearer(key))).status_code == 200
    seen = get_feed().version(API_KEYS)
    with pytest.raises(RuntimeError), session_scope() as session:
        [row] = list_api_keys(session=session)
        revoke_api_key(session=session, key_id=row.id, actor="admin@example.com")
        raise RuntimeError("the admin's request failed after the revocation")
    assert get_feed().version(API_KEYS) == seen
    assert (await hub.get("/api/v1/integrations", headers=bearer(key))).status_code == 200


async def test_hub_apikeys_revoke_tells_the_running_workers(tmp_path: Path) -> None:
    data = tmp_path / "data"
    assert run_hub("migrate", data_dir=data).returncode == 0
    created = run_hub(
        "apikeys", "create", "--name", "erp", "--scope", "records:read", data_dir=data
    )  # fmt: skip
    prefix = created.stdout.strip().split("_")[1]
    worker = ChangeFeed()  # a hub worker of the same deployment, listening over Redis
    await worker.start(redis_url=REDIS_URL, database_url="sqlite://")
    try:
        await asyncio.sleep(0.3)  # subscribed
        seen = worker.version(API_KEYS)
        revoked = await asyncio.to_thread(
            run_hub, "apikeys", "revoke", prefix, data_dir=data, env={"REDIS_URL": REDIS_URL}
        )
        assert revoked.returncode == 0, revoked.stderr
        assert await worker.wait(API_KEYS, seen, at_most=3.0) > seen
    finally:
        await worker.stop()
