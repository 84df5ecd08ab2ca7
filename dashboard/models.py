"""Every table of the hub, in one place.

UUID keys, timezone-aware UTC timestamps (``UTCDateTime`` restores the zone SQLite drops),
bounded strings. Record tables share ``RecordColumns`` and are unique per
(integration, external id) so that every batch upsert is idempotent.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

import sqlalchemy as sa
from sqlalchemy.types import TypeDecorator
from sqlmodel import Field, SQLModel


def utcnow() -> datetime:
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator[datetime]):
    """Stores UTC; always returns aware datetimes, also on SQLite."""

    impl = sa.DateTime
    cache_ok = True

    def __init__(self, timezone: bool = True) -> None:
        super().__init__(timezone=True)

    def process_bind_param(self, value: datetime | None, dialect: sa.Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: sa.Dialect) -> datetime | None:
        if value is not None and value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value


def ts(*, nullable: bool = True, index: bool = False, default_now: bool = False) -> Any:
    """A timezone-aware timestamp field (sa_type, not sa_column: mixins share it safely)."""
    if default_now:
        return Field(default_factory=utcnow, sa_type=UTCDateTime, nullable=nullable, index=index)
    return Field(default=None, sa_type=UTCDateTime, nullable=nullable, index=index)


def json_field(*, default_factory: Any = dict, nullable: bool = False) -> Any:
    return Field(default_factory=default_factory, sa_type=sa.JSON, nullable=nullable)


# --------------------------------------------------------------------------------------
# Enumerations (stored as strings so new values need no migration of an enum type)
# --------------------------------------------------------------------------------------


class Role(StrEnum):
    ADMIN = "admin"
    MANAGER = "manager"
    VIEWER = "viewer"


class Platform(StrEnum):
    SHOPIFY = "shopify"
    AMAZON = "amazon"


class IntegrationStatus(StrEnum):
    PENDING = "pending"
    CONNECTED = "connected"
    SYNCING = "syncing"
    NEEDS_REAUTH = "needs_reauth"
    ERROR = "error"
    PAUSED = "paused"
    DISCONNECTED = "disconnected"


class ConnectPurpose(StrEnum):
    CONNECT = "connect"
    RECONNECT = "reconnect"


class RunStatus(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    PARTIAL = "partial"
    FAILED = "failed"
    CANCELLED = "cancelled"
    INTERRUPTED = "interrupted"


class RunTrigger(StrEnum):
    SCHEDULE = "schedule"
    MANUAL = "manual"
    WEBHOOK = "webhook"
    RETRY = "retry"


class EventLevel(StrEnum):
    DEBUG = "debug"
    INFO = "info"
    WARNING = "warning"
    ERROR = "error"


class WebhookStatus(StrEnum):
    RECEIVED = "received"
    PROCESSED = "processed"
    FAILED = "failed"
    IGNORED = "ignored"


class StreamHealth(StrEnum):
    """A stream's health from its recent runs (``dashboard/services/health.py``)."""

    NEVER_RUN = "never_run"
    HEALTHY = "healthy"
    DEGRADED = "degraded"  # its last run skipped records, or was interrupted
    WAITING = "waiting"  # its run waits for a known rate-limit window
    STALLED = "stalled"  # its run made no progress for longer than the stall limit
    FAILING = "failing"  # its last run failed
    PAUSED = "paused"


class IncidentCause(StrEnum):
    ACCESS_LOST = "access_lost"
    UNINSTALLED = "uninstalled"
    DECLINED = "declined"
    STREAM_FAILING = "stream_failing"
    STALLED = "stalled"
    WEBHOOK_SUBSCRIPTION_REMOVED = "webhook_subscription_removed"
    CONNECT_LINK_EXPIRED_UNUSED = "connect_link_expired_unused"
    COUNT_DRIFT = "count_drift"  # the hub's count strays from the platform's after a full pass
    # Credential lifecycle (Amazon): the app's LWA client secret must be rotated every 180
    # days, and a seller re-authorizes the app once a year; both are due ahead of failure.
    LWA_SECRET_EXPIRING = "lwa_secret_expiring"  # noqa: S105  a cause, not a secret
    AMAZON_REAUTHORIZATION_DUE = "amazon_reauthorization_due"
    # A Shopify refresh token near the end of its 90 days without a refresh.
    REFRESH_TOKEN_EXPIRING = "refresh_token_expiring"  # noqa: S105  a cause, not a token


