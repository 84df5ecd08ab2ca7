"""Add-integration wizard: platform -> details -> streams and schedule -> connect or link.

The wizard's state lives in ``dashboard.state.wizard``; its steps and the page are here."""

from __future__ import annotations

import reflex as rx

from dashboard import routes
from dashboard.components.common import (
    card_button,
    field_error,
    platform_mark,
    visually_hidden,
)
from dashboard.components.formats import relative_time
from dashboard.components.shell import template
from dashboard.services.schedules import MAX_INTERVAL_MINUTES, MIN_INTERVAL_MINUTES
from dashboard.state.wizard import AMAZON_AVAILABLE, WizardState


def connected_warning() -> rx.Component:
    """The shop is connected to another integration already: say so and link to it."""
    return rx.callout(
        rx.text(
            WizardState.shop_normalized,
            " is already connected to ",
            rx.link(
                WizardState.connected_name,
                href="/integrations/" + WizardState.connected_id,
                weight="bold",
            ),
            ". One shop syncs through one integration: open that one to reconnect or manage it. "
            "A second connection would be refused.",
        ),
        icon="triangle_alert",
        color_scheme="amber",
        role="alert",
        id="already-connected",
    )


def step_header(number: int, title: str) -> rx.Component:
    return rx.hstack(
        rx.badge(
            str(number), variant=rx.cond(WizardState.step == number, "solid", "soft"), radius="full"
        ),
        rx.text(title, weight=rx.cond(WizardState.step == number, "bold", "regular")),
        align="center",
    )


def platform_card(platform: str, label: str, body: str) -> rx.Component:
    return card_button(
        rx.vstack(
            platform_mark(platform, size=28),
            rx.text(visually_hidden("Choose "), label, size="4", weight="bold", as_="span"),
            rx.text(body, size="2", color_scheme="gray", as_="span"),
            spacing="2",
        ),
        on_click=WizardState.choose_platform(platform),
        # Until the page is hydrated its on_load (which starts the wizard afresh) has not run:
        # a choice made earlier would be wiped by it a moment later.
        disabled=~rx.State.is_hydrated,
        width="16rem",
    )


def custom_app_section() -> rx.Component:
    """Optional: the merchant's own app (custom distribution is one app per merchant)."""
    return rx.el.details(
        rx.el.summary("Custom app credentials (optional)"),
        rx.cond(
            WizardState.own_app_saved,
            rx.text("Saved and encrypted; they are not shown again.", size="2"),
            rx.vstack(
                rx.text(
                    "Only for an app made with custom distribution for this merchant. Leave "
                    "empty to use the hub's app. Stored encrypted, never shown again.",
                    size="2",
                    color_scheme="gray",
                ),
                rx.el.label("Client ID", html_for="app-client-id", font_weight="500"),
                rx.input(
                    id="app-client-id",
                    on_blur=WizardState.set_app_client_id,
                    autocomplete="off",
                    width="24rem",
                ),
                rx.el.label("Client secret", html_for="app-client-secret", font_weight="500"),
                rx.input(
                    id="app-client-secret",
                    type="password",
                    on_blur=WizardState.set_app_client_secret,
                    autocomplete="new-password",
                    aria_describedby="app-error",
                    width="24rem",
                ),
                field_error(WizardState.app_error, "app-error"),
                spacing="2",
            ),
        ),
        padding_top="0.5rem",
    )


def details_step() -> rx.Component:
    return rx.vstack(
        rx.el.label("Name", html_for="integration-name", font_weight="500"),
        rx.input(
            id="integration-name",
            value=WizardState.name,
            on_change=WizardState.set_name,
            placeholder="e.g. Acme Outdoor US",
            aria_invalid=rx.cond(WizardState.name_error != "", "true", "false"),
            aria_describedby="integration-name-error",
            width="24rem",
        ),
        field_error(WizardState.name_error, "integration-name-error"),
        rx.cond(
            WizardState.platform == "shopify",
            rx.vstack(
                rx.el.label("Shop domain", html_for="shop-domain", font_weight="500"),
                rx.input(
                    id="shop-domain",
                    value=WizardState.shop_domain,
                    on_change=WizardState.set_shop_domain,
                    placeholder="my-store, my-store.myshopify.com or its admin URL",
                    aria_invalid=rx.cond(WizardState.shop_error != "", "true", "false"),
                    aria_describedby="shop-domain-hint shop-domain-error",
                    width="24rem",
                ),
                rx.cond(
                    WizardState.shop_normalized != "",
                    rx.text(
                        "Shop: ",
                        rx.code(WizardState.shop_normalized),
                        size="2",
                        id="shop-domain-hint",
                        aria_live="polite",
                    ),
                    rx.text(
                        "The store's handle, its myshopify.com domain or its admin URL.",
                        size="2",
                        color_scheme="gray",
                        id="shop-domain-hint",
                    ),
                ),
                field_error(WizardState.shop_error, "shop-domain-error"),
                custom_app_section(),
            ),
            rx.vstack(
                rx.el.label("Region", html_for="region", font_weight="500"),
                rx.select.root(
                    rx.select.trigger(id="region", aria_label="Region"),
                    rx.select.content(
                        rx.select.item("North America (NA)", value="na"),
                        rx.select.item("Europe (EU)", value="eu"),
                        rx.select.item("Far East (FE)", value="fe"),
                    ),
                    value=WizardState.region,
                    on_change=WizardState.set_region,
                ),
                rx.text("Marketplaces", weight="medium"),
                rx.grid(
                    rx.foreach(
                        WizardState.marketplace_options,
                        lambda m: rx.checkbox(
                            m[1],
                            checked=WizardState.marketplaces.contains(m[0]),
                            on_change=lambda _: WizardState.toggle_marketplace(m[0]),
                        ),
                    ),
                    columns=rx.breakpoints(initial="1", sm="2", md="3"),
                    spacing="2",
                    width="min(40rem, 100%)",
                ),
                field_error(WizardState.marketplaces_error, "marketplaces-error"),
                rx.text(
                    "One Seller Central consent covers the whole region; the hub syncs the "
                    "marketplaces ticked here.",
                    size="2",
                    color_scheme="gray",
                ),
            ),
        ),
        rx.hstack(
            rx.button("Back", variant="soft", on_click=WizardState.go_to(1)),
            rx.button("Next", on_click=WizardState.go_to(3)),
        ),
        spacing="3",
    )


