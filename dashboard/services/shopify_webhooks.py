"""Shopify webhook events: stored first (deduplicated on X-Shopify-Webhook-Id), then applied.

Changes are applied by re-reading the current record from the Admin API (payloads can arrive
out of order; the API answers with the latest state), deletes mark records deleted, and
app/uninstalled disconnects the integration and destroys its token.

Every attempt to apply an event first claims it (a conditional update: ``attempts`` + 1,
``worker``, ``attempted_at``), so exactly one process applies it at a time. The receiving
process applies a new event at once; a sweep in every hub process (``webhook_lifespan``: at
start-up, then every ``RECOVERY_EVERY`` s) takes the events no live process is applying: never
attempted after a grace period (the receiving process died before applying them), attempted by
a process that died or went silent, or due for a retry. After ``MAX_ATTEMPTS`` an event ends
``failed`` with the reason, never retried forever.
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
from sqlmodel import Session

from connectors.base import ChildrenComplete, UnifiedRecord
from connectors.errors import AuthError, ConnectorError, RateLimited, TransientError
from connectors.shopify.streams import NESTED_OF_KIND, normalize_order, normalize_product
from dashboard.db import in_session
from dashboard.models import (
    Integration,
    IntegrationStatus,
    WebhookEvent,
    WebhookStatus,
)
from dashboard.services import (
    incidents,
    webhook_intake,
    webhook_processing,
    webhook_subscriptions,
)
from dashboard.services.app_credentials import APP_KINDS, shopify_connector_for
from dashboard.services.audit import record_audit
from dashboard.services.credentials import DbCredentialStore, delete_credentials
from dashboard.services.records import mark_deleted, upsert_records
from dashboard.services.shopify_compliance import apply_compliance
from dashboard.services.shopify_webhook_binding import (
    REJECTED_ACTION,
    UNINSTALLED_ACTION,
    Rejected,
    bind,
)
from dashboard.services.sync import RECOVERY_EVERY, process_gone, worker_id
from dashboard.services.webhook_intake import Delivery
from dashboard.settings import get_settings

log = logging.getLogger("hub.shopify.webhooks")
_tasks: set[asyncio.Future[None]] = set()  # events queued or being applied here
COMPLIANCE = {"customers/data_request", "customers/redact", "shop/redact"}
EVENTS: sa.Table = WebhookEvent.__table__  # type: ignore[attr-defined]
RECEIVED = WebhookStatus.RECEIVED.value

GRACE = timedelta(seconds=30)  # a new event is its receiving process's to apply
ATTEMPT_EXPIRES = timedelta(minutes=10)  # an attempt silent this long died or hangs
MAX_ATTEMPTS = 5
RETRY_AFTER = timedelta(seconds=30)  # after a failed attempt; doubles with each one
SWEEP_LIMIT = 500  # oldest stranded events considered per sweep
SWEEP_CONCURRENCY = 4


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
    (``webhook_processing``: bounded; a full queue leaves it to the recovery sweep)."""
    done = webhook_processing.processor(process, get_settings().webhook_concurrency).submit(
        event_id
    )
    if done is not None:
        _tasks.add(done)
        done.add_done_callback(_tasks.discard)


async def process(event_id: uuid.UUID) -> None:
    """Apply a newly stored event here (the webhook route's background task).

    Claimed first: a sweep that took it meanwhile (this process was slow to get here) wins,
    and the event is applied once.
    """
    worker = worker_id()
    if await in_session(partial(_claim, event_id=event_id, seen=_Seen(0, None), worker=worker)):
        await _attempt(event_id, attempt=1, worker=worker)


@dataclass(frozen=True)
class _Seen:
    """An event's claim as a sweep read it: a claim succeeds only if it is still this one."""

    attempts: int
    worker: str | None


def _claim(session: Session, event_id: uuid.UUID, seen: _Seen, worker: str) -> bool:
    """Take the event for one attempt, if it is still unapplied and claimed as ``seen``.

    One conditional UPDATE, so of several processes (or sweeps) only one wins: every claim
    raises ``attempts``, and the others' conditions no longer match. On PostgreSQL a
    concurrent claim waits for the row lock and then re-checks; on SQLite writes take turns.
    """
    claimed = session.execute(
        sa.update(EVENTS)
        .where(*_still(event_id, seen))
        .values(attempts=seen.attempts + 1, worker=worker, attempted_at=datetime.now(UTC))
    )
    return bool(claimed.rowcount)  # type: ignore[attr-defined]


