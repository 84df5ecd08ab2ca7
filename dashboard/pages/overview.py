"""Overview: what needs attention now, live: health cards that add up to the total, the open
incidents, syncs running, records per hour."""

from __future__ import annotations

import time
from typing import Any, ClassVar

import reflex as rx

from dashboard import routes
from dashboard.components.common import empty_state, stat_card
from dashboard.components.notifications import incident_item
from dashboard.components.run_progress import run_progress
from dashboard.components.shell import template
from dashboard.db import in_session
from dashboard.models import Role
from dashboard.services import incidents as incidents_service
from dashboard.services import overview as overview_service
from dashboard.services import runs as runs_service
from dashboard.state.auth import AuthState
from dashboard.state.guard import not_an_event, requires
from dashboard.state.live import (
    SHARED_MIN_INTERVAL_SECONDS,
    LiveState,
    assign_changed,
    live_region,
    shared_read,
)

CHART_HEIGHT = 240
PANEL_HEIGHT = "17rem"  # fixed, so rows coming and going never move the page
ATTENTION_SHOWN = 10
# The health cards cost ~150 ms at 10,000 integrations: read when the integrations'
# watermark moves (a status, a sync ending, an incident opening or moving), and at least
# this often anyway, since a run turning "waiting" or "stalled" moves no watermark.
CARDS_AT_LEAST_EVERY = 30.0
CARD_BUCKETS = ("healthy", "attention", "access", "not_connected", "paused")


# The cards, the attention panel and the open count, with the watermark they were read at
# and when (monotonic): shared by the process's Overviews like the read itself.
_slow_part: dict[str, Any] = {"mark": None, "read_at": -CARDS_AT_LEAST_EVERY, "rows": {}}


def _read_overview(session: Any) -> dict[str, Any]:
    # The database is part of the mark (tests give each their own).
    mark = (id(session.get_bind()), overview_service.integrations_watermark(session=session))
    due = time.monotonic() - _slow_part["read_at"] >= CARDS_AT_LEAST_EVERY
    if mark != _slow_part["mark"] or due:
        cards = overview_service.health_cards(session=session)
        _slow_part.update(mark=mark, read_at=time.monotonic(), rows={
            "cards": {bucket: cards[bucket] for bucket in (*CARD_BUCKETS, "total")},
            "attention": overview_service.attention(session=session, limit=ATTENTION_SHOWN),
            "open_incidents": incidents_service.open_count(session=session),
        })  # fmt: skip
    return {
        **_slow_part["rows"],
        "failures_24h": overview_service.failures_since(session=session, hours=24),
        "per_hour": overview_service.live_records_per_hour(session=session, hours=24),
        "running": runs_service.list_runs(session=session, status="running", limit=10),
        "reauth": overview_service.needs_reauth(session=session, limit=10),
    }


class OverviewState(LiveState, AuthState):
    min_interval: ClassVar[float] = SHARED_MIN_INTERVAL_SECONDS  # its read is shared
    loaded: bool = False
    # Every integration in exactly one bucket (overview_service.health_cards): they add up.
    cards: dict[str, int] = {bucket: 0 for bucket in (*CARD_BUCKETS, "total")}
    attention: list[dict[str, Any]] = []
    open_incidents: int = 0
    failures_24h: int = 0
    per_hour: list[dict[str, Any]] = []
    running: list[dict[str, Any]] = []
    reauth: list[dict[str, str]] = []

    @rx.var
    def total_integrations(self) -> int:
        return self.cards.get("total", 0)

    @rx.var
    def more_incidents(self) -> str:
        hidden = self.open_incidents - len(self.attention)
        return f"and {hidden} more in the bell" if hidden > 0 else ""

    @rx.var
    def records_24h(self) -> str:
        return f"{sum(int(hour['records']) for hour in self.per_hour):,}"

    @not_an_event
    async def fetch(self) -> object:
        # The same for every viewer: one read per change for all open Overviews.
        return await shared_read("overview", lambda: in_session(_read_overview))

    @not_an_event
    def apply(self, data: Any) -> None:
        assign_changed(self, {**data, "loaded": True})

    @rx.event
    @requires(Role.VIEWER, quiet=True)
    async def load_overview(self):
        self.apply(await self.fetch())


def panel(title: str, *children: rx.Component, **props: Any) -> rx.Component:
    return rx.card(
        rx.vstack(rx.heading(title, size="3"), *children, spacing="3", height="100%"),
        height=PANEL_HEIGHT,
        **props,
    )


def records_chart() -> rx.Component:
    return panel(
        "Records synced per hour",
        rx.box(
            rx.recharts.bar_chart(
                rx.recharts.cartesian_grid(stroke_dasharray="3 3", vertical=False),
                rx.recharts.bar(
                    data_key="records",
                    name="Records",
                    fill=rx.color("accent", 9),
                    is_animation_active=False,  # redrawn every second: no replayed animation
                ),
                # Recharts drops the labels that would overlap: every third hour on a wide
                # screen ran into each other on a phone.
                rx.recharts.x_axis(
                    data_key="hour", interval="preserveStartEnd", min_tick_gap=24, tick_line=False
                ),
                rx.recharts.y_axis(allow_decimals=False, width=56),
                rx.recharts.graphing_tooltip(cursor=False),
                data=OverviewState.per_hour,
                width="100%",
                height=CHART_HEIGHT - 40,
            ),
            role="img",
            aria_label="Records synced per hour over the last 24 hours",
            width="100%",
            id="records-per-hour",
        ),
        rx.text(
            OverviewState.records_24h,
            " records in the last 24 h (hours in UTC)",
            size="1",
            color_scheme="gray",
        ),
        flex="2",
        min_width="20rem",
    )