class IncidentStatus(StrEnum):
    OPEN = "open"
    RESOLVED = "resolved"


# --------------------------------------------------------------------------------------
# People and sign-in
# --------------------------------------------------------------------------------------


class User(SQLModel, table=True):
    __tablename__ = "users"

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    email: str = Field(max_length=320, unique=True, index=True)
    password_hash: str = Field(max_length=512)
    role: str = Field(default=Role.VIEWER.value, max_length=16)
    disabled: bool = False
    created_at: datetime = ts(nullable=False, default_now=True)
    last_login_at: datetime | None = ts()


class UserSession(SQLModel, table=True):
    """A signed-in browser. Only the SHA-256 of the token is stored."""

    __tablename__ = "user_sessions"

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    token_hash: str = Field(max_length=64, unique=True, index=True)
    user_id: uuid.UUID = Field(foreign_key="users.id", index=True, ondelete="CASCADE")
    created_at: datetime = ts(nullable=False, default_now=True)
    expires_at: datetime = ts(nullable=False)
    revoked_at: datetime | None = ts()


class SignInThrottle(SQLModel, table=True):
    """Sign-in attempts per key ("account:<email>" or "address:<ip>") in the current window.

    Counted with one atomic upsert before any password is checked, so parallel guesses cannot
    all pass a read-then-write check. Keyed by email whether or not the account exists.
    """

    __tablename__ = "sign_in_throttles"

    key: str = Field(primary_key=True, max_length=400)
    attempts: int = 0
    window_started_at: datetime = ts(nullable=False)


class AuditLog(SQLModel, table=True):
    __tablename__ = "audit_log"

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    actor: str = Field(max_length=320, description="user email, 'system' or 'merchant'")
    action: str = Field(max_length=64, index=True)
    target: str = Field(default="", max_length=255)
    context: dict[str, Any] = json_field()
    at: datetime = ts(nullable=False, index=True, default_now=True)


# --------------------------------------------------------------------------------------
# Integrations, credentials, connect links
# --------------------------------------------------------------------------------------


class Integration(SQLModel, table=True):
    __tablename__ = "integrations"
    # The Integrations page reads a page straight off one of these (its sort key, then the id),
    # however many integrations there are.
    __table_args__ = (
        sa.Index("ix_integrations_created", "created_at", "id"),
        sa.Index("ix_integrations_name", "display_name", "id"),
        sa.Index("ix_integrations_last_sync", "last_sync_at", "id"),
        sa.Index("ix_integrations_status_created", "status", "created_at", "id"),
    )

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    platform: str = Field(max_length=16, index=True)
    display_name: str = Field(max_length=200)
    shop_domain: str | None = Field(default=None, max_length=255, index=True)
    selling_partner_id: str | None = Field(default=None, max_length=64, index=True)
    region: str | None = Field(default=None, max_length=8)
    # The platform account this integration holds ("shopify:<shop>", "amazon:<region>:<seller>"),
    # from its first consent until it is disconnected or deleted, whatever its status meanwhile.
    # Unique, so that two callbacks racing for one account cannot both connect it.
    account_key: str | None = Field(default=None, max_length=300, unique=True, index=True)
    marketplaces: list[str] = json_field(default_factory=list)
    status: str = Field(default=IntegrationStatus.PENDING.value, max_length=16, index=True)
    status_detail: str | None = Field(default=None, max_length=2000)
    shop_info: dict[str, Any] = json_field()  # name, plan, currency, timezone
    created_by: uuid.UUID | None = Field(default=None, foreign_key="users.id", ondelete="SET NULL")
    created_at: datetime = ts(nullable=False, default_now=True)
    updated_at: datetime = ts(nullable=False, default_now=True)
    connected_at: datetime | None = ts()
    # When the seller last authorized the app (Amazon: the yearly re-authorization counts
    # from here); set by every completed Amazon consent, first or renewal.
    authorized_at: datetime | None = ts()
    last_sync_at: datetime | None = ts()


