"""Every table of the hub, in one place: this package, one module per area.

UUID keys, timezone-aware UTC timestamps (``UTCDateTime`` restores the zone SQLite drops),
bounded strings. Record tables share ``RecordColumns`` and are unique per
(integration, external id) so that every batch upsert is idempotent. Import from
``dashboard.models``; the modules are how the file is kept readable, not an API.
"""

from dashboard.models.alerts import (
    _OPEN_INCIDENT,
    AlertDelivery,
    Incident,
    Notification,
    WebhookEvent,
    WebhookSubscription,
)
from dashboard.models.api import (
    ApiKey,
    ChangeCounter,
    ChangeWebhook,
    ChangeWebhookDelivery,
)
from dashboard.models.columns import (
    UTCDateTime,
    json_field,
    ts,
    utcnow,
)
from dashboard.models.enums import (
    ConnectPurpose,
    EventLevel,
    IncidentCause,
    IncidentStatus,
    IntegrationStatus,
    Platform,
    Role,
    RunStatus,
    RunTrigger,
    StreamHealth,
    WebhookStatus,
)
from dashboard.models.integrations import (
    AppstoreState,
    ConnectLink,
    Credential,
    EncryptionKey,
    Integration,
    LwaClientSecret,
    OAuthState,
)
from dashboard.models.people import (
    AuditLog,
    SignInThrottle,
    User,
    UserSession,
)
from dashboard.models.records import (
    RECORD_TABLES,
    Customer,
    InventoryLevel,
    Order,
    OrderLine,
    Product,
    RecordColumns,
    Variant,
    _record_table_args,
)
from dashboard.models.settings import (
    APSCHEDULER_JOBS,
    AppSetting,
)
from dashboard.models.sync import (
    _ACTIVE_RUN,
    ACTIVE_RUN_STATUSES,
    SchedulerLease,
    StreamConfig,
    SyncEvent,
    SyncRun,
)
from dashboard.models.workers import HubWorker

__all__ = [
    "ACTIVE_RUN_STATUSES",
    "APSCHEDULER_JOBS",
    "RECORD_TABLES",
    "_ACTIVE_RUN",
    "_OPEN_INCIDENT",
    "AlertDelivery",
    "ApiKey",
    "AppSetting",
    "AppstoreState",
    "AuditLog",
    "ChangeCounter",
    "ChangeWebhook",
    "ChangeWebhookDelivery",
    "ConnectLink",
    "ConnectPurpose",
    "Credential",
    "Customer",
    "EncryptionKey",
    "EventLevel",
    "HubWorker",
    "Incident",
    "IncidentCause",
    "IncidentStatus",
    "Integration",
    "IntegrationStatus",
    "InventoryLevel",
    "LwaClientSecret",
    "Notification",
    "OAuthState",
    "Order",
    "OrderLine",
    "Platform",
    "Product",
    "RecordColumns",
    "Role",
    "RunStatus",
    "RunTrigger",
    "SchedulerLease",
    "SignInThrottle",
    "StreamConfig",
    "StreamHealth",
    "SyncEvent",
    "SyncRun",
    "UTCDateTime",
    "User",
    "UserSession",
    "Variant",
    "WebhookEvent",
    "WebhookStatus",
    "WebhookSubscription",
    "_record_table_args",
    "json_field",
    "ts",
    "utcnow",
]
