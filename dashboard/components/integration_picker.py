"""The integration filter of a page: type part of a name, shop or seller, pick one of the
matches; a chip shows the choice and clears it. State: ``dashboard.state.integration_filter``."""

from __future__ import annotations

from typing import Any

import reflex as rx

from dashboard.state.integration_filter import MATCHES


def _match(state: Any, match: rx.Var[dict[str, str]]) -> rx.Component:
    return rx.el.li(
        rx.button(
            rx.text(match["name"], size="2", weight="medium"),
            rx.text(match["account"], size="1", color_scheme="gray"),
            variant="ghost",
            width="100%",
            justify="between",
            on_click=state.choose_integration(match["id"], match["name"]),
        ),
        list_style="none",
        padding="0.15rem 0",
    )


def integration_picker(state: Any) -> rx.Component:
    """``state`` is a page state that mixes in IntegrationFilter."""
    return rx.cond(
        state.integration != "",
        rx.badge(
            rx.text("Integration: ", state.integration_name),
            rx.icon_button(
                rx.icon("x", size=12),
                size="1",
                variant="ghost",
                aria_label="Show all integrations",
                on_click=state.clear_integration,
            ),
            size="3",
            variant="soft",
            radius="full",
        ),
        rx.box(
            rx.input(
                rx.input.slot(rx.icon("search", size=14)),
                placeholder="All integrations: type to filter",
                value=state.integration_search,
                on_change=state.search_integrations.debounce(250),
                aria_label="Filter by integration",
                width="16rem",
            ),
            rx.cond(
                state.integration_search != "",
                rx.card(
                    rx.el.ul(
                        rx.foreach(state.integration_matches, lambda m: _match(state, m)),
                        aria_label="Matching integrations",
                        margin="0",
                        padding="0",
                    ),
                    rx.cond(
                        state.integration_matches.length() == 0,
                        rx.text("No integration matches.", size="2", color_scheme="gray"),
                    ),
                    rx.cond(
                        state.integration_more,
                        rx.text(
                            f"The first {MATCHES} by name; type more to narrow down.",
                            size="1",
                            color_scheme="gray",
                        ),
                    ),
                    position="absolute",
                    top="calc(100% + 4px)",
                    left="0",
                    width="22rem",
                    max_height="24rem",
                    overflow_y="auto",
                    z_index="10",
                ),
            ),
            position="relative",
        ),
    )