def running_row(run: rx.Var[dict]) -> rx.Component:
    return rx.hstack(
        rx.link(
            run["integration"],
            " · ",
            run["stream"],
            href="/integrations/" + run["integration_id"].to(str),
            size="2",
            min_width="10rem",
            flex="1",
        ),
        run_progress(run),
        align="center",
        width="100%",
    )


def running_panel() -> rx.Component:
    return panel(
        "Syncing now",
        rx.cond(
            OverviewState.running.length() > 0,
            rx.scroll_area(
                rx.vstack(rx.foreach(OverviewState.running, running_row), spacing="2"),
                type="auto",
                scrollbars="vertical",
                flex="1",
            ),
            rx.text("No sync is running.", size="2", color_scheme="gray"),
        ),
        flex="1",
        min_width="20rem",
    )


def attention_panel() -> rx.Component:
    """The open incidents (what the bell lists): one per integration and cause, in plain
    words, with what to do and a link to the integration."""
    return panel(
        "Needs attention",
        rx.cond(
            OverviewState.attention.length() > 0,
            rx.scroll_area(
                rx.vstack(
                    rx.foreach(OverviewState.attention, incident_item),
                    rx.cond(
                        OverviewState.more_incidents != "",
                        rx.text(OverviewState.more_incidents, size="1", color_scheme="gray"),
                    ),
                    spacing="1",
                    width="100%",
                ),
                type="auto",
                scrollbars="vertical",
                flex="1",
            ),
            rx.text(
                "Nothing needs attention: no stream is failing or stalled and every "
                "integration's access works.",
                size="2",
                color_scheme="gray",
            ),
        ),
        flex="1",
        min_width="20rem",
        id="attention",
    )


def reauth_panel() -> rx.Component:
    return panel(
        "Waiting for reconnection",
        rx.cond(
            OverviewState.reauth.length() > 0,
            rx.scroll_area(
                rx.vstack(
                    rx.foreach(
                        OverviewState.reauth,
                        lambda row: rx.hstack(
                            rx.icon("key-round", size=16, color=rx.color("orange", 10)),
                            rx.link(row["name"], href="/integrations/" + row["id"], size="2"),
                            rx.text(row["account"], size="1", color_scheme="gray"),
                            align="center",
                        ),
                    ),
                    spacing="2",
                ),
                type="auto",
                scrollbars="vertical",
                flex="1",
            ),
            rx.text("No integration waits for its merchant.", size="2", color_scheme="gray"),
        ),
        flex="1",
        min_width="16rem",
    )


def dashboard_view() -> rx.Component:
    return rx.vstack(
        # Healthy + needs attention + access lost + not connected + paused = integrations.
        rx.flex(
            stat_card("Integrations", OverviewState.total_integrations, "plug"),
            stat_card("Healthy", OverviewState.cards["healthy"], "circle-check"),
            stat_card("Need attention", OverviewState.cards["attention"], "triangle-alert"),
            stat_card("Access lost", OverviewState.cards["access"], "key-round"),
            stat_card("Not connected", OverviewState.cards["not_connected"], "circle-dashed"),
            stat_card("Paused", OverviewState.cards["paused"], "circle-pause"),
            wrap="wrap",
            spacing="3",
            width="100%",
            id="health-cards",
        ),
        rx.flex(records_chart(), attention_panel(), wrap="wrap", spacing="3", width="100%"),
        rx.flex(
            running_panel(),
            reauth_panel(),
            stat_card("Failed runs (24 h)", OverviewState.failures_24h, "circle-x"),
            wrap="wrap",
            spacing="3",
            width="100%",
        ),
        spacing="3",
        width="100%",
    )


@template(route=routes.OVERVIEW, title="Overview", on_load=OverviewState.load_overview)
def overview() -> rx.Component:
    return live_region(
        rx.cond(
            ~OverviewState.loaded,
            rx.center(rx.spinner(size="3"), min_height="20rem"),
            rx.cond(
                OverviewState.total_integrations == 0,
                empty_state(
                    "plug",
                    "No integrations yet",
                    "Connect a Shopify store or an Amazon seller account to start syncing its "
                    "catalog, inventory and orders. Live sync activity will show here.",
                    rx.cond(
                        OverviewState.can_manage,
                        rx.link(
                            rx.button(rx.icon("plus"), "Add integration"),
                            href=routes.NEW_INTEGRATION,
                        ),
                        rx.text("Ask a manager to add the first integration.", size="2"),
                    ),
                ),
                dashboard_view(),
            ),
        ),
        watch=OverviewState.watch,
        stop=OverviewState.stop_watching,
    )
