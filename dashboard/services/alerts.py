"""Alerts: in-app notifications for failed runs and needs-reauth, and an optional signed
outgoing webhook carrying the same events.

Sent after commit, through an outbox: ``notify`` writes an ``alert_outbox`` row in the
caller's transaction, and ``alert_delivery_lifespan`` (every hub process) sends due rows
once committed (woken by the commit, else within ``SWEEP_EVERY``), claiming each attempt
with a conditional update and retrying with backoff. A transaction that rolls back sends
nothing.

Always signed: the body is JSON; ``X-Hub-Signature-256: sha256=<hex>`` is the HMAC-SHA256 of
``{timestamp}.{body}`` with ``HUB_ALERT_WEBHOOK_SECRET`` (when unset, a secret generated into
``{data_dir}/alert-webhook.secret``, mode 0600) and ``X-Hub-Timestamp`` the Unix time, so
receivers can refuse forged or replayed deliveries (docs/operations.md).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import hashlib
import hmac
import json
import logging
import time
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import sqlalchemy as sa
from sqlmodel import Session, col, func, select

from connectors.errors import TransientError
from connectors.http import build_client, with_retries
from dashboard.data_dir import read_or_create_secret
from dashboard.db import in_session
from dashboard.models import AlertDelivery, Integration, Notification
from dashboard.settings import get_settings

log = logging.getLogger(__name__)

ONCE_UNTIL_READ = frozenset({"needs_reauth"})
# What of an incident (incidents.incident_row) the alert webhook carries: never a raw error
# body beyond the latest one-line error the incident keeps.
INCIDENT_PAYLOAD_KEYS = (
    "id", "cause", "category", "status", "title", "advice", "streams", "latest_error",
    "occurrences", "opened_at", "last_seen_at", "resolved_at", "resolution",
)  # fmt: skip
SIGNING_FILE_NAME = "alert-webhook.secret"
SWEEP_EVERY = 10.0  # seconds between looks at the outbox when no commit woke the loop
ATTEMPT_LEASE = timedelta(minutes=2)  # a claimed attempt silent this long died
MAX_ATTEMPTS = 8
FIRST_RETRY = timedelta(seconds=30)  # doubles with each failed attempt
KEEP_DELIVERED = timedelta(days=7)
_OUTBOX_WRITTEN = "hub.alert_outbox_written"  # Session.info flag: wake the loop on commit


def notify(
    *,
    session: Session,
    kind: str,
    message: str,
    integration_id: uuid.UUID | None = None,
    run_id: uuid.UUID | None = None,
    incident: dict[str, Any] | None = None,
) -> Notification:
    """Store an in-app notification and, when the alert webhook is configured, an outbox row
    that sends it there once this session's transaction commits.

    ``incident`` (``incidents.incident_row``, for kinds ``incident_opened`` and
    ``incident_resolved``) travels in the payload as ``incident``: its id, cause, category,
    status, title, advice, streams and times, so a receiver can group opened and resolved.

    An integration needs reconnecting once, however many of its streams find out: while such
    a notification is unread, another one for the same integration is not added (nor sent).
    """
    if kind in ONCE_UNTIL_READ and integration_id is not None:
        pending = session.exec(
            select(Notification).where(
                Notification.kind == kind,
                Notification.integration_id == integration_id,
                col(Notification.read_at).is_(None),
            )
        ).first()
        if pending is not None:
            return pending
    notification = Notification(
        kind=kind, message=message[:2000], integration_id=integration_id, run_id=run_id
    )
    session.add(notification)
    session.flush()
    payload: dict[str, Any] = {
        "id": str(notification.id),
        "kind": kind,
        "message": notification.message,
        "integration_id": str(integration_id) if integration_id else None,
        "run_id": str(run_id) if run_id else None,
        "at": notification.created_at.isoformat(),
    }
    if incident is not None:
        payload["incident"] = {key: incident[key] for key in INCIDENT_PAYLOAD_KEYS}
    if get_settings().alert_webhook_url:
        session.add(AlertDelivery(notification_id=notification.id, payload=payload))
        session.info[_OUTBOX_WRITTEN] = True
    return notification


def unread_count(*, session: Session) -> int:
    statement = (
        select(func.count()).select_from(Notification).where(col(Notification.read_at).is_(None))
    )
    return int(session.exec(statement).one())


def list_notifications(*, session: Session, limit: int = 50) -> list[Notification]:
    statement = select(Notification).order_by(col(Notification.created_at).desc()).limit(limit)
    return list(session.exec(statement).all())


def notification_rows(*, session: Session, limit: int = 20) -> list[dict[str, Any]]:
    """The newest notifications for the notification center, with the integration's name."""
    statement = (
        select(Notification, Integration.display_name)
        .join(Integration, col(Integration.id) == col(Notification.integration_id), isouter=True)
        .order_by(col(Notification.created_at).desc(), col(Notification.id))
        .limit(limit)
    )
    return [
        {
            "id": str(row.id),
            "kind": row.kind,
            "message": row.message,
            "integration_id": str(row.integration_id) if row.integration_id else "",
            "integration": name or "",
            "created_at": row.created_at.isoformat(),
            "unread": row.read_at is None,
        }
        for row, name in session.exec(statement).all()
    ]


def mark_read(*, session: Session, notification_id: uuid.UUID) -> None:
    """Mark one notification read (a no-op when it is read already or gone)."""
    session.execute(
        sa.update(Notification)
        .where(col(Notification.id) == notification_id, col(Notification.read_at).is_(None))
        .values(read_at=datetime.now(UTC))
    )


