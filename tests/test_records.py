"""Batch upserts: idempotent, counted, and a deleted record keeps its last known state."""

from __future__ import annotations

from sqlmodel import Session, select

from connectors.base import RecordKind, UnifiedRecord
from dashboard.models import Product, Variant
from dashboard.services.integrations import create_integration
from dashboard.services.records import upsert_records


def product(external_id: str, title: str, *, deleted: bool = False) -> UnifiedRecord:
    fields = {} if deleted else {"title": title}
    return UnifiedRecord(RecordKind.PRODUCT, external_id, fields, {}, deleted=deleted)


def variant(external_id: str, parent: str) -> UnifiedRecord:
    return UnifiedRecord(
        RecordKind.VARIANT, external_id, {"product_external_id": parent, "title": "M"}, {}
    )


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
