"""Records: browse what was synced, per integration and kind, with the raw JSON on demand."""

from __future__ import annotations

import reflex as rx

from dashboard import routes
from dashboard.components.common import empty_state
from dashboard.components.integration_picker import integration_picker
from dashboard.components.shell import template
from dashboard.db import in_session
from dashboard.services import records_view
from dashboard.state.auth import AuthState
from dashboard.state.integration_filter import IntegrationFilter

PAGE_SIZE = 25


class RecordsState(IntegrationFilter, AuthState):
    kind: str = "product"
    search: str = ""
    page: int = 0
    rows: list[dict[str, str]] = []
    total: int = 0
    raw: str = ""
    raw_for: str = ""

    @rx.var
    def headers(self) -> list[str]:
        return list(records_view.VIEWS[self.kind][1])

    @rx.var
    def page_label(self) -> str:
        return f"Page {self.page + 1} of {max(1, -(-self.total // PAGE_SIZE))}"

    @rx.event
    async def load_records(self):
        if not await self.signed_in():
            return
        kind, search, page, integration = self.kind, self.search, self.page, self.integration
        self.rows, self.total = await in_session(
            lambda s: records_view.browse(
                session=s,
                kind=kind,
                integration_id=integration,
                search=search,
                offset=page * PAGE_SIZE,
                limit=PAGE_SIZE,
            )
        )

    async def _integration_changed(self) -> None:
        self.page = 0
        await self.load_records()

    @rx.event
    async def set_kind(self, value: str):
        self.kind, self.page, self.raw, self.raw_for = value, 0, "", ""
        await self.load_records()

    @rx.event
    async def set_search(self, value: str):
        self.search, self.page = value, 0
        await self.load_records()

    @rx.event
    async def next_page(self):
        if (self.page + 1) * PAGE_SIZE < self.total:
            self.page += 1
            await self.load_records()

    @rx.event
    async def previous_page(self):
        if self.page > 0:
            self.page -= 1
            await self.load_records()

    @rx.event
    async def show_raw(self, record_id: str):
        if self.raw_for == record_id:
            self.raw, self.raw_for = "", ""
            return
        kind = self.kind
        self.raw = await in_session(
            lambda s: records_view.raw_json(session=s, kind=kind, record_id=record_id)
        )
        self.raw_for = record_id


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
            wrap="wrap",
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
                rx.cond(
                    RecordsState.raw != "",
                    rx.code_block(RecordsState.raw, language="json", width="100%"),
                ),
                rx.hstack(
                    rx.text(RecordsState.total, " records", size="2", color_scheme="gray"),
                    rx.spacer(),
                    rx.button("Previous", variant="soft", on_click=RecordsState.previous_page),
                    rx.text(RecordsState.page_label, size="2"),
                    rx.button("Next", variant="soft", on_click=RecordsState.next_page),
                    width="100%",
                    align="center",
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
