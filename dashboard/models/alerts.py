"""Webhooks received, alerts sent, incidents."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from dashboard.models.columns import json_field, ts
from dashboard.models.enums import (
    IncidentStatus,
    WebhookStatus,
)


class WebhookEvent(SQLModel, table=True):
    __tablename__ = "webhook_events"

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    platform: str = Field(max_length=16)
    webhook_id: str = Field(max_length=128, unique=True, index=True)
    topic: str = Field(max_length=64, index=True)
    shop: str | None = Field(default=None, max_length=255, index=True)
    integration_id: uuid.UUID | None = Field(
        default=None, foreign_key="integrations.id", index=True, ondelete="SET NULL"
    )
    payload: dict[str, Any] = json_field()
    received_at: datetime = ts(nullable=False, default_now=True)
    processed_at: datetime | None = ts()
    status: str = Field(default=WebhookStatus.RECEIVED.value, max_length=16, index=True)
    error: str | None = Field(default=None, max_length=2000)
    # Applying it: each attempt claims the event (``attempts`` + 1, ``worker`` = that process,
    # ``attempted_at``), so that one process applies it at a time and a process that died while
    # applying it is noticed; a bounded number of attempts, then ``failed``.
    attempts: int = Field(default=0, sa_column_kwargs={"server_default": "0"})
    worker: str | None = Field(default=None, max_length=128)
    attempted_at: datetime | None = ts()


class WebhookSubscription(SQLModel, table=True):
    __tablename__ = "webhook_subscriptions"
    __table_args__ = (sa.UniqueConstraint("integration_id", "topic"),)

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    integration_id: uuid.UUID = Field(foreign_key="integrations.id", index=True, ondelete="CASCADE")
    topic: str = Field(max_length=64)
    remote_id: str | None = Field(default=None, max_length=255)
    callback_url: str = Field(max_length=1000)
    created_at: datetime = ts(nullable=False, default_now=True)


class Notification(SQLModel, table=True):
    """In-app alert: failed runs, needs-reauth."""

    __tablename__ = "notifications"
    # Every open page counts the unread ones each second (the bell).
    __table_args__ = (sa.Index("ix_notifications_unread", "read_at", "kind", "integration_id"),)

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    kind: str = Field(max_length=32)
    message: str = Field(max_length=2000)
    integration_id: uuid.UUID | None = Field(
        default=None, foreign_key="integrations.id", index=True, ondelete="CASCADE"
    )
    run_id: uuid.UUID | None = Field(default=None, foreign_key="sync_runs.id", ondelete="SET NULL")
    created_at: datetime = ts(nullable=False, index=True, default_now=True)
    read_at: datetime | None = ts()


class AlertDelivery(SQLModel, table=True):
    """An alert for the alert webhook: an outbox row written in the transaction that raised
    the alert, sent only after it commits (never for one that rolled back), retried with
    backoff. ``next_attempt_at`` is also the lease of a claimed attempt."""

    __tablename__ = "alert_outbox"

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    notification_id: uuid.UUID | None = Field(
        default=None, foreign_key="notifications.id", ondelete="SET NULL"
    )
    payload: dict[str, Any] = json_field()
    created_at: datetime = ts(nullable=False, default_now=True)
    attempts: int = Field(default=0, sa_column_kwargs={"server_default": "0"})
    next_attempt_at: datetime = ts(nullable=False, index=True, default_now=True)
    delivered_at: datetime | None = ts()
    failed_at: datetime | None = ts()
    error: str | None = Field(default=None, max_length=500)


# One open incident per integration and cause, across every process; and one per cause for
# the incidents of the app itself (no integration: the Amazon app's LWA client secret).
_OPEN_INCIDENT = sa.text("status = 'open'")
_OPEN_APP_INCIDENT = sa.text("status = 'open' AND integration_id IS NULL")


class Incident(SQLModel, table=True):
    """Something wrong with an integration (or the app: no integration), told once: opened,
    updated while it lasts, resolved when a run succeeds or access returns
    (``dashboard/services/incidents.py``)."""

    __tablename__ = "incidents"
    __table_args__ = (
        sa.Index(
            "uq_incidents_open_cause",
            "integration_id",
            "cause",
            unique=True,
            sqlite_where=_OPEN_INCIDENT,
            postgresql_where=_OPEN_INCIDENT,
        ),
        sa.Index(
            "uq_incidents_open_app_cause",
            "cause",
            unique=True,
            sqlite_where=_OPEN_APP_INCIDENT,
            postgresql_where=_OPEN_APP_INCIDENT,
        ),
        # The bell and the attention panel: open ones, newest first.
        sa.Index("ix_incidents_status_seen", "status", "last_seen_at"),
    )

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    # None: an incident of the app itself, shared by all its integrations (LWA secret).
    integration_id: uuid.UUID | None = Field(
        default=None, foreign_key="integrations.id", index=True, ondelete="CASCADE"
    )
    cause: str = Field(max_length=32)  # IncidentCause
    category: str | None = Field(default=None, max_length=32)  # what the platform said, classified
    status: str = Field(default=IncidentStatus.OPEN.value, max_length=16)
    title: str = Field(max_length=500)
    advice: str = Field(default="", max_length=500)
    latest_error: str | None = Field(default=None, max_length=2000)
    streams: list[str] = json_field(default_factory=list)  # streams affected now
    occurrences: int = 1
    opened_at: datetime = ts(nullable=False, default_now=True)
    last_seen_at: datetime = ts(nullable=False, default_now=True)
    resolved_at: datetime | None = ts()
    resolution: str | None = Field(default=None, max_length=500)
