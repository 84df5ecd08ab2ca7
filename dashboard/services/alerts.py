"""Alerts: in-app notifications for failed runs and needs-reauth, and an optional signed
outgoing webhook carrying the same events.

The outgoing body is JSON; ``X-Hub-Signature-256: sha256=<hex>`` is the HMAC-SHA256 of
``{timestamp}.{body}`` with ``HUB_ALERT_WEBHOOK_SECRET`` and ``X-Hub-Timestamp`` the Unix
time, so receivers can refuse forged or replayed deliveries.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import logging
import threading
import time
import uuid
from datetime import UTC, datetime
from typing import Any

import httpx
import sqlalchemy as sa
from sqlmodel import Session, col, func, select

from connectors.http import build_client, with_retries
from dashboard.models import Integration, Notification
from dashboard.settings import get_settings

log = logging.getLogger(__name__)

_background: set[asyncio.Task[None]] = set()
ONCE_UNTIL_READ = frozenset({"needs_reauth"})


def notify(
    *,
    session: Session,
    kind: str,
    message: str,
    integration_id: uuid.UUID | None = None,
    run_id: uuid.UUID | None = None,
) -> Notification:
    """Store an in-app notification and, when configured, send it to the alert webhook.

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
    payload = {
        "id": str(notification.id),
        "kind": kind,
        "message": notification.message,
        "integration_id": str(integration_id) if integration_id else None,
        "run_id": str(run_id) if run_id else None,
        "at": notification.created_at.isoformat(),
    }
    _send_later(payload)
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


async def deliver(
    payload: dict[str, Any], *, transport: httpx.AsyncBaseTransport | None = None
) -> bool:
    """POST one alert to the configured webhook (retried); False when not configured."""
    settings = get_settings()
    if not settings.alert_webhook_url:
        return False
    body = json.dumps(payload, separators=(",", ":")).encode()
    timestamp = int(time.time())
    headers = {"Content-Type": "application/json", "X-Hub-Timestamp": str(timestamp)}
    if settings.alert_webhook_secret:
        headers["X-Hub-Signature-256"] = sign(
            body, secret=settings.alert_webhook_secret, timestamp=timestamp
        )
    async with build_client(transport=transport, timeout=10.0) as client:

        async def post() -> None:
            response = await client.post(
                settings.alert_webhook_url or "", content=body, headers=headers
            )
            if response.status_code >= 500:
                from connectors.errors import TransientError

                raise TransientError(f"alert webhook answered {response.status_code}")
            response.raise_for_status()

        await with_retries(post, attempts=4, max_elapsed=60)
    return True


def _send_later(payload: dict[str, Any]) -> None:
    if not get_settings().alert_webhook_url:
        return
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        # Called from a database worker thread: deliver on a thread of its own so the
        # session that raised the alert is not held open during retries.
        threading.Thread(target=asyncio.run, args=(_deliver_logged(payload),), daemon=True).start()
        return
    task = loop.create_task(_deliver_logged(payload))
    _background.add(task)
    task.add_done_callback(_background.discard)


async def _deliver_logged(payload: dict[str, Any]) -> None:
    try:
        await deliver(payload)
    except Exception as error:  # an alert must never break the sync that raised it
        log.warning("alert webhook delivery failed: %s", type(error).__name__)
