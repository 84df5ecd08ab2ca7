"""The bell in the header, and the incident item it shares with the Overview's attention
panel: plain title, what to do, since when, and a link to the integration."""

from __future__ import annotations

import reflex as rx

from dashboard.components.formats import relative_time
from dashboard.state.live import live_region
from dashboard.state.notifications import NotificationState

CAUSE_ICONS = (
    ("access_lost", "key-round"),
    ("uninstalled", "unplug"),
    ("declined", "ban"),
    ("stream_failing", "circle-x"),
    ("stalled", "hourglass"),
    ("webhook_subscription_removed", "webhook"),
    ("connect_link_expired_unused", "link-2-off"),
    ("refresh_token_expiring", "timer"),
    ("lwa_secret_expiring", "key-square"),
    ("amazon_reauthorization_due", "calendar-clock"),
)


def incident_item(item: rx.Var[dict]) -> rx.Component:
    """One open incident: what is wrong, in plain words, and what to do about it."""
    return rx.hstack(
        rx.icon(
            rx.match(item["cause"], *CAUSE_ICONS, "triangle-alert"),
            size=18,
            color=rx.color("red", 10),
            flex_shrink="0",
            margin_top="2px",
        ),
        rx.vstack(
            rx.link(
                item["integration"].to(str) + ": " + item["title"].to(str),
                href=item["href"].to(str),
                size="2",
                weight="bold",
            ),
            rx.cond(
                item["advice"] != "",
                rx.text(item["advice"], size="2", class_name="incident-advice"),
            ),
            rx.text(
                "Since ",
                relative_time(item["opened_at"]),
                " · last seen ",
                relative_time(item["last_seen_at"]),
                size="1",
                color_scheme="gray",
            ),
            spacing="1",
            flex="1",
            min_width="0",
        ),
        align="start",
        spacing="3",
        width="100%",
        padding="0.5rem",
        border_radius="var(--radius-2)",
        class_name="incident",
    )


def notification_bell() -> rx.Component:
    return live_region(
        rx.popover.root(
            rx.popover.trigger(
                rx.button(
                    rx.icon("bell", size=18),
                    rx.cond(
                        NotificationState.open_incidents > 0,
                        rx.badge(
                            NotificationState.count_label,
                            color_scheme="red",
                            variant="solid",
                            radius="full",
                            aria_hidden="true",
                        ),
                    ),
                    variant="ghost",
                    aria_label=NotificationState.bell_label,
                    title=NotificationState.bell_label,
                ),
            ),
            rx.popover.content(
                rx.vstack(
                    rx.heading("Needs attention", size="3"),
                    rx.cond(
                        NotificationState.items.length() > 0,
                        rx.scroll_area(
                            rx.vstack(
                                rx.foreach(NotificationState.items, incident_item),
                                rx.cond(
                                    NotificationState.more_label != "",
                                    rx.text(
                                        NotificationState.more_label,
                                        size="1",
                                        color_scheme="gray",
                                    ),
                                ),
                                spacing="1",
                                width="100%",
                            ),
                            max_height="24rem",
                            type="auto",
                            scrollbars="vertical",
                        ),
                        rx.text(
                            "Nothing needs attention. Failing streams, stalled syncs and lost "
                            "access show up here until they are resolved.",
                            size="2",
                            color_scheme="gray",
                        ),
                    ),
                    spacing="3",
                    width="100%",
                ),
                width="min(28rem, 94vw)",
                aria_label="Open incidents",
            ),
        ),
        watch=NotificationState.watch,
        stop=NotificationState.stop_watching,
        width="auto",
    )
