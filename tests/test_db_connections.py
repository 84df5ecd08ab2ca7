"""Pooled PostgreSQL connections: pinged before use only after sitting idle, so a connection
the server closed meanwhile never reaches the caller, and busy work pays no extra round trip."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from dashboard import db

pytestmark = pytest.mark.postgres


def _backend_pid() -> int:
    with db.session_scope() as session:
        return int(session.execute(sa.text("SELECT pg_backend_pid()")).scalar_one())


def _terminate(engine: sa.Engine, pid: int) -> None:
    """What a server restart or its idle timeout does to a connection in the pool."""
    other = sa.create_engine(engine.url, poolclass=sa.pool.NullPool)
    with other.connect() as connection:
        connection.execute(sa.text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
    other.dispose()


def test_a_connection_closed_by_the_server_while_idle_is_replaced_unnoticed(
    pg_hub_db: sa.Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    closed = _backend_pid()
    _terminate(pg_hub_db, closed)
    monkeypatch.setattr(db, "PING_IDLE_AFTER", 0.0)  # it has sat in the pool long enough
    assert _backend_pid() != closed  # pinged, found dead, replaced: the caller saw nothing


def test_a_connection_closed_within_the_window_fails_once_then_the_pool_is_renewed(
    pg_hub_db: sa.Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(db, "PING_IDLE_AFTER", 60.0)  # however slow the machine, within it
    closed = _backend_pid()
    _terminate(pg_hub_db, closed)
    with pytest.raises(sa.exc.OperationalError) as failure:
        _backend_pid()  # used again at once: not pinged (the documented trade-off)
    assert failure.value.connection_invalidated
    assert _backend_pid() != closed


def test_busy_connections_are_not_pinged(
    pg_hub_db: sa.Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    pings: list[object] = []
    ping = pg_hub_db.dialect.do_ping
    monkeypatch.setattr(pg_hub_db.dialect, "do_ping", lambda c: pings.append(c) or ping(c))
    for _ in range(20):
        _backend_pid()
    assert pings == []  # a round trip saved in each of these transactions
    monkeypatch.setattr(db, "PING_IDLE_AFTER", 0.0)
    _backend_pid()
    assert len(pings) == 1
