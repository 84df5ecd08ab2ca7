"""The bell in the header: unread count, the newest notifications, links to the integration."""

from __future__ import annotations

import reflex as rx

from dashboard.state.live import live_region
from dashboard.state.notifications import NotificationState

KIND_ICONS = (("needs_reauth", "key-round"), ("run_failed", "circle-x"))


def notification_item(item: rx.Var[dict]) -> rx.Component:
    unread = item["unread"].to(bool)
    return rx.hstack(
        rx.icon(
            rx.match(item["kind"], *KIND_ICONS, "bell"),
            size=18,
            color=rx.color("red", 10),
            flex_shrink="0",
            margin_top="2px",
        ),
        rx.vstack(
            rx.cond(
                item["integration_id"] != "",
                rx.link(
                    item["message"],
                    href="/integrations/" + item["integration_id"].to(str),
                    size="2",
                    weight=rx.cond(unread, "bold", "regular"),
                ),
                rx.text(item["message"], size="2", weight=rx.cond(unread, "bold", "regular")),
            ),
            rx.text(rx.moment(item["created_at"], from_now=True), size="1", color_scheme="gray"),
            spacing="1",
            flex="1",
            min_width="0",
        ),
        rx.cond(
            unread & NotificationState.can_manage,
            rx.icon_button(
                rx.icon("check", size=14),
                size="1",
                variant="ghost",
                on_click=NotificationState.mark_read(item["id"]),
                aria_label="Mark read",
                title="Mark read",
            ),
        ),
        align="start",
        spacing="3",
        width="100%",
        padding="0.5rem",
        border_radius="var(--radius-2)",
        background=rx.cond(unread, rx.color("accent", 2), "transparent"),
        class_name="notification",
    )


def notification_bell() -> rx.Component:
    return live_region(
        rx.popover.root(
            rx.popover.trigger(
                rx.button(
                    rx.icon("bell", size=18),
                    rx.cond(
                        NotificationState.unread > 0,
                        rx.badge(
                            NotificationState.unread_label,
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
                    rx.hstack(
                        rx.heading("Notifications", size="3"),
                        rx.spacer(),
                        rx.cond(
                            NotificationState.can_manage & (NotificationState.unread > 0),
                            rx.button(
                                "Mark all read",
                                size="1",
                                variant="soft",
                                on_click=NotificationState.mark_all_read,
                            ),
                        ),
                        align="center",
                        width="100%",
                    ),
                    rx.cond(
                        NotificationState.items.length() > 0,
                        rx.scroll_area(
                            rx.vstack(
                                rx.foreach(NotificationState.items, notification_item),
                                spacing="1",
                                width="100%",
                            ),
                            max_height="24rem",
                            type="auto",
                            scrollbars="vertical",
                        ),
                        rx.text(
                            "Nothing needs attention. Failed syncs and integrations that "
                            "need reconnecting show up here.",
                            size="2",
                            color_scheme="gray",
                        ),
                    ),
                    spacing="3",
                    width="100%",
                ),
                width="min(26rem, 94vw)",
                aria_label="Notifications",
            ),
        ),
        watch=NotificationState.watch,
        stop=NotificationState.stop_watching,
        width="auto",
    )
