"""Streams and runs."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from dashboard.models.columns import json_field, ts
from dashboard.models.enums import (
    EventLevel,
    RunStatus,
    RunTrigger,
    StreamHealth,
)


class StreamConfig(SQLModel, table=True):
    """One stream of one integration: its schedule and its checkpoint (``cursor``)."""

    __tablename__ = "stream_configs"
    __table_args__ = (sa.UniqueConstraint("integration_id", "stream"),)

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    integration_id: uuid.UUID = Field(foreign_key="integrations.id", index=True, ondelete="CASCADE")
    stream: str = Field(max_length=64)
    enabled: bool = True
    interval_minutes: int = 15
    # A cron expression (five fields, UTC) the stream runs on instead of its interval, when set.
    cron: str | None = Field(default=None, max_length=120)
    paused: bool = False
    cursor: dict[str, Any] | None = json_field(default_factory=lambda: None, nullable=True)
    cursor_updated_at: datetime | None = ts()
    last_run_at: datetime | None = ts()
    next_run_at: datetime | None = ts()
    records_total: int = 0
    # --- health (issue 13): written when a run of the stream ends -------------------------
    health: str = Field(
        default=StreamHealth.NEVER_RUN.value,
        max_length=16,
        sa_column_kwargs={"server_default": StreamHealth.NEVER_RUN.value},
    )
    health_cause: str | None = Field(default=None, max_length=32)  # incident_words.CAUSES key
    health_detail: str | None = Field(default=None, max_length=2000)  # the last error, raw
    last_success_at: datetime | None = ts()
    last_failure_at: datetime | None = ts()
    consecutive_failures: int = Field(default=0, sa_column_kwargs={"server_default": "0"})
    stall_minutes: int | None = None  # overrides HUB_SYNC_STALL_MINUTES for this stream
    # --- completeness: the platform's own count, read as the last full pass ended ----------
    platform_count: int | None = None
    platform_counted_at: datetime | None = ts()
    hub_count_at_pass: int | None = None  # the hub's live count at that moment


# A run holds its stream while it is queued or running.
ACTIVE_RUN_STATUSES = (RunStatus.QUEUED.value, RunStatus.RUNNING.value)
_ACTIVE_RUN = sa.text("status IN ('queued', 'running')")
_UNCLAIMED_RUN = sa.text("status = 'queued' AND worker IS NULL")


class SyncRun(SQLModel, table=True):
    __tablename__ = "sync_runs"
    __table_args__ = (
        sa.Index("ix_sync_runs_integration_started", "integration_id", "created_at"),
        # The Runs page, newest first and paged, with or without a status filter: each order
        # ends on the id (ties in time), so a page is read off one of these indexes.
        sa.Index("ix_sync_runs_created_id", "created_at", "id"),
        sa.Index("ix_sync_runs_status_created", "status", "created_at", "id"),
        # The queue the processes claim from, oldest first (``sync_claims``): only runs no
        # process owns yet, so a claim reads its window off the head of this index.
        sa.Index(
            "ix_sync_runs_unclaimed",
            "created_at",
            "id",
            sqlite_where=_UNCLAIMED_RUN,
            postgresql_where=_UNCLAIMED_RUN,
        ),
        # One queued or running run per stream, across every process sharing the database.
        sa.Index(
            "uq_sync_runs_active_stream",
            "integration_id",
            "stream",
            unique=True,
            sqlite_where=_ACTIVE_RUN,
            postgresql_where=_ACTIVE_RUN,
        ),
    )

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    integration_id: uuid.UUID = Field(foreign_key="integrations.id", index=True, ondelete="CASCADE")
    stream: str = Field(max_length=64)
    # Indexed by ix_sync_runs_status_created, as created_at is by ix_sync_runs_created_id.
    status: str = Field(default=RunStatus.QUEUED.value, max_length=16)
    trigger: str = Field(default=RunTrigger.SCHEDULE.value, max_length=16)
    full_refresh: bool = False
    attempt: int = 1
    pages: int = 0
    records_read: int = 0
    records_inserted: int = 0
    records_updated: int = 0
    records_deleted: int = 0
    records_skipped: int = 0
    records_total: int | None = None
    progress: float | None = Field(default=None, description="0..1 when the total is knowable")
    records_per_second: float | None = None
    cursor_before: dict[str, Any] | None = json_field(default_factory=lambda: None, nullable=True)
    cursor_after: dict[str, Any] | None = json_field(default_factory=lambda: None, nullable=True)
    error: str | None = Field(default=None, sa_column=sa.Column(sa.Text, nullable=True))
    cancel_requested: bool = False
    worker: str | None = Field(default=None, max_length=128)
    heartbeat_at: datetime | None = ts()
    created_at: datetime = ts(nullable=False, default_now=True)
    started_at: datetime | None = ts()
    finished_at: datetime | None = ts()
    # An interrupted run: the run that continues its stream (the retry recovery queued, or the
    # stream's run that was active already), so that `hub sync --wait` can follow it.
    resumed_by: uuid.UUID | None = None
    # --- live truth (issue 13) -------------------------------------------------------------
    # Last time the run moved: started, or stored a page. Stalls are measured from here.
    progress_at: datetime | None = ts()
    # While it waits for a known rate-limit window: when the next request goes out, and why.
    waiting_until: datetime | None = ts()
    waiting_reason: str | None = Field(default=None, max_length=500)
    # What it waits for: "rate_limit", "retry" (after a failed attempt) or "report" (the
    # platform prepares a report; ``waiting_checked_at``: when the hub last asked).
    waiting_for: str | None = Field(default=None, max_length=16)
    waiting_checked_at: datetime | None = ts()
    # Set when it made no progress for longer than its stream's stall limit; cleared by a page.
    stalled_at: datetime | None = ts()
    stall_reason: str | None = Field(default=None, max_length=500)


class SyncEvent(SQLModel, table=True):
    __tablename__ = "sync_events"

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    run_id: uuid.UUID = Field(foreign_key="sync_runs.id", index=True, ondelete="CASCADE")
    level: str = Field(default=EventLevel.INFO.value, max_length=8)
    message: str = Field(max_length=2000)
    context: dict[str, Any] = json_field()
    at: datetime = ts(nullable=False, default_now=True)


class SchedulerLease(SQLModel, table=True):
    """Which process schedules: taken and renewed by one holder, free once it expires."""

    __tablename__ = "scheduler_leases"

    name: str = Field(primary_key=True, max_length=64)
    holder: str = Field(max_length=128)
    acquired_at: datetime = ts(nullable=False, default_now=True)
    expires_at: datetime = ts(nullable=False)
