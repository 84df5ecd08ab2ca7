"""Read-only queries behind an integration's Webhooks tab (plain dicts for the UI)."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlmodel import Session, col, select

from dashboard.models import WebhookEvent, WebhookSubscription


def _iso(value: datetime | None) -> str:
    return value.isoformat() if value else ""


def subscriptions(*, session: Session, integration_id: uuid.UUID) -> list[dict[str, str]]:
    """The topics the platform sends to the hub for this integration."""
    rows = session.exec(
        select(WebhookSubscription)
        .where(WebhookSubscription.integration_id == integration_id)
        .order_by(col(WebhookSubscription.topic))
    ).all()
    return [
        {
            "id": str(row.id),
            "topic": row.topic,
            "callback_url": row.callback_url,
            "remote_id": row.remote_id or "",
            "created_at": _iso(row.created_at),
        }
        for row in rows
    ]


def recent_deliveries(
    *, session: Session, integration_id: uuid.UUID, limit: int = 50
) -> list[dict[str, str]]:
    """The newest webhook deliveries received for this integration (never their payload)."""
    rows = session.exec(
        select(WebhookEvent)
        .where(WebhookEvent.integration_id == integration_id)
        .order_by(col(WebhookEvent.received_at).desc(), col(WebhookEvent.id))
        .limit(limit)
    ).all()
    return [
        {
            "id": str(row.id),
            "topic": row.topic,
            "status": row.status,
            "error": row.error or "",
            "received_at": _iso(row.received_at),
            "processed_at": _iso(row.processed_at),
        }
        for row in rows
    ]
