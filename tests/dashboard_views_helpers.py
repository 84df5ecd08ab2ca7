"""What the dashboard views' tests share: a fixed time to date rows at, and an integration or
a sync run added to the test's session."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlmodel import Session

from dashboard.models import Integration, SyncRun

NOW = datetime(2026, 11, 25, 10, 30, tzinfo=UTC)


def add_integration(session: Session, name: str = "Acme", **fields: object) -> Integration:
    integration = Integration(
        platform="shopify",
        display_name=name,
        shop_domain=f"{name.lower().replace(' ', '-')}.myshopify.com",
        **fields,
    )
    session.add(integration)
    session.flush()
    return integration


def add_run(session: Session, integration: Integration, **fields: object) -> SyncRun:
    fields.setdefault("status", "succeeded")
    run = SyncRun(
        integration_id=integration.id, stream=str(fields.pop("stream", "orders")), **fields
    )
    session.add(run)
    session.flush()
    return run
