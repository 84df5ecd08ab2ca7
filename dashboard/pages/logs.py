"""Logs: the run events of every integration in one place, with search, level, platform,
integration and time filters, a paged table and downloads (viewers too)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar

import reflex as rx
from sqlmodel import Session

from dashboard import routes
from dashboard.components.common import empty_state, pager
from dashboard.components.formats import exact_time
from dashboard.components.integration_picker import integration_picker
from dashboard.components.integration_tabs import LEVEL_COLORS
from dashboard.components.shell import template
from dashboard.db import in_session
from dashboard.models import Role
from dashboard.services import runs as runs_service
from dashboard.state.auth import AuthState
from dashboard.state.guard import requires
from dashboard.state.integration_detail import LOG_LEVELS
from dashboard.state.integration_filter import IntegrationFilter
from dashboard.state.paging import PagedState

PAGE_SIZE = 50
# The table pages through the newest events of the newest matching runs
# (runs_service.RECENT_RUNS); deeper history is what the download is for.
MAX_PAGES = 20
PERIODS = (
    ("hour", "Last hour", timedelta(hours=1)),
    ("day", "Last 24 hours", timedelta(days=1)),
    ("week", "Last 7 days", timedelta(days=7)),
    ("all", "Any time", None),
)


def _since(period: str) -> datetime | None:
    for value, _label, span in PERIODS:
        if value == period and span is not None:
            return datetime.now(UTC) - span
    return None


class LogsState(PagedState, IntegrationFilter, AuthState):
    page_size: ClassVar[int] = PAGE_SIZE
    search: str = ""
    level: str = "all"
    platform: str = "all"
    period: str = "day"
    rows: list[dict[str, str]] = []
    more: bool = False  # a next page exists: the read asks for one row past the page
    loaded: bool = False

    # Events are not counted (``total`` stays 0): a read takes one event past the page, so
    # the pager knows only whether another page follows.
    @rx.var
    def page_count(self) -> int:
        return self.page + (2 if self.more else 1)

    @rx.var
    def page_label(self) -> str:
        return f"Page {self.page + 1}"

    def _has_next_page(self) -> bool:
        return self.more

    @rx.var
    def shown_label(self) -> str:
        if not self.rows:
            return ""
        first = self.page * PAGE_SIZE + 1
        return f"Events {first:,} to {first + len(self.rows) - 1:,}, newest first"

    def _filters(self) -> dict[str, Any]:
        return {
            "integration_id": uuid.UUID(self.integration) if self.integration else None,
            "search": self.search,
            "level": "" if self.level == "all" else self.level,
            "platform": "" if self.platform == "all" else self.platform,
            "since": _since(self.period),
        }

    async def _reload(self) -> None:
        filters, page = self._filters(), self.page

        def load(session: Session) -> list[dict[str, str]]:
            # One more than the page: whether a next page exists, without a count.
            return runs_service.search_events(
                session=session, limit=(page + 1) * PAGE_SIZE + 1, **filters
            )

        events = await in_session(load)
        shown = events[page * PAGE_SIZE : (page + 1) * PAGE_SIZE]
        self.rows = shown
        self.more = len(events) > (page + 1) * PAGE_SIZE and page + 1 < MAX_PAGES
        self.loaded = True

    async def _integration_changed(self) -> None:
        self.page = 0
        await self._reload()

    @rx.event
    @requires(Role.VIEWER, quiet=True)
    async def load_logs(self):
        await self._reload()

    @rx.event
    @requires(Role.VIEWER)
    async def refresh(self):
        await self._reload()

    @rx.event
    @requires(Role.VIEWER)
    async def set_search(self, value: str):
        self.search, self.page = value[:200], 0
        await self._reload()

    @rx.event
    @requires(Role.VIEWER)
    async def set_level(self, value: str):
        self.level, self.page = value, 0
        await self._reload()

    @rx.event
    @requires(Role.VIEWER)
    async def set_platform(self, value: str):
        self.platform, self.page = value, 0
        await self._reload()

    @rx.event
    @requires(Role.VIEWER)
    async def set_period(self, value: str):
        self.period, self.page = value, 0
        await self._reload()

    @rx.event
    @requires(Role.VIEWER)
    async def download(self, fmt: str):
        """Every matching event of the whole history (up to runs_service.EXPORT_LIMIT),
        oldest first, as JSON or text."""
        filters = self._filters()
        text = await in_session(lambda s: runs_service.export_events(session=s, fmt=fmt, **filters))
        json_file = fmt == "json"
        stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M")
        return rx.download(
            data=text,
            filename=f"hub-logs-{stamp}.{'json' if json_file else 'txt'}",
            mime_type="application/json" if json_file else "text/plain",
        )


def log_row(event: rx.Var[dict]) -> rx.Component:
    return rx.table.row(
        rx.table.cell(exact_time(event["at"]), white_space="nowrap"),
        rx.table.cell(
            rx.link(event["integration"], href="/integrations/" + event["integration_id"].to(str))
        ),
        rx.table.cell(event["stream"]),
        rx.table.cell(
            rx.badge(event["level"], color_scheme=rx.match(event["level"], *LEVEL_COLORS, "blue"))
        ),
        rx.table.cell(rx.text(event["message"], size="2", word_break="break-word")),
        class_name="log-row",
    )


def filters() -> rx.Component:
    return rx.hstack(
        rx.input(
            rx.input.slot(rx.icon("search", size=16)),
            placeholder="Search the logs",
            default_value=LogsState.search,
            on_change=LogsState.set_search.debounce(300),
            aria_label="Search the logs",
            width="16rem",
        ),
        rx.select.root(
            rx.select.trigger(aria_label="Level"),
            rx.select.content(*[rx.select.item(label, value=value) for value, label in LOG_LEVELS]),
            value=LogsState.level,
            on_change=LogsState.set_level,
        ),
        rx.select.root(
            rx.select.trigger(aria_label="Platform"),
            rx.select.content(
                rx.select.item("All platforms", value="all"),
                rx.select.item("Shopify", value="shopify"),
                rx.select.item("Amazon", value="amazon"),
            ),
            value=LogsState.platform,
            on_change=LogsState.set_platform,
        ),
        rx.select.root(
            rx.select.trigger(aria_label="Time"),
            rx.select.content(
                *[rx.select.item(label, value=value) for value, label, _span in PERIODS]
            ),
            value=LogsState.period,
            on_change=LogsState.set_period,
        ),
        integration_picker(LogsState),
        rx.spacer(),
        rx.icon_button(
            rx.icon("refresh-cw", size=16),
            variant="soft",
            on_click=LogsState.refresh,
            aria_label="Refresh",
            title="Refresh",
        ),
        rx.button(
            rx.icon("download", size=16),
            "Download JSON",
            variant="soft",
            on_click=LogsState.download("json"),
        ),
        rx.button(
            rx.icon("file-text", size=16),
            "Download text",
            variant="soft",
            on_click=LogsState.download("text"),
        ),
        wrap="wrap",
        align="center",
        width="100%",
        spacing="3",
    )


@template(route=routes.LOGS, title="Logs", on_load=LogsState.load_logs)
def logs_page() -> rx.Component:
    return rx.vstack(
        filters(),
        rx.cond(
            ~LogsState.loaded,
            rx.center(rx.spinner(size="3"), min_height="12rem"),
            rx.cond(
                LogsState.rows.length() > 0,
                rx.vstack(
                    rx.table.root(
                        rx.table.header(
                            rx.table.row(
                                *[
                                    rx.table.column_header_cell(header, width=width)
                                    for header, width in (
                                        ("Time", "11rem"),
                                        ("Integration", "12rem"),
                                        ("Stream", "7rem"),
                                        ("Level", "6rem"),
                                        ("Message", "auto"),
                                    )
                                ]
                            )
                        ),
                        rx.table.body(rx.foreach(LogsState.rows, log_row)),
                        variant="surface",
                        size="1",
                        width="100%",
                        layout="fixed",
                    ),
                    pager(
                        rx.text(LogsState.shown_label, size="2", color_scheme="gray"),
                        page=LogsState.page,
                        page_count=LogsState.page_count,
                        label=LogsState.page_label,
                        previous=LogsState.previous_page,
                        next_page=LogsState.next_page,
                    ),
                    width="100%",
                ),
                empty_state(
                    "scroll-text",
                    "No log lines match",
                    "Runs log their start, each page, every wait and retry with the "
                    "platform's reason, and a summary. Widen the time or level, or clear the "
                    "search.",
                ),
            ),
        ),
        width="100%",
        spacing="4",
    )