def streams_step() -> rx.Component:
    return rx.vstack(
        rx.text("What to sync and how often (minutes):", weight="medium"),
        rx.foreach(
            WizardState.stream_options,
            lambda s: rx.vstack(
                rx.hstack(
                    rx.checkbox(
                        s[1],
                        checked=WizardState.streams[s[0]],
                        on_change=lambda _: WizardState.toggle_stream(s[0]),
                    ),
                    rx.input(
                        value=WizardState.intervals[s[0]],
                        type="number",
                        min=MIN_INTERVAL_MINUTES,
                        max=MAX_INTERVAL_MINUTES,
                        width="7rem",
                        on_change=lambda v: WizardState.set_interval(s[0], v),
                        aria_label="Interval in minutes",
                        aria_describedby="interval-error-" + s[0],
                    ),
                    align="center",
                ),
                field_error(WizardState.interval_errors[s[0]].to(str), "interval-error-" + s[0]),
                spacing="1",
            ),
        ),
        rx.text(
            f"From {MIN_INTERVAL_MINUTES} minutes to 7 days ({MAX_INTERVAL_MINUTES:,} minutes); "
            "a cron schedule can be set on the integration's Settings tab afterwards.",
            size="1",
            color_scheme="gray",
        ),
        rx.cond(WizardState.connected_id != "", connected_warning()),
        rx.hstack(
            rx.button("Back", variant="soft", on_click=WizardState.go_to(2)),
            rx.button(
                rx.icon("plug-zap"),
                "Connect now",
                disabled=WizardState.connected_id != "",
                on_click=WizardState.connect_now,
            ),
            rx.button(
                rx.icon("link"),
                "Create connect link",
                variant="outline",
                disabled=WizardState.connected_id != "",
                on_click=WizardState.create_link,
            ),
        ),
        rx.text(
            "Connect now opens the platform's consent page in this browser. A connect "
            "link lets the merchant approve access themselves, no hub account needed.",
            size="2",
            color_scheme="gray",
            max_width="36rem",
        ),
        spacing="3",
    )


def link_step() -> rx.Component:
    return rx.vstack(
        rx.callout("Send this link to the merchant. It works once.", icon="link"),
        rx.hstack(
            rx.code(WizardState.link_url, size="3", id="connect-link"),
            rx.button(
                rx.icon("copy"),
                "Copy",
                variant="soft",
                on_click=[rx.set_clipboard(WizardState.link_url), rx.toast.success("Copied")],
            ),
            align="center",
        ),
        rx.text("Expires ", relative_time(WizardState.link_expires), size="2"),
        rx.hstack(
            # A link drawn as a button, not a button inside a link (two tab stops, one action).
            rx.button(
                rx.link("Open the integration", href="/integrations/" + WizardState.created_id),
                as_child=True,
            ),
            rx.button("Add another", variant="soft", on_click=WizardState.reset_wizard),
        ),
        spacing="3",
    )


@template(route=routes.NEW_INTEGRATION, title="Add integration", on_load=WizardState.reset_wizard)
def new_integration() -> rx.Component:
    return rx.cond(
        WizardState.can_manage,
        rx.vstack(
            rx.hstack(
                step_header(1, "Platform"),
                step_header(2, "Details"),
                step_header(3, "Streams and schedule"),
                step_header(4, "Connect"),
                spacing="5",
                wrap="wrap",
            ),
            rx.cond(
                WizardState.error != "",
                rx.callout(
                    WizardState.error, icon="triangle_alert", color_scheme="red", role="alert"
                ),
            ),
            rx.match(
                WizardState.step,
                (
                    1,
                    rx.hstack(
                        platform_card(
                            "shopify",
                            "Shopify",
                            "A Shopify store: products, inventory, orders, customers.",
                        ),
                        platform_card(
                            "amazon",
                            "Amazon Seller Central",
                            "An Amazon seller: orders, listings, FBA inventory.",
                        )
                        if AMAZON_AVAILABLE
                        else rx.callout(
                            "Amazon Seller Central is not available in this version of the hub "
                            "yet: its connector is still being built.",
                            icon="info",
                            width="16rem",
                        ),
                        wrap="wrap",
                        spacing="4",
                    ),
                ),
                (2, details_step()),
                (3, streams_step()),
                (4, link_step()),
                rx.fragment(),
            ),
            spacing="5",
            width="100%",
        ),
        rx.callout("Only managers and admins can add integrations.", icon="lock"),
    )
