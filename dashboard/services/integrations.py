"""Integrations: creating, connecting, renaming, disconnecting and deleting them.

UI, CLI and HTTP routes all go through these keyword-only functions. Connect links and OAuth
``state`` live in ``connect_links`` and are re-exported here for the routes and pages.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from datetime import UTC, datetime

from sqlmodel import Session, col, select

from connectors.amazon import regions as amazon_regions
from connectors.errors import InvalidInput
from dashboard.models import (
    Integration,
    IntegrationStatus,
    Platform,
    StreamConfig,
    User,
)
from dashboard.services import incidents
from dashboard.services.audit import record_audit
from dashboard.services.connect_links import (
    CONNECT_LINK_TTL,
    OAUTH_STATE_TTL,
    LinkInvalid,
    active_connect_links,
    connect_link_url,
    consume_oauth_state,
    create_connect_link,
    decline_connect_link,
    finish_connect_link,
    issue_oauth_state,
    resolve_connect_link,
    revoke_connect_link,
)
from dashboard.settings import get_settings

__all__ = [  # the connect-link names, re-exported for existing callers
    "CONNECT_LINK_TTL",
    "OAUTH_STATE_TTL",
    "LinkInvalid",
    "active_connect_links",
    "connect_link_url",
    "consume_oauth_state",
    "create_connect_link",
    "decline_connect_link",
    "finish_connect_link",
    "issue_oauth_state",
    "resolve_connect_link",
    "revoke_connect_link",
]

AMAZON_REGIONS = amazon_regions.REGIONS

# Streams each platform offers, with their default interval in minutes. Kept as data here so
# the wizard can offer them before a connector is loaded; the connectors define the same names.
PLATFORM_STREAMS: dict[str, dict[str, int]] = {
    Platform.SHOPIFY.value: {"products": 15, "inventory": 15, "orders": 5, "customers": 60},
    Platform.AMAZON.value: {"orders": 10, "listings": 60, "inventory": 30},
}


class NotFound(LookupError):
    """No row with that id."""


def _now() -> datetime:
    return datetime.now(UTC)


# --- URLs ----------------------------------------------------------------------------------


def connect_callback_url(platform: str) -> str:
    return f"{get_settings().public_url}/api/oauth/{platform}/callback"


def webhook_url(platform: str) -> str:
    return f"{get_settings().public_url}/api/webhooks/{platform}"


# --- integrations --------------------------------------------------------------------------


def normalize_shop_domain(shop: str) -> str:
    """Lower-cased ``name.myshopify.com``; raises InvalidInput for anything else."""
    from connectors.shopify.domains import validate_shop_domain

    return validate_shop_domain(shop)


def create_integration(
    *,
    session: Session,
    platform: str,
    display_name: str,
    shop_domain: str | None = None,
    region: str | None = None,
    marketplaces: Iterable[str] = (),
    streams: dict[str, int] | None = None,
    actor: User | None = None,
) -> Integration:
    """Create a pending integration with its stream configs; raises InvalidInput."""
    try:
        platform = Platform(platform).value
    except ValueError:
        raise InvalidInput(f"unknown platform {platform!r}") from None
    display_name = display_name.strip()
    if not display_name:
        raise InvalidInput("give the integration a name")
    if platform == Platform.SHOPIFY:
        if not shop_domain:
            raise InvalidInput("enter the shop's myshopify.com domain")
        shop_domain = normalize_shop_domain(shop_domain)
        region = None
    else:
        region = (region or "").lower()
        if region not in AMAZON_REGIONS:
            raise InvalidInput("choose the seller's region: NA, EU or FE")
        marketplaces = amazon_regions.validate_marketplaces(region, list(marketplaces))
        shop_domain = None
    offered = PLATFORM_STREAMS[platform]
    chosen = streams if streams is not None else offered
    unknown = set(chosen) - set(offered)
    if unknown:
        raise InvalidInput(f"{platform} has no stream {', '.join(sorted(unknown))}")
    if not chosen:
        raise InvalidInput("choose at least one thing to sync")
    integration = Integration(
        platform=platform,
        display_name=display_name[:200],
        shop_domain=shop_domain,
        region=region,
        marketplaces=list(marketplaces),
        created_by=actor.id if actor else None,
    )
    session.add(integration)
    session.flush()
    for stream, interval in chosen.items():
        if interval < 1:
            raise InvalidInput(f"the interval of {stream} must be at least one minute")
        session.add(
            StreamConfig(integration_id=integration.id, stream=stream, interval_minutes=interval)
        )
    record_audit(
        session=session,
        actor=actor.email if actor else "system",
        action="integration.create",
        target=str(integration.id),
        context={"platform": platform, "name": integration.display_name},
    )
    session.flush()
    return integration


def get_integration(*, session: Session, integration_id: uuid.UUID | str) -> Integration:
    integration = session.get(Integration, uuid.UUID(str(integration_id)))
    if integration is None:
        raise NotFound(f"no integration {integration_id}")
    return integration


def find_integration_by_shop(*, session: Session, shop_domain: str) -> Integration | None:
    return session.exec(
        select(Integration)
        .where(Integration.shop_domain == shop_domain.lower())
        .where(Integration.status != IntegrationStatus.DISCONNECTED.value)
        .order_by(col(Integration.created_at).desc())
    ).first()


def set_integration_status(
    *,
    session: Session,
    integration_id: uuid.UUID,
    status: IntegrationStatus,
    detail: str | None = None,
) -> None:
    integration = get_integration(session=session, integration_id=integration_id)
    integration.status = IntegrationStatus(status).value
    integration.status_detail = detail
    integration.updated_at = _now()
    session.add(integration)


def mark_connected(
    *,
    session: Session,
    integration_id: uuid.UUID,
    shop_info: dict[str, object] | None = None,
    selling_partner_id: str | None = None,
    marketplaces: Iterable[str] | None = None,
    actor: str = "merchant",
) -> Integration:
    """The merchant approved: status connected, details filled in, audit written."""
    integration = get_integration(session=session, integration_id=integration_id)
    integration.status = IntegrationStatus.CONNECTED.value
    integration.status_detail = None
    integration.connected_at = integration.updated_at = _now()
    incidents.access_returned(session=session, integration_id=integration_id)  # issue 13
    if shop_info is not None:
        integration.shop_info = dict(shop_info)
    if selling_partner_id is not None:
        integration.selling_partner_id = selling_partner_id
    if marketplaces is not None:
        integration.marketplaces = list(marketplaces)
    session.add(integration)
    record_audit(
        session=session, actor=actor, action="integration.connected", target=str(integration.id)
    )
    return integration


# --- detail, rename, disconnect, delete -------------------------------------------------------


def integration_detail(*, session: Session, integration_id: uuid.UUID) -> dict[str, object]:
    """What the detail page shows: never a secret, only ages, scopes and key ids."""
    from dashboard.services.credentials import credential_summaries

    integration = get_integration(session=session, integration_id=integration_id)
    credentials = credential_summaries(session=session, integration_id=integration.id)
    token = next(
        (c for c in credentials if c["kind"] == "access_token"), next(iter(credentials), None)
    )

    def iso(value: object) -> str:
        return value.isoformat() if isinstance(value, datetime) else ""

    return {
        "id": str(integration.id),
        "platform": integration.platform,
        "name": integration.display_name,
        "account": integration.shop_domain or integration.selling_partner_id or "",
        "region": (integration.region or "").upper(),
        "marketplaces": ", ".join(integration.marketplaces or []),
        "status": integration.status,
        "status_detail": integration.status_detail or "",
        "shop_name": str(integration.shop_info.get("name") or ""),
        "shop_plan": str(integration.shop_info.get("plan") or ""),
        "currency": str(integration.shop_info.get("currency") or ""),
        "connected_at": iso(integration.connected_at),
        "last_sync": iso(integration.last_sync_at),
        "token_refreshed": iso(token["refreshed_at"] or token["created_at"]) if token else "",
        "token_expires": iso(token["expires_at"]) if token else "",
        "scopes": ", ".join(token["scopes"]) if token else "",  # type: ignore[arg-type]
        "key_id": str(token["key_id"]) if token else "",
    }


def stream_rows(*, session: Session, integration_id: uuid.UUID) -> list[dict[str, object]]:
    from dashboard.services.records import count_records

    kinds = {
        "products": "product",
        "inventory": "inventory_level",
        "orders": "order",
        "customers": "customer",
        "listings": "product",
    }
    rows = []
    for config in session.exec(
        select(StreamConfig)
        .where(StreamConfig.integration_id == integration_id)
        .order_by(col(StreamConfig.stream))
    ):
        kind = kinds.get(config.stream)
        rows.append(
            {
                "stream": config.stream,
                "interval": config.interval_minutes,
                "paused": config.paused,
                "last_run": config.last_run_at.isoformat() if config.last_run_at else "",
                "next_run": config.next_run_at.isoformat() if config.next_run_at else "",
                "records": count_records(session=session, integration_id=integration_id, kind=kind)
                if kind
                else 0,
            }
        )
    return rows


def rename_integration(
    *, session: Session, integration_id: uuid.UUID, name: str, actor: User
) -> None:
    integration = get_integration(session=session, integration_id=integration_id)
    name = name.strip()
    if not name:
        raise InvalidInput("give the integration a name")
    integration.display_name = name[:200]
    session.add(integration)
    record_audit(
        session=session,
        actor=actor.email,
        action="integration.rename",
        target=str(integration_id),
        context={"name": name},
    )


def disconnect_integration(*, session: Session, integration_id: uuid.UUID, actor: User) -> None:
    """Stop syncing and destroy the stored tokens; data and history stay."""
    from dashboard.services.credentials import delete_credentials

    integration = get_integration(session=session, integration_id=integration_id)
    delete_credentials(session=session, integration_id=integration_id)
    integration.status = IntegrationStatus.DISCONNECTED.value
    integration.status_detail = "Disconnected by " + actor.email
    session.add(integration)
    record_audit(
        session=session,
        actor=actor.email,
        action="integration.disconnect",
        target=str(integration_id),
    )


def delete_integration(*, session: Session, integration_id: uuid.UUID, actor: User) -> None:
    """Remove the integration with its credentials, streams, runs and synced records."""
    import sqlalchemy as sa

    from dashboard.models import RECORD_TABLES, SyncEvent, SyncRun

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
