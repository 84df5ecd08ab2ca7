"""Editing an integration in place after the wizard: its name, each stream on or off and its
schedule (an interval or a cron expression), an Amazon integration's marketplaces, a Shopify
integration's own app credentials, and the Settings tab's danger zone (disconnect, delete).
Every change is checked as the wizard checks it, audited, and picked up by the scheduler at
its next reconcile (``scheduler.poke`` makes that now)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import TypedDict

import sqlalchemy as sa
from sqlmodel import Session, col, select

from connectors.amazon import regions as amazon_regions
from connectors.errors import InvalidInput
from dashboard.models import (
    RECORD_TABLES,
    IntegrationStatus,
    Platform,
    StreamConfig,
    SyncEvent,
    SyncRun,
    User,
)
from dashboard.services import app_credentials, schedules
from dashboard.services.audit import record_audit
from dashboard.services.credentials import delete_credentials, load_credential
from dashboard.services.integrations import PLATFORM_STREAMS, checked_name, get_integration


class StreamSchedule(TypedDict):
    """One stream as the Settings tab edits it."""

    stream: str
    enabled: bool
    interval: int
    cron: str


def stream_schedules(*, session: Session, integration_id: uuid.UUID) -> list[StreamSchedule]:
    """Every stream the platform offers, configured or not (one never chosen is off, with the
    platform's default interval)."""
    integration = get_integration(session=session, integration_id=integration_id)
    configured = {
        config.stream: config
        for config in session.exec(
            select(StreamConfig).where(col(StreamConfig.integration_id) == integration_id)
        )
    }
    rows: list[StreamSchedule] = []
    for stream, default_minutes in PLATFORM_STREAMS[integration.platform].items():
        config = configured.get(stream)
        rows.append(
            StreamSchedule(
                stream=stream,
                enabled=bool(config and config.enabled),
                interval=config.interval_minutes if config else default_minutes,
                cron=(config.cron or "") if config else "",
            )
        )
    return rows


def update_stream_schedule(
    *,
    session: Session,
    integration_id: uuid.UUID,
    stream: str,
    enabled: bool,
    interval_minutes: int,
    cron: str | None,
    actor: User,
) -> bool:
    """Turn a stream on or off and set its schedule: the interval (5 minutes to 7 days), or a
    cron expression that then replaces it. Returns whether anything changed; raises
    InvalidInput saying what to fix. A stream first turned on here starts from scratch."""
    integration = get_integration(session=session, integration_id=integration_id)
    offered = PLATFORM_STREAMS[integration.platform]
    if stream not in offered:
        raise InvalidInput(f"This integration has no stream {stream!r}.")
    interval_minutes = schedules.check_interval(interval_minutes)
    cron = schedules.normalized_cron(cron)
    config = session.exec(
        select(StreamConfig).where(
            col(StreamConfig.integration_id) == integration_id, col(StreamConfig.stream) == stream
        )
    ).first()
    if config is None:
        if not enabled:
            return False
        config = StreamConfig(integration_id=integration_id, stream=stream, enabled=False)
    before = {"enabled": config.enabled, "interval": config.interval_minutes, "cron": config.cron}
    after = {"enabled": enabled, "interval": interval_minutes, "cron": cron}
    if before == after:
        return False
    config.enabled, config.interval_minutes, config.cron = enabled, interval_minutes, cron
    session.add(config)
    record_audit(
        session=session,
        actor=actor.email,
        action="stream.schedule",
        target=str(integration_id),
        context={"stream": stream, "before": before, "after": after},
    )
    session.flush()
    return True


def set_marketplaces(
    *, session: Session, integration_id: uuid.UUID, marketplaces: list[str], actor: User
) -> bool:
    """The Amazon marketplaces the integration syncs (of its region, at least one); returns
    whether they changed. Raises InvalidInput."""
    integration = get_integration(session=session, integration_id=integration_id)
    if integration.platform != Platform.AMAZON.value or not integration.region:
        raise InvalidInput("Only Amazon integrations have marketplaces.")
    if not marketplaces:
        raise InvalidInput("Choose at least one marketplace.")
    chosen = amazon_regions.validate_marketplaces(
        integration.region, list(dict.fromkeys(marketplaces))
    )
    before = list(integration.marketplaces or [])
    if chosen == before:
        return False
    integration.marketplaces = chosen
    session.add(integration)
    record_audit(
        session=session,
        actor=actor.email,
        action="integration.marketplaces",
        target=str(integration_id),
        context={"before": before, "after": chosen},
    )
    return True


def own_app_client_id(*, session: Session, integration_id: uuid.UUID) -> str:
    """The client id of the integration's own Shopify app ("" for the hub's app). A client id
    is public (it is in every consent URL); the secret is never read back for display."""
    stored = load_credential(
        session=session, integration_id=integration_id, kind=app_credentials.APP_CLIENT_ID
    )
    return stored.secret if stored else ""


def replace_app_credentials(
    *,
    session: Session,
    integration_id: uuid.UUID,
    client_id: str,
    client_secret: str,
    actor: User,
) -> None:
    """Set or replace a Shopify integration's own app, encrypted as the wizard stores it. An
    empty client id keeps the one stored; the secret must always be entered anew."""
    integration = get_integration(session=session, integration_id=integration_id)
    if integration.platform != Platform.SHOPIFY.value:
        raise InvalidInput("Only Shopify integrations use a custom app.")
    client_id = client_id.strip() or own_app_client_id(
        session=session, integration_id=integration_id
    )
    app_credentials.save_app_credentials(
        session=session,
        integration_id=integration_id,
        client_id=client_id,
        client_secret=client_secret,
        actor=actor.email,
    )


# --- name, disconnect, delete ----------------------------------------------------------------


def rename_integration(
    *, session: Session, integration_id: uuid.UUID, name: str, actor: User
) -> None:
    integration = get_integration(session=session, integration_id=integration_id)
    name = checked_name(name)
    before = integration.display_name
    if name == before:
        return
    integration.display_name = name
    integration.updated_at = datetime.now(UTC)
    session.add(integration)
    record_audit(
        session=session,
        actor=actor.email,
        action="integration.rename",
        target=str(integration_id),
        context={"name": name, "before": before},
    )


def disconnect_integration(*, session: Session, integration_id: uuid.UUID, actor: User) -> None:
    """Stop syncing and destroy the stored tokens; data and history stay."""
    integration = get_integration(session=session, integration_id=integration_id)
    # The tokens go; an own app's credentials stay, so that reconnecting can use that app.
    delete_credentials(
        session=session, integration_id=integration_id, keep=app_credentials.APP_KINDS
    )
    integration.status = IntegrationStatus.DISCONNECTED.value
    integration.status_detail = "Disconnected by " + actor.email
    integration.account_key = None  # the account is free for another integration
    session.add(integration)
    record_audit(
        session=session,
        actor=actor.email,
        action="integration.disconnect",
        target=str(integration_id),
    )


def delete_integration(*, session: Session, integration_id: uuid.UUID, actor: User) -> None:
    """Remove the integration with its credentials, streams, runs and synced records."""
    integration = get_integration(session=session, integration_id=integration_id)
    name = integration.display_name
    run_ids = select(SyncRun.id).where(SyncRun.integration_id == integration_id)
    session.execute(sa.delete(SyncEvent).where(col(SyncEvent.run_id).in_(run_ids)))
    for table in RECORD_TABLES.values():
        session.execute(sa.delete(table).where(col(table.integration_id) == integration_id))
    session.delete(integration)
    session.flush()
    record_audit(
        session=session,
        actor=actor.email,
        action="integration.delete",
        target=str(integration_id),
        context={"name": name},
    )
