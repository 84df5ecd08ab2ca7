"""Storing verified webhook deliveries: a group commit.

The webhook route answers Shopify only once the delivery's row is committed, so a crash loses
no acknowledged delivery. Deliveries that arrive together share one transaction: one
``INSERT ... ON CONFLICT (webhook_id) DO NOTHING`` for the whole group (a redelivery, or the
same webhook id twice in a group, is stored once), and every request of the group awaits that
commit. One group commits at a time per process; the deliveries arriving meanwhile form the
next group. A lone delivery therefore waits for nothing, and a burst pays one commit per group
instead of one per delivery. The database work runs on a database thread of its own
(``in_own_session``), never on the event loop, and never queues behind the background work
of the shared database threads (applying earlier webhooks, syncs).
"""

from __future__ import annotations

import asyncio
import logging
import uuid
import weakref
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import partial
from typing import Any, Protocol

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import ARRAY, JSON
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlmodel import Session

from dashboard.db import dialect_insert, in_own_session, json_text
from dashboard.models import WebhookEvent, WebhookStatus
from dashboard.services.integrations import integration_id_for_shop, shop_integration_query

log = logging.getLogger("hub.shopify.webhooks")
EVENTS: sa.Table = WebhookEvent.__table__  # type: ignore[attr-defined]
MAX_GROUP = 200  # deliveries per transaction: a few thousand bound parameters at most


@dataclass(frozen=True)
class Delivery:
    """A verified delivery, as it is stored."""

    platform: str
    webhook_id: str
    topic: str
    shop: str
    payload: dict[str, Any]


class Store(Protocol):
    def __call__(self, session: Session, deliveries: list[Delivery]) -> list[uuid.UUID | None]: ...


def store_deliveries(session: Session, deliveries: list[Delivery]) -> list[uuid.UUID | None]:
    """Insert the deliveries in one statement; per delivery its new event id, or None when
    its webhook id was stored already (earlier, or earlier in the same group)."""
    dialect = session.get_bind().dialect.name
    integrations: dict[str, uuid.UUID | None] = {}
    if dialect != "postgresql":  # PostgreSQL's insert looks them up itself
        for shop in {d.shop for d in deliveries if d.shop}:
            integrations[shop] = integration_id_for_shop(session=session, shop_domain=shop)
    now = datetime.now(UTC)
    rows: list[dict[str, Any]] = []
    ids: list[uuid.UUID | None] = []
    in_group: set[str] = set()
    for delivery in deliveries:
        webhook_id = delivery.webhook_id[:128]
        if webhook_id in in_group:
            ids.append(None)
            continue
        in_group.add(webhook_id)
        event_id = uuid.uuid4()
        ids.append(event_id)
        rows.append(
            {
                "id": event_id,
                "platform": delivery.platform,
                "webhook_id": webhook_id,
                "topic": delivery.topic[:64],
                "shop": delivery.shop[:255] or None,
                "integration_id": integrations.get(delivery.shop),
                "payload": delivery.payload,
                "received_at": now,
                "status": WebhookStatus.RECEIVED.value,
                "attempts": 0,
            }
        )
    if dialect == "postgresql":
        stored = set(session.execute(_UNNEST_INSERT, _columns(rows, now)).scalars())
        return [event_id if event_id in stored else None for event_id in ids]
    insert = dialect_insert(dialect)(EVENTS)
    statement = insert.on_conflict_do_nothing(index_elements=["webhook_id"]).returning(EVENTS.c.id)
    # executemany with RETURNING: SQLAlchemy sends it as multi-row INSERTs ("insertmanyvalues"),
    # compiled once and cached, whatever the group's size.
    stored = set(session.execute(statement, rows).scalars())
    return [event_id if event_id in stored else None for event_id in ids]


