"""A run's event log: its start, pages and summary, searchable across integrations, and bounded
with room for a long run's late warnings (``dashboard/services/run_log.py``)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlmodel import Session

from dashboard.db import session_scope
from dashboard.services import runs
from dashboard.services.integrations import create_integration, mark_connected
from tests.fake_connector import FakeConnector
from tests.sync_engine_helpers import engine_with


async def test_a_run_logs_start_pages_and_a_summary_searchable_across_integrations(
    session: Session, integration_id
) -> None:
    other = create_integration(
        session=session, platform="amazon", display_name="Seller", region="na",
        marketplaces=["ATVPDKIKX0DER"], streams={"listings": 15},
    )  # fmt: skip
    mark_connected(session=session, integration_id=other.id, selling_partner_id="A1SELLER")
    session.commit()
    engine = engine_with(FakeConnector(total=25, page_size=10))
    [run_id] = await engine.request_sync(integration_id=integration_id)
    [other_run] = await engine.request_sync(integration_id=other.id)  # the fake serves any stream
    await engine.wait()
    from dashboard.services import runs

    with session_scope() as s:
        log = [e["message"] for e in runs.run_events(session=s, run_id=run_id)]
        assert log[0] == "run started (manual, attempt 1): from the beginning"
        assert log[1].startswith("page 1: 10 records (10 new, 0 updated, 0 deleted, 0 skipped)")
        assert log[3].startswith("page 3: 5 records")
        assert log[-1].startswith("run succeeded (25 records read in 3 pages in ")
        everywhere = runs.search_events(session=s, search="records read")
        assert {e["integration"] for e in everywhere} == {"Acme", "Seller"}
        amazon_only = runs.search_events(session=s, search="records read", platform="amazon")
        assert [e["run_id"] for e in amazon_only] == [str(other_run)]
        assert runs.search_events(session=s, level="warning") == []
        later = datetime.now(UTC) + timedelta(minutes=1)
        assert runs.search_events(session=s, since=later) == []
        assert runs.summaries_of(session=s, run_ids=[run_id])[0]["live_state"] == "succeeded"


async def test_a_long_run_keeps_a_bounded_log_with_room_for_its_warnings(
    shared_integration,
) -> None:
    """250 pages: the run's log keeps its first 159 pages, then stops logging pages so that the
    records it had to skip near the end and its summary are still there to read (on SQLite and
    PostgreSQL: each page's transaction counts the log in its fence's RETURNING)."""
    from dashboard.services.run_log import MAX_EVENTS_PER_RUN, RESERVED_FOR_NOTES

    connector = FakeConnector(total=250, page_size=1)
    connector.bad_ids = {245, 246}
    engine = engine_with(connector)
    [run_id] = await engine.request_sync(integration_id=shared_integration)
    await engine.wait()
    with session_scope() as s:
        log = [e["message"] for e in runs.run_events(session=s, run_id=run_id, limit=1000)]
    pages = [line for line in log if line.startswith("page ")]
    assert len(pages) == MAX_EVENTS_PER_RUN - RESERVED_FOR_NOTES - 1  # after "run started"
    assert pages[-1].startswith("page 159: 1 records")
    assert [line for line in log if line.startswith("skipped record")] == [
        "skipped record p245: price is not a number",
        "skipped record p246: price is not a number",
    ]
    assert log[0].startswith("run started") and log[-1].startswith(
        "run partial (250 records read in 250 pages"
    )
    assert len(log) <= MAX_EVENTS_PER_RUN
