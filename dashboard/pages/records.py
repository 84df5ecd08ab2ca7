"""Records: browse what was synced, per integration and kind, with the raw JSON on demand."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

import reflex as rx
from sqlmodel import Session

from dashboard import routes
from dashboard.components.common import count_pages, empty_state, pager, pages_label
from dashboard.components.integration_picker import integration_picker
from dashboard.components.shell import template
from dashboard.db import in_session
from dashboard.models import Role
from dashboard.services import records_view
from dashboard.state.auth import AuthState
from dashboard.state.guard import acting_user, not_an_event, requires
from dashboard.state.integration_filter import IntegrationFilter
from dashboard.state.live import LiveState, live_region

PAGE_SIZE = 25


def _read(session: Session, query: tuple[str, str, str, int]) -> tuple[list[dict[str, str]], int]:
    kind, integration, search, page = query
    return records_view.browse(
        session=session,
        kind=kind,
        integration_id=integration,
        search=search,
        offset=page * PAGE_SIZE,
        limit=PAGE_SIZE,
    )


# Between two looks at the records (each may scan a table: synced_at has no index): at least
# MIN_CHECK_SECONDS while syncs write, at most RECHECK_SECONDS (webhooks write without a run).
MIN_CHECK_SECONDS = 1.0
RECHECK_SECONDS = 10.0


class RecordsState(LiveState, IntegrationFilter, AuthState):
    kind: str = "product"
    search: str = ""
    page: int = 0
    rows: list[dict[str, str]] = []
    total: int = 0
    raw: str = ""
    raw_for: str = ""
    # The shown order's buyer and shipping lines (decrypted for managers and admins only), or
    # the note that it holds some a viewer does not see.
    personal: list[dict[str, str]] = []
    personal_note: str = ""
    # Records stored, updated or deleted in this view since its rows were read. The rows stay
    # put (nothing moves under the cursor); the page offers to show the newest instead.
    changed: int = 0
    # Backend only: what the rows answer, when they were read, the sync activity then.
    _loaded_for: tuple = ()
    _loaded_at: datetime | None = None
    _activity: tuple = ()
    _checked_at: float = 0.0

    @rx.var
    def headers(self) -> list[str]:
        return [records_view.HEADERS[column] for column in records_view.VIEWS[self.kind][1]]

    @rx.var
    def page_count(self) -> int:
        return count_pages(self.total, PAGE_SIZE)

    @rx.var
    def page_label(self) -> str:
        return pages_label(self.page, self.page_count)

    @rx.var
    def changed_label(self) -> str:
        return f"{self.changed:,} new or updated record{'' if self.changed == 1 else 's'}"

    def _query(self) -> tuple[str, str, str, int]:
        return self.kind, self.integration, self.search, self.page

    @not_an_event
    async def fetch(self) -> object:
        """Each tick: the sync activity of the view's integration (or all). The records
        themselves are looked at only when it moved, and the rows read again only when the
        list was empty: there is nothing on screen to move then."""
        query = self._query()
        kind, integration, search, _page = query
        loaded_at, before, checked_at = self._loaded_at, self._activity, self._checked_at
        if query != self._loaded_for or loaded_at is None:
            return None  # a load is on its way
        empty = self.total == 0

        def load(session: Session) -> object:
            activity = records_view.sync_activity(session=session, integration_id=integration)
            now = time.time()
            waited = now - checked_at
            if not (
                (activity != before and waited >= MIN_CHECK_SECONDS) or waited >= RECHECK_SECONDS
            ):
                return query, before, checked_at, None, None  # not now: still moved next tick
            since = datetime.now(UTC)
            changed = records_view.changed_since(
                session=session, kind=kind, since=loaded_at, integration_id=integration,
                search=search,
            )  # fmt: skip
            fresh = (since, _read(session, query)) if empty and changed else None
            return query, activity, now, changed, fresh

        return await in_session(load)

    @not_an_event
    def apply(self, data: Any) -> None:
        if data is None:
            return
        query, activity, checked_at, changed, fresh = data
        if query != self._query() or query != self._loaded_for:
            return  # the view changed while this was read; its own load is current
        if checked_at != self._checked_at:
            self._activity, self._checked_at = activity, checked_at
        if fresh is not None:
            self._loaded_at, (self.rows, self.total) = fresh
            changed = 0
        if changed is not None and changed != self.changed:
            self.changed = changed

    @rx.event
    @requires(Role.VIEWER, quiet=True)
    async def load_records(self):
        await self._reload()

    async def _reload(self) -> None:
        query = self._query()
        integration = query[1]

        def load(session: Session) -> tuple:
            since = datetime.now(UTC)
            activity = records_view.sync_activity(session=session, integration_id=integration)
            return since, activity, _read(session, query)

        self._loaded_at, activity, (self.rows, self.total) = await in_session(load)
        self._loaded_for, self._activity, self._checked_at = query, activity, time.time()
        self.changed = 0

    @rx.event
    @requires(Role.VIEWER)
    async def show_latest(self):
        self.page = 0
        await self._reload()

    async def _integration_changed(self) -> None:
        self.page = 0
        await self._reload()

    @rx.event
    @requires(Role.VIEWER)
    async def set_kind(self, value: str):
        self.kind, self.page, self.raw, self.raw_for = value, 0, "", ""
        await self._reload()

    @rx.event
    @requires(Role.VIEWER)
    async def set_search(self, value: str):
        self.search, self.page = value, 0
        await self._reload()

    @rx.event
    @requires(Role.VIEWER)
    async def next_page(self):
        if (self.page + 1) * PAGE_SIZE < self.total:
            self.page += 1
            await self._reload()

    @rx.event
    @requires(Role.VIEWER)
    async def previous_page(self):
        if self.page > 0:
            self.page -= 1
            await self._reload()

    @rx.event
    @requires(Role.VIEWER)
    async def show_raw(self, record_id: str):
        self.personal, self.personal_note = [], ""
        if self.raw_for == record_id:
            self.raw, self.raw_for = "", ""
            return
        kind, user = self.kind, acting_user()

        def read(session: Session) -> tuple[str, list[dict[str, str]], str]:
            raw = records_view.raw_json(session=session, kind=kind, record_id=record_id)
            lines, note = records_view.personal_details(
                session=session, kind=kind, record_id=record_id, actor=user.email, role=user.role
            )
            return raw, lines, note

        self.raw, self.personal, self.personal_note = await in_session(read)
        self.raw_for = record_id


def personal_panel() -> rx.Component:
    """The shown order's buyer and shipping details, or why they are not shown."""
    return rx.fragment(
        rx.cond(
            RecordsState.personal.length() > 0,
            rx.data_list.root(
                rx.foreach(
                    RecordsState.personal,
                    lambda line: rx.data_list.item(
                        rx.data_list.label(line["label"]), rx.data_list.value(line["value"])
                    ),
                ),
                aria_label="Buyer and shipping",
            ),
        ),
        rx.cond(
            RecordsState.personal_note != "",
            rx.callout(RecordsState.personal_note, icon="lock", color_scheme="gray", size="1"),
        ),
    )


