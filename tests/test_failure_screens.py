"""The screens tell the truth about failures (issue 13): the bell lists open incidents (a
4-stream outage is one item, in words, linking to the integration; resolved ones drop off),
the Overview's cards add up to the number of integrations and its attention panel reads the
incidents, runs show honest progress, the Logs page filters across integrations, the
Integrations list filters by health, and the alert webhook carries the incident."""

from __future__ import annotations

import base64
import re
import uuid
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa
from reflex.istate.data import RouterData
from sqlmodel import Session, select

from dashboard.components.run_progress import run_progress
from dashboard.models import AlertDelivery, Integration, Role, StreamConfig, SyncEvent, SyncRun
from dashboard.pages.logs import LogsState
from dashboard.pages.overview import OverviewState
from dashboard.pages.runs import RunsState
from dashboard.services import incidents, overview
from dashboard.services.auth import create_session, create_user
from dashboard.settings import get_settings
from dashboard.state.notifications import NotificationState

STREAMS = ("products", "orders", "customers", "inventory")
OUTAGE = "POST https://acme.myshopify.com/admin/api/2026-10/graphql.json answered 503"


def add_shop(
    session: Session, name: str, status: str = "connected", **fields: object
) -> Integration:
    integration = Integration(
        platform=str(fields.pop("platform", "shopify")),
        display_name=name,
        shop_domain=f"{name.lower()}.myshopify.com",
        status=status,
        **fields,
    )
    session.add(integration)
    session.flush()
    for stream in STREAMS:
        session.add(StreamConfig(integration_id=integration.id, stream=stream))
    session.flush()
    return integration


def outage(session: Session, integration: Integration) -> None:
    """All four streams fail with a 503, as the sync engine reports each failed run."""
    for stream in STREAMS:
        incidents.stream_failed(
            session=session, integration=integration, stream=stream, error=OUTAGE,
            interval_minutes=5,
        )  # fmt: skip


def signed_in(state: object, session: Session, role: Role = Role.VIEWER) -> object:
    user, _ = create_user(session=session, email=f"{role.value}@example.com", role=role)
    token = create_session(session=session, user=user)
    session.commit()
    state.router = RouterData.from_router_data(  # type: ignore[attr-defined]
        {"headers": {"cookie": f"hub_session={token}"}}
    )
    return state


async def test_the_bell_shows_one_item_in_words_for_a_four_stream_outage(
    hub_db: sa.Engine,
) -> None:
    with Session(hub_db) as session:
        acme = add_shop(session, "Acme")
        outage(session, acme)
        session.commit()
        acme_id = str(acme.id)

    bell = NotificationState(_reflex_internal_init=True)
    bell.apply(await bell.fetch())
    assert bell.open_incidents == 1
    assert bell.bell_label == "Notifications, 1 open incident"
    [item] = bell.items
    assert re.fullmatch(r"Shopify answered 503 for 4 streams since \d\d:\d\d", item["title"])
    assert "the store's API is down" in item["advice"]
    assert "graphql.json" not in item["title"] + item["advice"]  # no raw request text
    assert (item["integration"], item["integration_id"]) == ("Acme", acme_id)

    with Session(hub_db) as session:
        acme = session.get(Integration, uuid.UUID(acme_id))
        assert acme is not None
        for stream in STREAMS:  # the store is back: every stream syncs again
            incidents.stream_succeeded(session=session, integration=acme, stream=stream)
        session.commit()
    bell.apply(await bell.fetch())
    assert (bell.open_incidents, bell.items, bell.bell_label) == (0, [], "Notifications")


async def test_overview_cards_add_up_and_the_attention_panel_lists_incidents(
    hub_db: sa.Engine,
) -> None:
    with Session(hub_db) as session:
        add_shop(session, "Healthy")
        add_shop(session, "Pending", status="pending")
        add_shop(session, "Paused", status="paused")
        add_shop(session, "Revoked", status="needs_reauth")
        add_shop(session, "Gone", status="disconnected")
        failing = add_shop(session, "Failing")
        session.exec(  # what health.record_run_end stores after four failed runs
            sa.update(StreamConfig)
            .where(StreamConfig.integration_id == failing.id)
            .values(health="failing")
        )
        outage(session, failing)
        session.commit()

    page = OverviewState(_reflex_internal_init=True)
    page.apply(await page.fetch())
    cards = page.cards
    assert cards["total"] == page.total_integrations == 6
    buckets = ("healthy", "attention", "access", "not_connected", "paused")
    assert sum(cards[bucket] for bucket in buckets) == cards["total"]
    assert {bucket: cards[bucket] for bucket in buckets} == {
        "healthy": 1, "attention": 1, "access": 2, "not_connected": 1, "paused": 1,
    }  # fmt: skip
    [item] = page.attention
    assert item["integration"] == "Failing"
    assert item["title"].startswith("Shopify answered 503 for 4 streams")
    assert page.open_incidents == 1 and page.more_incidents == ""

    page.dirty_vars.clear()
    page.apply(await page.fetch())
    assert page.dirty_vars == set()  # the watermark did not move: nothing re-sent


