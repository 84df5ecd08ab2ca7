"""Add-integration wizard: platform -> details -> streams and schedule -> connect or link."""

from __future__ import annotations

import importlib.util
import uuid

import reflex as rx

from connectors.amazon.regions import MARKETPLACES, REGION_MARKETPLACES
from connectors.errors import InvalidInput
from dashboard import routes
from dashboard.components.common import card_button, platform_mark, visually_hidden
from dashboard.components.shell import template
from dashboard.db import in_session
from dashboard.models import Role
from dashboard.services import app_credentials
from dashboard.services import integrations as integration_service
from dashboard.services.integrations import AccountTaken
from dashboard.state.auth import AuthState, leave_app
from dashboard.state.guard import acting_user, requires


def _marketplace_options(region: str) -> list[list[str]]:
    """(id, label) of a region's marketplaces, from the connector's one list."""
    marketplaces = (MARKETPLACES[m] for m in REGION_MARKETPLACES.get(region, ()))
    return [[m.id, f"{m.name} ({m.country})"] for m in marketplaces]


AMAZON_AVAILABLE = importlib.util.find_spec("connectors.amazon.connector") is not None
STREAM_LABELS = {
    "products": "Products and variants",
    "inventory": "Inventory levels",
    "orders": "Orders and line items",
    "customers": "Customers",
    "listings": "Listings (catalog report)",
}


class WizardState(AuthState):
    step: int = 1
    platform: str = ""
    name: str = ""
    shop_domain: str = ""
    shop_error: str = ""
    region: str = "na"
    marketplaces: list[str] = list(REGION_MARKETPLACES["na"][:1])
    streams: dict[str, bool] = {}
    intervals: dict[str, str] = {}
    error: str = ""
    created_id: str = ""
    link_url: str = ""
    link_expires: str = ""
    # The integration holding the shop typed in, when there is one (the wizard warns).
    connected_id: str = ""
    connected_name: str = ""
    # The pending integration this wizard run created: Connect now or a link again reuse it.
    _pending_id: str = ""
    # A custom-distribution app's credentials (optional): backend-only, never sent back to
    # the browser, stored encrypted with the integration and then forgotten here.
    _app_client_id: str = ""
    _app_client_secret: str = ""
    own_app_saved: bool = False

    @rx.var
    def marketplace_options(self) -> list[list[str]]:
        return _marketplace_options(self.region)

    @rx.var
    def stream_options(self) -> list[list[str]]:
        offered = integration_service.PLATFORM_STREAMS.get(self.platform, {})
        return [[name, STREAM_LABELS.get(name, name)] for name in offered]

    @rx.event
    @requires(Role.VIEWER, quiet=True)  # only clears this tab's form; a viewer sees a notice
    def reset_wizard(self):
        self.step, self.platform, self.name, self.shop_domain = 1, "", "", ""
        self.shop_error, self.error, self.created_id, self.link_url = "", "", "", ""
        self.region, self.marketplaces = "na", list(REGION_MARKETPLACES["na"][:1])
        self._pending_id, self.connected_id, self.connected_name = "", "", ""
        self._app_client_id, self._app_client_secret, self.own_app_saved = "", "", False

    @rx.event
    @requires(Role.MANAGER)
    def choose_platform(self, platform: str):
        self.platform = platform
        offered = integration_service.PLATFORM_STREAMS[platform]
        self.streams = dict.fromkeys(offered, True)
        self.intervals = {name: str(minutes) for name, minutes in offered.items()}
        self.step = 2

    @rx.event
    @requires(Role.MANAGER)
    def set_name(self, value: str):
        self.name = value

    @rx.event
    @requires(Role.MANAGER)
    def set_app_client_id(self, value: str):
        self._app_client_id = value

    @rx.event
    @requires(Role.MANAGER)
    def set_app_client_secret(self, value: str):
        self._app_client_secret = value

    @rx.event
    @requires(Role.MANAGER)
    def set_shop_domain(self, value: str):
        self.shop_domain = value
        try:
            integration_service.normalize_shop_domain(value)
            self.shop_error = ""
        except InvalidInput as invalid:
            self.shop_error = str(invalid) if value.strip() else ""

    @rx.event
    @requires(Role.MANAGER)
    def set_region(self, value: str):
        self.region = value
        self.marketplaces = list(REGION_MARKETPLACES.get(value, ())[:1])

    @rx.event
    @requires(Role.MANAGER)
    def toggle_marketplace(self, marketplace: str):
        if marketplace in self.marketplaces:
            self.marketplaces = [m for m in self.marketplaces if m != marketplace]
        else:
            self.marketplaces = [*self.marketplaces, marketplace]

    @rx.event
    @requires(Role.MANAGER)
    def toggle_stream(self, stream: str):
        self.streams = {**self.streams, stream: not self.streams.get(stream, False)}

    @rx.event
    @requires(Role.MANAGER)
    def set_interval(self, stream: str, value: str):
        self.intervals = {**self.intervals, stream: value}

    @rx.event
    @requires(Role.MANAGER)
    async def go_to(self, step: int):
        self.error = ""
        if step == 3:
            if not self.name.strip():
                self.error = "Give the integration a name."
                return
            if self.platform == "shopify":
                try:
                    integration_service.normalize_shop_domain(self.shop_domain)
                except InvalidInput as invalid:
                    self.shop_error = str(invalid)
                    return
            elif not self.marketplaces:
                self.error = "Choose at least one marketplace."
                return
            await self._find_connected()
        self.step = step

    async def _create(self) -> str | None:
        actor = acting_user()
        try:
            streams = {
                name: int(self.intervals.get(name) or 15) for name, on in self.streams.items() if on
            }
        except ValueError:
            self.error = "Intervals are whole minutes."
            return None
        platform, name, shop = self.platform, self.name, self.shop_domain
        region, marketplaces = self.region, list(self.marketplaces)
        pending_id = uuid.UUID(self._pending_id) if self._pending_id else None
        try:
            integration = await in_session(
                lambda s: integration_service.save_pending_integration(
                    session=s,
                    pending_id=pending_id,
                    platform=platform,
                    display_name=name,
                    shop_domain=shop or None,
                    region=region,
                    marketplaces=marketplaces,
                    streams=streams,
                    actor=actor,
                )
            )
        except AccountTaken as taken:
            self.connected_id, self.connected_name = str(taken.holder_id), taken.holder_name
            self.error = str(taken)
            return None
        except InvalidInput as invalid:
            self.error = str(invalid)
            return None
        self.created_id = self._pending_id = str(integration.id)
        if self.platform == "shopify" and (self._app_client_id or self._app_client_secret):
            client_id, client_secret = self._app_client_id, self._app_client_secret
            try:
                await in_session(
                    lambda s: app_credentials.save_app_credentials(
                        session=s, integration_id=integration.id, client_id=client_id,
                        client_secret=client_secret, actor=actor.email,
                    )
                )  # fmt: skip
            except InvalidInput as invalid:
                self.error = f"Custom app credentials: {invalid}"
                return None
            self._app_client_id = self._app_client_secret = ""
            self.own_app_saved = True
        return self.created_id

    @rx.event
    @requires(Role.MANAGER)
    async def connect_now(self):
        integration_id = await self._create()
        if integration_id is None:
            return rx.toast.error(self.error)
        # The browser goes through the platform's consent page and comes back to the detail.
        return leave_app(f"/api/oauth/{self.platform}/start?integration={integration_id}")

    @rx.event
    @requires(Role.MANAGER)
    async def create_link(self):
        integration_id = await self._create()
        if integration_id is None:
            return rx.toast.error(self.error)
        actor = acting_user()
        import uuid

        link, token = await in_session(
            lambda s: integration_service.create_connect_link(
                session=s, integration_id=uuid.UUID(integration_id), actor=actor
            )
        )
        self.link_url = integration_service.connect_link_url(token)
        self.link_expires = link.expires_at.isoformat()
        self.step = 4
        return rx.toast.success("Connect link created. Send it to the merchant.")

    async def _find_connected(self) -> None:
        """Note the integration already holding the shop, for the warning on step 3 (an
        Amazon seller is known only once it signs in: its callback refuses a taken one)."""
        platform, shop = self.platform, self.shop_domain
        holder = await in_session(
            lambda s: integration_service.find_connected_account(
                session=s,
                platform=platform,
                shop_domain=integration_service.normalize_shop_domain(shop)
                if platform == "shopify"
                else None,
            )
        )
        self.connected_id = str(holder.id) if holder else ""
        self.connected_name = holder.display_name if holder else ""


