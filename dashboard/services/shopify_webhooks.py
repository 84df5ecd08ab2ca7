"""Shopify webhook events: stored first (deduplicated on X-Shopify-Webhook-Id), then applied.

Storing is a group commit (``webhook_intake``): the webhook route answers once the event's
row is committed. What an event does is ``shopify_webhook_actions``; this module decides when,
where and how often.

The receiving process applies new events in batches (``webhook_processing``): one claim for
a batch, the events applied concurrently (their products and orders re-read together,
``shopify_record_lookups``), their outcomes recorded in one transaction. Every attempt to
apply an event first claims it (a conditional update: ``attempts`` + 1, ``worker``,
``attempted_at``), so exactly one process applies it at a time. A sweep in every hub process
(``webhook_lifespan``: at start-up, then every ``RECOVERY_EVERY`` s) takes the events no live
process is applying: never attempted after a grace period (the receiving process died before
applying them), attempted by a process that died or went silent, or due for a retry. After
``MAX_ATTEMPTS`` an event ends ``failed`` with the reason, never retried forever.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any

import sqlalchemy as sa
from sqlmodel import Session, col, select

from connectors.errors import ConnectorError, RateLimited, TransientError
from dashboard.db import in_session
from dashboard.models import (
    WebhookEvent,
    WebhookStatus,
)
from dashboard.services import (
    webhook_intake,
    webhook_processing,
    webhook_subscriptions,
)
from dashboard.services.audit import record_audit
from dashboard.services.shopify_record_lookups import stop_record_lookups
from dashboard.services.shopify_webhook_actions import apply_event
from dashboard.services.shopify_webhook_binding import (
    REJECTED_ACTION,
    Known,
    Rejected,
    integrations_of,
    known,
)
from dashboard.services.sync import RECOVERY_EVERY, process_gone, worker_id
from dashboard.services.webhook_intake import Delivery
from dashboard.settings import get_settings

log = logging.getLogger("hub.shopify.webhooks")
_tasks: set[asyncio.Future[None]] = set()  # events queued or being applied here
EVENTS: sa.Table = WebhookEvent.__table__  # type: ignore[attr-defined]
RECEIVED = WebhookStatus.RECEIVED.value

GRACE = timedelta(seconds=webhook_processing.GRACE_SECONDS)  # the receiving process's
ATTEMPT_EXPIRES = timedelta(minutes=10)  # an attempt silent this long died or hangs
MAX_ATTEMPTS = 5
RETRY_AFTER = timedelta(seconds=30)  # after a failed attempt; doubles with each one
SWEEP_LIMIT = 500  # oldest stranded events considered per sweep
SWEEP_CONCURRENCY = 4


_apply = apply_event  # what an event does; tests replace it here


class _Retryable(Exception):
    """An attempt failed in a way a later attempt may not (platform down, database hiccup)."""


async def persist(*, webhook_id: str, topic: str, shop: str, body: bytes) -> uuid.UUID | None:
    """Store the event, committed with the deliveries arriving together (``webhook_intake``);
    None when this webhook id was received already (a redelivery)."""
    try:
        payload = json.loads(body)
    except ValueError:
        payload = {"unparsed": body[:2000].decode(errors="replace")}
    delivery = Delivery(
        platform="shopify",
        webhook_id=webhook_id,
        topic=topic,
        shop=shop,
        payload=payload if isinstance(payload, dict) else {"value": payload},
    )
    return await webhook_intake.group_commit().add(delivery)


def process_later(event_id: uuid.UUID) -> None:
    """Queue a newly stored event for this process's webhook consumers
    (``webhook_processing``: bounded, in batches; a full queue leaves it to the recovery
    sweep)."""
    done = webhook_processing.processor(
        process_many, get_settings().webhook_concurrency, quiet=_intake_quiet
    ).submit(event_id)
    if done is not None:
        _tasks.add(done)
        done.add_done_callback(_tasks.discard)


async def _intake_quiet() -> None:
    await webhook_intake.quiet_for(webhook_processing.QUIET_FOR)


async def process(event_id: uuid.UUID) -> None:
    """Apply one newly stored event here."""
    await process_many([event_id])


async def process_many(event_ids: list[uuid.UUID]) -> None:
    """Apply newly stored events here (a batch of the webhook consumers).

    Claimed together first, in one UPDATE: an event a sweep took meanwhile (this process was
    slow to get to it) is left to the sweep, and each event is applied once.
    """
    worker = worker_id()
    never_tried = dict.fromkeys(event_ids, _Seen(attempts=0, worker=None))
    claimed, integrations = await in_session(partial(_claim, seen=never_tried, worker=worker))
    with known(integrations):  # what ``bind`` would look up for each, read with the claim
        await _attempt_all(claimed, worker=worker)


@dataclass(frozen=True)
class _Seen:
    """An event's claim as a sweep read it: a claim succeeds only if it is still this one."""

    attempts: int
    worker: str | None


