"""Overview: what needs attention now."""

from __future__ import annotations

import reflex as rx

from dashboard import routes
from dashboard.components.common import empty_state, stat_card
from dashboard.components.shell import template
from dashboard.db import in_session
from dashboard.services import overview as overview_service
from dashboard.state.auth import AuthState


class OverviewState(AuthState):
    counts: dict[str, int] = {}
    failures_24h: int = 0

    @rx.var
    def total_integrations(self) -> int:
        return sum(self.counts.values())

    @rx.event
    async def load_overview(self):
        def load(session):
            return (
                overview_service.status_counts(session=session),
                overview_service.failures_since(session=session, hours=24),
            )

        self.counts, self.failures_24h = await in_session(load)


@template(route=routes.OVERVIEW, title="Overview", on_load=OverviewState.load_overview)
def overview() -> rx.Component:
    return rx.vstack(
        rx.cond(
            OverviewState.total_integrations == 0,
            empty_state(
                "plug",
                "No integrations yet",
                "Connect a Shopify store or an Amazon seller account to start syncing its "
                "catalog, inventory and orders. Live sync activity will show here.",
                rx.cond(
                    OverviewState.can_manage,
                    rx.link(
                        rx.button(rx.icon("plus"), "Add integration"), href=routes.NEW_INTEGRATION
                    ),
                    rx.text("Ask a manager to add the first integration.", size="2"),
                ),
            ),
            rx.flex(
                stat_card("Integrations", OverviewState.total_integrations, "plug"),
                stat_card("Connected", OverviewState.counts["connected"], "circle-check"),
                stat_card("Syncing", OverviewState.counts["syncing"], "refresh-cw"),
                stat_card("Need reconnecting", OverviewState.counts["needs_reauth"], "key-round"),
                stat_card("Failed runs (24 h)", OverviewState.failures_24h, "circle-x"),
                wrap="wrap",
                spacing="3",
                width="100%",
            ),
        ),
        width="100%",
        spacing="4",
    )
