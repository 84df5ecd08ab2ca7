"""Honest progress of a run, for the Runs page and the Overview's "Syncing now".

A bar fills only when the total is known; while it is not, the bar is indeterminate (a
segment that moves, never a full bar). A rate shows only while records flow. A run waiting
for a known rate-limit window (or to retry) says until when; one waiting for Amazon to
prepare a report says when the hub last asked; a stalled one says so and why. The row is a
``runs.run_summary`` (its ``_live`` keys).
"""

from __future__ import annotations

import reflex as rx

from dashboard.components.formats import exact_time, number

INDETERMINATE_CSS = (
    "@keyframes hub-indeterminate{0%{left:-35%}100%{left:100%}}"
    "@media (prefers-reduced-motion: reduce){.hub-indeterminate>div{animation:none!important;"
    "left:0!important;width:100%!important;opacity:.35}}"
)


def indeterminate_bar(width: str = "8rem") -> rx.Component:
    """Work under way, how much unknown: a short segment sliding along an empty track."""
    return rx.box(
        rx.el.style(INDETERMINATE_CSS),
        rx.box(
            position="absolute",
            top="0",
            bottom="0",
            width="35%",
            border_radius="inherit",
            background=rx.color("accent", 9),
            animation="hub-indeterminate 1.4s ease-in-out infinite",
        ),
        position="relative",
        overflow="hidden",
        height="var(--space-2)",
        width=width,
        border_radius="9999px",
        background=rx.color("gray", 4),
        role="progressbar",
        aria_label="Progress: total not known yet",
        aria_busy="true",
        class_name="hub-indeterminate",
    )


def progress_bar(row: rx.Var[dict], width: str = "8rem") -> rx.Component:
    return rx.cond(
        row["total_known"].to(bool) & row["has_progress"].to(bool),
        rx.progress(value=row["progress"], width=width, aria_label="Progress"),
        indeterminate_bar(width),
    )


def run_activity(row: rx.Var[dict]) -> rx.Component:
    """What a running run is doing, in words: stalled, waiting, or reading (with its rate)."""
    records = rx.cond(
        row["total_known"].to(bool),
        rx.text.span(number(row["records_done"]), " of ", number(row["records_total"]), " records"),
        rx.text.span(number(row["records_read"]), " records"),
    )
    return rx.cond(
        row["stalled"].to(bool),
        rx.text(
            "Stalled: ",
            row["stall_reason"],
            size="1",
            color=rx.color("red", 11),
            class_name="run-activity",
        ),
        rx.cond(
            row["waiting"].to(bool),
            rx.text(
                rx.match(
                    row["waiting_for"].to(str),
                    (
                        "report",
                        rx.text.span(
                            "Waiting for Amazon to prepare the report (checked ",
                            exact_time(row["waiting_checked_at"], clock_only=True),
                            ")",
                        ),
                    ),
                    (
                        "retry",
                        rx.text.span(
                            "Waiting to retry (next attempt ",
                            exact_time(row["waiting_until"], clock_only=True),
                            ")",
                        ),
                    ),
                    rx.text.span(
                        "Waiting for rate limit (next call ",
                        exact_time(row["waiting_until"], clock_only=True),
                        ")",
                    ),
                ),
                size="1",
                color=rx.color("amber", 11),
                title=row["waiting_reason"],
                class_name="run-activity",
            ),
            rx.text(
                records,
                rx.cond(
                    row["flowing"].to(bool),
                    rx.text.span(" · ", number(row["rate_now"]), "/s"),
                ),
                size="1",
                class_name="run-activity",
            ),
        ),
    )


def run_progress(row: rx.Var[dict], width: str = "8rem") -> rx.Component:
    return rx.vstack(progress_bar(row, width), run_activity(row), spacing="1")