def _claim(
    session: Session, seen: dict[uuid.UUID, _Seen], worker: str
) -> tuple[list[tuple[WebhookEvent, int]], Known]:
    """Take events for one attempt each, those still unapplied and claimed as ``seen``:
    per event taken its row and attempt number, oldest first, and the integrations they name.

    One conditional UPDATE per way they were seen (attempts, worker), so of several
    processes (or sweeps) only one wins each event: every claim raises ``attempts``, and the
    others' conditions no longer match. On PostgreSQL a concurrent claim waits for the row
    lock and then re-checks; on SQLite writes take turns.
    """
    by_seen: dict[_Seen, list[uuid.UUID]] = {}
    for event_id, event_seen in seen.items():
        by_seen.setdefault(event_seen, []).append(event_id)
    attempt_of: dict[uuid.UUID, int] = {}
    for way, event_ids in by_seen.items():
        claimed = session.execute(
            sa.update(EVENTS)
            .where(EVENTS.c.id.in_(event_ids), *_still(None, way))
            .values(attempts=way.attempts + 1, worker=worker, attempted_at=datetime.now(UTC))
            .returning(EVENTS.c.id)
        ).scalars()
        attempt_of.update(dict.fromkeys(claimed, way.attempts + 1))
    if not attempt_of:
        return [], {}
    events = session.exec(
        select(WebhookEvent)
        .where(col(WebhookEvent.id).in_(attempt_of))
        .order_by(col(WebhookEvent.received_at))
    ).all()
    return [(event, attempt_of[event.id]) for event in events], integrations_of(session, events)


def _still(event_id: uuid.UUID | None, seen: _Seen) -> tuple[sa.ColumnElement[bool], ...]:
    """The event (any event: None) is still unapplied and claimed as ``seen``: nobody took it
    meanwhile."""
    worker = EVENTS.c.worker.is_(None) if seen.worker is None else EVENTS.c.worker == seen.worker
    same = (EVENTS.c.status == RECEIVED, EVENTS.c.attempts == seen.attempts, worker)
    return same if event_id is None else (EVENTS.c.id == event_id, *same)


def _yours(event_id: uuid.UUID, attempt: int, worker: str) -> tuple[sa.ColumnElement[bool], ...]:
    """The event is still this attempt's: nobody took it over meanwhile."""
    return _still(event_id, _Seen(attempt, worker))


def _record_outcome(
    session: Session,
    event_id: uuid.UUID,
    attempt: int,
    worker: str,
    status: WebhookStatus,
    error: str | None,
    rejected: dict[str, Any] | None = None,
) -> bool:
    """Record how the attempt ended; a rejection's audit entry is written in the same
    transaction, so once however many processes try."""
    ended = session.execute(
        sa.update(EVENTS)
        .where(*_yours(event_id, attempt, worker))
        .values(
            status=status.value,
            error=error and error[:2000],
            processed_at=datetime.now(UTC),
            worker=None,
        )
    )
    if ended.rowcount and rejected is not None:  # type: ignore[attr-defined]
        record_audit(
            session=session,
            actor="shopify",
            action=REJECTED_ACTION,
            target=str(rejected.get("shop") or "")[:255],
            context=rejected,
        )
    return bool(ended.rowcount)  # type: ignore[attr-defined]


def _release(
    session: Session, event_id: uuid.UUID, attempt: int, worker: str, error: str | None
) -> None:
    """Leave the event for a later attempt (a sweep takes it once ``retry_delay`` passed)."""
    session.execute(
        sa.update(EVENTS)
        .where(*_yours(event_id, attempt, worker))
        .values(worker=None, error=error and error[:2000])
    )


def _hand_back(session: Session, event_id: uuid.UUID, attempt: int, worker: str) -> None:
    """This process stops: the attempt did not fail, so it does not count."""
    session.execute(
        sa.update(EVENTS)
        .where(*_yours(event_id, attempt, worker))
        .values(worker=None, attempts=attempt - 1, attempted_at=None)
    )


def retry_delay(attempts: int) -> timedelta:
    """How long an event waits after its ``attempts``-th attempt failed: 30 s, 1, 2, 4 min."""
    return RETRY_AFTER * 2 ** max(0, attempts - 1)


@dataclass
class _Outcome:
    """How an attempt ended: ``status`` recorded, or released for a later attempt."""

    event_id: uuid.UUID
    attempt: int
    status: WebhookStatus = WebhookStatus.PROCESSED
    error: str | None = None
    rejected: dict[str, Any] | None = None
    release: bool = False

    @property
    def plain(self) -> bool:
        """Ended without anything to write but its status: recorded with others at once."""
        return not self.release and self.error is None and self.rejected is None


