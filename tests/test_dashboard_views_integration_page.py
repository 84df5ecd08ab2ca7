"""The read-only queries behind an integration's page, from the database: its logs and their
download, its webhooks tab, its streams' health in words, a declined link, and its runs per day."""

from __future__ import annotations

import json
import uuid
from datetime import timedelta
from typing import Any

import sqlalchemy as sa
from reflex.istate.data import RouterData
from sqlmodel import Session

from dashboard.db import session_scope
from dashboard.models import (
    Integration,
    Role,
    StreamConfig,
    SyncEvent,
    SyncRun,
    WebhookEvent,
    WebhookSubscription,
)
from dashboard.services import connect_links, health, integrations, runs, webhooks_view
from dashboard.services.auth import create_session, create_user
from dashboard.state.integration_detail import DetailState
from tests.dashboard_views_helpers import NOW, add_integration, add_run

# --- logs ----------------------------------------------------------------------------------------


def _events(session: Session) -> tuple[Integration, SyncRun]:
    acme, other = add_integration(session), add_integration(session, "Other")
    run = add_run(session, acme, stream="products")
    for offset, (level, message) in enumerate(
        [
            ("debug", "page 1 requested"),
            ("info", "run started"),
            ("warning", "skipped record 42: price is not a number"),
            ("error", "run failed: 100% of the bucket used"),
        ]
    ):
        session.add(
            SyncEvent(
                run_id=run.id, level=level, message=message, at=NOW + timedelta(seconds=offset)
            )
        )
    other_run = add_run(session, other)
    session.add(SyncEvent(run_id=other_run.id, level="error", message="other integration"))
    session.flush()
    return acme, run


def test_logs_filter_by_level_and_above_and_search(session: Session) -> None:
    acme, run = _events(session)

    every = runs.integration_events(session=session, integration_id=acme.id)
    assert [e["level"] for e in every] == ["error", "warning", "info", "debug"]  # newest first
    assert every[0]["stream"] == "products" and every[0]["run_id"] == str(run.id)

    warnings = runs.integration_events(session=session, integration_id=acme.id, level="warning")
    assert [e["level"] for e in warnings] == ["error", "warning"]
    found = runs.integration_events(session=session, integration_id=acme.id, search="SKIPPED")
    assert [e["message"] for e in found] == ["skipped record 42: price is not a number"]
    # Wildcards in the search are plain characters.
    percent = runs.integration_events(session=session, integration_id=acme.id, search="100%")
    assert [e["level"] for e in percent] == ["error"]
    assert runs.integration_events(session=session, integration_id=acme.id, search="_") == []


def test_logs_download_oldest_first_as_json_or_text(session: Session) -> None:
    acme, _ = _events(session)

    exported = json.loads(
        runs.export_events(session=session, integration_id=acme.id, level="info", fmt="json")
    )
    assert [e["message"] for e in exported] == [
        "run started",
        "skipped record 42: price is not a number",
        "run failed: 100% of the bucket used",
    ]
    text = runs.export_events(session=session, integration_id=acme.id, fmt="text")
    lines = text.splitlines()
    assert len(lines) == 4 and "other integration" not in text
    assert lines[0].startswith("2026-11-25T10:30:00+00:00 DEBUG   products")
    assert lines[-1].endswith("run failed: 100% of the bucket used")


def test_logs_tab_reads_only_the_latest_runs(session: Session) -> None:
    acme = add_integration(session)
    old = add_run(session, acme, created_at=NOW - timedelta(days=3))
    new = add_run(session, acme, stream="products", created_at=NOW)
    session.add(SyncEvent(run_id=old.id, message="old run"))
    session.add(SyncEvent(run_id=new.id, message="new run"))
    session.flush()
    shown = runs.integration_events(session=session, integration_id=acme.id, recent_runs=1)
    assert [e["message"] for e in shown] == ["new run"]
    exported = json.loads(runs.export_events(session=session, integration_id=acme.id))
    assert {e["message"] for e in exported} == {"old run", "new run"}


