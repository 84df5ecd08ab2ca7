"""Bulk query operations of the sandbox Admin API, as Shopify documents them for 2026-10.

``bulkOperationRunQuery`` validates the query and answers at once with a CREATED operation.
A background task then moves it to RUNNING and COMPLETED on the sandbox clock, writes the
JSONL result page by page from a snapshot of the shop taken at creation (constant memory,
whatever the shop's size), and sends ``BULK_OPERATIONS_FINISH``. Clients poll with
``bulkOperation(id:)`` or ``bulkOperations``; ``url`` serves the file without a token, the
way Shopify's signed storage URLs do.

Each object is one line. Nodes of a nested connection are lines of their own carrying
``__parentId``; with ``groupObjects: true`` they follow their parent directly, without it
they come after the page of parents they belong to (Shopify promises only "after").
"""

from __future__ import annotations

import asyncio
import contextvars
import itertools
import json
import logging
import secrets
import shutil
import tempfile
import weakref
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from graphql import (
    GraphQLSchema,
)
from graphql.execution import ExecutionResult, execute

from connectors.sandbox.shopify import search
from connectors.sandbox.shopify.bulk_query import (
    ID_KEY,
    PAGE_INFO_KEY,
    BulkQueryError,
    Prepared,
    Shape,
    prepare,
)
from connectors.sandbox.shopify.data import ShopData, iso

log = logging.getLogger("sandbox.shopify.bulk")

CONCURRENT_QUERIES = 5  # API 2026-01 and later: five bulk query operations per shop at a time
CREATED_SECONDS = 1.0  # platform seconds an operation waits in CREATED before it runs
OBJECTS_PER_SECOND = 2_000.0  # export throughput, in platform time
RESULT_LIFETIME = timedelta(days=7)  # the url expires 7 days after the operation finished
ROOT_PAGE = 100  # top-level objects per execution while writing the file
ERROR_CODES = ("ACCESS_DENIED", "INTERNAL_SERVER_ERROR", "TIMEOUT")
ACTIVE = ("CREATED", "RUNNING", "CANCELING")

# Set while a bulk export runs: nested connections may then return all their nodes.
unbounded_first: contextvars.ContextVar[bool] = contextvars.ContextVar(
    "bulk_unbounded_first", default=False
)


# --- operations --------------------------------------------------------------------------------


@dataclass
class BulkOperation:
    number: int
    shop: str
    query: str
    prepared: Prepared
    snapshot: ShopData | None  # released once the file is written
    group_objects: bool
    created_at: datetime
    base_url: str  # where this sandbox's Shopify is served, for the result url
    fail_with: str | None = None  # an injected failure (error code)
    key: str = field(default_factory=lambda: secrets.token_urlsafe(24))
    status: str = "CREATED"
    error_code: str | None = None
    completed_at: datetime | None = None
    finished_at: datetime | None = None
    object_count: int = 0
    root_object_count: int = 0
    file_size: int | None = None
    path: Path | None = None
    cancel_requested: bool = False

    @property
    def id(self) -> str:
        return f"gid://shopify/BulkOperation/{self.number}"

    def expired(self, now: datetime) -> bool:
        return self.finished_at is not None and now > self.finished_at + RESULT_LIFETIME

    def node(self, now: datetime) -> dict[str, Any]:
        expired = self.expired(now)
        status = "EXPIRED" if self.status == "COMPLETED" and expired else self.status
        data_url = (
            f"{self.base_url}/_bulk/{self.key}.jsonl?{self.download_query()}"
            if self.path is not None and not expired
            else None
        )
        return {
            "__typename": "BulkOperation",
            "id": self.id,
            "type": "QUERY",
            "status": status,
            "errorCode": self.error_code,
            "createdAt": iso(self.created_at),
            "completedAt": iso(self.completed_at) if self.completed_at else None,
            "objectCount": str(self.object_count),
            "rootObjectCount": str(self.root_object_count),
            "fileSize": str(self.file_size)
            if self.file_size is not None and status == "COMPLETED"
            else None,
            "query": self.query,
            # An export that found nothing has no file, as on Shopify.
            "url": data_url if status == "COMPLETED" and self.object_count else None,
            "partialDataUrl": data_url if self.status == "FAILED" and self.object_count else None,
        }

    @property
    def filename(self) -> str:
        return f"bulk-{self.number}.jsonl"

    def download_query(self) -> str:
        """The query of Shopify's result urls (signed storage urls) that names the download:
        ``response-content-disposition`` (attachment, filename ``bulk-{id}.jsonl``) and
        ``response-content-type``. Clients read the file's name from it (Airbyte's
        source-shopify takes it as the name of its local copy and fails without it)."""
        disposition = f"attachment; filename=\"{self.filename}\"; filename*=UTF-8''{self.filename}"
        return urlencode(
            {"response-content-disposition": disposition,
             "response-content-type": "application/jsonl"}
        )  # fmt: skip

    def finish_payload(self) -> dict[str, Any]:
        """The body of BULK_OPERATIONS_FINISH: lower-case status and error code, no url."""
        return {
            "admin_graphql_api_id": self.id,
            "completed_at": iso(self.finished_at) if self.finished_at else None,
            "created_at": iso(self.created_at),
            "error_code": self.error_code.lower() if self.error_code else None,
            "status": self.status.lower(),
            "type": "query",
        }


