"""Queries over sync runs and their events, for the UI and the CLI (plain dicts)."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlmodel import Session, col, func, select

from dashboard.db import contains_pattern
from dashboard.models import EventLevel, Integration, RunStatus, SyncEvent, SyncRun


def _iso(value: datetime | None) -> str:
    return value.isoformat() if value else ""


def _took(started: datetime | None, finished: datetime | None) -> str:
    """How long a finished run ran, in words ("" while it runs, or if it never started)."""
    if started is None or finished is None:
        return ""
    seconds = max(0, round((finished - started).total_seconds()))
    hours, rest = divmod(seconds, 3600)
    minutes, seconds = divmod(rest, 60)
    if hours:
        return f"{hours} h {minutes} min"
    return f"{minutes} min {seconds} s" if minutes else f"{seconds} s"


# A running run whose last page is older than this shows no rate: records are not flowing.
RATE_FRESH_FOR = timedelta(seconds=30)


def _live(run: SyncRun, now: datetime) -> dict[str, Any]:
    """The honest progress of a run: total known or not, a rate only while records flow,
    waiting (until when, why) while throttled, stalled (why) when it made no progress."""
    running = run.status == RunStatus.RUNNING.value
    waiting = running and run.waiting_until is not None and run.waiting_until > now
    stalled = running and run.stalled_at is not None
    flowing = (
        running
        and not waiting
        and not stalled
        and run.progress_at is not None
        and run.pages > 0
        and now - run.progress_at <= RATE_FRESH_FOR
    )
    # "N of M" counts in the total's unit, the stream's own records (products, not their
    # variants, which records_read counts too): the share the engine stored of that total.
    progress, total = run.progress, run.records_total
    done = round(progress * total) if progress is not None and total is not None else None
    return {
        "total_known": done is not None,
        "records_total": total if done is not None else None,
        "records_done": done,
        "flowing": flowing,
        "rate_now": round(run.records_per_second or 0.0, 1) if flowing else None,
        "waiting": waiting,
        "waiting_until": _iso(run.waiting_until) if waiting else "",
        "waiting_reason": (run.waiting_reason or "") if waiting else "",
        # rate_limit, retry, or report (Amazon prepares one; checked_at: when last asked)
        "waiting_for": (run.waiting_for or "rate_limit") if waiting else "",
        "waiting_checked_at": _iso(run.waiting_checked_at) if waiting else "",
        "stalled": stalled,
        "stalled_at": _iso(run.stalled_at) if stalled else "",
        "stall_reason": (run.stall_reason or "") if stalled else "",
        "progress_at": _iso(run.progress_at),
        "live_state": "stalled" if stalled else "waiting" if waiting else
        ("reading" if flowing else ("idle" if running else run.status)),
    }  # fmt: skip


def _average_rate(run: SyncRun) -> float:
    if run.started_at is None or run.finished_at is None:
        return 0.0
    seconds = (run.finished_at - run.started_at).total_seconds()
    return round(run.records_read / seconds, 1) if seconds > 0 else 0.0


def run_summary(run: SyncRun, integration: Integration | None) -> dict[str, Any]:
    """One run for the Runs page, its detail page and ``hub runs list --json``: the original
    keys, then the live truth (``_live``)."""
    now = datetime.now(UTC)
    live = _live(run, now)
    return {
        "id": str(run.id),
        "integration_id": str(run.integration_id),
        "integration": integration.display_name if integration else "",
        "platform": integration.platform if integration else "",
        "integration_status": integration.status if integration else "",
        "cancel_requested": run.cancel_requested,
        "stream": run.stream,
        "status": run.status,
        "trigger": run.trigger,
        "records_read": run.records_read,
        "inserted": run.records_inserted,
        "updated": run.records_updated,
        "deleted": run.records_deleted,
        "skipped": run.records_skipped,
        "pages": run.pages,
        "progress": round((run.progress or 0.0) * 100),
        "has_progress": run.progress is not None,
        # Running: the rate over the last seconds, 0 unless records flow now (never a stale
        # rate beside a waiting or stalled run). Ended: the average over the run.
        "rate": live["rate_now"] or 0.0
        if run.status == RunStatus.RUNNING.value
        else _average_rate(run),
        "error": run.error or "",
        "attempt": run.attempt,
        "full_refresh": run.full_refresh,
        "worker": run.worker or "",
        "created_at": _iso(run.created_at),
        "started_at": _iso(run.started_at),
        "heartbeat_at": _iso(run.heartbeat_at),
        "finished_at": _iso(run.finished_at),
        "took": _took(run.started_at, run.finished_at),
        "resumed_by": str(run.resumed_by) if run.resumed_by else "",
        **live,
    }


def summaries_of(*, session: Session, run_ids: list[uuid.UUID]) -> list[dict[str, Any]]:
    """The summaries of ``run_ids``, in that order (unknown ids left out)."""
    rows = session.exec(
        select(SyncRun, Integration)
        .join(Integration, col(Integration.id) == col(SyncRun.integration_id))
        .where(col(SyncRun.id).in_(run_ids))
    ).all()
    by_id = {run.id: run_summary(run, integration) for run, integration in rows}
    return [by_id[run_id] for run_id in run_ids if run_id in by_id]


def _matching_runs(
    statement: Any, *, status: str, platform: str, integration_id: uuid.UUID | None
) -> Any:
    if status:
        statement = statement.where(SyncRun.status == status)
    if integration_id:
        statement = statement.where(SyncRun.integration_id == integration_id)
    if platform:
        # EXISTS, not a join: the runs are still read newest first off their index, and each
        # one's integration is looked up by primary key until a page is full.
        statement = statement.where(
            select(Integration.id)
            .where(
                col(Integration.id) == col(SyncRun.integration_id),
                Integration.platform == platform,
            )
            .correlate(SyncRun)
            .exists()
        )
    return statement


def list_runs(
    *,
    session: Session,
    status: str = "",
    platform: str = "",
    integration_id: uuid.UUID | None = None,
    limit: int = 50,
    offset: int = 0,
) -> list[dict[str, Any]]:
    """The newest runs matching the filters, one page of them.

    The page is chosen on sync_runs alone, off ix_sync_runs_created_id or
    ix_sync_runs_status_created (the id breaks ties in time, so pages never overlap), and only
    its rows are joined to their integrations: the last page of 50,000 runs costs about as much
    as the first.
    """
    page = _matching_runs(
        select(SyncRun.id), status=status, platform=platform, integration_id=integration_id
    )
    page = (
        page.order_by(col(SyncRun.created_at).desc(), col(SyncRun.id).desc())
        .offset(offset)
        .limit(limit)
    )
    return summaries_of(session=session, run_ids=list(session.exec(page).all()))


def count_runs(
    *,
    session: Session,
    status: str = "",
    platform: str = "",
    integration_id: uuid.UUID | None = None,
) -> int:
    """How many runs match the filters of ``list_runs``."""
    statement = select(func.count()).select_from(SyncRun)
    if platform:  # counting every run, a join is quicker than EXISTS per run
        statement = statement.join(
            Integration, col(Integration.id) == col(SyncRun.integration_id)
        ).where(Integration.platform == platform)
    statement = _matching_runs(statement, status=status, platform="", integration_id=integration_id)
    return int(session.exec(statement).one())


def run_events(*, session: Session, run_id: uuid.UUID, limit: int = 200) -> list[dict[str, str]]:
    """The run's log tail: its newest ``limit`` events, oldest first."""
    rows = session.exec(
        select(SyncEvent)
        .where(SyncEvent.run_id == run_id)
        .order_by(col(SyncEvent.at).desc(), col(SyncEvent.id).desc())
        .limit(limit)
    ).all()
    return [{"at": _iso(e.at), "level": e.level, "message": e.message} for e in reversed(rows)]