def record_row(row: rx.Var[dict[str, str]]) -> rx.Component:
    return rx.table.row(
        rx.table.cell(rx.text(row["external_id"], size="1")),
        rx.table.cell(row["c0"]),
        rx.table.cell(row["c1"]),
        rx.table.cell(row["c2"]),
        rx.table.cell(row["c3"]),
        rx.table.cell(
            rx.button("JSON", size="1", variant="ghost", on_click=RecordsState.show_raw(row["id"]))
        ),
    )


@template(route=routes.RECORDS, title="Records", on_load=RecordsState.load_records)
def records_page() -> rx.Component:
    return live_region(
        records_view_page(), watch=RecordsState.watch, stop=RecordsState.stop_watching
    )


def records_view_page() -> rx.Component:
    return rx.vstack(
        rx.hstack(
            rx.select.root(
                rx.select.trigger(aria_label="Kind of record"),
                rx.select.content(
                    *[
                        rx.select.item(label, value=kind)
                        for kind, (label, _) in records_view.VIEWS.items()
                    ]
                ),
                value=RecordsState.kind,
                on_change=RecordsState.set_kind,
            ),
            integration_picker(RecordsState),
            rx.input(
                placeholder="Search id, title, SKU, email",
                value=RecordsState.search,
                on_change=RecordsState.set_search.debounce(300),
                width="16rem",
                aria_label="Search records",
            ),
            rx.spacer(),
            # Offered, never applied by itself: the rows on screen stay where they are.
            rx.cond(
                RecordsState.changed > 0,
                rx.button(
                    rx.icon("refresh-cw", size=14),
                    RecordsState.changed_label,
                    " · Show",
                    variant="soft",
                    on_click=RecordsState.show_latest,
                ),
            ),
            wrap="wrap",
            width="100%",
            min_height="2.5rem",
        ),
        rx.cond(
            RecordsState.total > 0,
            rx.vstack(
                rx.table.root(
                    rx.table.header(
                        rx.table.row(
                            rx.table.column_header_cell("External id"),
                            rx.foreach(
                                RecordsState.headers, lambda h: rx.table.column_header_cell(h)
                            ),
                            rx.table.column_header_cell(""),
                        )
                    ),
                    rx.table.body(rx.foreach(RecordsState.rows, record_row)),
                    variant="surface",
                    width="100%",
                ),
                personal_panel(),
                rx.cond(
                    RecordsState.raw != "",
                    rx.code_block(RecordsState.raw, language="json", width="100%"),
                ),
                pager(
                    rx.text(RecordsState.total, " records", size="2", color_scheme="gray"),
                    page=RecordsState.page,
                    page_count=RecordsState.page_count,
                    label=RecordsState.page_label,
                    previous=RecordsState.previous_page,
                    next_page=RecordsState.next_page,
                ),
                width="100%",
            ),
            empty_state(
                "database",
                "No records here yet",
                "Synced products, orders, inventory and customers show up here once "
                "an integration has run its first sync.",
            ),
        ),
        width="100%",
        spacing="4",
    )
