"""The signed-in shell: sidebar, header with user menu and colour mode; ``template`` wraps
``rx.page`` so a page module is just its content."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import reflex as rx

from dashboard import routes
from dashboard.components.notifications import notification_bell
from dashboard.state.auth import AuthState

NAV = (
    ("Overview", routes.OVERVIEW, "layout-dashboard"),
    ("Integrations", routes.INTEGRATIONS, "plug"),
    ("Runs", routes.RUNS, "activity"),
    ("Records", routes.RECORDS, "database"),
    ("Logs", routes.LOGS, "scroll-text"),
    ("Settings", routes.SETTINGS, "settings"),
)


def is_current(href: str) -> rx.Var[bool]:
    """Whether the browser is on ``href`` or below it (the Overview only on itself)."""
    current = rx.State.router.page.path
    return (current == href) | ((href != "/") & current.startswith(href))


def nav_link(label: str, href: str, icon: str) -> rx.Component:
    active = is_current(href)
    return rx.link(
        rx.hstack(rx.icon(icon, size=18), rx.text(label, size="3"), align="center", spacing="3"),
        href=href,
        underline="none",
        padding="0.5rem 0.75rem",
        border_radius="var(--radius-3)",
        width="100%",
        color=rx.cond(active, rx.color("accent", 11), rx.color("gray", 12)),
        background=rx.cond(active, rx.color("accent", 3), "transparent"),
        _hover={"background": rx.color("gray", 3)},
        aria_current=rx.cond(active, "page", "false"),
    )


def sub_nav(label: str, *links: tuple[str, str, rx.Var[bool] | None]) -> rx.Component:
    """A page's sub-tabs as links (label, href, shown-when or None): the one for the page
    open now is marked (underline and weight) and announced with ``aria-current``."""

    def sub_link(text: str, href: str) -> rx.Component:
        active = rx.State.router.page.path == href
        return rx.link(
            text,
            href=href,
            weight=rx.cond(active, "bold", "regular"),
            color_scheme=rx.cond(active, "accent", "gray"),
            high_contrast=True,
            underline="none",
            padding="0.25rem 0.125rem",
            border_bottom=rx.cond(active, "2px solid var(--accent-9)", "2px solid transparent"),
            aria_current=rx.cond(active, "page", "false"),
        )

    return rx.hstack(
        *[
            sub_link(text, href) if shown is None else rx.cond(shown, sub_link(text, href))
            for text, href, shown in links
        ],
        spacing="4",
        wrap="wrap",
        padding_bottom="1rem",
        role="navigation",
        aria_label=label,
    )


def sidebar() -> rx.Component:
    return rx.vstack(
        rx.hstack(
            rx.icon("cable", size=22),
            rx.heading("Connector Hub", size="4"),
            align="center",
            padding="0.5rem 0.75rem 1rem",
        ),
        *[nav_link(*item) for item in NAV],
        rx.spacer(),
        spacing="1",
        width="14rem",
        min_width="14rem",
        height="100vh",
        position="sticky",
        top="0",
        padding="1rem 0.75rem",
        border_right=f"1px solid {rx.color('gray', 5)}",
        display=["none", "none", "flex"],
        role="navigation",
        aria_label="Main navigation",
    )


def user_menu() -> rx.Component:
    # Not modal: a modal menu hides the rest of the page with aria-hidden while its controls
    # stay focusable (axe: aria-hidden-focus); Escape and Tab still close it.
    return rx.menu.root(
        rx.menu.trigger(
            rx.button(
                rx.icon("circle-user", size=16),
                # Below 480 px the icon alone: the header then fits a phone without clipping.
                rx.text(AuthState.user_email, as_="span", display=["none", "inline"]),
                variant="soft",
                # The name starts as before and holds the visible email (axe:
                # label-content-name-mismatch).
                aria_label="User menu " + AuthState.user_email,
                max_width="100%",
            ),
        ),
        rx.menu.content(
            rx.box(
                rx.text("Role: ", AuthState.user_role, size="2", color_scheme="gray"),
                padding="0.25rem 0.75rem",
            ),
            rx.menu.separator(),
            rx.menu.item("Account", on_select=rx.redirect(routes.ACCOUNT)),
            rx.menu.item("Sign out", on_select=AuthState.sign_out),
        ),
        modal=False,
    )


def header(title: str) -> rx.Component:
    return rx.hstack(
        rx.heading(title, size="6", min_width="0", overflow_wrap="anywhere"),
        rx.spacer(),
        rx.hstack(
            rx.cond(AuthState.user_email != "", notification_bell()),
            rx.color_mode.button(aria_label="Toggle light and dark"),
            user_menu(),
            align="center",
            margin_left="auto",
        ),
        align="center",
        wrap="wrap",
        width="100%",
        padding_bottom="1rem",
    )


def mobile_nav() -> rx.Component:
    return rx.hstack(
        *[
            rx.link(
                label,
                href=href,
                size="2",
                weight=rx.cond(is_current(href), "bold", "regular"),
                aria_current=rx.cond(is_current(href), "page", "false"),
            )
            for label, href, _ in NAV
        ],
        display=["flex", "flex", "none"],
        role="navigation",
        aria_label="Main navigation",
        spacing="3",
        wrap="wrap",
        padding_bottom="0.5rem",
    )


def template(
    *, route: str, title: str, on_load: Any = None, admin_only: bool = False
) -> Callable[[Callable[[], rx.Component]], Callable[[], rx.Component]]:
    """Register a signed-in page: the session check runs first on every load."""
    check = AuthState.check_admin if admin_only else AuthState.check_session
    loads = [check] + (on_load if isinstance(on_load, list) else [on_load] if on_load else [])

    def decorator(content: Callable[[], rx.Component]) -> Callable[[], rx.Component]:
        def page() -> rx.Component:
            return rx.hstack(
                sidebar(),
                rx.box(
                    mobile_nav(),
                    header(title),
                    rx.cond(
                        # Admin pages render nothing for others, not even for a moment.
                        AuthState.is_admin if admin_only else AuthState.user_email != "",
                        content(),
                        rx.center(rx.spinner(size="3"), padding="4rem"),
                    ),
                    padding=["1rem", "1.5rem"],
                    width="100%",
                    max_width="80rem",
                    # A flex item may otherwise grow to its widest table and push the whole
                    # page sideways; with 0 the tables scroll inside their own frames.
                    min_width="0",
                    role="main",
                ),
                spacing="0",
                align="start",
                width="100%",
            )

        page.__name__ = content.__name__
        return rx.page(route=route, title=f"{title} · Connector Hub", on_load=loads)(page)

    return decorator