# --- webhooks ------------------------------------------------------------------------------------


def test_webhooks_tab_lists_subscriptions_and_newest_deliveries(session: Session) -> None:
    acme, other = add_integration(session), add_integration(session, "Other")
    for topic in ("products/update", "app/uninstalled"):
        session.add(
            WebhookSubscription(
                integration_id=acme.id, topic=topic, callback_url="https://hub/api/webhooks"
            )
        )
    for index, status in enumerate(("processed", "failed")):
        session.add(
            WebhookEvent(
                platform="shopify",
                webhook_id=f"w{index}",
                topic="products/update",
                integration_id=acme.id,
                status=status,
                error="boom" if status == "failed" else None,
                payload={"secret": "never shown"},
                received_at=NOW + timedelta(seconds=index),
            )
        )
    session.add(WebhookEvent(platform="shopify", webhook_id="x", topic="orders/create",
                             integration_id=other.id))  # fmt: skip
    session.flush()

    subscriptions = webhooks_view.subscriptions(session=session, integration_id=acme.id)
    assert [s["topic"] for s in subscriptions] == ["app/uninstalled", "products/update"]
    deliveries = webhooks_view.recent_deliveries(session=session, integration_id=acme.id)
    assert [(d["status"], d["error"]) for d in deliveries] == [
        ("failed", "boom"),
        ("processed", ""),
    ]
    assert "never shown" not in json.dumps(deliveries)


# --- the integration page: health, decline, history (issue 13) --------------------------------


def _detail_state(integration_id: uuid.UUID) -> Any:
    """The integration page's state as a viewer's websocket would open it."""

    with session_scope() as s:
        user, _ = create_user(
            session=s, email=f"{uuid.uuid4().hex[:8]}@example.com", role=Role.VIEWER
        )
        token = create_session(session=s, user=user)
    state = DetailState(_reflex_internal_init=True)
    state.router = RouterData.from_router_data(
        {
            "headers": {"cookie": f"hub_session={token}", "origin": "http://localhost:3000"},
            "pathname": "/integrations/[integration_id]",
            "asPath": f"/integrations/{integration_id}",
        }
    )
    return state


async def test_streams_tab_names_a_failing_streams_cause_in_words(hub_db: sa.Engine) -> None:

    with session_scope() as s:
        acme = integrations.create_integration(
            session=s, platform="shopify", display_name="Acme", shop_domain="acme.myshopify.com"
        )
        integrations.mark_connected(session=s, integration_id=acme.id)
        configs = {
            c.stream: c
            for c in s.exec(sa.select(StreamConfig).where(StreamConfig.integration_id == acme.id))
            .scalars()
            .all()
        }
        for _ in range(3):
            health.record_run_end(
                session=s, config=configs["orders"], status="failed",
                error="POST /sandbox/shopify/acme.myshopify.com/graphql.json answered 503",
            )  # fmt: skip
        health.record_run_end(
            session=s, config=configs["customers"], status="succeeded", error=None
        )
        acme_id = acme.id

    state = _detail_state(acme_id)
    await DetailState.load_detail.fn(state)
    assert not state.missing
    rows = {row["stream"]: row for row in state.streams}
    assert rows["orders"]["health"] == "failing"
    assert rows["orders"]["cause_words"] == (
        "Shopify answered 503 — the store's API is down or overloaded; the hub retries every "
        f"{rows['orders']['interval']} min"
    )
    assert rows["orders"]["consecutive_failures"] == 3 and rows["orders"]["last_failure_at"]
    assert rows["customers"]["health"] == "healthy" and rows["customers"]["cause_words"] == ""
    assert rows["products"]["health"] == "never_run"
    # The header: one failing stream beside a healthy one is "degraded", with what to look at.
    assert state.info["health"] == "degraded"
    assert "Streams tab" in state.info["health_words"]