async def _attempt_all(claimed: list[tuple[WebhookEvent, int]], *, worker: str) -> None:
    """Apply claimed events (each with its attempt number) concurrently, then record how each
    attempt ended, all in one transaction; when this process stops meanwhile, hand them all
    back (their attempts do not count)."""
    if not claimed:
        return
    try:
        outcomes = await asyncio.gather(*(_try(event, attempt) for event, attempt in claimed))
    except asyncio.CancelledError:  # this process stops: the next one applies them
        handed = [(event.id, attempt) for event, attempt in claimed]
        await in_session(partial(_hand_back_all, claimed=handed, worker=worker))
        raise
    taken = await in_session(partial(_record_outcomes, outcomes=outcomes, worker=worker))
    for event, _ in claimed:
        if event.id in taken:  # declared dead meanwhile (silent too long); another attempt owns it
            log.warning("webhook %s (%s): taken over by another attempt", event.webhook_id,
                        event.topic)  # fmt: skip


async def _try(event: WebhookEvent, attempt: int) -> _Outcome:
    """Apply the event once; how the attempt ended."""
    outcome = _Outcome(event.id, attempt)
    retryable = None
    try:
        if not await _apply(event):
            outcome.status = WebhookStatus.IGNORED
    except Rejected as refusal:  # the signed body does not back what the headers claim
        outcome.status, outcome.error = WebhookStatus.IGNORED, f"rejected: {refusal}"
        outcome.rejected = {"webhook_id": event.webhook_id, "topic": event.topic,
                            "shop": event.shop, "reason": str(refusal)}  # fmt: skip
    except (TransientError, RateLimited) as failure:  # the platform may answer later
        retryable = f"{type(failure).__name__}: {failure}"
    except (ConnectorError, ValueError, KeyError) as failure:  # refused, or unusable payload
        outcome.status, outcome.error = WebhookStatus.FAILED, f"{type(failure).__name__}: {failure}"
    except Exception as failure:  # a database hiccup or a bug: retried, within limits
        log.exception("webhook %s (%s): attempt %d crashed", event.webhook_id, event.topic, attempt)
        retryable = f"{type(failure).__name__}: {failure}"
    if retryable and attempt < MAX_ATTEMPTS:
        outcome.error = f"attempt {attempt} of {MAX_ATTEMPTS} failed: {retryable}; retrying"
        outcome.release = True
        log.warning("webhook %s (%s): %s", event.webhook_id, event.topic, outcome.error)
        return outcome
    if retryable:
        outcome.status = WebhookStatus.FAILED
        outcome.error = f"gave up after {attempt} attempts: {retryable}"
    if outcome.error:
        log.warning("webhook %s (%s) not applied: %s", event.webhook_id, event.topic,
                    outcome.error)  # fmt: skip
    return outcome


def _record_outcomes(session: Session, outcomes: list[_Outcome], worker: str) -> set[uuid.UUID]:
    """Record the attempts' outcomes; the events another attempt took over meanwhile.

    The plain ones (applied or ignored, nothing else to write) of the same status and attempt
    number take one UPDATE together, under the same conditions as ``_record_outcome``.
    """
    taken: set[uuid.UUID] = set()
    plain: dict[tuple[WebhookStatus, int], list[uuid.UUID]] = {}
    for outcome in outcomes:
        if outcome.plain:
            plain.setdefault((outcome.status, outcome.attempt), []).append(outcome.event_id)
        elif outcome.release:
            _release(session, outcome.event_id, outcome.attempt, worker, outcome.error)
        elif not _record_outcome(session, outcome.event_id, outcome.attempt, worker,
                                 outcome.status, outcome.error, outcome.rejected):  # fmt: skip
            taken.add(outcome.event_id)
    for (status, attempt), event_ids in plain.items():
        recorded = session.execute(
            sa.update(EVENTS)
            .where(
                EVENTS.c.id.in_(event_ids),
                EVENTS.c.status == RECEIVED,
                EVENTS.c.attempts == attempt,
                EVENTS.c.worker == worker,
            )
            .values(status=status.value, error=None, processed_at=datetime.now(UTC), worker=None)
            .returning(EVENTS.c.id)
        )
        taken |= set(event_ids) - set(recorded.scalars())
    return taken


def _hand_back_all(session: Session, claimed: list[tuple[uuid.UUID, int]], worker: str) -> None:
    for event_id, attempt in claimed:
        _hand_back(session, event_id, attempt, worker)


# --- recovery of stranded events ----------------------------------------------------------------


