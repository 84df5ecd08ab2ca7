"""Integrations: every connected store and seller, searchable and paginated in SQL.

The page's state lives in ``dashboard.state.integrations``; the table, filters and bulk bar
are here."""

from __future__ import annotations

import reflex as rx

from dashboard import routes
from dashboard.components.common import (
    HEALTH_COLORS,
    empty_state,
    last_sync,
    pager,
    platform_mark,
    status_badge,
)
from dashboard.components.formats import relative_time
from dashboard.components.shell import template
from dashboard.state.integrations import HEALTH_FILTER, IntegrationsState
from dashboard.state.live import live_region

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
                platform_mark(row["platform"]),
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
        rx.table.cell(last_sync(row["last_sync"], row["status"])),
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
        min_height="2rem",  # not a fixed height: on a phone the bar wraps onto two lines
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