# Severity order of events; the Logs tab filters by "this level and above".
LEVELS = tuple(level.value for level in EventLevel)  # debug < info < warning < error
# The Logs tab searches the events of an integration's newest runs, so that a long history
# never slows the page down; a download covers the whole history up to EXPORT_LIMIT events.
RECENT_RUNS = 200
EXPORT_LIMIT = 20_000


def search_events(
    *,
    session: Session,
    integration_id: uuid.UUID | None = None,
    search: str = "",
    level: str = "",
    platform: str = "",
    since: datetime | None = None,
    until: datetime | None = None,
    limit: int = 200,
    recent_runs: int | None = RECENT_RUNS,
) -> list[dict[str, str]]:
    """Run events, newest first, at ``level`` or above, matching ``search``: of one
    integration or of all (the Logs view), of one ``platform``, of runs queued in
    [``since``, ``until``).

    The events are read by run (``sync_events.run_id``) for the newest ``recent_runs``
    matching runs, picked off the runs' ``created_at`` indexes, so a long history never slows
    the page down; ``recent_runs=None`` searches every matching run (downloads).
    """
    runs = select(SyncRun.id)
    if integration_id is not None:
        runs = runs.where(SyncRun.integration_id == integration_id)
    if since is not None:
        runs = runs.where(col(SyncRun.created_at) >= since)
    if until is not None:
        runs = runs.where(col(SyncRun.created_at) < until)
    if platform:
        runs = runs.where(
            select(Integration.id)
            .where(
                col(Integration.id) == col(SyncRun.integration_id),
                Integration.platform == platform,
            )
            .correlate(SyncRun)
            .exists()
        )
    if recent_runs is not None:
        runs = runs.order_by(col(SyncRun.created_at).desc()).limit(recent_runs)
    statement = (
        select(SyncEvent, SyncRun, Integration)
        .join(SyncRun, col(SyncRun.id) == col(SyncEvent.run_id))
        .join(Integration, col(Integration.id) == col(SyncRun.integration_id))
        .where(col(SyncEvent.run_id).in_(runs.scalar_subquery()))
    )
    if level in LEVELS:
        statement = statement.where(col(SyncEvent.level).in_(LEVELS[LEVELS.index(level) :]))
    if search.strip():
        statement = statement.where(
            func.lower(SyncEvent.message).like(contains_pattern(search), escape="\\")
        )
    statement = statement.order_by(col(SyncEvent.at).desc(), col(SyncEvent.id)).limit(limit)
    return [
        {
            "id": str(event.id),
            "at": _iso(event.at),
            "level": event.level,
            "message": event.message,
            "stream": run.stream,
            "run_id": str(event.run_id),
            "integration_id": str(run.integration_id),
            "integration": integration.display_name,
            "platform": integration.platform,
        }
        for event, run, integration in session.exec(statement).all()
    ]


