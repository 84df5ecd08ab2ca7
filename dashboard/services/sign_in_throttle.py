"""Sign-in limits: attempts counted per account and per client address in
``sign_in_throttles``, each with one atomic upsert committed before a password is checked, so
parallel guesses cannot all be checked. ``auth`` turns a count past the limit into
``SignInThrottled``."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import sqlalchemy as sa
from sqlmodel import Session, col

from dashboard.db import dialect_insert
from dashboard.models import SignInThrottle

THROTTLE_WINDOW = timedelta(minutes=15)
ACCOUNT_ATTEMPTS = 10
ADDRESS_ATTEMPTS = 50


def account_key(email: str) -> str:
    return f"account:{email.strip().lower()[:320]}"


def address_key(client_address: str | None) -> str:
    return f"address:{(client_address or 'unknown')[:64]}"


def take_attempt(*, session: Session, key: str, limit: int) -> int | None:
    """Count one attempt for ``key`` and commit it; past ``limit``, the seconds until its
    window ends (None within it).

    One ``INSERT ... ON CONFLICT DO UPDATE ... RETURNING`` (SQLite >= 3.35, PostgreSQL):
    the database serializes the increments, so N parallel attempts read N distinct counts.
    """
    now = datetime.now(UTC)
    table = SignInThrottle.__table__  # type: ignore[attr-defined]
    expired = table.c.window_started_at <= now - THROTTLE_WINDOW
    statement = (
        dialect_insert(session.get_bind().dialect.name)(table)
        .values(key=key, attempts=1, window_started_at=now)
        .on_conflict_do_update(
            index_elements=[table.c.key],
            set_={
                "attempts": sa.case((expired, 1), else_=table.c.attempts + 1),
                "window_started_at": sa.case((expired, now), else_=table.c.window_started_at),
            },
        )
        .returning(table.c.attempts, table.c.window_started_at)
    )
    attempts, started = session.execute(statement).one()
    session.commit()  # before the password check: a refusal must not roll the count back
    if attempts <= limit:
        return None
    if started.tzinfo is None:
        started = started.replace(tzinfo=UTC)
    return max(1, int((started + THROTTLE_WINDOW - now).total_seconds()) + 1)


def give_back_attempt(*, session: Session, key: str) -> None:
    table = SignInThrottle.__table__  # type: ignore[attr-defined]
    session.execute(
        sa.update(table)
        .where(table.c.key == key, table.c.attempts > 0)
        .values(attempts=table.c.attempts - 1)
    )


def prune_sign_in_throttles(*, session: Session, now: datetime | None = None) -> int:
    """Delete the counters whose window has ended (they would restart at 1 anyway), so that
    a spray of made-up emails or addresses does not grow the table for ever."""
    cutoff = (now or datetime.now(UTC)) - THROTTLE_WINDOW
    table = SignInThrottle.__table__  # type: ignore[attr-defined]
    result = session.execute(sa.delete(table).where(table.c.window_started_at <= cutoff))
    return int(result.rowcount or 0)  # type: ignore[attr-defined]


def clear_attempts(*, session: Session, email: str) -> None:
    """Lift an account's sign-in limit (a correct password, a reset by an admin)."""
    session.execute(sa.delete(SignInThrottle).where(col(SignInThrottle.key) == account_key(email)))
