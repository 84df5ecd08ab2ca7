"""Integrations: every connected store and seller, searchable and paginated in SQL."""

from __future__ import annotations

import reflex as rx

from dashboard import routes
from dashboard.components.common import empty_state, status_badge
from dashboard.components.shell import template
from dashboard.db import in_session
from dashboard.services import overview as overview_service
from dashboard.state.auth import AuthState

PAGE_SIZE = 25


class IntegrationsState(AuthState):
    rows: list[dict[str, str]] = []
    total: int = 0
    page: int = 0
    search: str = ""
    platform_filter: str = "all"
    status_filter: str = "all"
    sort: str = "created_at"
    loaded: bool = False

    @rx.var
    def page_count(self) -> int:
        return max(1, -(-self.total // PAGE_SIZE))

    @rx.var
    def page_label(self) -> str:
        return f"Page {self.page + 1} of {max(1, -(-self.total // PAGE_SIZE))}"

    @rx.var
    def filtered(self) -> bool:
        return bool(self.search) or self.platform_filter != "all" or self.status_filter != "all"

    @rx.event
    async def load_integrations(self):
        search, page, sort = self.search, self.page, self.sort
        platform = "" if self.platform_filter == "all" else self.platform_filter
        status = "" if self.status_filter == "all" else self.status_filter
        self.rows, self.total = await in_session(
            lambda s: overview_service.list_integrations(
                session=s,
                search=search,
                platform=platform,
                status=status,
                sort=sort,
                descending=sort in ("created_at", "last_sync"),
                offset=page * PAGE_SIZE,
                limit=PAGE_SIZE,
            )
        )
        self.loaded = True

    @rx.event
    async def set_search(self, value: str):
        self.search, self.page = value, 0
        await self.load_integrations()

    @rx.event
    async def set_platform_filter(self, value: str):
        self.platform_filter, self.page = value, 0
        await self.load_integrations()

    @rx.event
    async def set_status_filter(self, value: str):
        self.status_filter, self.page = value, 0
        await self.load_integrations()

    @rx.event
    async def set_sort(self, value: str):
        self.sort, self.page = value, 0
        await self.load_integrations()

    @rx.event
    async def next_page(self):
        if self.page + 1 < self.page_count:
            self.page += 1
            await self.load_integrations()

    @rx.event
    async def previous_page(self):
        if self.page > 0:
            self.page -= 1
            await self.load_integrations()


def integration_row(row: rx.Var[dict[str, str]]) -> rx.Component:
    return rx.table.row(
        rx.table.cell(
            rx.hstack(
                rx.icon(rx.cond(row["platform"] == "shopify", "shopping-bag", "package"), size=16),
                rx.text(rx.cond(row["platform"] == "shopify", "Shopify", "Amazon")),
                align="center",
            )
        ),
        rx.table.row_header_cell(rx.link(row["name"], href="/integrations/" + row["id"])),
        rx.table.cell(row["account"]),
        rx.table.cell(status_badge(row["status"])),
        rx.table.cell(
            rx.cond(row["last_sync"] != "", rx.moment(row["last_sync"], from_now=True), "never")
        ),
        rx.table.cell(
            rx.cond(
                row["next_sync"] != "", rx.moment(row["next_sync"], from_now=True), "not scheduled"
            )
        ),
    )


def filters() -> rx.Component:
    return rx.hstack(
        rx.input(
            placeholder="Search name, shop or seller",
            value=IntegrationsState.search,
            on_change=IntegrationsState.set_search.debounce(300),
            width="18rem",
            aria_label="Search integrations",
        ),
        rx.select.root(
            rx.select.trigger(aria_label="Platform"),
            rx.select.content(
                rx.select.item("All platforms", value="all"),
                rx.select.item("Shopify", value="shopify"),
                rx.select.item("Amazon", value="amazon"),
            ),
            value=IntegrationsState.platform_filter,
            on_change=IntegrationsState.set_platform_filter,
        ),
        rx.select.root(
            rx.select.trigger(aria_label="Status"),
            rx.select.content(
                rx.select.item("All statuses", value="all"),
                *[
                    rx.select.item(s.replace("_", " ").capitalize(), value=s)
                    for s in (
                        "pending",
                        "connected",
                        "syncing",
                        "needs_reauth",
                        "error",
                        "paused",
                        "disconnected",
                    )
                ],
            ),
            value=IntegrationsState.status_filter,
            on_change=IntegrationsState.set_status_filter,
        ),
        rx.select.root(
            rx.select.trigger(aria_label="Sort"),
            rx.select.content(
                rx.select.item("Newest first", value="created_at"),
                rx.select.item("Name", value="name"),
                rx.select.item("Status", value="status"),
                rx.select.item("Last sync", value="last_sync"),
            ),
            value=IntegrationsState.sort,
            on_change=IntegrationsState.set_sort,
        ),
        rx.spacer(),
        rx.cond(
            IntegrationsState.can_manage,
            rx.link(rx.button(rx.icon("plus"), "Add integration"), href=routes.NEW_INTEGRATION),
        ),
        wrap="wrap",
        width="100%",
        spacing="3",
    )


def integrations_table() -> rx.Component:
    return rx.vstack(
        rx.table.root(
            rx.table.header(
                rx.table.row(
                    *[
                        rx.table.column_header_cell(h)
                        for h in (
                            "Platform",
                            "Name",
                            "Shop / seller",
                            "Status",
                            "Last sync",
                            "Next sync",
                        )
                    ],
                )
            ),
            rx.table.body(rx.foreach(IntegrationsState.rows, integration_row)),
            width="100%",
            variant="surface",
        ),
        rx.hstack(
            rx.text(IntegrationsState.total, " integrations", size="2", color_scheme="gray"),
            rx.spacer(),
            rx.button(
                "Previous",
                on_click=IntegrationsState.previous_page,
                variant="soft",
                disabled=IntegrationsState.page == 0,
            ),
            rx.text(IntegrationsState.page_label, size="2"),
            rx.button(
                "Next",
                on_click=IntegrationsState.next_page,
                variant="soft",
                disabled=IntegrationsState.page + 1 >= IntegrationsState.page_count,
            ),
            width="100%",
            align="center",
        ),
        width="100%",
    )


@template(
    route=routes.INTEGRATIONS, title="Integrations", on_load=IntegrationsState.load_integrations
)
def integrations() -> rx.Component:
    return rx.vstack(
        filters(),
        rx.cond(
            IntegrationsState.total > 0,
            integrations_table(),
            rx.cond(
                IntegrationsState.filtered,
                empty_state(
                    "search-x",
                    "No integration matches",
                    "Change the search or the filters to see more.",
                ),
                empty_state(
                    "plug",
                    "No integrations yet",
                    "An integration connects one Shopify store or Amazon seller account. "
                    "Add one, then connect it yourself or send the merchant a connect link.",
                    rx.cond(
                        IntegrationsState.can_manage,
                        rx.link(
                            rx.button(rx.icon("plus"), "Add integration"),
                            href=routes.NEW_INTEGRATION,
                        ),
                        rx.text("Managers and admins can add integrations.", size="2"),
                    ),
                ),
            ),
        ),
        width="100%",
        spacing="4",
    )
