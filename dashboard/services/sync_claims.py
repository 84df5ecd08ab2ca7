"""Which queued runs a process with room claims: fairly across integrations.

Queued runs without an owner are open to every process. A claim takes them in the order
they fell due, but never more than ``HUB_SYNC_PER_INTEGRATION`` runs of one integration at
once across all processes (its platform account's rate limit is shared by its runs anyway):
the rest of an integration's backlog waits, and the room goes to the next integrations'
runs. So one integration's backlog cannot starve another's single run; a run waits behind
at most that many runs of each integration queued before it.

Why oldest first and not strictly round-robin (every integration's first run before anyone's
second): measured with ``bench/scale.py --workers 2`` at 1,000 integrations, round-robin let
newer integrations' first runs overtake an integration's third stream for 12-14 s, so the
integrations that started first finished last (fairness 0.16-0.34, against 0.22-0.24 and a
third stream waiting 1-2 s oldest first). Among runs queued at the same moment the
integration with fewer running goes first.

The cap holds across processes and hosts: on PostgreSQL a claim first locks the rows of the
integrations it may serve (``FOR NO KEY UPDATE SKIP LOCKED``: claims of other processes skip
them instead of waiting, and queueing a run, which only takes a key-share lock, is not
held up), then counts their runs in a fresh statement, which sees every claim committed by
whoever held those locks before. On SQLite one writer at a time decides.

A run that ends hands its slot on to its integration's next run in the same transaction
(``finish_and_start_next``) when that run was queued before the ending one started: the
streams one due batch queued for an integration run back to back (the cap still bounds how
many slots it holds, and runs queued later take their turn). The next run is claimed and
started there, not after its process noticed the free slot and claimed and started it in
transactions of their own, each queueing for a database thread: measured with
``bench/scale.py --workers 2`` at 1,000 integrations and 50 runs per process, those waits
(0.3-4 s) set the span of an integration's three runs, hence its throughput. Only its own
integration's: a fair claim of any run in every ending transaction made a hundred claims at
once compete for the head of the queue; at 10,000 integrations, skipping each other's locked
rows, they fell back to reading the whole queue, and runs/s fell from 24 to 5.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import sqlalchemy as sa
from sqlmodel import Session

from dashboard.models import ACTIVE_RUN_STATUSES, Integration, RunStatus, SyncRun
from dashboard.services.sync_progress import _finish, _RunContext
from dashboard.services.sync_queue import _start_run
from dashboard.settings import get_settings

RUNS: sa.Table = SyncRun.__table__  # type: ignore[attr-defined]
INTEGRATIONS: sa.Table = Integration.__table__  # type: ignore[attr-defined]

# Written out, not a bound parameter: the predicate of ``ix_sync_runs_unclaimed``, which a
# prepared statement's generic plan (made without the parameters' values) could not use.
_UNOWNED_QUEUED = sa.and_(
    RUNS.c.status == sa.literal_column(f"'{RunStatus.QUEUED.value}'"), RUNS.c.worker.is_(None)
)
# A run counts against its integration's cap once a process owns it: running, or claimed
# and about to start.
_OWNED_ACTIVE = sa.and_(RUNS.c.status.in_(ACTIVE_RUN_STATUSES), RUNS.c.worker.is_not(None))

# How many of the oldest queued runs a claim reads first (what bounds its reading when tens
# of thousands are queued); it reads on only when these are all held back by the cap.
WINDOW = 256


def claim_queued(
    session: Session,
    *,
    worker: str,
    limit: int,
    per_integration: int | None = None,
    among: list[uuid.UUID] | None = None,
) -> list[uuid.UUID]:
    """Take up to ``limit`` queued runs without an owner for ``worker``, in the order they
    should start: oldest first, but at most ``per_integration`` (default
    ``HUB_SYNC_PER_INTEGRATION``) of one integration running at once anywhere. ``among``:
    only these runs (the ones a process queued for itself, ``SyncEngine.request_sync``)."""
    if limit <= 0 or among == []:
        return []
    cap = per_integration or get_settings().sync_per_integration
    postgres = session.get_bind().dialect.name == "postgresql"
    open_runs = _UNOWNED_QUEUED if among is None else sa.and_(_UNOWNED_QUEUED, RUNS.c.id.in_(among))
    integration_ids = _servable_integrations(
        session, open_runs, cap=cap, limit=limit, lock=postgres
    )
    if not integration_ids:
        return []
    chosen = _fair_order(session, open_runs, integration_ids, cap=cap, limit=limit)
    if not chosen:
        return []
    # When it was claimed, for crash recovery: a run claimed long ago and still queued was
    # never started by its process (``sync_queue._release_stranded``).
    claimed_at = datetime.now(UTC)
    if postgres:
        # A run being started or cancelled right now is skipped, not waited for.
        open_rows = (
            sa.select(RUNS.c.id)
            .where(RUNS.c.id.in_(chosen), _UNOWNED_QUEUED)
            .with_for_update(skip_locked=True)
            .scalar_subquery()
        )
        taken = set(
            session.execute(
                sa.update(RUNS).where(RUNS.c.id.in_(open_rows))
                .values(worker=worker, heartbeat_at=claimed_at)
                .returning(RUNS.c.id)
            ).scalars()
        )  # fmt: skip
        return [run_id for run_id in chosen if run_id in taken]
    taken_here = []
    for run_id in chosen:
        claimed = session.execute(
            sa.update(RUNS)
            .where(RUNS.c.id == run_id, _UNOWNED_QUEUED)
            .values(worker=worker, heartbeat_at=claimed_at)
        )
        if claimed.rowcount:  # type: ignore[attr-defined]
            taken_here.append(run_id)
    return taken_here


def finish_and_start_next(
    session: Session, *, run_id: uuid.UUID, worker: str, status: RunStatus, error: str | None
) -> _RunContext | None:
    """End ``worker``'s run (``sync_progress._finish``) and, in the same transaction, claim
    and start (``_start_run``) its integration's next queued run if that was queued before
    this one started (by the same due batch, say) and the per-integration cap allows. The
    started run's context, or None: the slot is then free for the process's next claim."""
    ended = _finish(session, run_id, status, error, worker=worker)
    if ended is None:  # no longer this worker's (crash recovery ended it): nothing to hand on
        return None
    siblings = session.execute(
        sa.select(RUNS.c.id).where(
            _UNOWNED_QUEUED,
            RUNS.c.integration_id == ended.integration_id,
            RUNS.c.created_at <= ended.started_at,
        )
    ).scalars().all()  # fmt: skip
    if not siblings:
        return None
    claimed = claim_queued(session, worker=worker, limit=1, among=list(siblings))
    return _start_run(session, claimed[0], worker) if claimed else None


def _servable_integrations(
    session: Session, open_runs: sa.ColumnElement[bool], *, cap: int, limit: int, lock: bool
) -> list[uuid.UUID]:
    """Up to ``limit`` integrations with a queued run nobody owns and fewer than ``cap``
    runs owned by a process: the one waiting longest first, then fewest running. Looked for
    among the oldest queued runs first (``WINDOW``, read off the head of the index of
    unclaimed runs, so a claim does not read a queue of 30,000), then the whole queue if
    those do not yield ``limit``. With ``lock`` their rows are locked for this transaction,
    skipping those another claim holds."""
    window: int | None = WINDOW + limit
    found: list[uuid.UUID] = []
    while True:
        query = _servable_query(open_runs, cap=cap, limit=limit, window=window)
        if lock:
            query = query.with_for_update(of=INTEGRATIONS, skip_locked=True, key_share=True)
        found += [i for i in session.execute(query).scalars() if i not in found]
        if len(found) >= limit or window is None or not _window_full(session, open_runs, window):
            return found[:limit]
        window = None


def _servable_query(
    open_runs: sa.ColumnElement[bool], *, cap: int, limit: int, window: int | None
) -> sa.Select[tuple[uuid.UUID]]:
    oldest_runs = sa.select(RUNS.c.integration_id, RUNS.c.created_at).where(open_runs)
    if window is not None:
        oldest_runs = oldest_runs.order_by(RUNS.c.created_at).limit(window)
    runs = oldest_runs.subquery("oldest_runs")
    queued = (
        sa.select(runs.c.integration_id, sa.func.min(runs.c.created_at).label("oldest"))
        .group_by(runs.c.integration_id)
        .subquery("queued")
    )
    running = _running_count(queued.c.integration_id)
    return (
        sa.select(INTEGRATIONS.c.id)
        .join(queued, queued.c.integration_id == INTEGRATIONS.c.id)
        .where(running < cap)
        .order_by(queued.c.oldest, running, INTEGRATIONS.c.id)
        .limit(limit)
    )


def _window_full(session: Session, open_runs: sa.ColumnElement[bool], window: int) -> bool:
    """Whether more runs are queued than the window held."""
    beyond = sa.select(RUNS.c.id).where(open_runs).order_by(RUNS.c.created_at)
    return session.execute(beyond.offset(window).limit(1)).first() is not None


def _running_count(integration_id: sa.ColumnElement[uuid.UUID]) -> sa.ScalarSelect[int]:
    """Runs owned by a process of the integration in ``integration_id`` (a column of the
    enclosing query), read off the partial index of active runs.

    A count per candidate, not a join with counts grouped over the candidates: the planner
    estimates the queue off statistics taken before a burst filled it (a handful of runs),
    and with that estimate it re-ran the grouped counts for every candidate: 88 times 260
    rows, 24,000 buffers and 33 ms a claim at 1,000 integrations queued at once. Here each
    candidate costs one look-up in the index, whatever the estimate."""
    return (
        sa.select(sa.func.count())
        .select_from(RUNS)
        .where(_OWNED_ACTIVE, RUNS.c.integration_id == integration_id)
        .scalar_subquery()
    )


def _fair_order(
    session: Session,
    open_runs: sa.ColumnElement[bool],
    integration_ids: list[uuid.UUID],
    *,
    cap: int,
    limit: int,
) -> list[uuid.UUID]:
    """The queued runs of ``integration_ids`` that fit under ``cap``, oldest first: a run's
    slot is the number its integration would have running once it starts, at most ``cap``
    (ties in age go to the lower slot). A statement of its own, so that on PostgreSQL it
    sees what the lock holders before us committed."""
    ranked = (
        sa.select(
            RUNS.c.id,
            RUNS.c.integration_id,
            RUNS.c.created_at,
            sa.func.row_number()
            .over(partition_by=RUNS.c.integration_id, order_by=(RUNS.c.created_at, RUNS.c.id))
            .label("rank"),
        )
        .where(open_runs, RUNS.c.integration_id.in_(integration_ids))
        .subquery("ranked")
    )
    slot = ranked.c.rank + _running_count(ranked.c.integration_id)
    query = (
        sa.select(ranked.c.id)
        .where(slot <= cap)
        .order_by(ranked.c.created_at, slot, ranked.c.id)
        .limit(limit)
    )
    return list(session.execute(query).scalars())