def _still(event_id: uuid.UUID, seen: _Seen) -> tuple[sa.ColumnElement[bool], ...]:
    """The event is still unapplied and claimed as ``seen``: nobody took it meanwhile."""
    worker = EVENTS.c.worker.is_(None) if seen.worker is None else EVENTS.c.worker == seen.worker
    return (
        EVENTS.c.id == event_id,
        EVENTS.c.status == RECEIVED,
        EVENTS.c.attempts == seen.attempts,
        worker,
    )


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


async def _attempt(event_id: uuid.UUID, *, attempt: int, worker: str) -> None:
    """Apply a claimed event once and record the outcome (or release it for a retry)."""
    event = await in_session(lambda s: s.get(WebhookEvent, event_id))
    if event is None:
        return
    status, error, retryable = WebhookStatus.PROCESSED, None, None
    rejected: dict[str, Any] | None = None
    try:
        if not await _apply(event):
            status = WebhookStatus.IGNORED
    except Rejected as refusal:  # the signed body does not back what the headers claim
        status, error = WebhookStatus.IGNORED, f"rejected: {refusal}"
        rejected = {"webhook_id": event.webhook_id, "topic": event.topic,
                    "shop": event.shop, "reason": str(refusal)}  # fmt: skip
    except asyncio.CancelledError:  # this process stops: the next one applies it
        await in_session(partial(_hand_back, event_id=event_id, attempt=attempt, worker=worker))
        raise
    except (TransientError, RateLimited) as failure:  # the platform may answer later
        retryable = f"{type(failure).__name__}: {failure}"
    except (ConnectorError, ValueError, KeyError) as failure:  # refused, or unusable payload
        status, error = WebhookStatus.FAILED, f"{type(failure).__name__}: {failure}"
    except Exception as failure:  # a database hiccup or a bug: retried, within limits
        log.exception("webhook %s (%s): attempt %d crashed", event.webhook_id, event.topic, attempt)
        retryable = f"{type(failure).__name__}: {failure}"
    if retryable and attempt < MAX_ATTEMPTS:
        reason = f"attempt {attempt} of {MAX_ATTEMPTS} failed: {retryable}; retrying"
        log.warning("webhook %s (%s): %s", event.webhook_id, event.topic, reason)
        await in_session(
            partial(_release, event_id=event_id, attempt=attempt, worker=worker, error=reason)
        )
        return
    if retryable:
        status, error = WebhookStatus.FAILED, f"gave up after {attempt} attempts: {retryable}"
    if error:
        log.warning("webhook %s (%s) not applied: %s", event.webhook_id, event.topic, error)
    recorded = await in_session(
        partial(_record_outcome, event_id=event_id, attempt=attempt, worker=worker,
                status=status, error=error, rejected=rejected)
    )  # fmt: skip
    if not recorded:  # declared dead meanwhile (silent too long); another attempt owns it
        log.warning("webhook %s (%s): taken over by another attempt", event.webhook_id, event.topic)


# --- recovery of stranded events ----------------------------------------------------------------


@dataclass(frozen=True)
class _Stranded:
    event_id: uuid.UUID
    seen: _Seen


