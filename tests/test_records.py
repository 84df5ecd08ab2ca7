"""Batch upserts: idempotent, counted, and a deleted record keeps its last known state."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
import sqlalchemy as sa
from sqlmodel import Session, col, select

from connectors.base import ChildrenComplete, RecordKind, UnifiedRecord
from dashboard.db import session_scope
from dashboard.models import InventoryLevel, Order, Product, Variant
from dashboard.services.integrations import create_integration
from dashboard.services.records import upsert_records


def product(external_id: str, title: str, *, deleted: bool = False) -> UnifiedRecord:
    fields = {} if deleted else {"title": title}
    return UnifiedRecord(RecordKind.PRODUCT, external_id, fields, {}, deleted=deleted)


def variant(external_id: str, parent: str) -> UnifiedRecord:
    return UnifiedRecord(
        RecordKind.VARIANT, external_id, {"product_external_id": parent, "title": "M"}, {}
    )


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def session(request: pytest.FixtureRequest):
    """A hub session on a SQLite file, then on PostgreSQL (skipped when not reachable): the
    upsert has a statement of its own per database."""
    request.getfixturevalue("pg_hub_db" if request.param == "postgres" else "hub_db")
    with session_scope() as s:
        yield s


def test_replayed_batch_changes_nothing_and_deletes_keep_the_last_state(session: Session) -> None:
    integration = create_integration(
        session=session, platform="shopify", display_name="S", shop_domain="r.myshopify.com"
    )
    batch = [product("P1", "Mug"), product("P2", "Lamp"), variant("V1", "P1"), variant("V2", "P1")]
    first = upsert_records(session=session, integration_id=integration.id, records=batch)
    again = upsert_records(session=session, integration_id=integration.id, records=batch)
    assert (first.inserted, first.updated) == (4, 0) and (again.inserted, again.updated) == (0, 4)
    # A deletion (from a webhook or the platform's events) carries only the id.
    gone = upsert_records(
        session=session, integration_id=integration.id, records=[product("P1", "", deleted=True)]
    )
    twice = upsert_records(
        session=session, integration_id=integration.id, records=[product("P1", "", deleted=True)]
    )
    assert gone.deleted == 1 and twice.deleted == 0 and not gone.errors
    mug = session.exec(select(Product).where(Product.external_id == "P1")).one()
    assert mug.deleted_at is not None and mug.title == "Mug"  # last known state kept
    variants = session.exec(select(Variant)).all()
    assert all(v.deleted_at is not None for v in variants)  # the children go with it
    lamp = session.exec(select(Product).where(Product.external_id == "P2")).one()
    assert lamp.deleted_at is None
    # An unknown id deleted is nothing to do, not an error.
    ghost = upsert_records(
        session=session, integration_id=integration.id, records=[product("P9", "", deleted=True)]
    )
    assert ghost.deleted == 0 and not ghost.errors


def test_every_column_type_round_trips(session: Session) -> None:
    """JSON, timestamps, integers, NULLs and text that is not ASCII come back as stored; a
    batch repeating an id keeps its last version; a bad record is reported, the rest kept."""
    integration = create_integration(
        session=session, platform="shopify", display_name="T", shop_domain="t.myshopify.com"
    )
    placed = datetime(2026, 11, 1, 12, 30, tzinfo=UTC)
    # With an integer orjson refuses (beyond 64 bits) and a float.
    raw = {"name": "#1001", "lines": [{"sku": "ÄÖ-1", "qty": 2}], "note": None, "quote": "it's",
           "big": 2**70, "ratio": 0.1}  # fmt: skip
    order = UnifiedRecord(
        RecordKind.ORDER, "O1",
        {"name": "#1001", "email": None, "placed_at": placed, "total_price": "12.50"},
        raw, remote_updated_at=placed,
    )  # fmt: skip
    older = UnifiedRecord(RecordKind.ORDER, "O1", {"name": "#1000"}, {"old": True})
    broken = UnifiedRecord(RecordKind.ORDER, "O2", {"no_such_column": 1}, {})
    result = upsert_records(
        session=session, integration_id=integration.id, records=[older, order, broken]
    )
    assert (result.inserted, result.updated) == (1, 0)
    assert [e.external_id for e in result.errors] == ["O2"]
    session.commit()
    stored = session.exec(select(Order)).one()
    assert stored.raw == raw and stored.email is None and stored.total_price == "12.50"
    assert stored.placed_at is not None and stored.placed_at.replace(tzinfo=UTC) == placed
    levels = [
        UnifiedRecord(
            RecordKind.INVENTORY_LEVEL,
            f"L{i}",
            {"inventory_item_id": "I1", "location_id": f"loc{i}", "available": i - 1},
            {},
        )
        for i in range(3)
    ]
    counted = upsert_records(session=session, integration_id=integration.id, records=levels)
    again = upsert_records(session=session, integration_id=integration.id, records=levels)
    assert (counted.inserted, again.updated) == (3, 3)


def level(external_id: str, item: str) -> UnifiedRecord:
    return UnifiedRecord(
        RecordKind.INVENTORY_LEVEL, external_id, {"inventory_item_id": item, "location_id": "L"}, {}
    )


def live_ids(session: Session, table: type[Variant] | type[InventoryLevel]) -> set[str]:
    rows = session.exec(select(table).where(col(table.deleted_at).is_(None))).all()
    return {f"{row.integration_id.hex[:4]}:{row.external_id}" for row in rows}


def test_a_parent_listed_with_all_its_children_loses_the_ones_it_no_longer_lists(
    session: Session,
) -> None:
    """A product re-read with every variant (A, C): B, no longer listed, is deleted; a product
    re-read without that promise, another product and another shop keep theirs."""
    shop, other = (
        create_integration(
            session=session, platform="shopify", display_name=name,
            shop_domain=f"{name}.myshopify.com",
        )
        for name in ("kids", "other")
    )  # fmt: skip
    p1 = ChildrenComplete(RecordKind.VARIANT, ("P1",))
    first = [product("P1", "Mug"), variant("A", "P1"), variant("B", "P1"), variant("C", "P1")]
    stored = upsert_records(
        session=session, integration_id=shop.id, records=first, children_complete=p1
    )
    assert (stored.inserted, stored.deleted) == (4, 0)
    upsert_records(session=session, integration_id=shop.id, records=[variant("D", "P2")])
    upsert_records(session=session, integration_id=other.id, records=first)

    edited = [product("P1", "Mug"), variant("A", "P1"), variant("C", "P1")]
    result = upsert_records(
        session=session, integration_id=shop.id, records=edited, children_complete=p1
    )
    assert (result.inserted, result.updated, result.deleted) == (0, 3, 1)
    b = session.exec(
        select(Variant).where(Variant.integration_id == shop.id, Variant.external_id == "B")
    ).one()
    assert b.deleted_at is not None and b.product_external_id == "P1"  # last state kept
    ours, theirs = shop.id.hex[:4], other.id.hex[:4]
    assert live_ids(session, Variant) == {
        f"{ours}:A",
        f"{ours}:C",
        f"{ours}:D",
        f"{theirs}:A",
        f"{theirs}:B",
        f"{theirs}:C",
    }
    again = upsert_records(
        session=session, integration_id=shop.id, records=edited, children_complete=p1
    )
    assert again.deleted == 0  # replaying the batch changes nothing

    # Without the promise (a first page of variants, say) nothing is deleted.
    partial = upsert_records(
        session=session, integration_id=shop.id, records=[product("P1", "Mug"), variant("A", "P1")]
    )
    assert partial.deleted == 0 and f"{ours}:C" in live_ids(session, Variant)

    # B is back on the product: live again. C, listed but unstorable, is not taken for gone.
    broken_c = UnifiedRecord(RecordKind.VARIANT, "C", {"product_external_id": "P1", "bad": 1}, {})
    back = upsert_records(
        session=session, integration_id=shop.id,
        records=[product("P1", "Mug"), variant("A", "P1"), variant("B", "P1"), broken_c],
        children_complete=p1,
    )  # fmt: skip
    assert back.deleted == 0 and [e.external_id for e in back.errors] == ["C"]
    assert {f"{ours}:A", f"{ours}:B", f"{ours}:C"} <= live_ids(session, Variant)


def test_an_inventory_item_listed_with_its_levels_loses_the_locations_it_left(
    session: Session,
) -> None:
    """Inventory items are no records of their own, yet their levels are their children."""
    integration = create_integration(
        session=session, platform="shopify", display_name="I", shop_domain="i.myshopify.com"
    )
    items = ChildrenComplete(RecordKind.INVENTORY_LEVEL, ("I1", "I2"))
    levels = [level("L1", "I1"), level("L2", "I1"), level("L3", "I2")]
    upsert_records(
        session=session, integration_id=integration.id, records=levels, children_complete=items
    )
    # I1 left one location; I2 is stocked nowhere any more.
    result = upsert_records(
        session=session, integration_id=integration.id, records=[level("L1", "I1")],
        children_complete=items,
    )  # fmt: skip
    assert result.deleted == 2
    assert live_ids(session, InventoryLevel) == {f"{integration.id.hex[:4]}:L1"}


def test_a_deleted_variant_takes_its_inventory_levels_with_it(session: Session) -> None:
    """On Shopify an inventory item exists only with its variant and is never read again once
    the variant is gone: its levels leave with the variant, however the deletion arrives."""
    shop = create_integration(
        session=session, platform="shopify", display_name="V", shop_domain="v.myshopify.com"
    )

    def stocked(external_id: str, parent: str) -> UnifiedRecord:
        fields = {
            "product_external_id": parent,
            "title": "M",
            "inventory_item_id": f"I-{external_id}",
        }
        return UnifiedRecord(RecordKind.VARIANT, external_id, fields, {})

    catalog = [product("P1", "Mug"), stocked("A", "P1"), stocked("B", "P1"),
               product("P2", "Cup"), stocked("C", "P2"), stocked("D", "P2")]  # fmt: skip
    levels = [level("LA", "I-A"), level("LB", "I-B"), level("LC", "I-C"), level("LD", "I-D")]
    upsert_records(session=session, integration_id=shop.id, records=catalog + levels)
    ours = shop.id.hex[:4]

    # B is no longer on P1 ...
    upsert_records(
        session=session, integration_id=shop.id,
        records=[product("P1", "Mug"), stocked("A", "P1")],
        children_complete=ChildrenComplete(RecordKind.VARIANT, ("P1",)),
    )  # fmt: skip
    assert live_ids(session, InventoryLevel) == {f"{ours}:LA", f"{ours}:LC", f"{ours}:LD"}
    # ... and P2 is deleted (a products/delete webhook, say): C and D go, and their levels.
    upsert_records(
        session=session, integration_id=shop.id, records=[product("P2", "", deleted=True)]
    )
    assert live_ids(session, InventoryLevel) == {f"{ours}:LA"}
    assert live_ids(session, Variant) == {f"{ours}:A"}


def test_a_first_sync_of_new_parents_has_no_children_to_retire(session: Session) -> None:
    """Parents all new to the hub cannot have earlier children: the batch sends no UPDATE."""
    shop = create_integration(
        session=session, platform="shopify", display_name="N", shop_domain="n.myshopify.com"
    )
    statements: list[str] = []
    engine = session.get_bind()
    listener = lambda _c, _cu, statement, *_: statements.append(statement)  # noqa: E731
    sa.event.listen(engine, "before_cursor_execute", listener)
    try:
        upsert_records(
            session=session, integration_id=shop.id,
            records=[product("P1", "Mug"), variant("A", "P1"), variant("B", "P1")],
            children_complete=ChildrenComplete(RecordKind.VARIANT, ("P1",)),
        )  # fmt: skip
        assert not [s for s in statements if s.lstrip().upper().startswith("UPDATE")]
        upsert_records(  # read again: now the parent is known, and its children are checked
            session=session, integration_id=shop.id,
            records=[product("P1", "Mug"), variant("A", "P1")],
            children_complete=ChildrenComplete(RecordKind.VARIANT, ("P1",)),
        )  # fmt: skip
    finally:
        sa.event.remove(engine, "before_cursor_execute", listener)
    assert live_ids(session, Variant) == {f"{shop.id.hex[:4]}:A"}
