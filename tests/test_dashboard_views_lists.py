"""The read-only queries behind the dashboard's list pages (Integrations, Runs, Records), from
the database: paging, sorting and filtering in SQL off an index at scale, live counts and
watermarks while syncs run, and a run's detail."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa
from sqlmodel import Session

from dashboard import db
from dashboard.models import Integration, Product, SyncEvent, SyncRun
from dashboard.services import overview, records_view, runs
from tests.dashboard_views_helpers import NOW, add_integration, add_run

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


def test_a_count_and_the_run_counters_it_starts_from_are_one_statement(any_db: str) -> None:
    """A batch writes records and its run's counters in one transaction. Read by two
    statements, a batch committed between them was in the counters but not in the count, and
    missing from the count shown for as long as its run lasted (an Integrations row showed
    'syncing' with 0 records in CI): both come from one statement, one snapshot."""
    engine = db.get_engine()
    with db.session_scope() as session:
        acme = add_integration(session)
        ids = [str(acme.id)]
        add_products(session, acme, 30)
        run = add_run(session, acme, status="running", stream="products")
        run.records_inserted = 30
        session.add(run)
    statements: list[str] = []
    listener = lambda _c, _cu, statement, *_: statements.append(statement)  # noqa: E731
    sa.event.listen(engine, "before_cursor_execute", listener)
    try:
        with db.session_scope() as session:
            counts, bases = overview.live_record_counts(session=session, ids=ids, bases={})
    finally:
        sa.event.remove(engine, "before_cursor_execute", listener)
    assert counts[str(acme.id)] == 30 and bases[str(acme.id)] == (30, {str(run.id): 30})
    counting = [s for s in statements if "FROM products" in s]
    assert len(counting) == 1 and "sync_runs" in counting[0]


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
