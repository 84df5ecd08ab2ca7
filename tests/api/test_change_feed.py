"""A consumer following the change feed with ``since`` while syncs insert, update and delete
ends with a copy equal to the hub's tables: every change once, in order, deletions included.

On PostgreSQL several writers store batches of the same integration at once, each holding
its transaction open a random while after writing: the case where a sequence number taken
at write time would commit out of order and a reader would skip it.
"""

from __future__ import annotations

import asyncio
import random
import threading
import time
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import sqlalchemy as sa

from connectors.base import (
    Batch,
    Connector,
    CredentialStore,
    IntegrationRef,
    RecordKind,
    StreamSpec,
    UnifiedRecord,
)
from dashboard.db import session_scope
from dashboard.models import Order, OrderLine
from dashboard.services.records import upsert_records
from dashboard.services.sync import SyncEngine
from tests.api.conftest import MakeKey, bearer, new_integration

EPOCH = datetime(2026, 1, 1, tzinfo=UTC)


def order(number: int, version: int, *, deleted: bool = False) -> UnifiedRecord:
    fields = {} if deleted else {"name": f"#{number}", "total_price": f"{version}.00"}
    return UnifiedRecord(
        RecordKind.ORDER, f"o{number}", fields, {"version": version}, deleted=deleted,
        remote_updated_at=EPOCH + timedelta(seconds=version),
    )  # fmt: skip


class ChurnConnector(Connector):
    """Orders that appear, change and disappear: each run reads a few pages of random
    inserts, updates of earlier orders and deletions."""

    platform = "shopify"
    label = "Churn"
    streams = (StreamSpec("orders", "Orders", "churning orders", (RecordKind.ORDER,)),)

    def __init__(self, seed: int) -> None:
        self.random = random.Random(seed)
        self.version = 0

    async def read_stream(
        self,
        integration: IntegrationRef,
        credentials: CredentialStore,
        stream: str,
        cursor: dict[str, Any] | None,
        *,
        full_refresh: bool = False,
    ) -> AsyncIterator[Batch]:
        for _ in range(4):
            records = []
            for _ in range(25):
                self.version += 1
                number = self.random.randrange(120)
                deleted = self.random.random() < 0.2
                records.append(order(number, self.version, deleted=deleted))
            await asyncio.sleep(0)
            yield Batch(records=records, cursor={"version": self.version})


def writer(
    integration_id: uuid.UUID, seed: int, batches: int, stop: threading.Event, errors: list[str]
) -> None:
    """Another process's sync (a stream of its own: its own orders) stores batches and holds
    each transaction open a random while, so transactions commit in any order."""
    chance = random.Random(seed)
    try:
        for batch in range(batches):
            if stop.is_set():
                return
            version = 10_000 * seed + batch
            records = [
                order(1000 * seed + chance.randrange(40), version, deleted=chance.random() < 0.2)
                for _ in range(20)
            ]
            with session_scope() as session:
                upsert_records(session=session, integration_id=integration_id, records=records)
                time.sleep(chance.random() * 0.01)
    except Exception as error:  # the test fails on it, below
        errors.append(repr(error))


async def follow(
    hub: httpx.AsyncClient,
    key: str,
    integration_id: uuid.UUID,
    copy: dict[str, Any],
    cursor: str | None,
    limit: int = 37,
) -> tuple[str | None, list[int]]:
    """Read every page there is now into ``copy``; returns the cursor and the numbers seen."""
    seen: list[int] = []
    while True:
        params: dict[str, Any] = {"limit": limit}
        if cursor:
            params["since"] = cursor
        response = await hub.get(
            f"/api/v1/integrations/{integration_id}/records/orders", params=params,
            headers=bearer(key),
        )  # fmt: skip
        assert response.status_code == 200, response.text
        page = response.json()
        for record in page["records"]:
            seen.append(record["cursor"])
            if record["deleted"]:
                copy.pop(record["id"], None)
            else:
                updated = datetime.fromisoformat(record["updated_at"])
                copy[record["id"]] = (record["fields"]["total_price"], updated)
        cursor = page["next_cursor"]
        if not page["has_more"]:
            return cursor, seen


def hub_copy(integration_id: uuid.UUID) -> dict[str, Any]:
    with session_scope() as session:
        rows = session.execute(
            sa.select(Order.external_id, Order.total_price, Order.remote_updated_at).where(
                Order.integration_id == integration_id,
                Order.deleted_at.is_(None),  # type: ignore[union-attr]
            )
        ).all()
    return {eid: (price, updated) for eid, price, updated in rows}


