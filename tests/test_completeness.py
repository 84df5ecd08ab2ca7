"""Data completeness over real HTTP against the sandbox: a full pass stores the platform's own
count beside the hub's; products deleted on Shopify without webhooks leave the hub holding
more after a full resync, which opens a count_drift incident that the reconciliation resolves.
The Streams tab's rows show what a person reads."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from sqlmodel import Session, select

from connectors.shopify.client import _throttles
from dashboard.db import session_scope
from dashboard.models import Incident, IncidentCause, IncidentStatus, StreamConfig
from dashboard.services import completeness, incidents
from dashboard.state.integration_detail import _stream_rows
from tests.sandbox_server import running_sandbox
from tests.test_amazon_sync import connect as connect_amazon
from tests.test_amazon_sync import engine_for as amazon_engine_for
from tests.test_amazon_sync import truth as amazon_truth
from tests.test_shopify_reconcile import mutate, sync
from tests.test_shopify_sync import connect, engine_for, truth


@pytest.fixture
def sandbox() -> Iterator[tuple[str, Any]]:
    _throttles.clear()
    with running_sandbox(seed=11, time_scale=500) as (base, app):
        yield base, app
    _throttles.clear()


def stream_config(integration_id: uuid.UUID, stream: str) -> StreamConfig:
    with session_scope() as s:
        config = s.exec(
            select(StreamConfig).where(
                StreamConfig.integration_id == integration_id, StreamConfig.stream == stream
            )
        ).one()
        s.expunge(config)
        return config


def drift_incidents(integration_id: uuid.UUID) -> list[dict[str, Any]]:
    with session_scope() as s:
        return [
            row
            for row in incidents.list_incidents(session=s, integration_id=integration_id, status="")
            if row["cause"] == IncidentCause.COUNT_DRIFT.value
        ]


def streams_tab(integration_id: uuid.UUID) -> dict[str, dict[str, Any]]:
    with session_scope() as s:
        return {row["stream"]: row for row in _stream_rows(s, integration_id)}


async def test_a_drift_after_a_full_pass_opens_an_incident_the_reconciliation_resolves(
    session: Session, sandbox: tuple[str, Any]
) -> None:
    base, _ = sandbox
    integration_id = connect(session, base, products=60, orders=5, customers=5)
    engine = engine_for(base)

    # The backfill is a full pass: Shopify's productsCount is stored beside the hub's count.
    runs = await sync(engine, integration_id, "products")
    assert runs["products"].status == "succeeded"
    config = stream_config(integration_id, "products")
    assert config.platform_count == truth(base)["products"]["count"] == 60
    assert config.hub_count_at_pass == 60 and config.platform_counted_at is not None
    row = streams_tab(integration_id)["products"]
    assert (row["records"], row["platform_count"], row["drift_words"]) == (60, 60, "complete")
    assert not row["drifting"]
    assert drift_incidents(integration_id) == []

    # Products deleted on Shopify, no webhook; a full resync re-reads the live ones but keeps
    # the deleted (a backfill reads no deletion events): the hub holds 3 more than Shopify.
    assert mutate(base, {"deletes": 3}).json()["webhooks"] == 0
    await engine.request_sync(integration_id=integration_id, stream="products", full_refresh=True)
    await engine.wait()
    config = stream_config(integration_id, "products")
    assert (config.platform_count, config.hub_count_at_pass) == (57, 60)
    row = streams_tab(integration_id)["products"]
    assert row["drifting"] and row["drift_words"] == "3 more than Shopify (5.3 %)"
    [incident] = drift_incidents(integration_id)
    assert incident["status"] == IncidentStatus.OPEN.value
    assert incident["title"] == (
        "products: the hub holds 60 records, Shopify counts 57 (3 more than Shopify has)"
    )
    assert "full resync" in incident["advice"]

    # The next run reconciles the ids (a full pass too): the deleted ones are marked, the
    # counts agree again and the incident resolves by itself.
    runs = await sync(engine, integration_id, "products")
    assert runs["products"].records_deleted == 3
    config = stream_config(integration_id, "products")
    assert (config.platform_count, config.hub_count_at_pass) == (57, 57)
    [incident] = drift_incidents(integration_id)
    assert incident["status"] == IncidentStatus.RESOLVED.value
    assert incident["resolution"] == "products matches the platform's count again"
    assert streams_tab(integration_id)["products"]["drift_words"] == "complete"


async def test_an_incremental_window_keeps_the_last_full_pass_count(
    session: Session, sandbox: tuple[str, Any]
) -> None:
    """Only a full pass refreshes the platform's count; the hub's side stays live."""
    base, _ = sandbox
    integration_id = connect(session, base, products=5, orders=30, customers=5)
    engine = engine_for(base, shopify_reconcile_hours=0)  # windows never reconcile
    await sync(engine, integration_id, "orders")
    counted = stream_config(integration_id, "orders")
    assert counted.platform_count == 30
    mutate(base, {"new_orders": 2}).raise_for_status()
    await sync(engine, integration_id, "orders")
    config = stream_config(integration_id, "orders")
    assert config.platform_counted_at == counted.platform_counted_at
    row = streams_tab(integration_id)["orders"]
    assert (row["records"], row["platform_count"]) == (32, 30)
    # The inventory stream has no platform count: nothing to compare.
    inventory = streams_tab(integration_id)["inventory"]
    assert inventory["countable"] is False and inventory["counted"] is False


async def test_the_listings_report_rows_are_amazons_count(
    session: Session, sandbox: tuple[str, Any]
) -> None:
    base, _ = sandbox
    integration_id = connect_amazon(session, base, listings=40)
    engine = amazon_engine_for(base)
    run_ids = await engine.request_sync(integration_id=integration_id, stream="listings")
    await engine.wait(run_ids)
    config = stream_config(integration_id, "listings")
    assert config.platform_count == amazon_truth(base)["listings"]["count"]
    assert config.platform_count == config.hub_count_at_pass
    row = streams_tab(integration_id)["listings"]
    assert row["drift_words"] == "complete" and not row["drifting"]


def test_drift_is_measured_against_the_platform_count() -> None:
    assert completeness.Drift(hub=100, platform=100).above(1.0) is False
    assert completeness.Drift(hub=101, platform=100).above(1.0) is False  # exactly 1 %
    assert completeness.Drift(hub=98, platform=100).above(1.0) is True
    assert completeness.Drift(hub=3, platform=0).above(1.0) is True
    assert completeness.drift_words(completeness.Drift(hub=98, platform=100), "Shopify") == (
        "2 missing (2.0 %)"
    )


def test_the_incident_cause_is_stored_as_its_name(session: Session) -> None:
    assert Incident.model_fields["cause"].annotation is str
    assert IncidentCause("count_drift") is IncidentCause.COUNT_DRIFT
