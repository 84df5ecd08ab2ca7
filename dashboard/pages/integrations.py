"""Integrations: every connected store and seller, searchable and paginated in SQL."""

from __future__ import annotations

import uuid
from typing import Any

import reflex as rx
from sqlmodel import Session

from dashboard import routes
from dashboard.components.common import (
    HEALTH_COLORS,
    count_pages,
    empty_state,
    pager,
    pages_label,
    status_badge,
)
from dashboard.components.formats import count, counted, relative_time
from dashboard.components.shell import template
from dashboard.db import in_session
from dashboard.models import Integration, Role, User
from dashboard.services import integrations as integration_service
from dashboard.services import overview as overview_service
from dashboard.services import scheduler, sync
from dashboard.services.audit import record_audit
from dashboard.state.auth import AuthState
from dashboard.state.guard import acting_user, not_an_event, requires
from dashboard.state.live import LiveState, live_region

PAGE_SIZE = 25


DEFAULT_DESCENDING = {"created_at": True, "last_sync": True, "name": False, "status": False}


def _pause_many(session: Session, *, ids: list[str], paused: bool, actor: User) -> tuple[int, int]:
    """Pause or resume each integration; returns (changed, asked). Only connected (or paused)
    integrations change: pending or revoked ones have nothing to pause."""
    changed = 0
    for raw_id in ids:
        integration = session.get(Integration, uuid.UUID(raw_id))
        if integration is None:
            continue
        before = integration.status
        sync.set_paused(session=session, integration_id=integration.id, paused=paused)
        changed += integration.status != before
    record_audit(
        session=session,
        actor=actor.email,
        action="integration.pause" if paused else "integration.resume",
        target=f"{changed} integrations",
        context={"ids": ids},
    )
    return changed, len(ids)


def _read_page(session: Session, query: tuple) -> tuple[list[dict[str, Any]], int]:
    search, platform, status, sort, descending, page = query
    # The filter offers both: "health:failing" is what the Health column shows, "paused" the
    # stored status.
    health_is = status.removeprefix(HEALTH_FILTER) if status.startswith(HEALTH_FILTER) else ""
    return overview_service.list_integrations(
        session=session,
        search=search,
        platform=platform,
        status="" if health_is else status,
        health_is=health_is,
        sort=sort,
        descending=descending,
        offset=page * PAGE_SIZE,
        limit=PAGE_SIZE,
    )


