"""``GET /api/records.csv``: the records the Records page's filter lists, every page of them,
as CSV, for any signed-in user (viewers too: they can read the same rows on the page).

The file is streamed: batches of EXPORT_BATCH rows, each read in a short database session
off the event loop (a keyset range of the page's own index), written and let go, so memory
stays flat however many records there are, and no session is held while the client reads.
"""

from __future__ import annotations

import csv
import functools
import io
import uuid
from collections.abc import AsyncIterator

from sqlmodel import Session
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response, StreamingResponse

from dashboard.api.access import Access, route
from dashboard.db import in_session
from dashboard.models import RECORD_TABLES, Role
from dashboard.services import auth as auth_service
from dashboard.services import records_view

RECORDS_CSV = "/api/records.csv"
EXPORT_BATCH = 1000
MAX_SEARCH = 200  # longer than the page's search box ever sends


FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def _cell(value: str) -> str:
    """A value a spreadsheet would run as a formula (CSV injection) is kept as text; a
    negative number stays a number."""
    if value.startswith(FORMULA_STARTS) and not _is_number(value):
        return "'" + value
    return value


def _is_number(value: str) -> bool:
    try:
        float(value)
    except ValueError:
        return False
    return True


def _csv_line(values: list[str]) -> str:
    buffer = io.StringIO()
    csv.writer(buffer).writerow([_cell(value) for value in values])
    return buffer.getvalue()


def _batch(
    session: Session,
    *,
    kind: str,
    integration_id: str,
    search: str,
    after: records_view.ExportKey | None,
) -> tuple[list[list[str]], records_view.ExportKey | None]:
    return records_view.export_batch(
        session=session, kind=kind, integration_id=integration_id, search=search, after=after,
        limit=EXPORT_BATCH,
    )  # fmt: skip


async def export_records(request: Request) -> Response:
    token = request.cookies.get(auth_service.SESSION_COOKIE)
    user = await in_session(lambda s: auth_service.user_for_token(session=s, token=token))
    if not auth_service.has_role(user, Role.VIEWER):
        return PlainTextResponse("Sign in to export records.", status_code=401)
    kind = request.query_params.get("kind", "product")
    integration_id = request.query_params.get("integration", "")
    search = request.query_params.get("search", "")[:MAX_SEARCH]
    if kind not in RECORD_TABLES:
        return PlainTextResponse(f"Unknown kind of record: {kind[:40]!r}.", status_code=400)
    if integration_id:
        try:
            integration_id = str(uuid.UUID(integration_id))
        except ValueError:
            return PlainTextResponse("The integration id is not valid.", status_code=400)

    async def lines() -> AsyncIterator[str]:
        yield _csv_line(records_view.export_header(kind))
        after: records_view.ExportKey | None = None
        while True:
            read = functools.partial(
                _batch, kind=kind, integration_id=integration_id, search=search, after=after
            )
            batch, after = await in_session(read)
            if batch:
                yield "".join(_csv_line(row) for row in batch)
            if after is None:
                return

    filename = f"{kind}-records.csv"
    return StreamingResponse(
        lines(),
        media_type="text/csv; charset=utf-8",
        headers={
            "Content-Disposition": f'attachment; filename="{filename}"',
            "Cache-Control": "no-store",
        },
    )


routes = [route(RECORDS_CSV, export_records, methods=["GET"], access=Access.SESSION)]
