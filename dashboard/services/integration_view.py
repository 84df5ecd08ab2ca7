"""What the integration detail page reads: the integration's facts (never a secret) and its
streams' schedules and counts."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlmodel import Session, col, select

from dashboard.models import StreamConfig
from dashboard.services import schedules
from dashboard.services.integrations import get_integration


def integration_detail(*, session: Session, integration_id: uuid.UUID) -> dict[str, object]:
    """What the detail page shows: never a secret, only ages, scopes and key ids."""
    from dashboard.services.app_credentials import APP_KINDS
    from dashboard.services.credentials import credential_summaries

    integration = get_integration(session=session, integration_id=integration_id)
    credentials = credential_summaries(session=session, integration_id=integration.id)
    # The access token, else the refresh token (Amazon keeps only that between syncs); an own
    # app's client id and secret are no token, and a never-connected integration has none.
    tokens = [c for c in credentials if c["kind"] not in APP_KINDS]
    token = next((c for c in tokens if c["kind"] == "access_token"), next(iter(tokens), None))

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
        "has_token": "yes" if token else "",
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
                "cron": config.cron or "",
                "schedule": schedules.describe(minutes=config.interval_minutes, cron=config.cron),
                "enabled": config.enabled,
                "paused": config.paused,
                "last_run": config.last_run_at.isoformat() if config.last_run_at else "",
                "next_run": config.next_run_at.isoformat() if config.next_run_at else "",
                "records": count_records(session=session, integration_id=integration_id, kind=kind)
                if kind
                else 0,
            }
        )
    return rows
