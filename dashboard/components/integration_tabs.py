"""The integration detail page's read-mostly tabs: status, runs, logs, webhooks (the Streams
tab is in ``integration_streams``)."""

from __future__ import annotations

import reflex as rx

from dashboard.components.common import empty_state, last_sync, status_badge
from dashboard.components.formats import exact_time, relative_time
from dashboard.state.integration_detail import LOG_LEVELS, DetailState


def fact(label: str, value: rx.Var | rx.Component) -> rx.Component:
    """One labelled line; a value not known (yet) shows as a dash, not as nothing."""
    shown = rx.cond(value != "", value, "—") if isinstance(value, rx.Var) else value
    return rx.hstack(
        rx.text(label, color_scheme="gray", size="2", min_width="9rem"),
        rx.text(shown, size="2"),
        align="center",
    )


def connect_actions() -> rx.Component:
    """Reconnect in place (this browser) or hand the merchant a reconnect link."""
    return rx.cond(
        DetailState.can_manage,
        rx.hstack(
            rx.button(
                rx.icon("plug-zap"), DetailState.connect_label, on_click=DetailState.reconnect_now
            ),
            rx.button(
                rx.icon("link"),
                rx.cond(
                    DetailState.info["status"] == "pending",
                    "New connect link",
                    "New reconnect link",
                ),
                variant="soft",
                on_click=DetailState.create_link(
                    rx.cond(DetailState.info["status"] == "pending", "connect", "reconnect")
                ),
            ),
            wrap="wrap",
        ),
    )


def status_tab() -> rx.Component:
    info = DetailState.info
    return rx.vstack(
        rx.cond(
            (info["status_detail"] != "") | DetailState.can_connect | (info["health_words"] != ""),
            rx.callout.root(
                rx.callout.icon(rx.icon("info")),
                rx.vstack(
                    rx.callout.text(
                        rx.cond(
                            info["health_words"] != "",
                            info["health_words"],
                            rx.cond(
                                info["status_detail"] != "",
                                info["status_detail"],
                                rx.cond(
                                    info["status"] == "pending",
                                    "Not connected yet. Connect it yourself, or send the merchant "
                                    "a connect link.",
                                    "Not connected. Reconnect it to resume syncing.",
                                ),
                            ),
                        )
                    ),
                    rx.cond(DetailState.can_connect, connect_actions()),
                    spacing="3",
                ),
                color_scheme="orange",
                width="100%",
            ),
        ),
        fact("Platform", info["platform"]),
        fact("Shop / seller", info["account"]),
        rx.cond(
            info["platform"] == "amazon",
            rx.fragment(
                fact("Region", info["region"]),
                fact("Marketplaces", info["marketplaces"]),
            ),
        ),
        fact("Shop name", info["shop_name"]),
        rx.cond(  # an Amazon seller has no plan, and no currency of its own (per marketplace)
            info["platform"] == "shopify",
            rx.fragment(fact("Plan", info["shop_plan"]), fact("Currency", info["currency"])),
        ),
        fact(
            "Connected",
            relative_time(info["connected_at"], empty="not yet"),
        ),
        fact(
            "Last sync",
            last_sync(info["last_sync"], info["status"]),
        ),
        rx.cond(  # a never-connected integration has no token: nothing to say about one
            info["has_token"] != "",
            rx.fragment(
                fact(
                    "Token refreshed",
                    relative_time(info["token_refreshed"], empty="—"),
                ),
                fact(
                    "Token expires",
                    relative_time(info["token_expires"], empty="does not expire"),
                ),
            ),
        ),
        rx.cond(  # SP-API grants the roles set on the app, not scopes per authorization
            info["platform"] == "shopify", fact("Scopes", info["scopes"])
        ),
        rx.cond(info["has_token"] != "", fact("Encrypted with key", info["key_id"])),
        spacing="2",
    )


def runs_tab() -> rx.Component:
    return rx.cond(
        DetailState.runs.length() > 0,
        rx.table.root(
            rx.table.header(
                rx.table.row(
                    *[
                        rx.table.column_header_cell(h)
                        for h in ("Queued", "Stream", "Status", "Progress", "Records", "Error")
                    ]
                )
            ),
            rx.table.body(
                rx.foreach(
                    DetailState.runs,
                    lambda r: rx.table.row(
                        rx.table.cell(relative_time(r["created_at"])),
                        rx.table.cell(r["stream"]),
                        rx.table.cell(status_badge(r["status"])),
                        rx.table.cell(
                            rx.cond(
                                r["has_progress"],
                                rx.progress(
                                    value=r["progress"], width="8rem", aria_label="Progress"
                                ),
                                rx.text(r["rate"], "/s", size="1"),
                            )
                        ),
                        rx.table.cell(r["records_read"]),
                        rx.table.cell(rx.text(r["error"], size="1", color_scheme="red")),
                    ),
                )
            ),
            variant="surface",
            width="100%",
        ),
        empty_state("activity", "No runs yet", "Runs appear once the integration is connected."),
    )