async def test_a_consumer_polling_during_syncs_ends_equal_to_the_hub(
    any_db: str, hub: httpx.AsyncClient, make_key: MakeKey
) -> None:
    integration_id = new_integration()
    key = make_key(scopes=["records:read"])
    connector = ChurnConnector(seed=7)
    engine = SyncEngine(max_concurrency=2, connector_factory=lambda _: connector)
    # Other processes' syncs of the same integration (PostgreSQL writes them in parallel).
    stop, errors = threading.Event(), []
    writers = [
        threading.Thread(target=writer, args=(integration_id, seed, 15, stop, errors))
        for seed in (1, 2, 3)
    ]
    for thread in writers:
        thread.start()
    copy: dict[str, Any] = {}
    cursor: str | None = None
    order_of_cursors: list[str] = []
    try:
        for _ in range(6):
            run_ids = await engine.request_sync(integration_id=integration_id, stream="orders")
            done = asyncio.create_task(engine.wait(run_ids))
            while not done.done():
                cursor, seen = await follow(hub, key, integration_id, copy, cursor)
                order_of_cursors += seen
                await asyncio.sleep(0.005)
            await done
        for thread in writers:
            await asyncio.to_thread(thread.join)
    finally:
        stop.set()
    cursor, seen = await follow(hub, key, integration_id, copy, cursor)
    order_of_cursors += seen
    assert errors == []
    expected = hub_copy(integration_id)
    assert len(expected) > 100 and copy == expected
    # Every record appears once per change, never twice for one change, in feed order.
    from dashboard.services.change_feed import decode_cursor

    numbers = [decode_cursor(c).seq for c in order_of_cursors]
    assert numbers == sorted(numbers) and len(numbers) == len(set(numbers))
    # A new read from the stored cursor finds nothing more; from the start, the hub's table.
    _, again = await follow(hub, key, integration_id, {}, cursor)
    assert again == []
    fresh: dict[str, Any] = {}
    await follow(hub, key, integration_id, fresh, None, limit=10_000)
    assert fresh == expected


async def test_tombstones_children_and_filters(
    hub_db: object, hub: httpx.AsyncClient, make_key: MakeKey
) -> None:
    """Deleting an order retires its lines: both appear as tombstones; the external id and
    updated_since filters narrow a page without moving anything out of order."""
    integration_id = new_integration()
    key = make_key(scopes=["records:read"])
    line = UnifiedRecord(
        RecordKind.ORDER_LINE, "l1", {"order_external_id": "o1", "quantity": 2}, {"q": 2}
    )
    with session_scope() as session:
        upsert_records(
            session=session, integration_id=integration_id,
            records=[order(1, 1), order(2, 2), order(3, 3), line],
        )  # fmt: skip
    url = f"/api/v1/integrations/{integration_id}"
    first = (await hub.get(f"{url}/records/order_lines", headers=bearer(key))).json()
    assert [r["id"] for r in first["records"]] == ["l1"] and not first["records"][0]["deleted"]
    assert first["records"][0]["raw"] is None
    with session_scope() as session:
        upsert_records(
            session=session, integration_id=integration_id, records=[order(1, 4, deleted=True)]
        )
    lines = (
        await hub.get(
            f"{url}/records/order_lines", params={"since": first["next_cursor"]},
            headers=bearer(key),
        )
    ).json()  # fmt: skip
    assert [(r["id"], r["deleted"]) for r in lines["records"]] == [("l1", True)]
    orders = (
        await hub.get(f"{url}/records/orders", params={"include_raw": "true"}, headers=bearer(key))
    ).json()
    assert [(r["id"], r["deleted"]) for r in orders["records"]] == [
        ("o2", False), ("o3", False), ("o1", True)
    ]  # fmt: skip
    assert orders["records"][0]["raw"] == {"version": 2}
    only = (
        await hub.get(
            f"{url}/records/orders", params=[("external_id", "o3"), ("external_id", "o1")],
            headers=bearer(key),
        )
    ).json()  # fmt: skip
    assert [r["id"] for r in only["records"]] == ["o3", "o1"]
    recent = (
        await hub.get(
            f"{url}/records/orders",
            params={"updated_since": (EPOCH + timedelta(seconds=3)).isoformat()},
            headers=bearer(key),
        )
    ).json()
    assert {r["id"] for r in recent["records"]} == {"o3", "o1"}  # o1: deleted since
    with session_scope() as session:
        lines_left = session.execute(
            sa.select(sa.func.count()).select_from(OrderLine).where(OrderLine.change_seq.is_(None))  # type: ignore[union-attr]
        ).scalar_one()
    assert lines_left == 0  # nothing committed waits for a number


async def test_a_cursor_the_hub_did_not_hand_out_is_refused(
    hub_db: object, hub: httpx.AsyncClient, make_key: MakeKey
) -> None:
    integration_id = new_integration()
    key = make_key(scopes=["records:read"])
    response = await hub.get(
        f"/api/v1/integrations/{integration_id}/records/orders", params={"since": "bm9wZQ"},
        headers=bearer(key),
    )  # fmt: skip
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "invalid_cursor"
    assert response.json()["error"]["request_id"] == response.headers["x-request-id"]