def mark_all_read(*, session: Session) -> int:
    """Mark every unread notification read in one statement; returns how many were unread."""
    result = session.execute(
        sa.update(Notification)
        .where(col(Notification.read_at).is_(None))
        .values(read_at=datetime.now(UTC))
    )
    return int(getattr(result, "rowcount", 0) or 0)


def sign(body: bytes, *, secret: str, timestamp: int) -> str:
    digest = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return f"sha256={digest.hexdigest()}"


def signing_secret() -> str:
    """HUB_ALERT_WEBHOOK_SECRET, or the one generated into the data dir (0600) when unset."""
    settings = get_settings()
    if settings.alert_webhook_secret:
        return settings.alert_webhook_secret
    return read_or_create_secret(settings.data_dir / SIGNING_FILE_NAME)


async def deliver(
    payload: dict[str, Any], *, transport: httpx.AsyncBaseTransport | None = None
) -> bool:
    """POST one signed alert to the configured webhook (a few quick retries); False when no
    webhook is configured. Raises when the receiver keeps failing or refuses."""
    settings = get_settings()
    if not settings.alert_webhook_url:
        return False
    body = json.dumps(payload, separators=(",", ":")).encode()
    timestamp = int(time.time())
    headers = {
        "Content-Type": "application/json",
        "X-Hub-Timestamp": str(timestamp),
        "X-Hub-Signature-256": sign(body, secret=signing_secret(), timestamp=timestamp),
    }
    async with build_client(transport=transport, timeout=10.0) as client:

        async def post() -> None:
            response = await client.post(
                settings.alert_webhook_url or "", content=body, headers=headers
            )
            if response.status_code >= 500:
                raise TransientError(f"alert webhook answered {response.status_code}")
            response.raise_for_status()

        # Short: the outbox retries later with backoff, this only rides out a blip.
        await with_retries(post, attempts=3, max_elapsed=20)
    return True


# --- the outbox ------------------------------------------------------------------------------


def _claim_due(session: Session, *, limit: int = 50) -> list[tuple[uuid.UUID, dict[str, Any]]]:
    """Take the due deliveries for one attempt each: a conditional update per row, so of
    several hub processes only one sends a given alert at a time."""
    now = datetime.now(UTC)
    due = session.exec(
        select(AlertDelivery.id, AlertDelivery.attempts, AlertDelivery.payload)
        .where(
            col(AlertDelivery.delivered_at).is_(None),
            col(AlertDelivery.failed_at).is_(None),
            col(AlertDelivery.next_attempt_at) <= now,
        )
        .order_by(col(AlertDelivery.next_attempt_at))
        .limit(limit)
    ).all()
    claimed = []
    for delivery_id, attempts, payload in due:
        result = session.execute(
            sa.update(AlertDelivery)
            .where(
                col(AlertDelivery.id) == delivery_id,
                col(AlertDelivery.attempts) == attempts,
                col(AlertDelivery.delivered_at).is_(None),
            )
            .values(attempts=attempts + 1, next_attempt_at=now + ATTEMPT_LEASE)
        )
        if getattr(result, "rowcount", 0):
            claimed.append((delivery_id, dict(payload)))
    return claimed


def _record_outcome(session: Session, *, delivery_id: uuid.UUID, error: str | None) -> None:
    now = datetime.now(UTC)
    delivery = session.get(AlertDelivery, delivery_id)
    if delivery is None:
        return
    if error is None:
        delivery.delivered_at, delivery.error = now, None
    elif delivery.attempts >= MAX_ATTEMPTS:
        delivery.failed_at, delivery.error = now, error[:500]
    else:
        delivery.error = error[:500]
        delivery.next_attempt_at = now + FIRST_RETRY * 2 ** (delivery.attempts - 1)
    session.add(delivery)
    session.execute(
        sa.delete(AlertDelivery).where(
            col(AlertDelivery.delivered_at) < now - KEEP_DELIVERED  # old delivered rows
        )
    )


async def deliver_pending(*, transport: httpx.AsyncBaseTransport | None = None) -> int:
    """Send every due outbox row once; returns how many were delivered."""
    if not get_settings().alert_webhook_url:
        return 0
    delivered = 0
    for delivery_id, payload in await in_session(_claim_due):
        error: str | None = None
        try:
            await deliver(payload, transport=transport)
        except Exception as failure:  # the receiver's trouble must never stop the loop
            error = type(failure).__name__
            log.warning("alert webhook delivery failed: %s", error)
        else:
            delivered += 1
        await in_session(functools.partial(_record_outcome, delivery_id=delivery_id, error=error))
    return delivered


_wake: list[tuple[asyncio.AbstractEventLoop, asyncio.Event]] = []


@sa.event.listens_for(Session, "after_commit")
def _after_commit(session: Session) -> None:
    if session.info.pop(_OUTBOX_WRITTEN, False):
        for loop, event in _wake:
            loop.call_soon_threadsafe(event.set)


@sa.event.listens_for(Session, "after_rollback")
def _after_rollback(session: Session) -> None:
    session.info.pop(_OUTBOX_WRITTEN, None)


@contextlib.asynccontextmanager
async def alert_delivery_lifespan() -> AsyncIterator[None]:
    """Deliver the alert outbox for as long as the hub process runs."""
    if get_settings().alert_webhook_url:
        await asyncio.to_thread(signing_secret)  # made at start-up, for the receiver's setup
    wake = (asyncio.get_running_loop(), asyncio.Event())
    _wake.append(wake)

    async def run() -> None:
        while True:
            wake[1].clear()
            try:
                await deliver_pending()
            except Exception as error:  # a database hiccup: try again on the next round
                log.warning("alert outbox sweep failed: %s", type(error).__name__)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(wake[1].wait(), SWEEP_EVERY)

    task = asyncio.create_task(run())
    try:
        yield
    finally:
        _wake.remove(wake)
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