class IntegrationsState(LiveState, AuthState):
    rows: list[dict[str, str]] = []
    total: int = 0
    page: int = 0
    search: str = ""
    platform_filter: str = "all"
    status_filter: str = "all"
    sort: str = "created_at"
    descending: bool = True
    selected: list[str] = []
    loaded: bool = False
    stale_count: int = 0  # pending integrations nobody connected for a day (see services)
    # Backend only: the query the rows answer, the watermark when they were read, and each
    # shown integration's record-count base (see overview_service.live_record_counts).
    _shown_for: tuple = ()
    _mark: tuple = ()
    _record_bases: dict[str, Any] = {}

    @rx.var
    def page_count(self) -> int:
        return count_pages(self.total, PAGE_SIZE)

    @rx.var
    def page_label(self) -> str:
        return pages_label(self.page, self.page_count)

    @rx.var
    def total_label(self) -> str:
        return counted(self.total, "integration")

    @rx.var
    def filtered(self) -> bool:
        return bool(self.search) or self.platform_filter != "all" or self.status_filter != "all"

    @rx.var
    def all_selected(self) -> bool:
        return bool(self.rows) and all(row["id"] in self.selected for row in self.rows)

    def _query(self) -> tuple[str, str, str, str, bool, int]:
        platform = "" if self.platform_filter == "all" else self.platform_filter
        status = "" if self.status_filter == "all" else self.status_filter
        return self.search, platform, status, self.sort, self.descending, self.page

    @not_an_event
    async def fetch(self, force: bool = False) -> object:
        """The page as it is now. Each tick costs the watermark and a primary-key read of the
        rows on screen; the filtered, sorted page and its count are read again only when
        either moved (or the query changed)."""
        query = self._query()
        page = query[-1]
        current = not force and query == self._shown_for
        shown = [
            {k: v for k, v in row.items() if k not in ("records", "never_connected")}
            for row in self.rows
        ]
        mark_before, bases, total_before = self._mark, dict(self._record_bases), self.total

        def load(session: Session) -> tuple:
            mark = overview_service.integrations_watermark(session=session)
            rows: list[dict[str, Any]] | None = None
            total, shown_page = total_before, page
            if current and mark == mark_before:
                now = overview_service.integrations_by_id(
                    session=session, ids=[row["id"] for row in shown]
                )
                rows = shown if now == shown else None
            if rows is None:
                rows, total = _read_page(session, query)
                if not rows and page > 0 and total:
                    # The page emptied (integrations deleted, filtered out): show the last one.
                    shown_page = (total - 1) // PAGE_SIZE
                    rows, total = _read_page(session, (*query[:-1], shown_page))
            counts, bases_now = overview_service.live_record_counts(
                session=session, ids=[row["id"] for row in rows], bases=bases
            )
            stale = integration_service.stale_pending_labels(
                session=session, ids=[row["id"] for row in rows]
            )
            rows = [
                {
                    **row,
                    "records": count(counts[row["id"]]),
                    "never_connected": stale.get(row["id"], ""),
                }
                for row in rows
            ]
            stale_count = integration_service.stale_pending_count(session=session)
            return query, shown_page, mark, rows, total, bases_now, stale_count

        return await in_session(load)

    @not_an_event
    def apply(self, data: Any) -> None:
        query, shown_page, mark, rows, total, bases, stale_count = data
        if query != self._query():
            return  # the filters or page changed while this was read; the next read is current
        shown_for = (*query[:-1], shown_page)
        if shown_for != self._shown_for:
            self._shown_for = shown_for
        if mark != self._mark:
            self._mark = mark
        if bases != self._record_bases:
            self._record_bases = bases
        # Assign only what changed: every assignment travels to the browser.
        if self.page != shown_page:
            self.page = shown_page
        if self.total != total:
            self.total = total
        if rows != self.rows:
            self.rows = rows
            # A selection is of rows on screen: what leaves the screen leaves the selection.
            shown = {row["id"] for row in rows}
            if any(row_id not in shown for row_id in self.selected):
                self.selected = [row_id for row_id in self.selected if row_id in shown]
        if self.stale_count != stale_count:
            self.stale_count = stale_count
        if not self.loaded:
            self.loaded = True

    @rx.event
    @requires(Role.VIEWER, quiet=True)
    async def load_integrations(self):
        await self._reload()

    async def _reload(self) -> None:
        self.apply(await self.fetch(force=True))

    @rx.event
    @requires(Role.VIEWER)
    async def set_search(self, value: str):
        self.search, self.page = value[:200], 0
        await self._reload()

    @rx.event
    @requires(Role.VIEWER)
    async def set_platform_filter(self, value: str):
        self.platform_filter, self.page = value, 0
        await self._reload()

    @rx.event
    @requires(Role.VIEWER)
    async def set_status_filter(self, value: str):
        self.status_filter, self.page = value, 0
        await self._reload()

    @rx.event
    @requires(Role.VIEWER)
    async def set_sort(self, value: str):
        self.sort, self.page = value, 0
        self.descending = DEFAULT_DESCENDING.get(value, True)
        await self._reload()

    @rx.event
    @requires(Role.VIEWER)
    async def reverse_order(self):
        self.descending, self.page = not self.descending, 0
        await self._reload()

    @rx.event
    @requires(Role.VIEWER)
    async def next_page(self):
        if self.page + 1 < self.page_count:
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
    def toggle_selected(self, integration_id: str):
        if integration_id in self.selected:
            self.selected = [i for i in self.selected if i != integration_id]
        else:
            self.selected = [*self.selected, integration_id]

    @rx.event
    @requires(Role.VIEWER)
    def select_page(self, checked: bool):
        self.selected = [row["id"] for row in self.rows] if checked else []

    @rx.event
    @requires(Role.MANAGER)
    async def pause_selected(self, paused: bool):
        actor = acting_user()
        ids = list(self.selected)
        if not ids:
            return rx.toast.info("Select integrations first.")
        changed, asked = await in_session(
            lambda s: _pause_many(s, ids=ids, paused=paused, actor=actor)
        )
        scheduler.poke()
        self.selected = []
        await self._reload()
        verb = "Paused" if paused else "Resumed"
        skipped = asked - changed
        note = f"; {skipped} had nothing to {'pause' if paused else 'resume'}" if skipped else ""
        return rx.toast.success(f"{verb} {changed} of {asked}{note}.")

    @rx.event
    @requires(Role.MANAGER)
    async def discard_stale_pending(self):
        actor = acting_user()
        discarded = await in_session(
            lambda s: integration_service.discard_stale_pending(session=s, actor=actor)
        )
        await self._reload()
        if not discarded:
            return rx.toast.info("No stale pending integration to discard.")
        plural = "" if discarded == 1 else "s"
        return rx.toast.success(f"Discarded {discarded} pending integration{plural}.")