class Credential(SQLModel, table=True):
    """A secret of an integration, encrypted by the vault; ``key_id`` names the key."""

    __tablename__ = "credentials"
    __table_args__ = (sa.UniqueConstraint("integration_id", "kind"),)

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    integration_id: uuid.UUID = Field(foreign_key="integrations.id", index=True, ondelete="CASCADE")
    kind: str = Field(max_length=32, description="access_token, refresh_token, ...")
    ciphertext: str = Field(sa_column=sa.Column(sa.Text, nullable=False))
    key_id: str = Field(max_length=64)
    scopes: list[str] = json_field(default_factory=list)
    expires_at: datetime | None = ts()
    refreshed_at: datetime | None = ts()
    created_at: datetime = ts(nullable=False, default_now=True)


class EncryptionKey(SQLModel, table=True):
    """A key id the vault has used, with a fingerprint of its material (never the key): a
    host whose key under the same id differs (it generated its own ``local1``) is refused."""

    __tablename__ = "encryption_keys"

    key_id: str = Field(primary_key=True, max_length=64)
    fingerprint: str = Field(max_length=32)
    registered_at: datetime = ts(nullable=False, default_now=True)


class ConnectLink(SQLModel, table=True):
    """A no-login link a merchant opens to approve access. Only the token's hash is kept."""

    __tablename__ = "connect_links"

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    token_hash: str = Field(max_length=64, unique=True, index=True)
    integration_id: uuid.UUID = Field(foreign_key="integrations.id", index=True, ondelete="CASCADE")
    purpose: str = Field(default=ConnectPurpose.CONNECT.value, max_length=16)
    created_by: uuid.UUID | None = Field(default=None, foreign_key="users.id", ondelete="SET NULL")
    created_at: datetime = ts(nullable=False, default_now=True)
    expires_at: datetime = ts(nullable=False)
    used_at: datetime | None = ts()
    revoked_at: datetime | None = ts()
    declined_at: datetime | None = ts()


class OAuthState(SQLModel, table=True):
    """A single-use OAuth ``state``: bound to the integration, the shop and its origin."""

    __tablename__ = "oauth_states"

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    state_hash: str = Field(max_length=64, unique=True, index=True)
    platform: str = Field(max_length=16)
    integration_id: uuid.UUID = Field(foreign_key="integrations.id", index=True, ondelete="CASCADE")
    shop_domain: str | None = Field(default=None, max_length=255)
    connect_link_id: uuid.UUID | None = Field(
        default=None, foreign_key="connect_links.id", ondelete="SET NULL"
    )
    user_id: uuid.UUID | None = Field(default=None, foreign_key="users.id", ondelete="SET NULL")
    created_at: datetime = ts(nullable=False, default_now=True)
    expires_at: datetime = ts(nullable=False)
    used_at: datetime | None = ts()


class AppstoreState(SQLModel, table=True):
    """A single-use ``state`` for an authorization the seller started in Amazon's Selling
    Partner Appstore (the app's Login URI): bound to the seller and region Amazon named, not
    to an integration, which is found or created only once the code exchange proves them."""

    __tablename__ = "amazon_appstore_states"

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    state_hash: str = Field(max_length=64, unique=True, index=True)
    region: str = Field(max_length=8)
    selling_partner_id: str = Field(max_length=64)
    marketplace_id: str = Field(max_length=32)  # of the Seller Central host Amazon came from
    created_at: datetime = ts(nullable=False, default_now=True)
    expires_at: datetime = ts(nullable=False)
    used_at: datetime | None = ts()


class LwaClientSecret(SQLModel, table=True):
    """An LWA client secret the hub has used, by fingerprint (never the secret): when it was
    set, so the hub warns before Amazon's 180-day rotation deadline."""

    __tablename__ = "amazon_lwa_secrets"

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    fingerprint: str = Field(max_length=64, unique=True, index=True)
    set_at: datetime = ts(nullable=False)
    retired_at: datetime | None = ts()


