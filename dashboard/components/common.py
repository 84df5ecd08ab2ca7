"""Small building blocks shared by pages."""

from __future__ import annotations

import reflex as rx

from dashboard.components.formats import relative_time

STATUS_COLORS = {
    "pending": "gray",
    "connected": "green",
    "syncing": "blue",
    "needs_reauth": "orange",
    "error": "red",
    "paused": "amber",
    "disconnected": "gray",
    "queued": "gray",
    "running": "blue",
    "succeeded": "green",
    "partial": "amber",
    "failed": "red",
    "cancelled": "gray",
    "interrupted": "orange",
    "received": "gray",
    "processed": "green",
    "ignored": "gray",
}


# Stream health (services/health.py) and an integration's rolled-up status, as badge colours:
# one palette for every screen that shows them (Integrations list, integration page).
HEALTH_COLORS = {
    "healthy": "green",
    "connected": "green",
    "syncing": "blue",
    "waiting": "blue",
    "degraded": "amber",
    "paused": "amber",
    "stalled": "orange",
    "needs_reauth": "orange",
    "declined": "orange",
    "failing": "red",
    "uninstalled": "red",
    "never_run": "gray",
    "pending": "gray",
    "disconnected": "gray",
}

def status_badge(status: rx.Var[str] | str) -> rx.Component:
    color = rx.match(status, *[(k, v) for k, v in STATUS_COLORS.items()], "gray")
    return rx.badge(
        status.replace("_", " ")
        if isinstance(status, str)
        # A match, not a string method: the value may still be undefined while a page loads.
        else rx.match(
            status, *[(s, s.replace("_", " ")) for s in STATUS_COLORS if "_" in s], status
        ),
        color_scheme=color,
        variant="soft",
        radius="full",
    )


def last_sync(last_sync_at: rx.Var[str], status: rx.Var[str]) -> rx.Component:
    """When the integration last finished a sync; "first sync running" rather than "never"
    while its first one runs, which may already have stored thousands of records."""
    return rx.cond(
        (last_sync_at.to(str) == "") & (status == "syncing"),
        rx.text.span("first sync running"),
        relative_time(last_sync_at, empty="never"),
    )


def empty_state(icon: str, title: str, body: str, *actions: rx.Component) -> rx.Component:
    return rx.center(
        rx.vstack(
            rx.icon(icon, size=40, color=rx.color("gray", 9)),
            rx.heading(title, size="4"),
            rx.text(body, color_scheme="gray", text_align="center", max_width="32rem"),
            *actions,
            align="center",
            spacing="3",
        ),
        padding="3rem 1rem",
        border=f"1px dashed {rx.color('gray', 6)}",
        border_radius="var(--radius-4)",
        width="100%",
    )


def stat_card(label: str, value: rx.Var | str | int, icon: str) -> rx.Component:
    return rx.card(
        rx.hstack(
            rx.icon(icon, size=20, color=rx.color("accent", 10)),
            rx.vstack(
                rx.text(label, size="2", color_scheme="gray"),
                rx.heading(value, size="6"),
                spacing="0",
            ),
            align="center",
            spacing="3",
        ),
        min_width="10rem",
        flex="1",
    )


def submit_button(*children: rx.Component | str, **props: object) -> rx.Component:
    """A form's submit button, enabled only once the page is hydrated. Before that a submit
    would be the browser's own, sending the form's fields (passwords too) in the URL; the
    forms that carry secrets also say ``method="post"``, so even then they stay out of it."""
    return rx.button(*children, type="submit", disabled=~rx.State.is_hydrated, **props)


def count_pages(total: int, page_size: int) -> int:
    """Pages a paged table has: at least one, so an empty list reads "Page 1 of 1"."""
    return max(1, -(-total // page_size))


def pages_label(page: int, count: int) -> str:
    return f"Page {page + 1:,} of {count:,}"


def pager(
    summary: rx.Component,
    *,
    page: rx.Var[int],
    page_count: rx.Var[int],
    label: rx.Var[str],
    previous: rx.EventHandler,
    next_page: rx.EventHandler,
) -> rx.Component:
    """The row under a paged table: what is shown, Previous, "Page n of m", Next; the buttons
    are disabled at either end."""
    return rx.hstack(
        summary,
        rx.spacer(),
        rx.button("Previous", variant="soft", disabled=page == 0, on_click=previous),
        rx.text(label, size="2"),
        rx.button("Next", variant="soft", disabled=page + 1 >= page_count, on_click=next_page),
        width="100%",
        align="center",
    )


def platform_mark(platform: rx.Var[str] | str, size: int = 16) -> rx.Component:
    """The platform's mark, decorative (the platform's name is always written beside it).
    Shopify's comes from assets/ (simple-icons, see assets/README.md); Amazon's marks left
    simple-icons in 15.0.0 for want of Amazon's permission, so a neutral icon stands in."""
    shopify = rx.image(src="/shopify.svg", alt="", width=f"{size}px", height=f"{size}px")
    other = rx.icon("package", size=size, aria_hidden="true")
    if isinstance(platform, str):
        return shopify if platform == "shopify" else other
    return rx.cond(platform == "shopify", shopify, other)


def visually_hidden(text: str) -> rx.Component:
    """Words for screen readers only (``.visually-hidden`` in assets/styles.css)."""
    return rx.el.span(text, class_name="visually-hidden")


def card_button(
    *children: rx.Component,
    on_click: object,
    disabled: rx.Var[bool] | bool = False,
    **style: object,
) -> rx.Component:
    """A card that is one real ``<button>``: reachable with Tab, operated with Enter and Space
    like any button, named by its content (an ``aria-label`` that differs from the visible
    words fails axe's label-content-name-mismatch); ``style`` sizes the card (width ...)."""
    return rx.card(
        rx.el.button(*children, type="button", on_click=on_click, disabled=disabled),
        as_child=True,
        text_align="start",
        cursor="pointer",
        font="inherit",
        color="inherit",
        **style,
    )


def field_error(message: rx.Var[str], error_id: str | rx.Var[str]) -> rx.Component:
    """A field's error, once, right under the field (which names it in aria-describedby)."""
    return rx.cond(  # truthy: a stream without an error has no key (undefined)
        message.bool(),
        rx.text(message, color_scheme="red", size="2", id=error_id, role="alert"),
    )