def connected_warning() -> rx.Component:
    """The shop is connected to another integration already: say so and link to it."""
    return rx.callout(
        rx.text(
            WizardState.shop_domain,
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
                    width="24rem",
                ),
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
            width="24rem",
        ),
        rx.cond(
            WizardState.platform == "shopify",
            rx.vstack(
                rx.el.label("Shop domain", html_for="shop-domain", font_weight="500"),
                rx.input(
                    id="shop-domain",
                    value=WizardState.shop_domain,
                    on_change=WizardState.set_shop_domain,
                    placeholder="my-store.myshopify.com",
                    width="24rem",
                ),
                rx.cond(
                    WizardState.shop_error != "",
                    rx.text(WizardState.shop_error, color_scheme="red", size="2", role="alert"),
                ),
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
            lambda s: rx.hstack(
                rx.checkbox(
                    s[1],
                    checked=WizardState.streams[s[0]],
                    on_change=lambda _: WizardState.toggle_stream(s[0]),
                ),
                rx.input(
                    value=WizardState.intervals[s[0]],
                    type="number",
                    min=1,
                    width="6rem",
                    on_change=lambda v: WizardState.set_interval(s[0], v),
                    aria_label="Interval in minutes",
                ),
                align="center",
            ),
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
        rx.text("Expires ", rx.moment(WizardState.link_expires, from_now=True), size="2"),
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