@dataclass
class BulkFault:
    error_code: str
    remaining: int


class BulkOperations:
    """Every bulk operation of a sandbox, with their files in one temporary directory."""

    def __init__(self) -> None:
        self.operations: dict[str, BulkOperation] = {}
        self.pending: list[BulkOperation] = []  # created, task not started yet
        self.faults: dict[str, BulkFault] = {}
        self._numbers = itertools.count(4_100_000_001)
        self._directory: Path | None = None

    def directory(self) -> Path:
        if self._directory is None:
            self._directory = Path(tempfile.mkdtemp(prefix="sandbox-shopify-bulk-"))
            weakref.finalize(self, shutil.rmtree, self._directory, True)
        return self._directory

    def next_number(self) -> int:
        return next(self._numbers)

    def of_shop(self, shop: str) -> list[BulkOperation]:
        """The shop's operations, newest first (Shopify's default order)."""
        return sorted(
            (op for op in self.operations.values() if op.shop == shop),
            key=lambda op: op.number,
            reverse=True,
        )

    def by_key(self, key: str) -> BulkOperation | None:
        return next((op for op in self.operations.values() if op.key == key), None)

    def take_fault(self, shop: str) -> str | None:
        fault = self.faults.get(shop)
        if fault is None or fault.remaining == 0:
            return None
        if fault.remaining > 0:
            fault.remaining -= 1
        return fault.error_code

    def remove_expired_files(self, now: datetime) -> None:
        """Results past their 7 days are gone on Shopify too: free the disk."""
        for op in self.operations.values():
            if op.path is not None and op.expired(now):
                op.path.unlink(missing_ok=True)

    def forget_shop(self, shop: str) -> None:
        """A shop posted again starts without operations (their files are removed)."""
        for op in [op for op in self.operations.values() if op.shop == shop]:
            op.cancel_requested = True
            del self.operations[op.id]
            if op.path is not None:
                op.path.unlink(missing_ok=True)


# --- the export ----------------------------------------------------------------------------------


def _items(connection: Any) -> list[dict[str, Any]]:
    if not isinstance(connection, dict):
        return []
    if connection.get("edges") is not None:
        return [e["node"] for e in connection["edges"] if isinstance(e, dict) and e.get("node")]
    return [n for n in connection.get("nodes") or [] if isinstance(n, dict)]


Child = tuple[dict[str, Any], Shape, str | None]


def _split(value: dict[str, Any], shape: Shape, owner: str | None) -> tuple[dict, list[Child]]:
    """An object without its connections and private keys, and the nodes of those connections
    with the id of the object they belong to."""
    own_id = value.get(ID_KEY) or owner
    clean: dict[str, Any] = {}
    children: list[Child] = []
    for key, item in value.items():
        if key.startswith("_") and key != "__typename":  # a selected __typename stays
            continue
        spec = shape.fields.get(key)
        if spec is None or spec.shape is None or item is None:
            clean[key] = item
        elif spec.connection:
            children += [(child, spec.shape, own_id) for child in _items(item)]
        elif isinstance(item, list):
            parts = [
                _split(i, spec.shape, own_id) if isinstance(i, dict) else (i, []) for i in item
            ]
            clean[key] = [p[0] for p in parts]
            children += [c for p in parts for c in p[1]]
        elif isinstance(item, dict):
            clean[key], more = _split(item, spec.shape, own_id)
            children += more
        else:
            clean[key] = item
    return clean, children


def _emit(
    value: dict[str, Any],
    shape: Shape,
    parent: str | None,
    write: Callable[[dict[str, Any]], None],
    deferred: list[Child] | None,
) -> None:
    """Write one object, then its children (right after it, or later when ``deferred``)."""
    line, children = _split(value, shape, None)
    if parent is not None:
        line["__parentId"] = parent
    write(line)
    for child, child_shape, owner in children:
        if deferred is None:
            _emit(child, child_shape, owner, write, None)
        else:
            deferred.append((child, child_shape, owner))


