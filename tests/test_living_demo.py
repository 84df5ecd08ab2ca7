"""make run's demo lives: the sandbox mounted in the hub keeps changing the demo shops, and
the hub hears about it through webhooks and shows the new records.

The hub is served as Reflex serves it: its lifespan tasks (``dashboard/dashboard.py``'s
``hub_lifespan`` and ``demo_lifespan``) run by Reflex's own lifespan runner around the app
``build_api`` builds, with the sandbox mounted at /sandbox in demo mode. A Starlette Mount
never runs the mounted sandbox's lifespan, so this fails unless the hub starts the sandbox's
change loop itself.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator

import pytest
from reflex.app_mixins.lifespan import LifespanMixin
from sqlmodel import Session, SQLModel, col, select
from starlette.applications import Starlette
from starlette.routing import Mount

from connectors.amazon.client import BUCKETS
from connectors.shopify.client import _throttles
from dashboard.api import build_api
from dashboard.db import get_engine, session_scope
from dashboard.models import Integration, Order, WebhookEvent, WebhookStatus
from dashboard.services import sync
from dashboard.services.demo import demo_lifespan
from dashboard.services.lifespan import hub_lifespan
from tests.conftest import reset_caches
from tests.sandbox_server import free_port, serving

PATIENCE = 60.0  # seconds: "within a minute"


@pytest.fixture
def living_hub(session: Session, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """make run's settings (sandbox mounted, demo on) on a fresh data dir, at time scale 10,
    served with the lifespan tasks dashboard.py registers, as Reflex runs them."""
    port = free_port()
    monkeypatch.setenv("HUB_PUBLIC_URL", f"http://127.0.0.1:{port}")
    monkeypatch.setenv("HUB_SANDBOX", "1")
    monkeypatch.setenv("HUB_SANDBOX_DEMO", "1")
    monkeypatch.setenv("HUB_SANDBOX_TIME_SCALE", "10")
    for name in ("HUB_SHOPIFY_BASE_URL", "HUB_AMAZON_BASE_URL", "HUB_SHOPIFY_CLIENT_ID",
                 "HUB_SHOPIFY_CLIENT_SECRET", "HUB_AMAZON_CLIENT_ID", "HUB_AMAZON_CLIENT_SECRET",
                 "HUB_AMAZON_APP_ID", "HUB_SANDBOX_CONTROL_TOKEN"):  # fmt: skip
        monkeypatch.delenv(name, raising=False)
    reset_caches()
    _throttles.clear()
    BUCKETS.buckets.clear()
    SQLModel.metadata.create_all(get_engine())
    reflex_lifespan = LifespanMixin()
    reflex_lifespan.register_lifespan_task(hub_lifespan)
    reflex_lifespan.register_lifespan_task(demo_lifespan)
    served = Starlette(
        lifespan=reflex_lifespan._run_lifespan_tasks,
        routes=[Mount("", app=build_api(Starlette()))],
    )
    try:
        with serving(served, port):
            yield
    finally:
        sync.set_engine(None)


def _new_order_seen_by_webhook() -> tuple[WebhookEvent, Order] | None:
    """An orders/create webhook the hub processed, and the order row it brought in."""
    with session_scope() as s:
        events = s.exec(
            select(WebhookEvent).where(
                WebhookEvent.topic == "orders/create",
                WebhookEvent.status == WebhookStatus.PROCESSED.value,
            )
        ).all()
        for event in events:
            gid = event.payload.get("admin_graphql_api_id")
            order = s.exec(
                select(Order).where(
                    Order.integration_id == event.integration_id, Order.external_id == gid
                )
            ).first()
            if order is not None:
                return event, order
    return None


async def test_the_mounted_sandbox_keeps_changing_the_demo_and_the_hub_follows(
    living_hub: None,
) -> None:
    deadline = time.monotonic() + PATIENCE
    found = _new_order_seen_by_webhook()
    while found is None and time.monotonic() < deadline:
        await asyncio.sleep(1)
        found = _new_order_seen_by_webhook()
    with session_scope() as s:
        topics = [e.topic for e in s.exec(select(WebhookEvent)).all()]
        demo = s.exec(select(Integration).where(col(Integration.shop_domain).is_not(None))).all()
    assert found is not None, (
        f"no new order arrived by webhook within {PATIENCE:.0f} s "
        f"(webhook events: {topics}; demo shops connected: {[i.shop_domain for i in demo]})"
    )
    event, order = found
    # A new order, numbered after the seeded ones, in the demo shop the webhook came from.
    assert event.shop in {"demo-outdoor.myshopify.com", "demo-kitchen.myshopify.com"}
    shop = next(i for i in demo if i.id == order.integration_id)
    assert shop.shop_domain == event.shop
    assert order.name and order.name.startswith("#")
    # Product edits came in the same way.
    assert "products/update" in topics
