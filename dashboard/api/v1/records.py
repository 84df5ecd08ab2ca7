"""``GET /api/v1/integrations/{id}/records/{kind}``: the change feed of one record kind.

Pages are streamed: the body is written chunk by chunk as rows are read (a few thousand at a
time, each chunk read and serialized in a database thread), so a 10,000-record page costs the
memory of one chunk. A consumer stores ``next_cursor`` after applying a page and passes it as
``since`` next time: dashboard/services/change_feed.py says why nothing is skipped or repeated.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Depends, Query
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, Field, create_model
from sqlalchemy.orm import Session

from dashboard.api.v1.auth import require_integration, scoped
from dashboard.api.v1.errors import ERROR_RESPONSES, ApiError, ErrorBody
from dashboard.api.v1.routing import KeyRoute
from dashboard.db import in_session
from dashboard.models import RECORD_TABLES, Integration
from dashboard.services import change_feed
from dashboard.services.api_keys import ApiClient

# URL name -> record kind (RECORD_TABLES key).
KINDS = {
    "products": "product",
    "variants": "variant",
    "inventory_levels": "inventory_level",
    "orders": "order",
    "order_lines": "order_line",
    "customers": "customer",
}
MAX_PAGE = 10_000
CHUNK = 2_000  # rows read and serialized per database round trip while streaming
MAX_EXTERNAL_IDS = 100

router = APIRouter(route_class=KeyRoute, tags=["records"])


def _pascal(name: str) -> str:
    return "".join(part.capitalize() for part in name.split("_"))


def _record_model(kind: str) -> type[BaseModel]:
    """The documented shape of one record of ``kind``: its unified fields from the table."""
    table_model = RECORD_TABLES[kind]
    fields: dict[str, Any] = {
        name: (table_model.model_fields[name].annotation, ...)
        for name in change_feed.field_names(kind)
    }
    fields_model: type[BaseModel] = create_model(f"{_pascal(kind)}Fields", **fields)
    return create_model(
        f"{_pascal(kind)}Record",
        id=(str, Field(description="The platform's id of the record (external id)")),
        cursor=(str, Field(description="Resume after this record: pass it as since")),
        deleted=(bool, Field(description="A tombstone: the record was deleted")),
        deleted_at=(datetime | None, ...),
        updated_at=(datetime | None, Field(description="Last change on the platform")),
        synced_at=(datetime, Field(description="Last stored by the hub")),
        fields=(fields_model, ...),
        raw=(dict[str, Any] | None, Field(description="The platform's JSON (include_raw)")),
    )


def _page_model(kind: str, record: type[BaseModel]) -> type[BaseModel]:
    return create_model(
        f"{_pascal(kind)}Page",
        records=(list[record], ...),  # type: ignore[valid-type]
        next_cursor=(str, Field(description="Pass as since to read what follows")),
        has_more=(bool, Field(description="More changes are waiting: read again at once")),
    )


def _serialize(
    rows: list[tuple[Any, ...]], names: list[str], include_raw: bool, floor: int
) -> bytes:
    """The rows as JSON records, comma-separated (one orjson call for the chunk)."""
    width = len(names)
    records = [
        {
            "id": values[0],
            "cursor": change_feed.encode_cursor(values[1], floor),
            "deleted": values[3] is not None,
            "deleted_at": values[3],
            "updated_at": values[2],
            "synced_at": values[4],
            "fields": dict(zip(names, values[5 : 5 + width], strict=True)),
            "raw": values[-1] if include_raw else None,
        }
        for values in rows
    ]
    return orjson.dumps(records)[1:-1]


class CursorExpired(Exception):
    """Tombstones after the cursor left the feed (HUB_TOMBSTONE_DAYS) while it was read."""


EXPIRED_MESSAGE = (
    "deleted records older than HUB_TOMBSTONE_DAYS left the feed after this cursor: read the "
    "feed again from the start (without since) and replace your copy"
)


async def _purge_mark(integration_id: uuid.UUID) -> int:
    return await in_session(
        lambda s: change_feed.purged_through(session=s, integration_id=integration_id)
    )


async def _stream(
    *,
    integration_id: uuid.UUID,
    kind: str,
    since: change_feed.Cursor,
    floor: int,
    limit: int,
    include_raw: bool,
    updated_since: datetime | None,
    external_ids: list[str] | None,
) -> AsyncIterator[bytes]:
    """The page as JSON, read in chunks. The cursors it hands out carry ``floor``: the purge
    mark checked before the read (every deletion removed up to it is no concern of this
    consumer)."""
    names = change_feed.field_names(kind)
    yield b'{"records":['
    after = since.seq
    remaining, first, has_more = limit, True, False
    while remaining > 0:
        take = min(CHUNK, remaining)

        def chunk(
            session: Session,
            after: int = after,
            take: int = take,
            last_chunk: bool = take == remaining,
        ) -> tuple[bytes, int, int]:
            rows = change_feed.read_changes(
                session=session,
                integration_id=integration_id,
                kind=kind,
                after_seq=after,
                limit=take + 1 if last_chunk else take,
                include_raw=include_raw,
                updated_since=updated_since,
                external_ids=external_ids,
            )
            more = len(rows) > take
            rows = rows[:take]
            last = int(rows[-1][1]) if rows else after
            body = _serialize(rows, names, include_raw, floor)
            return body, len(rows) + (1 if more else 0), last

        body, count, after = await in_session(chunk)
        if body:
            yield body if first else b"," + body
            first = False
        if count > take:
            has_more = True
            break
        if count < take:
            break
        remaining -= take
    if since.expired_by(await _purge_mark(integration_id)):
        # A sweep removed tombstones after the cursor while the page was read (looked at
        # after the read: the sweep removes and marks in one transaction). The response
        # breaks off rather than end as if nothing had been deleted; the next read is 410.
        raise CursorExpired(since)
    cursor = change_feed.encode_cursor(after, floor)
    yield b'],"next_cursor":' + orjson.dumps(cursor) + b',"has_more":' + orjson.dumps(has_more)
    yield b"}"


def _feed_route(url_kind: str, kind: str) -> None:
    record = _record_model(kind)
    page = _page_model(kind, record)

    async def read_records(
        integration_id: uuid.UUID,
        client: Annotated[ApiClient, Depends(scoped("records:read"))],
        since: Annotated[
            str | None,
            Query(
                max_length=change_feed.CURSOR_MAX_LENGTH,
                description="next_cursor of the previous page; none: from the start",
            ),
        ] = None,
        limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 500,
        include_raw: Annotated[bool, Query(description="Add the platform's JSON")] = False,
        updated_since: Annotated[
            datetime | None,
            Query(description="Only records changed on the platform (or deleted) since"),
        ] = None,
        external_id: Annotated[
            list[str] | None,
            Query(max_length=MAX_EXTERNAL_IDS, description="Only these records (repeatable)"),
        ] = None,
    ) -> StreamingResponse:
        require_integration(client, integration_id)
        try:
            cursor = change_feed.decode_cursor(since) if since else None
        except change_feed.CursorError as error:
            raise ApiError(400, "invalid_cursor", str(error)) from None
        if updated_since is not None and updated_since.tzinfo is None:
            raise ApiError(422, "invalid_request", "updated_since needs a time zone (Z)")
        if await in_session(lambda s: s.get(Integration, integration_id)) is None:
            raise ApiError(404, "not_found", "no such integration")
        purged = await _purge_mark(integration_id)
        if cursor is not None and cursor.expired_by(purged):
            raise ApiError(410, "cursor_expired", EXPIRED_MESSAGE)
        body = _stream(
            integration_id=integration_id,
            kind=kind,
            # From the start: deletions removed before this read are no concern of a copy
            # that begins now.
            since=cursor or change_feed.Cursor(0, purged),
            floor=max(purged, cursor.floor if cursor else 0),
            limit=limit,
            include_raw=include_raw,
            updated_since=updated_since,
            external_ids=external_id,
        )
        return StreamingResponse(
            body, media_type="application/json", headers={"Cache-Control": "no-store"}
        )

    router.add_api_route(
        f"/integrations/{{integration_id}}/records/{url_kind}",
        read_records,
        methods=["GET"],
        name=f"read_{url_kind}",
        summary=f"Changes of {url_kind.replace('_', ' ')}, oldest first",
        description=(
            "Every record inserted, updated or deleted (a tombstone) after the cursor `since`, "
            "each once, at its latest state, in the order the hub stored the changes. Store "
            "`next_cursor` after applying the page; while `has_more`, read again at once. "
            "Tombstones stay HUB_TOMBSTONE_DAYS (30 by default): a cursor older than a removed "
            "one answers 410 cursor_expired."
        ),
        response_class=StreamingResponse,
        responses={
            200: {"model": page, "description": "A page of changes (streamed JSON)"},
            400: {"model": ErrorBody, "description": "A cursor this API did not hand out"},
            404: {"model": ErrorBody, "description": "No such integration"},
            410: {
                "model": ErrorBody,
                "description": "cursor_expired: deletions after the cursor left the feed "
                "(HUB_TOMBSTONE_DAYS); read again from the start",
            },
            **ERROR_RESPONSES,
        },
    )


for _url_kind, _kind in KINDS.items():
    _feed_route(_url_kind, _kind)