def write_result(op: BulkOperation, path: Path, schema: GraphQLSchema, context: dict) -> None:
    """Export ``op`` into ``path`` one page of top-level objects at a time (runs in a thread).

    An injected INTERNAL_SERVER_ERROR or TIMEOUT stops after the first page (its lines are
    the partial data); ACCESS_DENIED writes nothing.
    """
    token = unbounded_first.set(True)
    pages_allowed = {"ACCESS_DENIED": 0, "INTERNAL_SERVER_ERROR": 1, "TIMEOUT": 1}.get(
        op.fail_with or "", -1
    )
    after: str | None = None
    pages = 0
    snapshot = op.snapshot
    assert snapshot is not None, "an operation's file is written once"
    try:
        with path.open("w", encoding="utf-8") as out:

            def write(line: dict[str, Any]) -> None:
                out.write(json.dumps(line, separators=(",", ":")) + "\n")
                op.object_count += 1

            while not op.cancel_requested and pages != pages_allowed:
                result: ExecutionResult = execute(  # type: ignore[assignment]  # sync resolvers
                    schema,
                    op.prepared.document,
                    variable_values={"bulkFirst": ROOT_PAGE, "bulkAfter": after},
                    context_value={**context, "shop": snapshot},
                )
                if result.errors:
                    raise RuntimeError(f"bulk export failed: {result.errors[0].message}")
                assert result.data is not None
                connection = result.data[op.prepared.key] or {}
                deferred: list[Child] | None = None if op.group_objects else []
                roots = _items(connection)
                for node in roots:
                    _emit(node, op.prepared.node_shape, None, write, deferred)
                while deferred:  # ungrouped: children after their page of parents
                    later: list[Child] = []
                    for child, child_shape, owner in deferred:
                        _emit(child, child_shape, owner, write, later)
                    deferred = later
                op.root_object_count += len(roots)
                pages += 1
                page_info = connection.get(PAGE_INFO_KEY) or {}
                if not page_info.get("hasNextPage"):
                    break
                after = page_info.get("endCursor")
    finally:
        unbounded_first.reset(token)
    op.file_size = path.stat().st_size


async def run(sandbox: Any, op: BulkOperation, schema: GraphQLSchema) -> None:
    """CREATED -> RUNNING -> COMPLETED (or FAILED, CANCELED) on the sandbox clock."""
    from connectors.sandbox.shopify import webhooks_api

    clock = sandbox.state.clock
    await clock.sleep(CREATED_SECONDS)
    if not op.cancel_requested:
        op.status = "RUNNING"
        started = clock.monotonic()
        path = sandbox.bulk.directory() / f"{op.number}.jsonl"
        op.path = path
        try:
            await asyncio.to_thread(write_result, op, path, schema, {"sandbox": sandbox})
        except Exception:  # a sandbox bug must look like Shopify's failure, not hang the op
            log.exception("bulk operation %s failed", op.id)
            op.fail_with = "INTERNAL_SERVER_ERROR"
        op.snapshot = None
        await clock.sleep(op.object_count / OBJECTS_PER_SECOND - (clock.monotonic() - started))
    now = clock.now()
    if op.cancel_requested:
        op.status = "CANCELED"
    elif op.fail_with:
        op.status, op.error_code = "FAILED", op.fail_with
    else:
        op.status, op.completed_at = "COMPLETED", now
    op.finished_at = now
    if op.id not in sandbox.bulk.operations:  # the shop was posted again meanwhile
        return
    await webhooks_api.deliver(
        sandbox=sandbox,
        shop=op.shop,
        topic="BULK_OPERATIONS_FINISH",
        payload=op.finish_payload(),
        transport=sandbox.webhook_transport,
    )


def start_pending(sandbox: Any, schema: GraphQLSchema) -> None:
    """Start the tasks of operations created by the last request (called on the event loop)."""
    sandbox.bulk.remove_expired_files(sandbox.state.clock.now())
    while sandbox.bulk.pending:
        op = sandbox.bulk.pending.pop(0)
        task = asyncio.get_running_loop().create_task(run(sandbox, op, schema))
        sandbox.background.add(task)
        task.add_done_callback(sandbox.background.discard)


# --- resolvers -------------------------------------------------------------------------------


def _user_error(message: str, code: str) -> dict[str, Any]:
    return {"field": ["query"], "message": message, "code": code}