# --------------------------------------------------------------------------------------
# Streams and runs
# --------------------------------------------------------------------------------------


class StreamConfig(SQLModel, table=True):
    """One stream of one integration: its schedule and its checkpoint (``cursor``)."""

    __tablename__ = "stream_configs"
    __table_args__ = (sa.UniqueConstraint("integration_id", "stream"),)

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    integration_id: uuid.UUID = Field(foreign_key="integrations.id", index=True, ondelete="CASCADE")
    stream: str = Field(max_length=64)
    enabled: bool = True
    interval_minutes: int = 15
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
    health_cause: str | None = Field(default=None, max_length=32)  # incidents.CAUSES key
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


class SyncRun(SQLModel, table=True):
    __tablename__ = "sync_runs"
    __table_args__ = (
        sa.Index("ix_sync_runs_integration_started", "integration_id", "created_at"),
        # The Runs page, newest first and paged, with or without a status filter: each order
        # ends on the id (ties in time), so a page is read off one of these indexes.
        sa.Index("ix_sync_runs_created_id", "created_at", "id"),
        sa.Index("ix_sync_runs_status_created", "status", "created_at", "id"),
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


# --------------------------------------------------------------------------------------
# Webhooks and alerts
# --------------------------------------------------------------------------------------


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


# One open incident per integration and cause, across every process.
_OPEN_INCIDENT = sa.text("status = 'open'")


class Incident(SQLModel, table=True):
    """Something wrong with an integration, told once: opened, updated while it lasts,
    resolved when a run succeeds or access returns (``dashboard/services/incidents.py``)."""

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
        # The bell and the attention panel: open ones, newest first.
        sa.Index("ix_incidents_status_seen", "status", "last_seen_at"),
    )

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    integration_id: uuid.UUID = Field(foreign_key="integrations.id", index=True, ondelete="CASCADE")
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


# --------------------------------------------------------------------------------------
# Normalized records
# --------------------------------------------------------------------------------------


class RecordColumns(SQLModel):
    """Columns every synced record has; ``raw`` keeps the platform's JSON as received."""

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    # No index of its own: the unique (integration_id, external_id) and the
    # (integration_id, synced_at) index of ``_record_table_args`` both lead with it.
    integration_id: uuid.UUID = Field(foreign_key="integrations.id", ondelete="CASCADE")
    external_id: str = Field(max_length=255)
    raw: dict[str, Any] = json_field()
    remote_updated_at: datetime | None = ts()
    deleted_at: datetime | None = ts()
    first_synced_at: datetime = ts(nullable=False, default_now=True)
    synced_at: datetime = ts(nullable=False, default_now=True)


def _record_table_args(table: str) -> tuple[sa.UniqueConstraint | sa.Index, ...]:
    """One row per platform record, and the Records page's order: newest stored first, of
    every integration or of one, and "changed since the list was read" read off a range."""
    return (
        sa.UniqueConstraint("integration_id", "external_id", name=f"uq_{table}_external"),
        sa.Index(f"ix_{table}_synced_at", "synced_at"),
        sa.Index(f"ix_{table}_integration_synced", "integration_id", "synced_at"),
    )


class Product(RecordColumns, table=True):
    __tablename__ = "products"
    __table_args__ = _record_table_args("products")

    title: str = Field(default="", max_length=512)
    handle: str | None = Field(default=None, max_length=255)
    vendor: str | None = Field(default=None, max_length=255)
    product_type: str | None = Field(default=None, max_length=255)
    status: str | None = Field(default=None, max_length=32)
    sku: str | None = Field(default=None, max_length=255, index=True)
    asin: str | None = Field(default=None, max_length=32)
    price: str | None = Field(default=None, max_length=32, description="decimal as text")
    currency: str | None = Field(default=None, max_length=3)
    quantity: int | None = None
    remote_created_at: datetime | None = ts()