def _stranded_events(session: Session, now: datetime) -> tuple[int, dict[uuid.UUID, _Seen]]:
    """Of the ``SWEEP_LIMIT`` oldest unapplied events (how many were read), those that no live
    process is applying, oldest first.

    - never attempted, received more than ``GRACE`` ago: the receiving process died first;
    - attempted by a process that provably ended (same host) or silent for
      ``ATTEMPT_EXPIRES``: it died (or hangs) while applying them;
    - a failed attempt whose ``retry_delay`` has passed.
    """
    rows = session.execute(
        sa.select(EVENTS.c.id, EVENTS.c.attempts, EVENTS.c.worker, EVENTS.c.attempted_at)
        .where(EVENTS.c.status == RECEIVED, EVENTS.c.received_at < now - GRACE)
        .order_by(EVENTS.c.received_at)
        .limit(SWEEP_LIMIT)
    ).all()
    stranded = {}
    for event_id, attempts, worker, attempted_at in rows:
        if worker is not None:
            due = attempted_at is None or attempted_at < now - ATTEMPT_EXPIRES
            due = due or process_gone(worker)
        else:
            due = attempted_at is None or attempted_at + retry_delay(attempts) <= now
        if due:
            stranded[event_id] = _Seen(attempts, worker)
    return len(rows), stranded


def _give_up(session: Session, stranded: dict[uuid.UUID, _Seen]) -> None:
    """Every attempt died with its process (or hung): the event itself is the likely cause."""
    for event_id, seen in stranded.items():
        session.execute(
            sa.update(EVENTS)
            .where(*_still(event_id, seen))
            .values(
                status=WebhookStatus.FAILED.value,
                processed_at=datetime.now(UTC),
                worker=None,
                error=f"gave up after {seen.attempts} attempts: the process applying it "
                f"stopped or went silent each time",
            )
        )


async def recover_events() -> int:
    """Apply the events no live process is applying; how many attempts this sweep made.

    In batches like new events (``webhook_processing.BATCH``: one claim and one outcome
    transaction each, their records re-read together), reading on at once while it finds
    work: a queue that overflowed in a burst leaves thousands here, and one at a time they
    took minutes (bench/webhook_ingest.py, 60,000 at 1,000/s: 33 s after the burst, against
    2,583 still waiting after 300 s).
    """
    worker = worker_id()
    slots = asyncio.Semaphore(SWEEP_CONCURRENCY)

    async def take(batch: dict[uuid.UUID, _Seen]) -> int:
        async with slots:
            claimed, integrations = await in_session(partial(_claim, seen=batch, worker=worker))
            with known(integrations):
                await _attempt_all(claimed, worker=worker)
            return len(claimed)

    attempts = 0
    while True:
        read, stranded = await in_session(partial(_stranded_events, now=datetime.now(UTC)))
        exhausted = {e: seen for e, seen in stranded.items() if seen.attempts >= MAX_ATTEMPTS}
        if exhausted:
            await in_session(partial(_give_up, stranded=exhausted))
        due = [(e, seen) for e, seen in stranded.items() if seen.attempts < MAX_ATTEMPTS]
        if due:
            retries = sum(seen.attempts > 0 for _, seen in due)
            log.info("webhook recovery: applying %d stored events (%d of them retries)",
                     len(due), retries)  # fmt: skip
        size = webhook_processing.BATCH
        batches = [dict(due[start : start + size]) for start in range(0, len(due), size)]
        made = sum(await asyncio.gather(*(take(batch) for batch in batches)))
        attempts += made
        if read < SWEEP_LIMIT or not (made or exhausted):
            return attempts


async def _supervise(stop: asyncio.Event) -> None:
    """Sweep at once (events a dead process left behind), then every ``RECOVERY_EVERY`` s;
    on the same clock, the shops due for a look at their webhook subscriptions."""
    while not stop.is_set():
        try:
            await recover_events()
        except Exception:  # a database hiccup must not end the recovery for good
            log.exception("webhook recovery sweep failed; retrying")
        try:
            await webhook_subscriptions.check_due()
        except Exception:  # nor the subscription checks
            log.exception("webhook subscription check failed; retrying")
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=RECOVERY_EVERY)


@contextlib.asynccontextmanager
async def webhook_lifespan() -> AsyncIterator[None]:
    """Recovery of stranded webhook events and the webhook subscription checks in a hub
    process; at shutdown the events being applied are handed back (their attempt does not
    count) for the next process."""
    stop = asyncio.Event()
    sweeper = asyncio.get_running_loop().create_task(_supervise(stop), name="webhook-recovery")
    try:
        yield
    finally:
        stop.set()
        await webhook_processing.stop_processor()  # the events being applied are handed back
        await stop_record_lookups()
        in_flight = [*_tasks, sweeper]
        for task in in_flight:
            task.cancel()
        await asyncio.wait(in_flight, timeout=5)
