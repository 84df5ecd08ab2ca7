"""The read-only queries behind the dashboard: what the pages show, from the database."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from reflex.istate.data import RouterData
from sqlmodel import Session

from dashboard.db import session_scope
from dashboard.models import (
    Integration,
    Notification,
    Product,
    Role,
    StreamConfig,
    SyncEvent,
    SyncRun,
    WebhookEvent,
    WebhookSubscription,
)
from dashboard.services import (
    alerts,
    connect_links,
    health,
    integrations,
    overview,
    records_view,
    runs,
    webhooks_view,
)
from dashboard.services.auth import create_session, create_user
from dashboard.state.integration_detail import DetailState

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


# --- notification center ---------------------------------------------------------------------


def test_notifications_name_their_integration_and_are_marked_read_one_by_one(
    session: Session,
) -> None:
    acme = add_integration(session)
    failed = alerts.notify(
        session=session, kind="run_failed", message="Acme: orders failed", integration_id=acme.id
    )
    alerts.notify(session=session, kind="needs_reauth", message="Acme needs to be reconnected",
                  integration_id=acme.id)  # fmt: skip
    alerts.notify(session=session, kind="run_failed", message="An old integration failed")

    rows = alerts.notification_rows(session=session)
    assert rows[0]["message"] == "An old integration failed"  # newest first
    by_message = {row["message"]: row for row in rows}
    assert by_message["Acme: orders failed"]["integration"] == "Acme"
    assert by_message["Acme: orders failed"]["integration_id"] == str(acme.id)
    assert by_message["An old integration failed"]["integration_id"] == ""
    assert all(row["unread"] for row in rows)

    alerts.mark_read(session=session, notification_id=failed.id)
    assert alerts.unread_count(session=session) == 2
    assert not {r["message"]: r for r in alerts.notification_rows(session=session)}[
        "Acme: orders failed"
    ]["unread"]
    assert alerts.mark_all_read(session=session) == 2
    assert alerts.unread_count(session=session) == 0
    assert alerts.mark_all_read(session=session) == 0


def test_needs_reauth_is_notified_once_until_read(session: Session) -> None:
    acme = add_integration(session)
    for _ in range(3):  # every stream of the integration meets the revoked token
        alerts.notify(session=session, kind="needs_reauth", message="Acme needs to be reconnected",
                      integration_id=acme.id)  # fmt: skip
        alerts.notify(session=session, kind="run_failed", message="Acme: a stream failed",
                      integration_id=acme.id)  # fmt: skip
    assert alerts.unread_count(session=session) == 4  # one needs_reauth, every failed run
    alerts.mark_all_read(session=session)
    alerts.notify(session=session, kind="needs_reauth", message="Acme needs to be reconnected",
                  integration_id=acme.id)  # fmt: skip
    assert alerts.unread_count(session=session) == 1  # revoked again after it was read


def test_notification_list_is_capped(session: Session) -> None:
    for index in range(30):
        session.add(Notification(kind="run_failed", message=f"failure {index}"))
    session.flush()
    assert len(alerts.notification_rows(session=session, limit=20)) == 20
    assert alerts.unread_count(session=session) == 30


# --- overview ------------------------------------------------------------------------------------


def test_records_per_hour_sums_runs_by_the_hour_they_started(session: Session) -> None:
    acme = add_integration(session)
    add_run(session, acme, records_read=5, created_at=NOW)
    add_run(session, acme, records_read=7, created_at=NOW - timedelta(minutes=25))  # 10:05
    add_run(session, acme, records_read=11, created_at=NOW - timedelta(minutes=40))  # 09:50
    add_run(session, acme, records_read=3, status="running", created_at=NOW - timedelta(hours=5))
    add_run(session, acme, records_read=99, created_at=NOW - timedelta(hours=30))  # too old

    hours = overview.records_per_hour(session=session, hours=24, now=NOW)

    assert len(hours) == 24
    assert hours[-1] == {"hour": "10:00", "records": 12}
    assert hours[-2] == {"hour": "09:00", "records": 11}
    assert hours[-6] == {"hour": "05:00", "records": 3}
    assert hours[0]["hour"] == "11:00"  # yesterday's: the window is 24 whole hours
    assert sum(hour["records"] for hour in hours) == 26


def test_live_records_per_hour_reads_the_current_hour_every_time(session: Session) -> None:
    acme = add_integration(session)
    now = datetime.now(UTC)
    add_run(session, acme, records_read=40, created_at=now - timedelta(hours=2))
    add_run(session, acme, records_read=2, created_at=now)
    assert overview.live_records_per_hour(session=session) == overview.records_per_hour(
        session=session
    )
    add_run(session, acme, stream="products", records_read=5, created_at=now)
    add_run(session, acme, stream="products", records_read=7, created_at=now - timedelta(hours=2))
    hours = overview.live_records_per_hour(session=session)
    assert hours[-1]["records"] == 7  # the current hour at once
    assert hours[-3]["records"] == 40  # earlier hours within the minute they are kept
    assert overview.records_per_hour(session=session)[-3]["records"] == 47


@pytest.mark.postgres
def test_records_per_hour_on_postgres(pg_hub_db: sa.Engine) -> None:

    with session_scope() as session:
        acme = add_integration(session)
        add_run(session, acme, records_read=5, created_at=NOW - timedelta(minutes=1))
        add_run(session, acme, records_read=8, created_at=NOW - timedelta(minutes=45))
        hours = overview.records_per_hour(session=session, hours=3, now=NOW)
    assert hours == [
        {"hour": "08:00", "records": 0},
        {"hour": "09:00", "records": 8},
        {"hour": "10:00", "records": 5},
    ]


def test_needs_reauth_lists_only_integrations_waiting_for_the_merchant(session: Session) -> None:
    add_integration(session, "Fine", status="connected")
    add_integration(session, "Revoked", status="needs_reauth")
    assert [row["name"] for row in overview.needs_reauth(session=session)] == ["Revoked"]


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


# --- integrations page at scale ------------------------------------------------------------------


def _seed(session: Session, count: int) -> None:
    now = datetime.now(UTC)
    session.execute(
        sa.insert(Integration),
        [
            {
                "id": uuid.uuid4(),
                "platform": "amazon" if index % 3 == 0 else "shopify",
                "display_name": f"Store {index:05d}",
                "shop_domain": f"store-{index:05d}.myshopify.com",
                "status": ("connected", "paused", "needs_reauth", "pending")[index % 4],
                "marketplaces": [],
                "shop_info": {},
                "created_at": now - timedelta(minutes=index),
                "updated_at": now,
            }
            for index in range(count)
        ],
    )


def test_integrations_page_with_10000_rows_is_one_indexed_page(
    session: Session, hub_db: sa.Engine
) -> None:
    _seed(session, 10_000)
    statements: list[tuple[str, object]] = []

    def capture(_conn, _cursor, statement, parameters, _context, _many) -> None:
        statements.append((statement, parameters))

    sa.event.listen(hub_db, "before_cursor_execute", capture)
    try:
        rows, total = overview.list_integrations(session=session, offset=9_975, limit=25)
    finally:
        sa.event.remove(hub_db, "before_cursor_execute", capture)
    assert total == 10_000
    assert len(rows) == 25
    assert rows[-1]["name"] == "Store 09999"  # the last page ends on the oldest integration

    page_query = next((s, p) for s, p in statements if "LIMIT" in s)
    assert "OFFSET" in page_query[0]  # the database pages, not Python
    plan = " | ".join(
        str(row[-1])
        for row in session.connection().exec_driver_sql(
            f"EXPLAIN QUERY PLAN {page_query[0]}", page_query[1]
        )
    )
    assert "TEMP B-TREE" not in plan, plan  # the order comes from an index, not a sort
    assert "USING INDEX ix_integrations_created" in plan, plan


@pytest.mark.parametrize(
    ("sort", "filters", "index"),
    [
        ("name", {}, "ix_integrations_name"),
        ("last_sync", {}, "ix_integrations_last_sync"),
        ("status", {}, "ix_integrations_status_created"),
        ("created_at", {"status": "paused"}, "ix_integrations_status_created"),
    ],
)
def test_every_sort_of_the_integrations_page_reads_an_index(
    session: Session, hub_db: sa.Engine, sort: str, filters: dict[str, str], index: str
) -> None:
    _seed(session, 2_000)
    statements: list[tuple[str, object]] = []
    listener = lambda _c, _cu, statement, params, _ctx, _m: statements.append((statement, params))  # noqa: E731
    sa.event.listen(hub_db, "before_cursor_execute", listener)
    try:
        for descending in (True, False):
            rows, _ = overview.list_integrations(
                session=session, sort=sort, descending=descending, limit=25, **filters
            )
            assert len(rows) == 25
    finally:
        sa.event.remove(hub_db, "before_cursor_execute", listener)
    for statement, params in (s for s in statements if "LIMIT" in s[0]):
        plan = " | ".join(
            str(row[-1])
            for row in session.connection().exec_driver_sql(
                f"EXPLAIN QUERY PLAN {statement}", params
            )
        )
        assert "TEMP B-TREE" not in plan and index in plan, plan


def test_integrations_search_filter_and_sort(session: Session) -> None:
    _seed(session, 200)
    rows, total = overview.list_integrations(session=session, search="STORE-0012", limit=25)
    assert total == 10 and len(rows) == 10  # store-00120 .. store-00129
    rows, total = overview.list_integrations(
        session=session, platform="amazon", status="connected", sort="name", descending=False
    )
    assert total == len([i for i in range(200) if i % 3 == 0 and i % 4 == 0])
    assert [row["name"] for row in rows] == sorted(row["name"] for row in rows)
    assert {row["status"] for row in rows} == {"connected"}


# --- live Integrations and Records pages ------------------------------------------------------


def add_products(session: Session, integration: Integration, count: int, **fields: object) -> None:
    session.execute(
        sa.insert(Product),
        [
            {
                "id": uuid.uuid4(),
                "integration_id": integration.id,
                "external_id": f"gid://shopify/Product/{uuid.uuid4().hex}",
                "title": f"Product {index}",
                "raw": {},
                **fields,
            }
            for index in range(count)
        ],
    )


def test_integrations_watermark_moves_when_the_page_could_change(session: Session) -> None:
    acme = add_integration(session, status="connected")
    first = overview.integrations_watermark(session=session)
    assert overview.integrations_watermark(session=session) == first  # nothing changed

    acme.status = "syncing"  # a sync starts (the engine does not touch updated_at)
    session.add(acme)
    session.flush()
    syncing = overview.integrations_watermark(session=session)
    assert syncing != first
    acme.last_sync_at = datetime.now(UTC)  # ... and ends
    session.add(acme)
    session.flush()
    assert overview.integrations_watermark(session=session) != syncing
    synced = overview.integrations_watermark(session=session)
    add_integration(session, "Globex")
    assert overview.integrations_watermark(session=session) != synced


def test_integrations_by_id_match_the_page_rows_in_their_order(session: Session) -> None:
    _seed(session, 60)
    rows, _ = overview.list_integrations(session=session, sort="name", offset=25, limit=25)
    ids = [row["id"] for row in rows]
    assert overview.integrations_by_id(session=session, ids=ids) == rows
    renamed = session.get(Integration, uuid.UUID(ids[3]))
    assert renamed is not None
    renamed.display_name = "Renamed"
    session.add(renamed)
    session.flush()
    now = overview.integrations_by_id(session=session, ids=ids)
    assert [row["id"] for row in now] == ids and now[3]["name"] == "Renamed"


def test_live_record_counts_follow_a_running_sync_without_counting_records(
    session: Session, hub_db: sa.Engine
) -> None:
    acme, globex = add_integration(session), add_integration(session, "Globex")
    ids = [str(acme.id), str(globex.id)]
    add_products(session, acme, 30)
    add_products(session, acme, 5, deleted_at=NOW)  # deleted ones are not shown
    counts, bases = overview.live_record_counts(session=session, ids=ids, bases={})
    assert counts == {str(acme.id): 30, str(globex.id): 0}

    run = add_run(session, acme, status="running", stream="products")
    counts, bases = overview.live_record_counts(session=session, ids=ids, bases=bases)
    assert counts[str(acme.id)] == 30  # counted again as the sync started

    statements: list[str] = []
    listener = lambda _c, _cu, statement, *_: statements.append(statement)  # noqa: E731
    sa.event.listen(hub_db, "before_cursor_execute", listener)
    try:
        for batch in range(3):  # what each batch's transaction does: records and run counters
            add_products(session, acme, 10)
            run.records_inserted += 10
            session.add(run)
            session.flush()
            counts, bases = overview.live_record_counts(session=session, ids=ids, bases=bases)
            assert counts[str(acme.id)] == 40 + batch * 10
    finally:
        sa.event.remove(hub_db, "before_cursor_execute", listener)
    assert not [s for s in statements if "FROM products" in s], statements

    add_products(session, acme, 2)  # written outside the run's counters (a webhook)
    run.status = "succeeded"
    session.add(run)
    session.flush()
    counts, _ = overview.live_record_counts(session=session, ids=ids, bases=bases)
    assert counts[str(acme.id)] == 62  # exact again once the sync has ended


def test_records_view_sees_sync_activity_and_counts_what_changed(session: Session) -> None:
    acme, globex = add_integration(session), add_integration(session, "Globex")
    quiet = records_view.sync_activity(session=session, integration_id=str(acme.id))
    everyone = records_view.sync_activity(session=session)
    loaded_at = datetime.now(UTC) - timedelta(seconds=1)
    add_products(session, acme, 4, synced_at=loaded_at - timedelta(minutes=5), sku="OLD")
    run = add_run(session, globex, status="running", stream="products")
    assert records_view.sync_activity(session=session, integration_id=str(acme.id)) == quiet
    assert records_view.sync_activity(session=session) != everyone
    run.records_updated = 3  # Globex's batch
    session.add(run)
    session.flush()
    moved = records_view.sync_activity(session=session)
    assert moved[:2] == (1, 3)

    add_products(session, globex, 3, sku="NEW-1")
    add_products(session, acme, 1, sku="NEW-2")
    assert records_view.changed_since(session=session, kind="product", since=loaded_at) == 4
    assert (
        records_view.changed_since(
            session=session, kind="product", since=loaded_at, integration_id=str(acme.id)
        )
        == 1
    )
    assert (
        records_view.changed_since(session=session, kind="product", since=loaded_at, search="new-1")
        == 3
    )
    assert records_view.changed_since(session=session, kind="order", since=loaded_at) == 0


# --- runs page and integration filters -------------------------------------------------------


def test_runs_page_counts_and_pages_with_filters_in_sql(session: Session) -> None:
    acme = add_integration(session)
    amazon = add_integration(session, "Seller")
    amazon.platform, amazon.shop_domain, amazon.selling_partner_id = "amazon", None, "A1SELLER"
    for index in range(120):
        add_run(
            session,
            acme if index % 4 else amazon,  # 90 Shopify runs, 30 Amazon
            status="failed" if index % 3 == 0 else "succeeded",  # 40 failed
            created_at=NOW - timedelta(minutes=index // 2),  # pairs queued in the same instant
        )
    assert runs.count_runs(session=session) == 120
    pages = [runs.list_runs(session=session, offset=offset, limit=50) for offset in (0, 50, 100)]
    assert [len(page) for page in pages] == [50, 50, 20]
    ids = [row["id"] for page in pages for row in page]
    assert len(set(ids)) == 120  # ties in time never repeat or skip a run across pages
    times = [row["created_at"] for page in pages for row in page]
    assert times == sorted(times, reverse=True)

    assert runs.count_runs(session=session, status="failed") == 40
    assert runs.count_runs(session=session, platform="amazon") == 30
    assert runs.count_runs(session=session, platform="shopify", status="failed") == len(
        [i for i in range(120) if i % 4 and i % 3 == 0]
    )
    assert runs.count_runs(session=session, integration_id=amazon.id, status="failed") == len(
        [i for i in range(120) if i % 4 == 0 and i % 3 == 0]
    )
    rows = runs.list_runs(session=session, platform="amazon", status="failed", limit=50)
    assert {(row["platform"], row["status"]) for row in rows} == {("amazon", "failed")}


def test_integration_matches_are_few_literal_and_by_name(session: Session) -> None:
    _seed(session, 1_000)
    add_integration(session, "100% Cotton_Shop")
    matches = overview.integration_matches(session=session, search="STORE-00", limit=20)
    assert len(matches) == 20  # of the 100 that match, only a short list travels
    assert [m["name"] for m in matches] == [f"Store {i:05d}" for i in range(20)]
    assert matches[0]["account"] == "store-00000.myshopify.com"
    assert [m["name"] for m in overview.integration_matches(session=session, search="0% c")] == [
        "100% Cotton_Shop"
    ]
    assert overview.integration_matches(session=session, search="e_0") == []  # "_" is literal
    assert [m["name"] for m in overview.integration_matches(session=session, search="N_S")] == [
        "100% Cotton_Shop"
    ]
    assert overview.integration_matches(session=session, search="  ") == []


@pytest.mark.parametrize(
    ("filters", "index"),
    [({}, "ix_sync_runs_created_id"), ({"status": "failed"}, "ix_sync_runs_status_created")],
)
def test_a_runs_page_is_read_off_an_index(
    session: Session, hub_db: sa.Engine, filters: dict[str, str], index: str
) -> None:
    acme = add_integration(session)
    session.execute(
        sa.insert(SyncRun),
        [
            {
                "id": uuid.uuid4(),
                "integration_id": acme.id,
                "stream": "orders",
                "status": "failed" if n % 2 else "succeeded",
                "created_at": NOW - timedelta(seconds=n),
            }
            for n in range(2_000)
        ],
    )
    statements: list[tuple[str, object]] = []
    listener = lambda _c, _cu, statement, params, _ctx, _m: statements.append((statement, params))  # noqa: E731
    sa.event.listen(hub_db, "before_cursor_execute", listener)
    try:
        rows = runs.list_runs(session=session, offset=950, limit=50, **filters)
    finally:
        sa.event.remove(hub_db, "before_cursor_execute", listener)
    assert len(rows) == 50
    statement, params = next(s for s in statements if "OFFSET" in s[0])
    plan = " | ".join(
        str(row[-1])
        for row in session.connection().exec_driver_sql(f"EXPLAIN QUERY PLAN {statement}", params)
    )
    assert "TEMP B-TREE" not in plan and index in plan, plan


@pytest.mark.parametrize("one_integration", [False, True])
def test_the_records_page_and_its_changed_check_read_off_an_index(
    session: Session, hub_db: sa.Engine, one_integration: bool
) -> None:
    acme, globex = add_integration(session), add_integration(session, "Globex")
    session.execute(
        sa.insert(Product),
        [
            {
                "id": uuid.uuid4(),
                "integration_id": (acme.id, globex.id)[n % 2],
                "external_id": f"gid://shopify/Product/{n}",
                "raw": {},
                "title": f"Product {n}",
                "synced_at": NOW - timedelta(seconds=n),
                "first_synced_at": NOW - timedelta(days=1),
            }
            for n in range(2_000)
        ],
    )
    integration_id = str(acme.id) if one_integration else ""
    statements: list[tuple[str, object]] = []
    listener = lambda _c, _cu, statement, params, _ctx, _m: statements.append((statement, params))  # noqa: E731
    sa.event.listen(hub_db, "before_cursor_execute", listener)
    try:
        rows, total = records_view.browse(
            session=session, kind="product", integration_id=integration_id
        )
        changed = records_view.changed_since(
            session=session, kind="product", since=NOW - timedelta(seconds=10),
            integration_id=integration_id,
        )  # fmt: skip
    finally:
        sa.event.remove(hub_db, "before_cursor_execute", listener)
    assert rows[0]["c0"] == "Product 0" and total == (1_000 if one_integration else 2_000)
    assert changed == (5 if one_integration else 10)  # the products stored in those 10 s
    index = "ix_products_integration_synced" if one_integration else "ix_products_synced_at"
    page, check = [s for s in statements if "LIMIT" in s[0]][-1], statements[-1]
    plans = [
        " | ".join(
            str(row[-1])
            for row in session.connection().exec_driver_sql(
                f"EXPLAIN QUERY PLAN {statement}", params
            )
        )
        for statement, params in (page, check)
    ]
    # The page walks the index newest first and stops after 25 (only ties are sorted) ...
    assert f"USING INDEX {index}" in plans[0], plans[0]
    assert "TEMP B-TREE FOR ORDER BY" not in plans[0], plans[0]
    # ... and the check reads the range of the last seconds, not the table.
    assert plans[1].startswith("SEARCH products USING") and index in plans[1], plans[1]


def test_every_records_column_has_a_header() -> None:
    for label, columns in records_view.VIEWS.values():
        assert all(records_view.HEADERS.get(column) for column in columns), label


def test_a_run_detail_has_its_duration_and_the_tail_of_its_log(session: Session) -> None:
    acme = add_integration(session)
    run = add_run(session, acme, started_at=NOW, finished_at=NOW + timedelta(seconds=75))
    session.add_all(
        SyncEvent(run_id=run.id, message=f"page {n}", at=NOW + timedelta(seconds=n))
        for n in range(250)
    )
    session.flush()
    (summary,) = runs.summaries_of(session=session, run_ids=[run.id])
    assert summary["took"] == "1 min 15 s"
    tail = runs.run_events(session=session, run_id=run.id, limit=200)
    assert [e["message"] for e in tail] == [f"page {n}" for n in range(50, 250)]
    running = add_run(session, acme, status="running", started_at=NOW)
    assert runs.summaries_of(session=session, run_ids=[running.id])[0]["took"] == ""


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
