"""Health per stream, rolled up honestly: what the Integrations list, the Overview cards and
the Streams tab say after a 5xx storm on a Shopify shop, over real HTTP to the sandbox, and
cards that add up to the number of integrations (SQLite and PostgreSQL)."""

from __future__ import annotations

import functools
import re
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from sqlmodel import Session, select

from connectors import http
from connectors.shopify import client as shopify_client
from dashboard.db import get_engine, session_scope
from dashboard.models import (
    ConnectLink,
    Incident,
    IntegrationStatus,
    Notification,
    RunStatus,
    StreamConfig,
)
from dashboard.services import health, incidents, overview
from dashboard.services.integrations import create_integration, set_integration_status
from dashboard.services.sync import SyncEngine
from tests import test_shopify_sync as shopify
from tests.sandbox_server import control_headers, running_sandbox

SHOPIFY_STREAMS = {"products", "orders", "customers", "inventory"}


@pytest.fixture
def sandbox(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    # A 503 storm: the client's own HTTP retries kept short, so the engine sees them in ms.
    fast = functools.partial(http.with_retries, attempts=2, initial_wait=0.01, max_wait=0.02)
    monkeypatch.setattr(shopify_client, "with_retries", fast)
    shopify._throttles.clear()
    with running_sandbox(seed=5, time_scale=50) as (base, _app):
        yield base
    shopify._throttles.clear()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def any_session(request: pytest.FixtureRequest) -> Iterator[Session]:
    request.getfixturevalue("pg_hub_db" if request.param == "postgres" else "hub_db")
    with Session(get_engine()) as session:
        yield session


def engine_for(base: str) -> SyncEngine:
    engine = shopify.engine_for(base)
    engine._retry_delays = (0.01,)  # two attempts per run: the storm fails them quickly
    return engine


def statuses(run_ids: list[uuid.UUID]) -> dict[str, str]:
    from tests.test_amazon_sync import runs_by_stream

    return {name: run.status for name, run in runs_by_stream(run_ids).items()}


def faults(base: str, **rates: float) -> None:
    httpx.put(
        f"{base}/_sandbox/faults/shopify/{shopify.SHOP}", json=rates, headers=control_headers(base)
    ).raise_for_status()


async def test_a_5xx_storm_then_one_retry_leaves_the_integration_degraded(
    any_session: Session, sandbox: str
) -> None:
    integration_id = shopify.connect(any_session, sandbox, products=20, orders=10, customers=10)
    engine = engine_for(sandbox)
    faults(sandbox, error_rate=1.0)
    run_ids = await engine.request_sync(integration_id=integration_id)
    await engine.wait()
    assert set(statuses(run_ids).values()) == {RunStatus.FAILED.value}
    assert set(statuses(run_ids)) == SHOPIFY_STREAMS

    with session_scope() as s:
        [row] = overview.integrations_by_id(session=s, ids=[str(integration_id)])
        assert (row["health"], row["failing_streams"], row["streams"]) == ("failing", 4, 4)
        # One outage, one incident, one notification, in words.
        [incident] = incidents.list_incidents(session=s)
        assert incident["cause"] == "stream_failing"
        assert incident["category"] == "server_error"
        assert re.match(
            r"Shopify answered 50[023] for 4 streams since \d\d:\d\d$", incident["title"]
        )
        assert "the store's API is down" in incident["advice"]
        assert re.search(r"the hub retries every \d+ min$", incident["advice"])
        assert "answered 50" in incident["latest_error"]  # the raw error is kept beside
        [notification] = s.exec(select(Notification)).all()
        assert notification.kind == "incident_opened"

    faults(sandbox)  # the store is back; one retry of customers succeeds
    [retry] = await engine.request_sync(integration_id=integration_id, stream="customers")
    await engine.wait()
    assert statuses([retry]) == {"customers": RunStatus.SUCCEEDED.value}

    with session_scope() as s:
        [row] = overview.integrations_by_id(session=s, ids=[str(integration_id)])
        assert row["status"] == IntegrationStatus.CONNECTED.value  # the stored access status
        assert (row["health"], row["failing_streams"]) == ("degraded", 3)  # what to show
        by_stream = {
            r["stream"]: r for r in health.stream_health(session=s, integration_id=integration_id)
        }
        assert by_stream["customers"]["health"] == "healthy"
        assert by_stream["customers"]["last_success_at"]
        for name in SHOPIFY_STREAMS - {"customers"}:
            assert by_stream[name]["health"] == "failing"
            assert by_stream[name]["cause"] == "server_error"
            assert by_stream[name]["consecutive_failures"] == 1
            assert "the store's API is down" in by_stream[name]["cause_words"]
        [incident] = incidents.list_incidents(session=s)
        assert sorted(incident["streams"]) == ["inventory", "orders", "products"]
        assert " for 3 streams since " in incident["title"]
        cards = overview.health_cards(session=s)
        assert (cards["attention"], cards["healthy"], cards["total"]) == (1, 0, 1)

    run_ids = await engine.request_sync(integration_id=integration_id)
    await engine.wait()
    assert set(statuses(run_ids).values()) == {RunStatus.SUCCEEDED.value}
    with session_scope() as s:
        [row] = overview.integrations_by_id(session=s, ids=[str(integration_id)])
        assert row["health"] == "connected"
        assert incidents.list_incidents(session=s) == []
        [resolved] = incidents.list_incidents(session=s, status="resolved")
        assert resolved["resolved_at"] and "synced at" in resolved["resolution"]
        kinds = sorted(n.kind for n in s.exec(select(Notification)).all())
        assert kinds == ["incident_opened", "incident_resolved"]


def _integration(
    session: Session, name: str, status: IntegrationStatus, **streams: str
) -> uuid.UUID:
    integration = create_integration(
        session=session, platform="shopify", display_name=name,
        shop_domain=f"{name.lower()}.myshopify.com", streams={s: 15 for s in streams} or None,
    )  # fmt: skip
    set_integration_status(session=session, integration_id=integration.id, status=status)
    for config in session.exec(
        select(StreamConfig).where(StreamConfig.integration_id == integration.id)
    ).all():
        config.health = streams.get(config.stream, config.health)
        session.add(config)
    return integration.id


def test_overview_cards_put_every_integration_in_exactly_one_bucket(any_session: Session) -> None:
    s = any_session
    _integration(s, "Fine", IntegrationStatus.CONNECTED, products="healthy", orders="never_run")
    _integration(s, "Half", IntegrationStatus.CONNECTED, products="healthy", orders="failing")
    _integration(s, "Down", IntegrationStatus.ERROR, products="failing", orders="failing")
    _integration(s, "Skips", IntegrationStatus.SYNCING, products="degraded")
    _integration(s, "Reauth", IntegrationStatus.NEEDS_REAUTH, products="failing")
    _integration(s, "Paused", IntegrationStatus.PAUSED, products="healthy")
    _integration(s, "Waiting", IntegrationStatus.PENDING)
    declined = _integration(s, "Declined", IntegrationStatus.PENDING)
    s.add(ConnectLink(token_hash=uuid.uuid4().hex, integration_id=declined,
                      expires_at=datetime.now(UTC) + timedelta(days=1),
                      declined_at=datetime.now(UTC)))  # fmt: skip
    gone = _integration(s, "Gone", IntegrationStatus.DISCONNECTED, products="healthy")
    incidents.uninstalled(session=s, integration_id=gone)
    _integration(s, "Off", IntegrationStatus.DISCONNECTED)
    s.commit()

    by_status = health.health_counts(session=s)
    expected = {
        "connected": 1, "degraded": 2, "failing": 1, "needs_reauth": 1, "paused": 1,
        "pending": 1, "declined": 1, "uninstalled": 1, "disconnected": 1,
    }  # fmt: skip
    assert {k: v for k, v in by_status.items() if v} == expected
    cards = overview.health_cards(session=s)
    assert cards["total"] == 10
    buckets = sum(cards[bucket] for bucket in health.CARD_BUCKETS)
    assert buckets == cards["total"]  # they add up
    assert (cards["healthy"], cards["attention"], cards["access"]) == (1, 3, 4)
    assert (cards["not_connected"], cards["paused"]) == (1, 1)
    assert s.exec(select(Incident)).one().cause == "uninstalled"
