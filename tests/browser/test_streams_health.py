"""The integration page tells the truth about a failing stream: the Streams tab names the
cause in words, the header shows the rolled-up health, and the 7-day history chart is drawn."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import pytest
import sqlalchemy as sa
from sqlmodel import Session, select

from dashboard.models import StreamConfig, SyncRun
from dashboard.services import health, integrations
from tests.browser.conftest import ADMIN_EMAIL, ADMIN_PASSWORD, Hub, screenshot, sign_in

pytestmark = pytest.mark.browser
TIMEOUT = 30_000
RAW_ERROR = "POST /sandbox/shopify/acme.myshopify.com/admin/api/2026-10/graphql.json answered 503"


def seed_failing_orders(hub: Hub) -> uuid.UUID:
    """A connected Shopify integration whose orders failed twice in a row (the engine's raw
    error), customers fine: written straight into the hub's database."""
    engine = sa.create_engine(f"sqlite:///{hub.data_dir / 'hub.db'}")
    with Session(engine) as session:
        acme = integrations.create_integration(
            session=session, platform="shopify", display_name="Acme outdoor",
            shop_domain="acme.myshopify.com",
        )  # fmt: skip
        integrations.mark_connected(session=session, integration_id=acme.id)
        configs = {
            config.stream: config
            for config in session.exec(
                select(StreamConfig).where(StreamConfig.integration_id == acme.id)
            )
        }
        now = datetime.now(UTC)
        for _ in range(2):
            health.record_run_end(
                session=session, config=configs["orders"], status="failed", error=RAW_ERROR
            )
            session.add(SyncRun(integration_id=acme.id, stream="orders", status="failed",
                                error=RAW_ERROR, created_at=now))  # fmt: skip
        health.record_run_end(
            session=session, config=configs["customers"], status="succeeded", error=None
        )
        session.add(SyncRun(integration_id=acme.id, stream="customers", status="succeeded",
                            records_read=120, created_at=now))  # fmt: skip
        session.commit()
        integration_id = acme.id
    engine.dispose()
    return integration_id


def test_streams_tab_names_the_cause_of_a_failing_stream(hub: Hub, browser) -> None:
    integration_id = seed_failing_orders(hub)
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    page = context.new_page()
    sign_in(page, hub, ADMIN_EMAIL, ADMIN_PASSWORD)
    page.goto(f"{hub.url}/integrations/{integration_id}")
    orders = page.locator("#stream-orders")
    orders.get_by_text("failing").wait_for(timeout=TIMEOUT)
    orders.get_by_text(
        "Shopify answered 503 — the store's API is down or overloaded; the hub retries every"
    ).wait_for(timeout=TIMEOUT)
    orders.get_by_text("2 failures in a row").wait_for()
    page.locator("#stream-customers").get_by_text("healthy").wait_for()
    # The header: one stream failing beside a healthy one is degraded, not "connected".
    page.get_by_text("degraded", exact=True).first.wait_for()
    page.get_by_text("Some streams failed or skipped records").first.wait_for(timeout=TIMEOUT)
    page.locator("#runs-per-day .recharts-bar-rectangle").first.wait_for(timeout=TIMEOUT)
    screenshot(page, "integration-streams-health")
    assert "shpat_" not in page.content()
    context.close()