class Variant(RecordColumns, table=True):
    __tablename__ = "variants"
    __table_args__ = _record_table_args("variants")

    product_external_id: str = Field(max_length=255, index=True)
    title: str = Field(default="", max_length=512)
    sku: str | None = Field(default=None, max_length=255, index=True)
    barcode: str | None = Field(default=None, max_length=255)
    price: str | None = Field(default=None, max_length=32)
    inventory_item_id: str | None = Field(default=None, max_length=255)
    inventory_quantity: int | None = None


class InventoryLevel(RecordColumns, table=True):
    """Stock of one item at one place: a Shopify location or an Amazon FBA pool."""

    __tablename__ = "inventory_levels"
    __table_args__ = _record_table_args("inventory_levels")

    inventory_item_id: str = Field(max_length=255, index=True)
    location_id: str = Field(max_length=255)
    location_name: str | None = Field(default=None, max_length=255)
    sku: str | None = Field(default=None, max_length=255, index=True)
    available: int | None = None
    on_hand: int | None = None
    reserved: int | None = None
    inbound: int | None = None


class Order(RecordColumns, table=True):
    __tablename__ = "orders"
    __table_args__ = _record_table_args("orders")

    name: str | None = Field(default=None, max_length=64, description="#1001 or 123-456-789")
    financial_status: str | None = Field(default=None, max_length=32)
    fulfillment_status: str | None = Field(default=None, max_length=32)
    currency: str | None = Field(default=None, max_length=3)
    total_price: str | None = Field(default=None, max_length=32)
    customer_external_id: str | None = Field(default=None, max_length=255)
    email: str | None = Field(default=None, max_length=320)
    marketplace_id: str | None = Field(default=None, max_length=32)
    placed_at: datetime | None = ts(index=True)
    cancelled_at: datetime | None = ts()


class OrderLine(RecordColumns, table=True):
    __tablename__ = "order_lines"
    __table_args__ = _record_table_args("order_lines")

    order_external_id: str = Field(max_length=255, index=True)
    sku: str | None = Field(default=None, max_length=255)
    title: str | None = Field(default=None, max_length=512)
    quantity: int = 0
    price: str | None = Field(default=None, max_length=32)
    product_external_id: str | None = Field(default=None, max_length=255)
    variant_external_id: str | None = Field(default=None, max_length=255)


class Customer(RecordColumns, table=True):
    __tablename__ = "customers"
    __table_args__ = _record_table_args("customers")

    email: str | None = Field(default=None, max_length=320, index=True)
    first_name: str | None = Field(default=None, max_length=255)
    last_name: str | None = Field(default=None, max_length=255)
    state: str | None = Field(default=None, max_length=32)
    orders_count: int | None = None
    total_spent: str | None = Field(default=None, max_length=32)
    remote_created_at: datetime | None = ts()


class AppSetting(SQLModel, table=True):
    """Small runtime settings an admin changes in the UI (alert webhook URL ...)."""

    __tablename__ = "app_settings"

    key: str = Field(primary_key=True, max_length=64)
    value: dict[str, Any] = json_field()
    updated_at: datetime = ts(nullable=False, default_now=True)


# Record kind (connectors.base.RecordKind value) -> table. The one mapping the sync engine
# and the records page use.
RECORD_TABLES: dict[str, type[RecordColumns]] = {
    "product": Product,
    "variant": Variant,
    "inventory_level": InventoryLevel,
    "order": Order,
    "order_line": OrderLine,
    "customer": Customer,
}


# APScheduler's job store (dashboard/services/scheduler.py), declared with the columns of
# APScheduler 3's SQLAlchemyJobStore so that the schema has one owner: a migration creates
# it, and the drift checks (alembic's, and the one Reflex runs at start-up) know it. The job
# store finds it in place and leaves it as it is.
APSCHEDULER_JOBS = sa.Table(
    "apscheduler_jobs",
    SQLModel.metadata,
    sa.Column("id", sa.Unicode(191), primary_key=True),
    sa.Column("next_run_time", sa.Float(25), index=True),
    sa.Column("job_state", sa.LargeBinary, nullable=False),
)