def integration_events(
    *,
    session: Session,
    integration_id: uuid.UUID,
    search: str = "",
    level: str = "",
    limit: int = 200,
    recent_runs: int | None = RECENT_RUNS,
) -> list[dict[str, str]]:
    """An integration's run events, newest first, at ``level`` or above, matching ``search``."""
    return search_events(
        session=session, integration_id=integration_id, search=search, level=level,
        limit=limit, recent_runs=recent_runs,
    )  # fmt: skip


def export_events(
    *,
    session: Session,
    integration_id: uuid.UUID | None,
    search: str = "",
    level: str = "",
    fmt: str = "json",
    platform: str = "",
    since: datetime | None = None,
    until: datetime | None = None,
) -> str:
    """The matching events of the integration's whole history (or of every integration's,
    with ``integration_id`` None), oldest first, as a JSON array or as text lines
    ``time level stream message``."""
    events = search_events(
        session=session,
        integration_id=integration_id,
        search=search,
        level=level,
        platform=platform,
        since=since,
        until=until,
        limit=EXPORT_LIMIT,
        recent_runs=None,
    )
    events.reverse()
    if fmt == "json":
        return json.dumps(events, indent=1)
    return "".join(
        f"{e['at']} {e['level'].upper():<7} {e['stream']:<10} {e['message']}\n" for e in events
    )


def runs_per_day(
    *, session: Session, integration_id: uuid.UUID, days: int = 7, now: datetime | None = None
) -> list[dict[str, Any]]:
    """The integration's runs of the last ``days`` days (UTC, today included), one row per
    day oldest first, empty days too: runs succeeded (partial ones included), failed, and
    records read. A run counts on the day it was queued. One grouped query."""
    from dashboard.services.overview import _hour_bucket  # the one SQL time bucket

    today = int((now or datetime.now(UTC)).timestamp()) // 86_400
    first = today - days + 1
    day = (_hour_bucket(SyncRun.created_at, session.get_bind().dialect.name) // 24).label("day")
    succeeded = col(SyncRun.status).in_([RunStatus.SUCCEEDED.value, RunStatus.PARTIAL.value])
    failed = col(SyncRun.status) == RunStatus.FAILED.value
    rows = session.exec(
        select(
            day,
            func.sum(sa.case((succeeded, 1), else_=0)),
            func.sum(sa.case((failed, 1), else_=0)),
            func.coalesce(func.sum(SyncRun.records_read), 0),
        )
        .where(
            SyncRun.integration_id == integration_id,
            col(SyncRun.created_at) >= datetime.fromtimestamp(first * 86_400, UTC),
        )
        .group_by(day)
    ).all()
    found = {int(d): (int(ok or 0), int(bad or 0), int(read or 0)) for d, ok, bad, read in rows}
    return [
        {
            "day": datetime.fromtimestamp(number * 86_400, UTC).strftime("%a %d"),
            "date": datetime.fromtimestamp(number * 86_400, UTC).date().isoformat(),
            "succeeded": found.get(number, (0, 0, 0))[0],
            "failed": found.get(number, (0, 0, 0))[1],
            "records": found.get(number, (0, 0, 0))[2],
        }
        for number in range(first, today + 1)
    ]
