"""The merchant's page behind a connect link: no sign-in, plain words, approve or decline."""

from __future__ import annotations

import reflex as rx

from dashboard import routes
from dashboard.components.common import platform_mark
from dashboard.db import in_session
from dashboard.models import Integration
from dashboard.services import connect_links
from dashboard.services import integrations as integration_service
from dashboard.services.integrations import LinkInvalid
from dashboard.settings import get_settings
from dashboard.state.auth import leave_app
from dashboard.state.guard import public

SCOPE_WORDS = {
    "read_products": "See your products and their variants",
    "read_inventory": "See your stock levels",
    "read_orders": "See your orders, including the customer details on them",
    "read_customers": "See your customer profiles",
    "read_locations": "See your store and warehouse locations",
}
AMAZON_ACCESS = [
    "See your orders and the items in them",
    "See your listings (catalog report)",
    "See your FBA inventory",
]


class ConnectState(rx.State):
    org_name: str = get_settings().org_name
    platform: str = ""
    store: str = ""
    purpose: str = "connect"
    access: list[str] = []
    problem: str = ""
    declined: bool = False
    # Back from the platform's consent page without approving (cancelled there).
    cancelled: bool = False
    loaded: bool = False

    @rx.var
    def link_token(self) -> str:
        return routes.route_arg(str(self.router.url), "/connect")

    @rx.var
    def approve_url(self) -> str:
        return f"/api/oauth/{self.platform}/start?link={self.link_token}"

    @rx.event
    @public("the merchant has no account: the link token in the URL authenticates it")
    async def load_link(self):
        token = self.link_token

        def load(session):
            link = integration_service.resolve_connect_link(session=session, token=token)
            integration = session.get(Integration, link.integration_id)
            cancelled = connect_links.left_consent_unfinished(session=session, link_id=link.id)
            return link.purpose, integration, cancelled

        self.declined, self.problem = False, ""
        try:
            purpose, integration, self.cancelled = await in_session(load)
        except LinkInvalid as invalid:
            self.problem, self.loaded = str(invalid), True
            return
        settings = get_settings()
        self.purpose = purpose
        self.platform = integration.platform
        if integration.platform == "shopify":
            self.store = integration.shop_domain or ""
            self.access = [SCOPE_WORDS.get(s, s) for s in settings.shopify_scope_list]
        else:
            self.store = f"Amazon seller account ({(integration.region or '').upper()})"
            self.access = AMAZON_ACCESS
        self.loaded = True

    @rx.event
    @public("it only sends the merchant on to OAuth, where the link token is checked again")
    def approve(self):
        return leave_app(self.approve_url)

    @rx.event
    @public("the link token in the URL authenticates it and is checked by the service")
    async def decline(self):
        token = self.link_token
        try:
            await in_session(
                lambda s: integration_service.decline_connect_link(session=s, token=token)
            )
        except LinkInvalid as invalid:
            self.problem = str(invalid)
            return
        self.declined = True


def card(*children: rx.Component) -> rx.Component:
    return rx.center(
        rx.card(rx.vstack(*children, spacing="4"), width="min(32rem, 94vw)", size="4"),
        min_height="100vh",
        padding="1rem",
    )


@rx.page(route=routes.CONNECT, title="Connect your store", on_load=ConnectState.load_link)
def connect_page() -> rx.Component:
    return rx.cond(
        ~ConnectState.loaded,
        rx.center(rx.spinner(size="3"), min_height="100vh"),
        rx.cond(
            ConnectState.problem != "",
            card(
                rx.icon("link-2-off", size=32),
                rx.heading("This link cannot be used", size="5"),
                rx.text(ConnectState.problem),
            ),
            rx.cond(
                ConnectState.declined,
                card(
                    rx.icon("circle-x", size=32),
                    rx.heading("Request declined", size="5"),
                    rx.text(
                        ConnectState.org_name, " will not get access. You can close this page."
                    ),
                ),
                card(
                    platform_mark(ConnectState.platform, size=32),
                    rx.heading(
                        ConnectState.org_name,
                        rx.cond(
                            ConnectState.purpose == "reconnect",
                            " asks to reconnect to ",
                            " asks to connect to ",
                        ),
                        rx.cond(
                            ConnectState.platform == "shopify",
                            "your Shopify store",
                            "your Amazon seller account",
                        ),
                        size="5",
                    ),
                    rx.text("Store: ", rx.code(ConnectState.store)),
                    rx.cond(
                        ConnectState.cancelled,
                        rx.callout(
                            rx.text(
                                rx.text.strong("Connection cancelled. "),
                                "You left ",
                                rx.cond(ConnectState.platform == "shopify", "Shopify", "Amazon"),
                                "'s page without approving, so nothing was connected. Approve "
                                "below to try again, or decline.",
                            ),
                            icon="circle-slash",
                            color_scheme="amber",
                            id="connection-cancelled",
                        ),
                    ),
                    rx.cond(
                        ConnectState.purpose == "reconnect",
                        rx.callout(
                            "The access you gave earlier no longer works: it was removed or it "
                            "expired. Approving again restores it for the same store; the data "
                            "already synced is kept.",
                            icon="refresh-ccw",
                        ),
                    ),
                    rx.text(
                        "If you approve, ",
                        ConnectState.org_name,
                        " will be able to:",
                        weight="medium",
                    ),
                    rx.el.ul(rx.foreach(ConnectState.access, lambda a: rx.el.li(a))),
                    rx.text(
                        "Read-only: nothing in your store is changed. You can remove the "
                        "access at any time from your store's admin.",
                        size="2",
                        color_scheme="gray",
                    ),
                    rx.hstack(
                        rx.button(
                            rx.icon("check"), "Approve", size="3", on_click=ConnectState.approve
                        ),
                        rx.button(
                            "Decline",
                            size="3",
                            variant="soft",
                            color_scheme="gray",
                            on_click=ConnectState.decline,
                        ),
                        wrap="wrap",
                    ),
                    rx.text(
                        "Approve takes you to ",
                        rx.cond(ConnectState.platform == "shopify", "Shopify", "Amazon"),
                        " to confirm.",
                        size="2",
                        color_scheme="gray",
                    ),
                ),
            ),
        ),
    )
