"""One change feed per process: "something changed" pushed to whoever waits, across processes.

Four topics: ``QUEUE`` (a run was queued or handed back: processes with free capacity claim
it at once), ``LIVE`` (rows the live pages show were written: open pages re-read),
``SESSIONS`` (users or their sessions were written: a sign-out, a disabled account, a reset
password; open pages check their session again) and ``API_KEYS`` (a Hub API key was revoked:
every process forgets the keys it had checked). Every
committed write of this process feeds it (SQLAlchemy session events below), so run, incident,
webhook and operator writes all count without each call site remembering to say so.

Between processes the feed travels over Redis pub/sub when ``REDIS_URL`` is set, else over
PostgreSQL ``LISTEN/NOTIFY`` (psycopg's async connection). On SQLite (one hub process) it
stays in process, and one watch per process on SQLite's ``PRAGMA data_version`` (which moves
when another connection commits) catches writes of other processes (``hub sync``, scripts).
Notifications are coalesced: at most one per topic every ``PUBLISH_EVERY`` seconds leaves the
process, however many rows a sync writes. Waiters always pass a fallback timeout, so a lost
notification (a reconnect, a write outside a session) costs a delay, never an update.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import sqlite3
from collections.abc import AsyncIterator
from typing import Any, Protocol

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.orm import ORMExecuteState, Session, UOWTransaction

log = logging.getLogger("hub.changefeed")

QUEUE = "queue"
LIVE = "live"
API_KEYS = "api_keys"
SESSIONS = "sessions"
TOPICS = (QUEUE, LIVE, API_KEYS, SESSIONS)
# Tables whose writes can end a signed-in session.
SESSION_TABLES = frozenset({"users", "user_sessions"})
CHANNEL = "hub_changes"
PUBLISH_EVERY = 0.05
# Seconds between looks at data_version: one per process, not per page. A look reads a
# counter in SQLite's shared memory (no lock, no disk), so it runs on the loop itself.
SQLITE_LOOK_EVERY = 0.1
RECONNECT_AFTER = 2.0
# Writes that no live page shows: sessions touched on every request, liveness beats, the
# scheduler's own bookkeeping. Waking every open page for them would be polling again.
QUIET_TABLES = frozenset(
    {"sign_in_throttles", "hub_workers", "scheduler_leases", "apscheduler_jobs"}
)


class _Backend(Protocol):
    async def publish(self, payload: str) -> None: ...

    def listen(self) -> AsyncIterator[str]: ...

    async def aclose(self) -> None: ...


class ChangeFeed:
    """Per-topic version counters that waiters compare against, woken by local writes and by
    other processes' notifications."""

    def __init__(self) -> None:
        self.origin = f"{os.getpid()}-{id(self):x}"
        self.backend_name = "in-process"
        self._versions = dict.fromkeys(TOPICS, 0)
        self._events: dict[str, asyncio.Event] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._backend: _Backend | None = None
        self._pending: set[str] = set()
        self._flush_at: asyncio.TimerHandle | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self._listener: asyncio.Task[None] | None = None
        self._local_writes = 0  # commits of this process, for the SQLite watch

    # --- waiting ---------------------------------------------------------------------------

    def version(self, topic: str) -> int:
        self._bind()
        return self._versions[topic]

    async def wait(self, topic: str, seen: int, *, at_most: float) -> int:
        """Wait until ``topic`` moves past version ``seen`` or ``at_most`` seconds pass; returns the
        version now (equal to ``seen`` when nothing changed)."""
        self._bind()
        if self._versions[topic] != seen:
            return self._versions[topic]
        waiter = self._events.get(topic)
        if waiter is None:
            waiter = self._events[topic] = asyncio.Event()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(waiter.wait(), timeout=at_most)
        return self._versions[topic]

    def _bind(self) -> None:
        """Follow the running event loop (tests run one per test; events bind to theirs)."""
        loop = asyncio.get_running_loop()
        if loop is not self._loop:
            self._loop = loop
            self._events.clear()
            self._flush_at = None

    def _bump(self, topics: set[str] | tuple[str, ...]) -> None:
        for topic in topics:
            if topic in self._versions:
                self._versions[topic] += 1
                waiter = self._events.pop(topic, None)
                if waiter is not None:
                    waiter.set()

    # --- telling ---------------------------------------------------------------------------

    def changed(self, *topics: str) -> None:
        """Say that ``topics`` changed. Safe from any thread (database threads call it after a
        commit) and never blocks; before any loop waits it does nothing (nobody listens)."""
        loop = self._loop
        if loop is None or loop.is_closed():
            return
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is loop:
            self._changed_here(set(topics))
            return
        with contextlib.suppress(RuntimeError):  # the loop closed meanwhile
            loop.call_soon_threadsafe(self._changed_here, set(topics))

    def _changed_here(self, topics: set[str]) -> None:
        self._bump(topics)
        if self._backend is None or self._loop is None:
            return
        self._pending |= topics
        if self._flush_at is None:
            self._flush_at = self._loop.call_later(PUBLISH_EVERY, self._flush)

    def _flush(self) -> None:
        self._flush_at = None
        topics, self._pending = self._pending, set()
        backend = self._backend
        if not topics or backend is None:
            return
        payload = f"{self.origin}:{','.join(sorted(topics))}"
        self._spawn(self._publish(backend, payload))

    async def _publish(self, backend: _Backend, payload: str) -> None:
        try:
            await backend.publish(payload)
        except Exception as error:  # waiters fall back to their timeout
            log.warning("change feed: could not publish (%s: %s)", type(error).__name__, error)

    def _received(self, payload: str) -> None:
        origin, _, topics = payload.partition(":")
        if origin != self.origin:  # our own changes were bumped when they were made
            self._bump(tuple(topics.split(",")))

    def _spawn(self, coroutine: Any) -> None:
        assert self._loop is not None
        task = self._loop.create_task(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # --- between processes -----------------------------------------------------------------

    async def start(self, *, redis_url: str | None, database_url: str) -> None:
        """Connect this process to the others: Redis when set, else PostgreSQL, else none."""
        self._bind()
        backend: _Backend | None = None
        if redis_url:
            backend, self.backend_name = _RedisBackend(redis_url), "redis"
        elif database_url.startswith("postgresql"):
            backend, self.backend_name = _PostgresBackend(database_url), "postgresql"
        elif database_url.startswith("sqlite") and ":memory:" not in database_url:
            path = sa.engine.make_url(database_url).database
            if path:
                self.backend_name = "sqlite data_version"
                self._listener = asyncio.get_running_loop().create_task(self._watch_sqlite(path))
        if backend is None:
            return
        self._backend = backend
        self._listener = asyncio.get_running_loop().create_task(self._listen(backend))

    async def _listen(self, backend: _Backend) -> None:
        while True:
            try:
                async for payload in backend.listen():
                    self._received(payload)
            except asyncio.CancelledError:
                raise
            except Exception as error:
                log.warning(
                    "change feed: listening over %s failed (%s: %s); reconnecting",
                    self.backend_name, type(error).__name__, error,
                )  # fmt: skip
            self._bump(TOPICS)  # something may have been missed while away
            await asyncio.sleep(RECONNECT_AFTER)

    async def _watch_sqlite(self, path: str) -> None:
        """Another process committed when data_version moved and this one did not commit
        meanwhile. When both happened in one look, the pages this process's commit woke may
        have read before the other commit landed: they read once more (``LIVE`` only; the
        claimers look every ``HANDOVER_EVERY`` anyway). While syncs here commit batch after
        batch the pages already re-read at their own pace, so that costs nothing then."""
        connection = await asyncio.to_thread(_sqlite_connection, path)
        try:
            version = _data_version(connection)
            while True:
                local = self._local_writes
                await asyncio.sleep(SQLITE_LOOK_EVERY)
                try:
                    now = _data_version(connection)
                except sqlite3.Error:
                    continue
                if now != version:
                    self._bump(TOPICS if self._local_writes == local else (LIVE,))
                version = now
        finally:
            connection.close()

    async def stop(self) -> None:
        if self._listener is not None:
            self._listener.cancel()
            with contextlib.suppress(BaseException):
                await self._listener
            self._listener = None
        if self._flush_at is not None:
            self._flush_at.cancel()
            self._flush()
        if self._tasks:
            await asyncio.wait(list(self._tasks), timeout=2)
        backend, self._backend = self._backend, None
        if backend is not None:
            with contextlib.suppress(Exception):
                await backend.aclose()
        self.backend_name = "in-process"


def _sqlite_connection(path: str) -> sqlite3.Connection:
    return sqlite3.connect(path, check_same_thread=False, timeout=5)


def _data_version(connection: sqlite3.Connection) -> int:
    return int(connection.execute("PRAGMA data_version").fetchone()[0])


class _PostgresBackend:
    """LISTEN on one autocommit connection, NOTIFY on another (a connection iterating its
    notifications is busy)."""

    def __init__(self, database_url: str) -> None:
        url = sa.engine.make_url(database_url).set(drivername="postgresql")
        self._conninfo = url.render_as_string(hide_password=False)
        self._sender: Any = None
        self._sender_lock = asyncio.Lock()

    async def _connect(self) -> Any:
        import psycopg

        return await psycopg.AsyncConnection.connect(self._conninfo, autocommit=True)

    async def publish(self, payload: str) -> None:
        async with self._sender_lock:
            if self._sender is None or self._sender.closed:
                self._sender = await self._connect()
            try:
                await self._sender.execute("SELECT pg_notify(%s, %s)", (CHANNEL, payload))
            except Exception:
                await self._sender.close()
                self._sender = None
                raise

    async def listen(self) -> AsyncIterator[str]:
        connection = await self._connect()
        try:
            await connection.execute(f"LISTEN {CHANNEL}")
            async for notify in connection.notifies():
                yield notify.payload
        finally:
            await connection.close()

    async def aclose(self) -> None:
        if self._sender is not None:
            await self._sender.close()


class _RedisBackend:
    def __init__(self, redis_url: str) -> None:
        import redis.asyncio as redis

        self._client = redis.from_url(redis_url)

    async def publish(self, payload: str) -> None:
        await self._client.publish(CHANNEL, payload)

    async def listen(self) -> AsyncIterator[str]:
        pubsub = self._client.pubsub(ignore_subscribe_messages=True)
        try:
            await pubsub.subscribe(CHANNEL)
            async for message in pubsub.listen():
                data = message.get("data")
                if isinstance(data, bytes):
                    yield data.decode()
        finally:
            await pubsub.aclose()

    async def aclose(self) -> None:
        await self._client.aclose()


_feed = ChangeFeed()


def get_feed() -> ChangeFeed:
    return _feed


@contextlib.asynccontextmanager
async def changefeed_lifespan() -> AsyncIterator[ChangeFeed]:
    """Connect this process's feed to the other processes for as long as it runs."""
    from dashboard.settings import get_settings

    settings = get_settings()
    feed = get_feed()
    try:
        await feed.start(redis_url=settings.redis_url, database_url=settings.sqlalchemy_url)
    except Exception:  # serve anyway: waiters fall back to their timeouts
        log.exception("change feed could not connect; pages and claims fall back to polling")
    try:
        yield feed
    finally:
        await feed.stop()


async def tell_the_hub(*topics: str) -> None:
    """From a process that does not run the feed (a CLI command): tell the hub's processes
    now that ``topics`` changed, rather than at their next look."""
    async with changefeed_lifespan() as feed:
        feed.changed(*topics)


# --- fed by every committed write --------------------------------------------------------------

_WRITTEN = "hub_changefeed_tables"
_TOLD = "hub_changefeed_told"


def tell_at_commit(session: Session, *topics: str) -> None:
    """Say that ``topics`` changed once ``session``'s transaction commits (not if it rolls
    back): for topics that no table write implies, such as ``API_KEYS``."""
    session.info.setdefault(_TOLD, set()).update(topics)


def _note(session: Session, table: str | None) -> None:
    if table:
        session.info.setdefault(_WRITTEN, set()).add(table)


@event.listens_for(Session, "do_orm_execute")
def _on_execute(state: ORMExecuteState) -> None:
    if state.is_insert or state.is_update or state.is_delete:
        table = getattr(state.statement, "table", None)
        name = getattr(table, "name", None)
        _note(state.session, name)
        if state.is_insert and name:
            _note(state.session, f"+{name}")


@event.listens_for(Session, "after_flush")
def _on_flush(session: Session, _flush: UOWTransaction) -> None:
    for instance in (*session.new, *session.dirty, *session.deleted):
        table = getattr(instance, "__tablename__", None)
        _note(session, table)
        if instance in session.new and table:
            _note(session, f"+{table}")


@event.listens_for(Session, "after_commit")
def _on_commit(session: Session) -> None:
    tables: set[str] | None = session.info.pop(_WRITTEN, None)
    topics: list[str] = sorted(session.info.pop(_TOLD, None) or ())
    if not tables:
        if topics:
            _feed.changed(*topics)
        return
    _feed._local_writes += 1  # (from a database thread: a lost increment costs one re-read)
    if "+sync_runs" in tables:  # a run was queued: claimers look now
        topics.append(QUEUE)
    if any(not table.startswith("+") and table not in QUIET_TABLES for table in tables):
        topics.append(LIVE)
    if tables & SESSION_TABLES:
        topics.append(SESSIONS)
    if topics:
        _feed.changed(*topics)


@event.listens_for(Session, "after_rollback")
def _on_rollback(session: Session) -> None:
    session.info.pop(_WRITTEN, None)
    session.info.pop(_TOLD, None)
