"""The integration page's Streams tab (health with its cause in words, completeness) and its
history chart of runs per day."""

from __future__ import annotations

import reflex as rx

from dashboard.components.common import HEALTH_COLORS
from dashboard.components.formats import number, relative_time
from dashboard.state.integration_detail import DetailState


def health_badge(value: rx.Var[str]) -> rx.Component:
    """A health state as a badge; the value may still be undefined while the page loads."""
    return rx.badge(
        rx.match(value, *[(k, k.replace("_", " ")) for k in HEALTH_COLORS if "_" in k], value),
        color_scheme=rx.match(value, *HEALTH_COLORS.items(), "gray"),
        variant="soft",
        radius="full",
    )


def health_cell(s: rx.Var[dict]) -> rx.Component:
    return rx.vstack(
        health_badge(s["health"]),
        rx.cond(
            s["cause_words"] != "",
            rx.text(s["cause_words"], size="1", color_scheme="gray", max_width="22rem"),
        ),
        rx.cond(
            s["consecutive_failures"].to(int) > 1,
            rx.text(s["consecutive_failures"], " failures in a row", size="1", color_scheme="red"),
        ),
        rx.cond(
            s["last_success_at"] != "",
            rx.text("last success ", relative_time(s["last_success_at"]), size="1"),
        ),
        spacing="1",
        align="start",
    )


def records_cell(s: rx.Var[dict]) -> rx.Component:
    """The hub's live count, beside the platform's own count of the last full pass."""
    return rx.vstack(
        rx.text(number(s["records"]), size="2"),
        rx.cond(
            s["counted"],
            rx.fragment(
                rx.text(
                    number(s["platform_count"]),
                    " on ",
                    rx.cond(DetailState.info["platform"] == "amazon", "Amazon", "Shopify"),
                    size="1",
                    color_scheme="gray",
                ),
                rx.badge(
                    s["drift_words"],
                    color_scheme=rx.cond(s["drifting"], "red", "green"),
                    variant="soft",
                    size="1",
                ),
            ),
            rx.cond(
                s["countable"],
                rx.text("counted after a full pass", size="1", color_scheme="gray"),
            ),
        ),
        spacing="1",
        align="start",
    )


def stream_actions(s: rx.Var[dict]) -> rx.Component:
    """Only what the stream offers now (``services.actions``): none while it is off, or its
    integration was never connected."""
    offered = s["actions"].to(list[str])
    return rx.hstack(
        rx.cond(
            offered.contains("sync"),
            rx.button("Sync now", size="1", on_click=DetailState.sync_now(s["stream"])),
        ),
        rx.cond(
            offered.contains("resume"),
            rx.button(
                "Resume",
                size="1",
                variant="soft",
                on_click=DetailState.set_stream_paused(s["stream"], False),
            ),
        ),
        rx.cond(
            offered.contains("pause"),
            rx.button(
                "Pause",
                size="1",
                variant="soft",
                on_click=DetailState.set_stream_paused(s["stream"], True),
            ),
        ),
        rx.cond(
            offered.contains("full_resync"),
            rx.button(
                "Full resync",
                size="1",
                variant="ghost",
                on_click=DetailState.full_resync(s["stream"]),
            ),
        ),
    )


def stream_row(s: rx.Var[dict]) -> rx.Component:
    return rx.table.row(
        rx.table.row_header_cell(s["stream"]),
        rx.table.cell(health_cell(s)),
        rx.table.cell(s["schedule"]),
        rx.table.cell(records_cell(s)),
        rx.table.cell(relative_time(s["last_run"], empty="never")),
        rx.table.cell(
            rx.cond(
                ~s["enabled"].to(bool),
                rx.badge("off", color_scheme="gray"),
                rx.cond(
                    s["paused"],
                    rx.badge("paused", color_scheme="amber"),
                    relative_time(s["next_run"], empty="—", class_name="next-run"),
                ),
            )
        ),
        rx.table.cell(stream_actions(s)),
        # As an attribute, not the component's id: Reflex makes a React ref of a computed
        # id, named after the Var's Python hash, which differs between starts and so forced
        # a frontend rebuild on every start (dashboard/serve_prod.py).
        custom_attrs={"id": "stream-" + s["stream"].to(str)},
    )


def history_chart() -> rx.Component:
    """Runs per day over the last 7 days: succeeded and failed bars, records as a line."""
    return rx.vstack(
        rx.heading("Last 7 days", size="3"),
        rx.box(
            rx.recharts.composed_chart(
                rx.recharts.cartesian_grid(stroke_dasharray="3 3", vertical=False),
                rx.recharts.bar(
                    data_key="succeeded",
                    name="Runs succeeded",
                    y_axis_id="runs",
                    stack_id="runs",
                    fill=rx.color("green", 9),
                    is_animation_active=False,
                ),
                rx.recharts.bar(
                    data_key="failed",
                    name="Runs failed",
                    y_axis_id="runs",
                    stack_id="runs",
                    fill=rx.color("red", 9),
                    is_animation_active=False,
                ),
                rx.recharts.line(
                    data_key="records",
                    name="Records",
                    y_axis_id="records",
                    stroke=rx.color("accent", 9),
                    is_animation_active=False,
                ),
                rx.recharts.x_axis(data_key="day", tick_line=False),
                rx.recharts.y_axis(y_axis_id="runs", allow_decimals=False, width=40),
                rx.recharts.y_axis(
                    y_axis_id="records", orientation="right", allow_decimals=False, width=64
                ),
                rx.recharts.graphing_tooltip(cursor=False),
                rx.recharts.legend(),
                data=DetailState.history,
                width="100%",
                height=220,
            ),
            role="img",
            aria_label="Runs succeeded and failed, and records read, per day over the last 7 days",
            width="100%",
            id="runs-per-day",
        ),
        rx.text(
            "Days in UTC; a run counts on the day it was queued.", size="1", color_scheme="gray"
        ),
        width="100%",
        spacing="2",
    )


def streams_tab() -> rx.Component:
    return rx.vstack(
        rx.table.root(
            rx.table.header(
                rx.table.row(
                    *[
                        rx.table.column_header_cell(h)
                        for h in (
                            "Stream",
                            "Health",
                            "Every",
                            "Records",
                            "Last run",
                            "Next run",
                            "",
                        )
                    ]
                )
            ),
            rx.table.body(rx.foreach(DetailState.streams, stream_row)),
            variant="surface",
            width="100%",
        ),
        history_chart(),
        spacing="4",
        width="100%",
    )
