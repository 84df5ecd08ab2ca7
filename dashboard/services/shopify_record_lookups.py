"""Re-reading the products and orders that webhooks name: many records of a shop in one
look-up and one upsert.

Webhook events ask for one record at a time, through ``webhook_processing.RecordRefreshes``
(one refresh of a record at a time, started after the events it serves were received). The
records of one integration and kind asked for while a look-up of theirs is under way wait for
it to end and then go together: one ``nodes(ids:)`` query (``ShopifyConnector.fetch_nodes``)
and one transaction that upserts what was found (``records.upsert_records``, the sync's
upsert) and marks the gone ones deleted. A record's refresh thus still reads the platform
after it was asked for, and is never in two look-ups at once, so its updates are stored in
the order they were read.
"""

from __future__ import annotations

import asyncio
import uuid
import weakref
from dataclasses import dataclass, field

from sqlmodel import Session

from connectors.base import ChildrenComplete, UnifiedRecord
from connectors.errors import AuthError, MalformedResponse
from connectors.shopify.streams import NESTED_OF_KIND, normalize_order, normalize_product
from dashboard.db import in_session
from dashboard.services.app_credentials import shopify_connector_for
from dashboard.services.credentials import DbCredentialStore
from dashboard.services.records import mark_deleted, upsert_records

Key = tuple[uuid.UUID, str]  # integration, record kind


async def refresh_records(
    integration_id: uuid.UUID, shop: str, kind: str, gids: list[str]
) -> dict[str, bool | Exception]:
    """Store the current products or orders ``gids`` (deleted when Shopify no longer has
    them); per id True, False when the shop's access is refused (the next sync marks it
    needs_reauth), or the error of one whose variants or line items could not be read."""
    connector = await shopify_connector_for(integration_id)
    try:
        fetched = await connector.fetch_nodes(shop, DbCredentialStore(integration_id), kind, gids)
    except AuthError:
        return dict.fromkeys(gids, False)
    gone = [gid for gid in gids if gid not in fetched.nodes and gid not in fetched.incomplete]
    records: list[UnifiedRecord] = []
    for node in fetched.nodes.values():
        records += normalize_product(node) if kind == "product" else normalize_order(node)
    # fetch_nodes read every variant or line item: the stored ones they lack are gone.
    nested = NESTED_OF_KIND[kind]
    parents = tuple(str(node["id"]) for node in fetched.nodes.values())
    complete = ChildrenComplete(nested.kind, parents) if nested and parents else None

    def store(session: Session) -> None:
        if gone:
            mark_deleted(session=session, integration_id=integration_id, kind=kind,
                         external_ids=gone)  # fmt: skip
        if records:
            upsert_records(session=session, integration_id=integration_id, records=records,
                           children_complete=complete)  # fmt: skip

    if gone or records:
        await in_session(store)
    outcome: dict[str, bool | Exception] = dict.fromkeys([*fetched.nodes, *gone], True)
    for gid, reason in fetched.incomplete.items():
        outcome[gid] = MalformedResponse(reason)  # a TransientError: the event is retried
    return outcome


@dataclass
class _Asked:
    shop: str
    futures: dict[str, asyncio.Future[bool]] = field(default_factory=dict)


@dataclass
class RecordLookups:
    """The records asked for, per integration and kind, and the look-up under way for each."""

    asked: dict[Key, _Asked] = field(default_factory=dict)
    running: dict[Key, asyncio.Task[None]] = field(default_factory=dict)
    lookups: int = 0
    records: int = 0

    async def refresh(self, integration_id: uuid.UUID, shop: str, kind: str, gid: str) -> bool:
        """Refresh one record, in the next look-up of its integration and kind."""
        key = (integration_id, kind)
        asked = self.asked.setdefault(key, _Asked(shop))
        future = asked.futures.get(gid)
        if future is None:  # asked twice before the look-up: both after being asked for
            future = asked.futures[gid] = asyncio.get_running_loop().create_future()
        if key not in self.running:
            self.running[key] = asyncio.ensure_future(self._look_up(key))
        # Shielded: one caller cancelled (its process stops) cancels nobody else's refresh.
        return await asyncio.shield(future)

    async def _look_up(self, key: Key) -> None:
        try:
            while (asked := self.asked.pop(key, None)) is not None:
                self.lookups += 1
                self.records += len(asked.futures)
                try:
                    integration_id, kind = key
                    gids = list(asked.futures)
                    outcome = await refresh_records(integration_id, asked.shop, kind, gids)
                except asyncio.CancelledError:
                    for future in asked.futures.values():
                        future.cancel()
                    raise
                except Exception as error:  # every record of the look-up gets the same error
                    outcome = dict.fromkeys(asked.futures, error)
                for gid, future in asked.futures.items():
                    result = outcome.get(gid, True)
                    if future.done():
                        continue
                    if isinstance(result, Exception):
                        future.set_exception(result)
                        future.exception()  # retrieved: its caller may be gone
                    else:
                        future.set_result(result)
        finally:
            self.running.pop(key, None)

    async def stop(self) -> None:
        """Cancel the look-ups under way (the process stops; their events are handed back)."""
        tasks = list(self.running.values())
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.wait(tasks, timeout=5)
        for asked in self.asked.values():
            for future in asked.futures.values():
                future.cancel()
        self.asked.clear()


_lookups: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, RecordLookups] = (
    weakref.WeakKeyDictionary()
)


def record_lookups() -> RecordLookups:
    """The running event loop's record look-ups (one per process; tests run several loops)."""
    loop = asyncio.get_running_loop()
    found = _lookups.get(loop)
    if found is None:
        found = _lookups[loop] = RecordLookups()
    return found


async def stop_record_lookups() -> None:
    """Stop the running loop's look-ups."""
    found = _lookups.pop(asyncio.get_running_loop(), None)
    if found is not None:
        await found.stop()