async def test_a_declined_link_shows_declined_with_what_to_do(hub_db: sa.Engine) -> None:

    with session_scope() as s:
        acme = integrations.create_integration(
            session=s, platform="shopify", display_name="Acme", shop_domain="acme.myshopify.com"
        )
        _, token = connect_links.create_connect_link(session=s, integration_id=acme.id)
        acme_id = acme.id
    state = _detail_state(acme_id)
    await DetailState.load_detail.fn(state)
    assert state.info["health"] == "pending" and state.info["health_words"] == ""

    with session_scope() as s:
        connect_links.decline_connect_link(session=s, token=token)
    await DetailState.load_detail.fn(state)
    assert state.info["health"] == "declined"
    assert state.info["health_words"].startswith("The merchant declined the connection request")
    assert "Not connected yet" not in state.info["health_words"]
    [incident] = state.incidents
    assert incident["title"] == "The merchant declined the connection request"
    assert incident["advice"] == "talk to the merchant, then send a new connect link"


def test_runs_per_day_counts_the_last_seven_days_in_one_row_each(session: Session) -> None:
    acme, other = add_integration(session), add_integration(session, "Other")
    day = timedelta(days=1)
    add_run(session, acme, created_at=NOW, records_read=120)
    add_run(session, acme, created_at=NOW - timedelta(hours=1), status="partial", records_read=5)
    add_run(session, acme, created_at=NOW - timedelta(hours=2), status="failed", records_read=0)
    add_run(session, acme, created_at=NOW - 2 * day, status="failed")
    add_run(session, acme, created_at=NOW - 6 * day, records_read=7)
    add_run(session, acme, created_at=NOW - 7 * day, records_read=1000)  # before the window
    add_run(session, other, created_at=NOW, records_read=999)  # another integration
    history = runs.runs_per_day(session=session, integration_id=acme.id, now=NOW)
    assert [row["date"] for row in history] == [
        (NOW - n * day).date().isoformat() for n in range(6, -1, -1)
    ]
    assert history[-1] == {
        "day": "Wed 25", "date": "2026-11-25", "succeeded": 2, "failed": 1, "records": 125
    }  # fmt: skip
    assert (history[-3]["succeeded"], history[-3]["failed"]) == (0, 1)
    assert history[0]["records"] == 7 and history[0]["succeeded"] == 1
    assert sum(row["succeeded"] + row["failed"] for row in history) == 5


async def test_a_reconnect_keeps_the_logs_search_and_a_new_link_another_page_starts_without(
    hub_db: sa.Engine,
) -> None:
    """A websocket reconnect runs the page's on_load again. It cleared the search while the
    search box still showed it: the list, and the download, were the unfiltered logs (a
    browser test downloaded page lines after searching "SUCCEEDED"); and it dropped a
    connect link just created, which is shown only once."""
    with session_scope() as s:
        ids = [
            integrations.create_integration(
                session=s, platform="shopify", display_name=name, shop_domain=domain
            ).id
            for name, domain in (("Acme", "acme.myshopify.com"), ("Other", "other.myshopify.com"))
        ]
    state = _detail_state(ids[0])
    await DetailState.load_detail.fn(state)
    await DetailState.set_log_search.fn(state, "SUCCEEDED")
    await DetailState.set_log_level.fn(state, "error")
    state.new_link_url = "http://localhost:3000/connect/just-created"
    await DetailState.load_detail.fn(state)  # the same page, after a reconnect
    assert (state.log_search, state.log_level) == ("SUCCEEDED", "error")
    assert state.new_link_url == "http://localhost:3000/connect/just-created"
    state.router = RouterData.from_router_data(
        {
            "headers": dict(state.router.headers.raw_headers),
            "pathname": "/integrations/[integration_id]",
            "asPath": f"/integrations/{ids[1]}",
        }
    )
    await DetailState.load_detail.fn(state)
    assert (state.log_search, state.log_level, state.new_link_url) == ("", "all", "")