def _stranded_events(session: Session, now: datetime) -> list[_Stranded]:
    """Unapplied events that no live process is applying, oldest first.

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
    stranded = []
    for event_id, attempts, worker, attempted_at in rows:
        if worker is not None:
            due = attempted_at is None or attempted_at < now - ATTEMPT_EXPIRES
            due = due or process_gone(worker)
        else:
            due = attempted_at is None or attempted_at + retry_delay(attempts) <= now
        if due:
            stranded.append(_Stranded(event_id, _Seen(attempts, worker)))
    return stranded


def _give_up(session: Session, stranded: _Stranded) -> None:
    """Every attempt died with its process (or hung): the event itself is the likely cause."""
    seen = stranded.seen
    session.execute(
        sa.update(EVENTS)
        .where(*_still(stranded.event_id, seen))
        .values(
            status=WebhookStatus.FAILED.value,
            processed_at=datetime.now(UTC),
            worker=None,
            error=f"gave up after {seen.attempts} attempts: the process applying it stopped "
            f"or went silent each time",
        )
    )


async def recover_events() -> int:
    """Apply the events no live process is applying; how many attempts this sweep made."""
    now = datetime.now(UTC)
    stranded = await in_session(partial(_stranded_events, now=now))
    if not stranded:
        return 0
    worker = worker_id()
    slots = asyncio.Semaphore(SWEEP_CONCURRENCY)

    async def take(event: _Stranded) -> int:
        async with slots:
            if event.seen.attempts >= MAX_ATTEMPTS:
                await in_session(partial(_give_up, stranded=event))
                return 0
            if not await in_session(
                partial(_claim, event_id=event.event_id, seen=event.seen, worker=worker)
            ):
                return 0  # another process (or sweep) took it
            log.info("webhook event %s: applying it again (attempt %d)", event.event_id,
                     event.seen.attempts + 1)  # fmt: skip
            await _attempt(event.event_id, attempt=event.seen.attempts + 1, worker=worker)
            return 1

    return sum(await asyncio.gather(*(take(event) for event in stranded)))


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
        in_flight = [*_tasks, sweeper]
        for task in in_flight:
            task.cancel()
        await asyncio.wait(in_flight, timeout=5)


async def _apply(event: WebhookEvent) -> bool:
    """Act on the event; False when there is nothing to do. Raises Rejected (from ``bind``)
    when the signed body does not back the headers or a destructive topic is unconfirmed."""
    integration = await bind(event)
    topic, payload = event.topic, event.payload
    if topic in COMPLIANCE:
        await in_session(lambda s: apply_compliance(s, event, integration.id))
        return True
    if not integration.shop_domain:
        return False
    if topic == "app/uninstalled":
        await in_session(lambda s: _uninstalled(s, integration.id))
        return True
    resource, _, action = topic.partition("/")
    if action == "delete":
        if resource not in ("products", "orders", "customers"):
            return False
        kind = resource[:-1]
        gid = (
            payload.get("admin_graphql_api_id")
            or f"gid://shopify/{kind.capitalize()}/{payload['id']}"
        )
        await in_session(lambda s: _mark_deleted(s, integration.id, kind, gid))
        return True
    if resource in ("products", "orders"):
        kind = resource[:-1]
        gid = (
            payload.get("admin_graphql_api_id")
            or f"gid://shopify/{kind.capitalize()}/{payload['id']}"
        )
        # The events about one record received meanwhile share one fetch (and its upsert).
        refreshes = webhook_processing.record_refreshes()
        return bool(
            await refreshes.refresh(
                (integration.id, kind, gid),
                event.received_at,
                partial(_refresh_record, integration.id, integration.shop_domain, kind, gid),
            )
        )
    if resource in ("customers", "inventory_levels"):
        from dashboard.services import sync

        stream = "customers" if resource == "customers" else "inventory"
        try:
            await sync.request_sync(integration_id=integration.id, stream=stream, trigger="webhook")
        except sync.SyncRefused:
            return False
        return True
    return False


async def _refresh_record(integration_id: uuid.UUID, shop: str, kind: str, gid: str) -> bool:
    """Store the current product or order ``gid`` (deleted when Shopify no longer has it);
    False when the shop's access is refused (the next sync marks it needs_reauth)."""
    connector = await shopify_connector_for(integration_id)
    try:
        node = await connector.fetch_node(shop, DbCredentialStore(integration_id), kind, gid)
    except AuthError:
        return False
    if node is None:
        await in_session(lambda s: _mark_deleted(s, integration_id, kind, gid))
        return True
    records: list[UnifiedRecord] = (
        normalize_product(node) if kind == "product" else normalize_order(node)
    )
    # fetch_node read every variant or line item: the stored ones it lacks are gone.
    nested = NESTED_OF_KIND[kind]
    complete = ChildrenComplete(nested.kind, (node["id"],)) if nested else None
    await in_session(
        lambda s: upsert_records(
            session=s, integration_id=integration_id, records=records, children_complete=complete
        )
    )
    return True


def _mark_deleted(session: Session, integration_id: uuid.UUID, kind: str, gid: str) -> None:
    mark_deleted(session=session, integration_id=integration_id, kind=kind, external_ids=[gid])


def _uninstalled(session: Session, integration_id: uuid.UUID) -> None:
    integration = session.get(Integration, integration_id)
    if integration is None:
        return
    # The tokens go; an own app's credentials stay, so that reconnecting can use that app.
    delete_credentials(session=session, integration_id=integration_id, keep=APP_KINDS)
    integration.status = IntegrationStatus.DISCONNECTED.value
    integration.status_detail = (
        "The merchant removed the app from their shop. Send a reconnect link to sync again."
    )
    session.add(integration)
    record_audit(
        session=session,
        actor="shopify",
        action=UNINSTALLED_ACTION,
        target=str(integration_id),
    )
    incidents.uninstalled(session=session, integration_id=integration_id)  # issue 13: alert