def _run_query(_: Any, info: Any, query: str, groupObjects: bool = False) -> dict[str, Any]:
    from connectors.sandbox.shopify.graphql_api import admin_schema

    sandbox, shop = info.context["sandbox"], info.context["shop"]
    try:
        prepared = prepare(query, admin_schema())
    except BulkQueryError as error:
        return {"bulkOperation": None, "userErrors": [_user_error(str(error), "INVALID")]}
    active = [op for op in sandbox.bulk.of_shop(shop.shop) if op.status in ACTIVE]
    if len(active) >= CONCURRENT_QUERIES:
        return {
            "bulkOperation": None,
            "userErrors": [
                _user_error("Bulk operations limit reached. Please try again later.",
                            "LIMIT_REACHED")
            ],
        }  # fmt: skip
    now = sandbox.state.clock.now()
    op = BulkOperation(
        number=sandbox.bulk.next_number(), shop=shop.shop, query=query, prepared=prepared,
        snapshot=shop.snapshot(), group_objects=bool(groupObjects), created_at=now,
        base_url=info.context["base_url"], fail_with=sandbox.bulk.take_fault(shop.shop),
    )  # fmt: skip
    sandbox.bulk.operations[op.id] = op
    sandbox.bulk.pending.append(op)
    return {"bulkOperation": op.node(now), "userErrors": []}


def _cancel(_: Any, info: Any, id: str) -> dict[str, Any]:
    sandbox, shop = info.context["sandbox"], info.context["shop"]
    op = sandbox.bulk.operations.get(id)
    now = sandbox.state.clock.now()
    if op is None or op.shop != shop.shop:
        return {
            "bulkOperation": None,
            "userErrors": [{"field": ["id"], "message": "Bulk operation does not exist"}],
        }
    if op.status not in ("CREATED", "RUNNING"):
        return {
            "bulkOperation": op.node(now),
            "userErrors": [
                {
                    "field": None,
                    "message": f"A bulk operation cannot be canceled when it is "
                    f"{op.status.lower()}",
                }
            ],
        }
    op.cancel_requested = True
    op.status = "CANCELING"
    return {"bulkOperation": op.node(now), "userErrors": []}


def _operation(_: Any, info: Any, id: str) -> dict[str, Any] | None:
    sandbox, shop = info.context["sandbox"], info.context["shop"]
    op = sandbox.bulk.operations.get(id)
    if op is None or op.shop != shop.shop:
        return None
    return op.node(sandbox.state.clock.now())


def _matches(op: BulkOperation, node: dict[str, Any], query: str | None) -> bool:
    """The bulkOperations search fields: status, operation_type, created_at, id."""
    fields: dict[str, Callable[[str], Any]] = {
        "status": str.upper,
        "operation_type": str.upper,
        "created_at": search.parse_moment,
        "id": lambda value: int(value.rsplit("/", 1)[-1]),
    }
    own = {"status": node["status"], "operation_type": "QUERY", "created_at": op.created_at,
           "id": op.number}  # fmt: skip
    return search.evaluate(search.parse(query), search.field_matcher(fields, own.__getitem__))


def _operations(
    _: Any,
    info: Any,
    first: int | None = None,
    after: str | None = None,
    query: str | None = None,
    sortKey: str = "CREATED_AT",
    reverse: bool = False,
    **__: Any,
) -> dict[str, Any]:
    from connectors.sandbox.shopify.paging import _connection, decode_cursor

    sandbox, shop = info.context["sandbox"], info.context["shop"]
    now = sandbox.state.clock.now()
    ops = sandbox.bulk.of_shop(shop.shop)  # newest first
    if sortKey == "COMPLETED_AT":
        ops.sort(key=lambda op: (op.completed_at is not None, op.completed_at or now), reverse=True)
    if reverse:
        ops.reverse()
    selected = [op for op in ops if _matches(op, op.node(now), query)]
    start = decode_cursor(after)[1] + 1 if after else 0
    return _connection(
        iter(range(start, len(selected))),
        first,
        lambda i: selected[i].node(now),
        lambda i: (selected[i].created_at, i),
    )


def _current(_: Any, info: Any, type: str = "QUERY") -> dict[str, Any] | None:
    sandbox, shop = info.context["sandbox"], info.context["shop"]
    if type != "QUERY":
        return None
    ops = sandbox.bulk.of_shop(shop.shop)
    return ops[0].node(sandbox.state.clock.now()) if ops else None


def attach(schema: GraphQLSchema) -> None:
    assert schema.mutation_type is not None and schema.query_type is not None
    schema.mutation_type.fields["bulkOperationRunQuery"].resolve = _run_query
    schema.mutation_type.fields["bulkOperationCancel"].resolve = _cancel
    schema.query_type.fields["bulkOperation"].resolve = _operation
    schema.query_type.fields["bulkOperations"].resolve = _operations
    schema.query_type.fields["currentBulkOperation"].resolve = _current