async def test_runs_show_honest_progress(hub_db: sa.Engine) -> None:
    now = datetime.now(UTC)
    with Session(hub_db) as session:
        acme = add_shop(session, "Acme", status="syncing")
        common = {"integration_id": acme.id, "status": "running", "started_at": now}
        session.add_all([
            SyncRun(stream="products", records_read=0, **common),  # total unknown, nothing yet
            SyncRun(stream="orders", records_read=120, pages=3, records_per_second=40.0,
                    progress_at=now, records_total=1000, progress=0.12, **common),
            SyncRun(stream="customers", records_read=50, pages=1, records_per_second=9.0,
                    progress_at=now, waiting_until=now + timedelta(minutes=4),
                    waiting_reason="searchOrders quota: next token at 10:14", **common),
            SyncRun(stream="inventory", records_read=5, pages=1, records_per_second=3.0,
                    progress_at=now - timedelta(minutes=20), stalled_at=now,
                    stall_reason="no page for 15 min", **common),
        ])  # fmt: skip
        session.commit()

    runs = RunsState(_reflex_internal_init=True)
    runs.apply(await runs.fetch())
    by_stream = {row["stream"]: row for row in runs.rows}
    products = by_stream["products"]
    assert (products["total_known"], products["flowing"], products["rate_now"]) == (
        False, False, None,
    )  # an indeterminate bar, "0 records" and no rate  # fmt: skip
    orders = by_stream["orders"]
    assert (orders["total_known"], orders["progress"], orders["rate_now"]) == (True, 12, 40.0)
    assert (orders["records_done"], orders["records_total"]) == (120, 1000)  # "120 of 1,000"
    customers = by_stream["customers"]
    assert customers["waiting"] and customers["waiting_until"] and customers["rate_now"] is None
    inventory = by_stream["inventory"]
    assert inventory["stalled"] and inventory["stall_reason"] == "no page for 15 min"
    assert inventory["rate_now"] is None

    # What the cell renders for those fields (compiled to the page's JavaScript).
    rendered = str(run_progress(RunsState.rows[0]).render())
    for words in ("Stalled: ", "Waiting for rate limit (next call ", "Progress: total not known"):
        assert words in rendered
    assert "rate_now" in rendered and "flowing" in rendered


def _events(session: Session) -> None:
    now = datetime.now(UTC)
    acme = add_shop(session, "Acme")
    seller = add_shop(session, "Seller", platform="amazon")
    for integration, created, messages in (
        (acme, now - timedelta(minutes=5), [("info", "page 1: 250 products, cost 112/1000"),
                                            ("error", "Shopify answered 503")]),
        (seller, now - timedelta(minutes=3), [("warning", "throttled: next call at 10:14")]),
        (acme, now - timedelta(days=3), [("info", "an old run's summary")]),
    ):  # fmt: skip
        run = SyncRun(integration_id=integration.id, stream="orders", status="succeeded",
                      created_at=created)  # fmt: skip
        session.add(run)
        session.flush()
        for index, (level, message) in enumerate(messages):
            session.add(SyncEvent(run_id=run.id, level=level, message=message,
                                  at=created + timedelta(seconds=index)))  # fmt: skip
    session.commit()