# On PostgreSQL the group is one array per column: the statement's text is the same whatever
# the group's size, so psycopg prepares it once and the server neither parses nor plans it
# again (a multi-row VALUES is a new statement for every group size). The integration of each
# delivery's shop is looked up in the statement too: one round trip per group, not two.
def _unnest_insert() -> sa.Insert:
    def array(name: str, item: sa.types.TypeEngine[Any]) -> sa.BindParameter[Any]:
        return sa.bindparam(name, type_=ARRAY(item))

    # The payloads go as text (``json_text``: orjson), cast by the server.
    payloads = sa.cast(array("payloads", sa.Text()), ARRAY(JSON()))
    delivery = (
        sa.func.unnest(
            array("ids", sa.Uuid()), array("platforms", sa.Text()),
            array("webhook_ids", sa.Text()), array("topics", sa.Text()),
            array("shops", sa.Text()), payloads,
        )
        .table_valued("id", "platform", "webhook_id", "topic", "shop", "payload")
        .render_derived(name="delivery")
    )  # fmt: skip
    integration = shop_integration_query(sa.func.lower(delivery.c.shop)).scalar_subquery()
    rows = sa.select(
        delivery.c.id, delivery.c.platform, delivery.c.webhook_id, delivery.c.topic,
        delivery.c.shop, integration, delivery.c.payload,
        sa.bindparam("received_at", type_=EVENTS.c.received_at.type),
        sa.bindparam("status", type_=sa.Text()), sa.literal(0),
    )  # fmt: skip
    columns = ["id", "platform", "webhook_id", "topic", "shop", "integration_id", "payload",
               "received_at", "status", "attempts"]  # fmt: skip
    return (
        pg_insert(EVENTS)
        .from_select(columns, rows)
        .on_conflict_do_nothing(index_elements=["webhook_id"])
        .returning(EVENTS.c.id)
    )


_UNNEST_INSERT = _unnest_insert()


def _columns(rows: list[dict[str, Any]], now: datetime) -> dict[str, Any]:
    return {
        "ids": [row["id"] for row in rows],
        "platforms": [row["platform"] for row in rows],
        "webhook_ids": [row["webhook_id"] for row in rows],
        "topics": [row["topic"] for row in rows],
        "shops": [row["shop"] for row in rows],
        "payloads": [json_text(row["payload"]) for row in rows],
        "received_at": now,
        "status": WebhookStatus.RECEIVED.value,
    }


class GroupCommit:
    """Deliveries waiting to be stored, and the one task committing them group by group."""

    def __init__(self, store: Store = store_deliveries, *, max_group: int = MAX_GROUP) -> None:
        self.store = store
        self.max_group = max_group
        self.pending: list[tuple[Delivery, asyncio.Future[uuid.UUID | None]]] = []
        self.committing: asyncio.Task[None] | None = None
        self.groups = 0
        self.stored = 0
        self.last_arrival = -float("inf")  # the loop's clock when the latest delivery came

    async def add(self, delivery: Delivery) -> uuid.UUID | None:
        """The delivery's event id once its group is committed; None for a webhook id stored
        already. Raises what storing raised (the route answers 500: Shopify retries)."""
        loop = asyncio.get_running_loop()
        self.last_arrival = loop.time()
        committed: asyncio.Future[uuid.UUID | None] = loop.create_future()
        self.pending.append((delivery, committed))
        if self.committing is None:
            self.committing = loop.create_task(self._commit(), name="webhook-group-commit")
        return await committed

    async def _commit(self) -> None:
        try:
            while self.pending:
                group = self.pending[: self.max_group]
                del self.pending[: self.max_group]
                deliveries = [delivery for delivery, _ in group]
                try:
                    ids = await in_own_session(
                        "webhook-intake", partial(self.store, deliveries=deliveries)
                    )
                except Exception as error:  # the database refused: none of the group is stored
                    log.warning("storing %d webhook deliveries failed: %s", len(group), error)
                    for _, committed in group:
                        if not committed.done():
                            committed.set_exception(error)
                    continue
                self.groups += 1
                self.stored += sum(1 for event_id in ids if event_id is not None)
                for (_, committed), event_id in zip(group, ids, strict=True):
                    if not committed.done():  # its request may have been cancelled meanwhile
                        committed.set_result(event_id)
        finally:
            self.committing = None


_groups: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, GroupCommit] = (
    weakref.WeakKeyDictionary()
)


def group_commit() -> GroupCommit:
    """The running event loop's group commit (one per process; tests run several loops)."""
    loop = asyncio.get_running_loop()
    found = _groups.get(loop)
    if found is None:
        found = _groups[loop] = GroupCommit()
    return found


async def quiet_for(seconds: float) -> None:
    """Return once no delivery has arrived in this process for ``seconds``: applying gives
    the answers Shopify waits for the CPU first (``webhook_processing``)."""
    intake = group_commit()
    loop = asyncio.get_running_loop()
    while True:  # a sleep to the deadline, not an Event: a delivery moves the deadline
        wait = intake.last_arrival + seconds - loop.time()
        if wait <= 0:
            return
        await asyncio.sleep(wait)
