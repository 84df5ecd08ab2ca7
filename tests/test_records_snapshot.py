"""An id-only snapshot: ids noted as seen keep their columns, and the snapshot's end marks the
rest deleted together with their children, on SQLite and PostgreSQL."""

from __future__ import annotations

import time
from datetime import UTC, datetime

import pytest
from sqlmodel import Session, select

from connectors.base import RecordKind, UnifiedRecord
from dashboard.db import session_scope
from dashboard.models import Order, OrderLine
from dashboard.services.integrations import create_integration
from dashboard.services.records import mark_missing_deleted, mark_seen, upsert_records


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def session(request: pytest.FixtureRequest):
    request.getfixturevalue("pg_hub_db" if request.param == "postgres" else "hub_db")
    with session_scope() as s:
        yield s


def order(external_id: str, name: str) -> UnifiedRecord:
    return UnifiedRecord(RecordKind.ORDER, external_id, {"name": name}, {"name": name})


def line(external_id: str, parent: str) -> UnifiedRecord:
    return UnifiedRecord(
        RecordKind.ORDER_LINE, external_id, {"order_external_id": parent, "quantity": 1}, {}
    )


def test_seen_ids_survive_the_snapshot_and_the_rest_go_with_their_lines(
    session: Session,
) -> None:
    integration = create_integration(
        session=session, platform="shopify", display_name="S", shop_domain="s.myshopify.com"
    )
    records = [order("O1", "#1"), order("O2", "#2"), order("O3", "#3")]
    records += [line("L1", "O1"), line("L2", "O2"), line("L3", "O2")]
    upsert_records(session=session, integration_id=integration.id, records=records)
    session.commit()
    time.sleep(0.01)
    started = datetime.now(UTC)
    seen = mark_seen(
        session=session, integration_id=integration.id, kind="order",
        external_ids=["O1", "O3", "O9"],
    )  # fmt: skip
    gone = mark_missing_deleted(
        session=session, integration_id=integration.id, kind="order", stored_since=started
    )
    session.commit()
    assert seen == 2 and gone == 1  # O9 is not stored: nothing to note
    orders = {o.external_id: o for o in session.exec(select(Order)).all()}
    assert orders["O2"].deleted_at is not None and orders["O2"].name == "#2"
    assert orders["O1"].deleted_at is None and orders["O1"].name == "#1"  # columns unchanged
    assert orders["O1"].raw == {"name": "#1"}
    lines = {x.external_id: x.deleted_at for x in session.exec(select(OrderLine)).all()}
    assert lines["L1"] is None and lines["L2"] is not None and lines["L3"] is not None
    # A deleted record is not brought back by being listed.
    assert (
        mark_seen(session=session, integration_id=integration.id, kind="order", external_ids=["O2"])
        == 0
    )