async def test_logs_page_filters_across_integrations_and_downloads(hub_db: sa.Engine) -> None:
    with Session(hub_db) as session:
        _events(session)
        logs = signed_in(LogsState(_reflex_internal_init=True), session)
    assert isinstance(logs, LogsState)

    def messages() -> list[str]:
        return [row["message"] for row in logs.rows]

    await LogsState.load_logs.fn(logs)
    assert logs.period == "day"  # the last 24 hours by default: the 3-day-old run is out
    assert messages() == [
        "throttled: next call at 10:14", "Shopify answered 503",
        "page 1: 250 products, cost 112/1000",
    ]  # fmt: skip
    assert {row["integration"] for row in logs.rows} == {"Acme", "Seller"}

    await LogsState.set_platform.fn(logs, "amazon")
    assert messages() == ["throttled: next call at 10:14"]
    await LogsState.set_platform.fn(logs, "all")
    await LogsState.set_level.fn(logs, "warning")
    assert messages() == ["throttled: next call at 10:14", "Shopify answered 503"]
    await LogsState.set_level.fn(logs, "all")
    await LogsState.set_search.fn(logs, "503")
    assert messages() == ["Shopify answered 503"]
    await LogsState.set_search.fn(logs, "")
    await LogsState.set_period.fn(logs, "all")
    assert messages()[-1] == "an old run's summary"
    assert (logs.page, logs.more, logs.shown_label) == (0, False, "Events 1 to 4, newest first")

    download = await LogsState.download.fn(logs, "text")
    url, filename = (arg._var_value for _name, arg in download.args)
    assert filename.startswith("hub-logs-") and filename.endswith(".txt")
    text = base64.b64decode(url.removeprefix("data:text/plain;base64,")).decode()
    lines = text.splitlines()  # the whole matching history, oldest first
    assert len(lines) == 4
    assert lines[0].endswith("an old run's summary") and "ERROR" in lines[2]


async def test_logs_page_turns_pages_it_does_not_count(
    hub_db: sa.Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The Logs page reads one event past its page instead of counting: Next goes on only
    while another page follows, and the label names the page alone."""
    monkeypatch.setattr("dashboard.pages.logs.PAGE_SIZE", 3)
    with Session(hub_db) as session:
        _events(session)
        logs = signed_in(LogsState(_reflex_internal_init=True), session)
    assert isinstance(logs, LogsState)
    await LogsState.load_logs.fn(logs)
    await LogsState.set_period.fn(logs, "all")  # 4 events: a page of 3, then 1
    assert (len(logs.rows), logs.more, logs.page_label, logs.page_count) == (3, True, "Page 1", 2)
    await LogsState.next_page.fn(logs)
    assert (len(logs.rows), logs.more, logs.page_label) == (1, False, "Page 2")
    await LogsState.next_page.fn(logs)  # no page follows: Next stays
    assert (logs.page, logs.rows[0]["message"]) == (1, "an old run's summary")
    await LogsState.previous_page.fn(logs)
    assert (logs.page, len(logs.rows)) == (0, 3)


async def test_logs_page_needs_a_session(hub_db: sa.Engine) -> None:
    logs = LogsState(_reflex_internal_init=True)
    logs.router = RouterData.from_router_data({"headers": {}})
    await LogsState.load_logs.fn(logs)
    assert logs.rows == [] and not logs.loaded
    logs.more = True  # as if a page followed: turning pages still needs a session
    await LogsState.next_page.fn(logs)
    await LogsState.previous_page.fn(logs)
    assert (logs.page, logs.rows) == (0, [])


def test_the_integrations_list_filters_by_health(session: Session) -> None:
    add_shop(session, "Fine")
    failing = add_shop(session, "Broken")
    session.exec(
        sa.update(StreamConfig)
        .where(StreamConfig.integration_id == failing.id)
        .values(health="failing")
    )
    session.commit()
    rows, total = overview.list_integrations(session=session, health_is="failing")
    assert (total, [(r["name"], r["health"], r["failing_streams"]) for r in rows]) == (
        1, [("Broken", "failing", 4)],
    )  # fmt: skip
    rows, total = overview.list_integrations(session=session, health_is="connected")
    assert [r["name"] for r in rows] == ["Fine"]
    assert overview.list_integrations(session=session, health_is="nonsense") == ([], 0)


def test_the_alert_webhook_carries_the_incident(
    session: Session, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HUB_ALERT_WEBHOOK_URL", "https://alerts.example.com/hook")
    get_settings.cache_clear()
    acme = add_shop(session, "Acme")
    outage(session, acme)
    for stream in STREAMS:
        incidents.stream_succeeded(session=session, integration=acme, stream=stream)
    session.commit()
    payloads = [d.payload for d in session.exec(select(AlertDelivery)).all()]
    assert [p["kind"] for p in payloads] == ["incident_opened", "incident_resolved"]
    opened, resolved = (p["incident"] for p in payloads)
    assert opened["id"] == resolved["id"]
    assert (opened["cause"], opened["category"], opened["status"]) == (
        "stream_failing", "server_error", "open",
    )  # fmt: skip
    assert opened["streams"] == ["products"]  # as it was when it opened
    assert resolved["status"] == "resolved" and resolved["resolution"]
    assert opened["title"].startswith("Shopify answered 503")