HEALTH_FILTER = "health:"
# What the Health column can show (health.IntegrationHealth), worst first, and its colour.
HEALTH_LABELS = {"connected": "healthy", "needs_reauth": "needs reauth"}


def health_badge(row: rx.Var[dict[str, str]]) -> rx.Component:
    """The integration's health: the worst of its streams' plus its access, with how many of
    its streams fail when some do."""
    value = row["health"]
    failing = row["failing_streams"].to(int)
    return rx.badge(
        rx.match(value, *HEALTH_LABELS.items(), value),
        rx.cond(
            failing > 0,
            rx.text.span(" · ", failing, "/", row["streams"]),
        ),
        color_scheme=rx.match(value, *HEALTH_COLORS.items(), "gray"),
        variant="soft",
        radius="full",
        title=rx.cond(
            failing > 0,
            failing.to(str) + " of " + row["streams"].to(str) + " streams failing",
            "",
        ),
        class_name="health-badge",
    )


def integration_row(row: rx.Var[dict[str, str]]) -> rx.Component:
    return rx.table.row(
        rx.cond(
            IntegrationsState.can_manage,
            rx.table.cell(
                rx.checkbox(
                    checked=IntegrationsState.selected.contains(row["id"]),
                    on_change=lambda _: IntegrationsState.toggle_selected(row["id"]),
                    aria_label="Select " + row["name"].to(str),
                )
            ),
        ),
        rx.table.cell(
            rx.hstack(
                rx.icon(rx.cond(row["platform"] == "shopify", "shopping-bag", "package"), size=16),
                rx.text(rx.cond(row["platform"] == "shopify", "Shopify", "Amazon")),
                align="center",
            )
        ),
        rx.table.row_header_cell(rx.link(row["name"], href="/integrations/" + row["id"])),
        rx.table.cell(row["account"]),
        rx.table.cell(
            rx.cond(
                row["never_connected"] != "",
                rx.badge(row["never_connected"], color_scheme="orange", variant="soft"),
                status_badge(row["status"]),
            )
        ),
        rx.table.cell(rx.cond(row["health"] != "", health_badge(row))),
        rx.table.cell(relative_time(row["last_sync"], empty="never")),
        rx.table.cell(relative_time(row["next_sync"], empty="not scheduled")),
        rx.table.cell(row["records"], text_align="right"),
    )