LEVEL_COLORS = (("error", "red"), ("warning", "amber"), ("debug", "gray"))


def log_line(event: rx.Var[dict]) -> rx.Component:
    return rx.table.row(
        rx.table.cell(exact_time(event["at"]), white_space="nowrap"),
        rx.table.cell(event["stream"]),
        rx.table.cell(
            rx.badge(event["level"], color_scheme=rx.match(event["level"], *LEVEL_COLORS, "blue"))
        ),
        rx.table.cell(rx.text(event["message"], size="2", word_break="break-word")),
    )


def logs_tab() -> rx.Component:
    return rx.vstack(
        rx.hstack(
            rx.input(
                rx.input.slot(rx.icon("search", size=16)),
                placeholder="Search the logs",
                default_value=DetailState.log_search,
                on_change=DetailState.set_log_search.debounce(300),
                aria_label="Search the logs",
                width="18rem",
            ),
            rx.select.root(
                rx.select.trigger(aria_label="Level"),
                rx.select.content(
                    *[rx.select.item(label, value=value) for value, label in LOG_LEVELS]
                ),
                value=DetailState.log_level,
                on_change=DetailState.set_log_level,
            ),
            rx.spacer(),
            rx.button(
                rx.icon("download", size=16),
                "Download JSON",
                variant="soft",
                on_click=DetailState.download_logs("json"),
            ),
            rx.button(
                rx.icon("file-text", size=16),
                "Download text",
                variant="soft",
                on_click=DetailState.download_logs("text"),
            ),
            wrap="wrap",
            width="100%",
            spacing="3",
        ),
        rx.cond(
            DetailState.logs.length() > 0,
            rx.table.root(
                rx.table.header(
                    rx.table.row(
                        *[
                            rx.table.column_header_cell(header, width=width)
                            for header, width in (
                                ("Time", "11rem"),
                                ("Stream", "8rem"),
                                ("Level", "6rem"),
                                ("Message", "auto"),
                            )
                        ]
                    )
                ),
                rx.table.body(rx.foreach(DetailState.logs, log_line)),
                variant="surface",
                size="1",
                width="100%",
                layout="fixed",
            ),
            rx.cond(
                (DetailState.log_search != "") | (DetailState.log_level != "all"),
                empty_state(
                    "search-x", "No log lines match", "Change the search or the level filter."
                ),
                empty_state("scroll-text", "No logs yet", "Each sync run writes its log here."),
            ),
        ),
        rx.text(
            "Shows the newest 200 matching lines of the 200 latest runs, live. Downloads cover "
            "the whole history with the same search and level.",
            size="1",
            color_scheme="gray",
        ),
        spacing="3",
        width="100%",
    )


def webhooks_tab() -> rx.Component:
    return rx.vstack(
        rx.heading("Subscriptions", size="3"),
        rx.cond(
            DetailState.subscriptions.length() > 0,
            rx.table.root(
                rx.table.header(
                    rx.table.row(
                        *[rx.table.column_header_cell(h) for h in ("Topic", "Sent to", "Since")]
                    )
                ),
                rx.table.body(
                    rx.foreach(
                        DetailState.subscriptions,
                        lambda sub: rx.table.row(
                            rx.table.row_header_cell(rx.code(sub["topic"])),
                            rx.table.cell(rx.text(sub["callback_url"], size="1")),
                            rx.table.cell(relative_time(sub["created_at"])),
                        ),
                    )
                ),
                variant="surface",
                size="1",
                width="100%",
            ),
            rx.text(
                rx.cond(
                    DetailState.info["platform"] == "amazon",
                    "Amazon does not send webhooks to the hub: the scheduled syncs pick up "
                    "every change.",
                    "No subscriptions yet. The hub subscribes to the store's webhooks when it "
                    "connects; until then the scheduled syncs pick up every change.",
                ),
                size="2",
                color_scheme="gray",
            ),
        ),
        rx.heading("Recent deliveries", size="3", padding_top="0.5rem"),
        rx.cond(
            DetailState.deliveries.length() > 0,
            rx.table.root(
                rx.table.header(
                    rx.table.row(
                        *[
                            rx.table.column_header_cell(h)
                            for h in ("Received", "Topic", "Status", "Processed", "Error")
                        ]
                    )
                ),
                rx.table.body(
                    rx.foreach(
                        DetailState.deliveries,
                        lambda d: rx.table.row(
                            rx.table.cell(relative_time(d["received_at"])),
                            rx.table.cell(rx.code(d["topic"])),
                            rx.table.cell(status_badge(d["status"])),
                            rx.table.cell(relative_time(d["processed_at"], empty="—")),
                            rx.table.cell(rx.text(d["error"], size="1", color_scheme="red")),
                        ),
                    )
                ),
                variant="surface",
                size="1",
                width="100%",
            ),
            rx.text(
                "No webhook deliveries received yet. The 50 newest show here as they arrive.",
                size="2",
                color_scheme="gray",
            ),
        ),
        spacing="3",
        width="100%",
    )
