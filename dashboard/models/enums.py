"""Enumerations, stored as strings so new values need no migration of an enum type."""

from __future__ import annotations

from enum import StrEnum


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
