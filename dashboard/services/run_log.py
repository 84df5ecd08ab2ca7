"""A run's event log (``sync_events``): what the Logs tab and a run's page show, bounded per
run so that a long or noisy run cannot grow it without end."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy import orm
from sqlmodel import Session

from dashboard.models import EventLevel, SyncEvent, SyncRun

MAX_EVENTS_PER_RUN = 200  # the per-run log stays bounded; the last event says how many were cut
# Page events stop this many events short of the cap, so that waits, retries, errors and the
# summary of a long run still find room in its log.
RESERVED_FOR_NOTES = 40


def add_event(
    session: Session,
    run_id: uuid.UUID,
    level: EventLevel,
    message: str,
    context: dict[str, Any] | None = None,
    *,
    droppable: bool = False,
    summary: bool = False,
) -> None:
    """Add to the run's log. ``droppable`` events (pages) leave room for the others; the
    ``summary`` (the run's last event) is always stored.

    Core statements, not the ORM: every page and every run's start and end log an event, and
    an ORM add plus the count's autoflush took a sixth of a sync worker's CPU (py-spy). The
    count is read once per transaction and then kept in ``session.info``."""
    counts: dict[uuid.UUID, int] = session.info.setdefault(_EVENT_COUNTS, {})
    count = counts.get(run_id)
    if count is None:
        count = session.execute(_COUNT_EVENTS, {"run_id": run_id}).scalar_one()
    if droppable and count >= MAX_EVENTS_PER_RUN - RESERVED_FOR_NOTES:
        return
    if not summary and count > MAX_EVENTS_PER_RUN:
        return
    if not summary and count == MAX_EVENTS_PER_RUN:
        level, message = EventLevel.WARNING, "event log full: later events of this run dropped"
    session.execute(
        _INSERT_EVENT,
        {
            "id": uuid.uuid4(), "run_id": run_id, "level": level.value,
            "message": message[:2000], "context": context or {}, "at": datetime.now(UTC),
        },
    )  # fmt: skip
    counts[run_id] = count + 1


EVENTS: sa.Table = SyncEvent.__table__  # type: ignore[attr-defined]
_RUNS: sa.Table = SyncRun.__table__  # type: ignore[attr-defined]
# How many events a run's log holds, as a column of a statement on ``sync_runs`` (a fence's
# RETURNING): the transaction then knows its count without a statement of its own.
# The run's id is spelled out: SQLite's RETURNING renders columns without their table, and
# a bare ``id`` inside the subquery would be the event's.
EVENT_COUNT = (
    sa.select(sa.func.count())
    .where(EVENTS.c.run_id == sa.literal_column(f"{_RUNS.name}.id"))
    .scalar_subquery()
    .label("events")
)
_EVENT_COUNTS = "sync_event_counts"  # session.info: {run id: its events}, in this transaction
_COUNT_EVENTS = sa.select(sa.func.count()).where(EVENTS.c.run_id == sa.bindparam("run_id"))
_INSERT_EVENT = sa.insert(EVENTS)


def counted(session: Session, run_id: uuid.UUID, events: int) -> None:
    """This transaction read that the run's log holds ``events`` (``EVENT_COUNT``)."""
    session.info.setdefault(_EVENT_COUNTS, {})[run_id] = events


@sa.event.listens_for(orm.Session, "after_commit")
@sa.event.listens_for(orm.Session, "after_rollback")
def _forget_event_counts(session: Session) -> None:
    """Another transaction may log to the same run: count anew in the next one."""
    session.info.pop(_EVENT_COUNTS, None)