def filters() -> rx.Component:
    return rx.hstack(
        rx.input(
            placeholder="Search name, shop or seller",
            default_value=IntegrationsState.search,
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
                rx.select.group(
                    rx.select.label("Health"),
                    *[
                        rx.select.item(
                            HEALTH_LABELS.get(h, h).capitalize(), value=HEALTH_FILTER + h
                        )
                        for h in (
                            "failing",
                            "degraded",
                            "stalled",
                            "waiting",
                            "uninstalled",
                            "declined",
                            "connected",
                        )
                    ],
                ),
                rx.select.separator(),
                rx.select.group(
                    rx.select.label("Status"),
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
        rx.icon_button(
            rx.cond(
                IntegrationsState.descending,
                rx.icon("arrow-down-wide-narrow", size=16),
                rx.icon("arrow-up-narrow-wide", size=16),
            ),
            variant="soft",
            on_click=IntegrationsState.reverse_order,
            aria_label="Reverse the order",
            title="Reverse the order",
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


COLUMNS = (
    ("Platform", "7.5rem"),
    ("Name", "auto"),
    ("Shop / seller", "auto"),
    ("Status", "8.5rem"),
    ("Health", "9rem"),
    ("Last sync", "8rem"),
    ("Next sync", "8rem"),
    ("Records", "6rem"),
)


def discard_stale_button() -> rx.Component:
    """Discard every pending integration nobody connected for a day, after a confirmation."""
    label = rx.text(
        "Discard ",
        IntegrationsState.stale_count,
        " stale pending integration",
        rx.cond(IntegrationsState.stale_count == 1, "", "s"),
    )
    return rx.alert_dialog.root(
        rx.alert_dialog.trigger(
            rx.button(
                rx.icon("trash-2", size=14), label, size="1", variant="soft", color_scheme="red"
            )
        ),
        rx.alert_dialog.content(
            rx.alert_dialog.title(label),
            rx.alert_dialog.description(
                "They were created more than a day ago, never connected, and have no usable "
                "connect link. They hold no data. This cannot be undone."
            ),
            rx.hstack(
                rx.alert_dialog.cancel(rx.button("Cancel", variant="soft", color_scheme="gray")),
                rx.alert_dialog.action(
                    rx.button(
                        "Discard",
                        color_scheme="red",
                        on_click=IntegrationsState.discard_stale_pending,
                    )
                ),
                justify="end",
                spacing="3",
                margin_top="1rem",
            ),
        ),
    )


def bulk_bar() -> rx.Component:
    """Pause or resume the selected rows (managers)."""
    return rx.hstack(
        rx.checkbox(
            "Select this page",
            checked=IntegrationsState.all_selected,
            on_change=IntegrationsState.select_page,
        ),
        rx.text(IntegrationsState.selected.length(), " selected", size="2", color_scheme="gray"),
        rx.button(
            rx.icon("pause", size=14),
            "Pause selected",
            size="1",
            variant="soft",
            disabled=IntegrationsState.selected.length() == 0,
            on_click=IntegrationsState.pause_selected(True),
        ),
        rx.button(
            rx.icon("play", size=14),
            "Resume selected",
            size="1",
            variant="soft",
            disabled=IntegrationsState.selected.length() == 0,
            on_click=IntegrationsState.pause_selected(False),
        ),
        rx.spacer(),
        rx.cond(IntegrationsState.stale_count > 0, discard_stale_button()),
        align="center",
        spacing="3",
        height="2rem",
        width="100%",
    )


def integrations_table() -> rx.Component:
    return rx.vstack(
        rx.cond(IntegrationsState.can_manage, bulk_bar()),
        rx.table.root(
            rx.table.header(
                rx.table.row(
                    rx.cond(
                        IntegrationsState.can_manage,
                        rx.table.column_header_cell("", width="2.5rem"),
                    ),
                    *[
                        rx.table.column_header_cell(
                            h, width=w, text_align="right" if h == "Records" else "left"
                        )
                        for h, w in COLUMNS
                    ],
                )
            ),
            rx.table.body(rx.foreach(IntegrationsState.rows, integration_row)),
            width="100%",
            variant="surface",
            layout="fixed",  # columns keep their width from page to page
        ),
        pager(
            rx.text(IntegrationsState.total_label, size="2", color_scheme="gray"),
            page=IntegrationsState.page,
            page_count=IntegrationsState.page_count,
            label=IntegrationsState.page_label,
            previous=IntegrationsState.previous_page,
            next_page=IntegrationsState.next_page,
        ),
        width="100%",
    )


def integrations_list() -> rx.Component:
    return rx.cond(
        IntegrationsState.total > 0,
        integrations_table(),
        rx.cond(
            ~IntegrationsState.loaded,
            rx.center(rx.spinner(size="3"), min_height="12rem"),
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
    )


@template(
    route=routes.INTEGRATIONS, title="Integrations", on_load=IntegrationsState.load_integrations
)
def integrations() -> rx.Component:
    return rx.vstack(
        filters(),
        # Live while on screen: statuses, syncs, counts and the page itself (see state/live.py).
        live_region(
            integrations_list(), watch=IntegrationsState.watch, stop=IntegrationsState.stop_watching
        ),
        width="100%",
        spacing="4",
    )
