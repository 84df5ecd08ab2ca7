"""Backfills through Shopify bulk operations: start, poll, stream the JSONL, join children.

A stream without a checkpoint whose shop holds more records than the bulk threshold is read
with one ``bulkOperationRunQuery`` instead of pages (Shopify refuses to page deeper than
25,000 objects). The result file is read line by line (constant memory). Nested nodes are
lines of their own with ``__parentId``; the query asks for ``groupObjects`` so they follow
their parent, and a small window of parents absorbs any reordering.

Checkpoints: ``{"bulk": {"id", "created_at", "roots", "total"}}`` while an operation runs
or is read (``roots``: top-level objects stored so far), so a restart resumes polling the
same operation or skips what it stored already. The last batch hands over to the windowed
checkpoint of ``streams.read_window``, starting a little before the operation began.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections import OrderedDict
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import httpx

from connectors.base import Batch, RecordError, UnifiedRecord
from connectors.errors import TransientError
from connectors.http import build_client, raise_for_transient
from connectors.shopify import queries
from connectors.shopify.client import ShopifyClient
from connectors.shopify.streams import (
    DELETION_KEYS,
    OVERLAP,
    STREAM_QUERIES,
    children_complete,
    format_time,
    parse_time,
)

log = logging.getLogger("connectors.shopify.bulk")

FINISHED = ("COMPLETED", "FAILED", "CANCELED", "EXPIRED")


class BulkUnavailable(Exception):
    """The bulk operation gave no usable result (refused, failed, canceled, expired): read
    the stream page by page instead."""


@dataclass(frozen=True)
class BulkPolicy:
    poll_seconds: float = 1.0  # first wait between status polls; grows by ``poll_factor``
    poll_max_seconds: float = 30.0
    poll_factor: float = 1.5
    batch_roots: int = 250  # top-level objects per Batch (one transaction in the hub)
    join_window: int = 16  # parents kept open for children that arrive late


class OrphanChild(ValueError):
    """A nested line whose parent is not among the open parents."""


class Joiner:
    """Joins ``__parentId`` lines to their parent, emitting complete parents in file order.

    A parent is complete once ``window`` newer parents have arrived (or at the end of the
    file): with ``groupObjects`` Shopify writes children directly under their parent, so it
    then holds every child, and a later one is refused as an orphan. Children are gathered
    under the connection field their GraphQL type belongs to, as ``{"nodes": [...]}``: the
    shape the paginated queries return, so one normaliser serves both paths. Memory holds at
    most ``window`` parents with their children.
    """

    def __init__(self, children: dict[str, str], window: int) -> None:
        self.children = children
        self.window = max(1, window)
        self.open: OrderedDict[str, dict[str, Any]] = OrderedDict()

    def feed(self, line: dict[str, Any]) -> list[dict[str, Any]]:
        parent_id = line.pop("__parentId", None)
        if parent_id is None:
            node_id = line.get("id")
            if not isinstance(node_id, str):
                raise ValueError("a top-level line without an id")
            for key in self.children.values():
                line[key] = {"nodes": []}
            self.open[node_id] = line
            ready = []
            while len(self.open) > self.window:
                ready.append(self.open.popitem(last=False)[1])
            return ready
        parent = self.open.get(parent_id)
        if parent is None:
            raise OrphanChild(f"its parent {parent_id} is not open (out of order?)")
        parts = str(line.get("id", "")).split("/")  # gid://shopify/{Type}/{id}
        kind = parts[3] if len(parts) > 3 else ""
        connection = self.children.get(kind)
        if connection is None:
            raise ValueError(f"a nested line of unexpected type {kind!r}")
        parent[connection]["nodes"].append(line)
        return []

    def flush(self) -> list[dict[str, Any]]:
        ready = list(self.open.values())
        self.open.clear()
        return ready


async def start(client: ShopifyClient, document: str) -> dict[str, Any]:
    data = await client.query(
        "BulkOperationRun", queries.BULK_RUN, {"query": document}, expected_cost=10
    )
    payload = data.get("bulkOperationRunQuery") or {}
    errors = payload.get("userErrors") or []
    operation = payload.get("bulkOperation")
    if errors or not operation:
        message = "; ".join(str(e.get("message")) for e in errors) or "no operation returned"
        raise BulkUnavailable(f"Shopify refused the bulk operation: {message}")
    return dict(operation)


def _same_document(left: str | None, right: str) -> bool:
    return " ".join((left or "").split()) == " ".join(right.split())


async def cancel_leftovers(client: ShopifyClient, document: str) -> int:
    """Cancel unfinished exports of ``document`` (this stream's): about to start one, the hub
    follows no other, so one still going was left by a run whose checkpoint a full resync
    cleared. Left alone it would finish for nothing, holding one of the shop's five bulk
    query slots until then. Returns how many were cancelled; a refusal is logged, not fatal."""
    data = await client.query("BulkOperationsActive", queries.BULK_ACTIVE, {}, expected_cost=10)
    active = [
        operation
        for listed in ("created", "running")
        for operation in ((data.get(listed) or {}).get("nodes") or [])
    ]
    cancelled = 0
    for operation in active:
        if operation.get("status") not in ("CREATED", "RUNNING") or not _same_document(
            operation.get("query"), document
        ):
            continue
        answer = await client.query(
            "BulkOperationCancel", queries.BULK_CANCEL, {"id": operation["id"]}, expected_cost=10
        )
        errors = (answer.get("bulkOperationCancel") or {}).get("userErrors") or []
        if errors:  # it finished meanwhile, say
            log.info("%s: bulk operation %s not cancelled: %s", client.shop, operation["id"],
                     "; ".join(str(e.get("message")) for e in errors))  # fmt: skip
            continue
        log.info("%s: cancelled bulk operation %s, left by an earlier run", client.shop,
                 operation["id"])  # fmt: skip
        cancelled += 1
    return cancelled


async def poll(
    client: ShopifyClient,
    operation_id: str,
    policy: BulkPolicy,
    sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep,
) -> AsyncIterator[dict[str, Any]]:
    """The operation's state at every poll, waiting longer each time, until it finishes."""
    delay = policy.poll_seconds
    while True:
        data = await client.query(
            "BulkOperation", queries.BULK_OPERATION, {"id": operation_id}, expected_cost=1
        )
        operation = data.get("bulkOperation")
        if not operation:
            raise BulkUnavailable(f"bulk operation {operation_id} no longer exists")
        yield operation
        if operation.get("status") in FINISHED:
            return
        await sleep(delay)
        delay = min(policy.poll_max_seconds, delay * policy.poll_factor)


async def lines(http: httpx.AsyncClient, url: str) -> AsyncIterator[str]:
    """The result file's lines, streamed (the url is signed: no token is sent)."""
    try:
        async with http.stream("GET", url) as response:
            raise_for_transient(response)
            if response.status_code >= 400:  # expired or revoked signature, removed file
                raise BulkUnavailable(f"the bulk result answered {response.status_code}")
            async for line in response.aiter_lines():
                if line.strip():
                    yield line
    except httpx.TimeoutException as error:
        raise TransientError("bulk result download timed out") from error
    except httpx.TransportError as error:
        raise TransientError(f"bulk result download failed: {error!r}") from error


async def _no_lines() -> AsyncIterator[str]:
    return
    yield  # an empty async generator


async def backfill(
    client: ShopifyClient,
    stream: str,
    cursor: dict[str, Any],
    *,
    total: int | None,
    policy: BulkPolicy,
    transport: httpx.AsyncBaseTransport | None = None,
) -> AsyncIterator[Batch]:
    """Read ``stream`` whole through a bulk operation (a new one, or the checkpoint's).

    Raises BulkUnavailable when the operation cannot give a result, before or after some
    batches: the caller then reads page by page (upserts make the overlap harmless).
    """
    spec = STREAM_QUERIES[stream]
    carry = {k: cursor[k] for k in DELETION_KEYS if k in cursor}
    state = dict(cursor.get("bulk") or {})
    if not state.get("id"):
        await cancel_leftovers(client, spec.bulk_document)
        begun = await start(client, spec.bulk_document)
        state = {
            "id": begun["id"],
            "created_at": begun.get("createdAt"),
            "roots": 0,
            "total": total,
        }
        log.info("%s on %s: bulk operation %s started", stream, client.shop, state["id"])
        # Stored at once: a restart polls this operation instead of starting another.
        yield Batch(records=[], cursor={**carry, "bulk": state}, pages=0)
    total = state.get("total")
    operation: dict[str, Any] = {}
    async for operation in poll(client, state["id"], policy):
        if operation.get("status") not in FINISHED:
            # Nothing to store; the empty batch keeps the run's heartbeat and lets a
            # cancel request through while Shopify works.
            yield Batch(records=[], cursor={**carry, "bulk": state}, pages=0)
    status = operation.get("status")
    if status != "COMPLETED":
        code = f" ({operation['errorCode']})" if operation.get("errorCode") else ""
        raise BulkUnavailable(f"bulk operation {state['id']} ended {status}{code}")

    skip = int(state.get("roots") or 0)
    roots = 0
    high: str | None = cursor.get("high_water") if skip else None
    records: list[UnifiedRecord] = []
    errors: list[RecordError] = []
    complete: list[str] = []  # parents of this batch, each with every child
    batch_roots = 0
    joiner = Joiner(spec.children, policy.join_window)

    def take(nodes: list[dict[str, Any]]) -> None:
        nonlocal roots, high, batch_roots
        for node in nodes:
            roots += 1
            if roots <= skip:
                continue  # stored by an earlier attempt
            batch_roots += 1
            try:
                records.extend(spec.normalize(node))
            except (KeyError, TypeError, ValueError) as error:
                errors.append(
                    RecordError(node.get("id"), f"cannot read {spec.root} node: {error!r}", node)
                )
                continue
            complete.append(node["id"])
            updated = node.get("updatedAt")
            if updated and (high is None or updated > high):
                high = updated

    def progress() -> Batch:
        nonlocal records, errors, complete, batch_roots
        checkpoint = {**carry, "bulk": {**state, "roots": roots}, "high_water": high}
        batch = Batch(records=records, errors=errors, cursor=checkpoint, total_hint=total,
                      done=roots, children_complete=children_complete(spec, complete))  # fmt: skip
        records, errors, complete, batch_roots = [], [], [], 0
        return batch

    async with build_client(transport=transport) as http:
        number = 0
        # A completed operation that found nothing has no file (url null).
        results = lines(http, str(operation["url"])) if operation.get("url") else _no_lines()
        async for text in results:
            number += 1
            try:
                line = json.loads(text)
                if not isinstance(line, dict):
                    raise ValueError("not a JSON object")
                take(joiner.feed(line))
            except ValueError as error:
                errors.append(RecordError(None, f"bulk result line {number}: {error}", text[:500]))
            if batch_roots >= policy.batch_roots:
                yield progress()
        take(joiner.flush())

    # Hand over to incremental windows: from a little before the export began, or before the
    # newest change it saw if that is older (records changed while it ran are read again).
    created = parse_time(state.get("created_at"))
    newest = parse_time(high) if high else None
    start_from = min(t for t in (created, newest) if t is not None) if created or newest else None
    final = progress()
    final.cursor = {
        **carry,
        "since": format_time(start_from - OVERLAP) if start_from else None,
        "after": None,
        "high_water": high,
    }
    log.info("%s on %s: bulk operation %s read, %s objects", stream, client.shop, state["id"],
             roots)  # fmt: skip
    yield final
