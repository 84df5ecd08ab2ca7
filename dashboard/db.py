"""Database engine and sessions.

The hub uses a synchronous SQLAlchemy engine; async code reaches it through ``in_session``,
which runs the work in a thread so the event loop never waits on the database.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import json
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

import orjson
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Engine
from sqlmodel import Session

from dashboard.data_dir import secure_data_dir, secure_sqlite_file
from dashboard.settings import get_settings

T = TypeVar("T")


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    # WAL lets the UI read while a sync writes; busy_timeout waits instead of failing.
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


def json_text(value: Any) -> str:
    """JSON for a JSON column: orjson, several times quicker than ``json.dumps`` on a record's
    raw platform JSON; what orjson refuses (an integer beyond 64 bits) goes through ``json``."""
    try:
        return orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS).decode()
    except orjson.JSONEncodeError:
        return json.dumps(value)


_ENGINES: dict[str, Engine] = {}
_ENGINES_LOCK = threading.Lock()


def engine_for(url: str) -> Engine:
    """One pooled engine per URL for the whole process."""
    with _ENGINES_LOCK:
        if url not in _ENGINES:
            _ENGINES[url] = _create_engine(url)
        return _ENGINES[url]


def _create_engine(url: str) -> Engine:
    if url.startswith("sqlite"):
        path = url.split("///", 1)[-1]
        if path and path != ":memory:":
            _prepare_sqlite_file(Path(path))
        engine = sa.create_engine(
            url, connect_args={"check_same_thread": False, "timeout": 30}, pool_size=10,
            json_serializer=json_text, json_deserializer=orjson.loads,
        )  # fmt: skip
        sa.event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    engine = sa.create_engine(
        url, pool_size=10, max_overflow=20,
        json_serializer=json_text, json_deserializer=orjson.loads,
    )  # fmt: skip
    sa.event.listen(engine, "connect", _note_idle)
    sa.event.listen(engine, "checkin", _note_idle)
    sa.event.listen(engine, "checkout", functools.partial(_ping_if_idle, engine.dialect))
    return engine


# A pooled connection unused for this long is pinged before it is handed out: the server
# may have restarted or closed it meanwhile (an idle timeout, a failover, a firewall). One
# in steady use is not. SQLAlchemy's ``pool_pre_ping`` pings on every checkout: a round trip
# in every transaction, five per sync run and one per webhook group commit. A connection
# that breaks within this window fails its next statement once, and SQLAlchemy then
# replaces every connection of the pool older than that failure.
PING_IDLE_AFTER = 5.0
_IDLE_SINCE = "hub_idle_since"


def _note_idle(_dbapi_connection: Any, record: Any) -> None:
    record.info[_IDLE_SINCE] = time.monotonic()


def _ping_if_idle(dialect: Any, dbapi_connection: Any, record: Any, _proxy: Any) -> None:
    idle_since = record.info.get(_IDLE_SINCE)
    if idle_since is not None and time.monotonic() - idle_since < PING_IDLE_AFTER:
        return
    try:
        dialect.do_ping(dbapi_connection)
    except Exception as error:
        # The pool discards this connection and checks out another (a new one if need be).
        raise sa.exc.DisconnectionError(f"idle connection no longer answers: {error}") from error


def _prepare_sqlite_file(path: Path) -> None:
    """The database holds merchants' data: only the hub's user may read it. The data dir is
    made private as a whole; a file elsewhere (HUB_DATABASE_URL) keeps its directory as is."""
    data_dir = get_settings().data_dir
    if path.resolve().parent == data_dir:
        secure_data_dir(data_dir)
    else:
        path.parent.mkdir(parents=True, exist_ok=True)
    secure_sqlite_file(path)


def get_engine() -> Engine:
    return engine_for(get_settings().sqlalchemy_url)


def dialect_insert(dialect: str) -> Any:
    """The ``insert`` with ``ON CONFLICT`` of a database dialect (PostgreSQL's, else
    SQLite's): the two the hub runs on."""
    return postgresql.insert if dialect == "postgresql" else sqlite.insert


@contextmanager
def session_scope() -> Iterator[Session]:
    """A session that commits when the block succeeds and rolls back when it raises."""
    with Session(get_engine(), expire_on_commit=False) as session:
        try:
            yield session
            session.commit()
        except BaseException:
            session.rollback()
            raise


def _run(fn: Callable[[Session], T]) -> T:
    with session_scope() as session:
        return fn(session)


_DB_THREADS: dict[str, ThreadPoolExecutor] = {}


def _db_executor() -> ThreadPoolExecutor:
    """Database work gets its own threads, as many as the connection pool can serve.

    The event loop's default executor has min(32, cores + 4) threads (6 on two cores) shared
    with everything else; a hundred concurrent syncs then queue behind each other for them.
    SQLite has one writer anyway, PostgreSQL serves many.
    """
    dialect = get_engine().dialect.name
    with _ENGINES_LOCK:
        executor = _DB_THREADS.get(dialect)
        if executor is None:
            workers = 24 if dialect == "postgresql" else 8
            executor = _DB_THREADS[dialect] = ThreadPoolExecutor(
                max_workers=workers, thread_name_prefix=f"hub-db-{dialect}"
            )
        return executor


async def in_session(fn: Callable[[Session], T]) -> T:
    """Run ``fn(session)`` in a database thread inside ``session_scope``."""
    context = contextvars.copy_context()
    return await asyncio.get_running_loop().run_in_executor(
        _db_executor(), functools.partial(context.run, _run, fn)
    )


_SQLITE_WRITER: list[ThreadPoolExecutor] = []


async def in_write_session(fn: Callable[[Session], T]) -> T:
    """``in_session`` for the sync engine's writes: batches, checkpoints, run state.

    SQLite lets one connection write at a time, and a writer that finds the lock taken
    sleeps in growing steps: with several syncs, some waited far longer than others and
    they held the database threads that page reads need. On SQLite these writes therefore
    queue, in order, for one thread of their own; PostgreSQL writes rows in parallel and
    keeps the shared pool.
    """
    if get_engine().dialect.name != "sqlite":
        return await in_session(fn)
    with _ENGINES_LOCK:
        if not _SQLITE_WRITER:
            _SQLITE_WRITER.append(
                ThreadPoolExecutor(max_workers=1, thread_name_prefix="hub-db-sqlite-writer")
            )
        writer = _SQLITE_WRITER[0]
    context = contextvars.copy_context()
    return await asyncio.get_running_loop().run_in_executor(
        writer, functools.partial(context.run, _run, fn)
    )


_OWN_THREADS: dict[str, ThreadPoolExecutor] = {}


async def in_own_session(lane: str, fn: Callable[[Session], T]) -> T:
    """``in_session`` on a thread of ``lane``'s own, one per lane and process.

    For short work that someone waits for and that must not queue behind the shared
    database threads' background work: the webhook route's group commit, which Shopify's
    request waits for while the same process applies earlier webhooks.
    """
    with _ENGINES_LOCK:
        executor = _OWN_THREADS.get(lane)
        if executor is None:
            executor = _OWN_THREADS[lane] = ThreadPoolExecutor(
                max_workers=1, thread_name_prefix=f"hub-db-{lane}"
            )
    context = contextvars.copy_context()
    return await asyncio.get_running_loop().run_in_executor(
        executor, functools.partial(context.run, _run, fn)
    )


def contains_pattern(text: str) -> str:
    """A LIKE pattern (``escape="\\"``) matching ``text`` anywhere, lower-cased, with ``%`` and
    ``_`` as plain characters: what a user typing in a search box means."""
    escaped = text.strip().lower().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def reset_engines() -> None:
    """Dispose every engine (tests that switch databases, workers after fork)."""
    with _ENGINES_LOCK:
        for engine in _ENGINES.values():
            engine.dispose()
        _ENGINES.clear()
