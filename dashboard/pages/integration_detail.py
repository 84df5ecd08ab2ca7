"""One integration: status, streams (sync now, pause, resync), runs, connect links, settings.

The state lives in ``dashboard.state.integration_detail``, the read-mostly tabs in
``dashboard.components.integration_tabs``; the manager's tabs and the page are here."""

from __future__ import annotations

import reflex as rx

from dashboard import routes
from dashboard.components.common import empty_state
from dashboard.components.formats import relative_time
from dashboard.components.integration_settings import settings_tab
from dashboard.components.integration_streams import health_badge, streams_tab
from dashboard.components.integration_tabs import (
    logs_tab,
    runs_tab,
    status_tab,
    webhooks_tab,
)
from dashboard.components.shell import template
from dashboard.state.integration_detail import DetailState
from dashboard.state.live import live_region


def links_tab() -> rx.Component:
    actions = DetailState.actions
    return rx.vstack(
        rx.hstack(
            rx.cond(
                actions.contains("connect_link"),
                rx.button(
                    rx.icon("link"), "New connect link", on_click=DetailState.create_link("connect")
                ),
            ),
            rx.cond(
                actions.contains("reconnect_link"),
                rx.button(
                    rx.icon("refresh-ccw"),
                    "New reconnect link",
                    variant="soft",
                    on_click=DetailState.create_link("reconnect"),
                ),
            ),
            rx.cond(
                actions.contains("resume"),
                rx.button(
                    "Resume integration", variant="soft", on_click=DetailState.set_paused(False)
                ),
            ),
            rx.cond(
                actions.contains("pause"),
                rx.button(
                    "Pause integration", variant="soft", on_click=DetailState.set_paused(True)
                ),
            ),
        ),
        rx.cond(
            DetailState.new_link_url != "",
            rx.hstack(
                rx.code(DetailState.new_link_url, id="connect-link"),
                rx.button(
                    rx.icon("copy"),
                    "Copy",
                    size="1",
                    variant="soft",
                    on_click=[
                        rx.set_clipboard(DetailState.new_link_url),
                        rx.toast.success("Copied"),
                    ],
                ),
                align="center",
            ),
        ),
        rx.foreach(
            DetailState.links,
            lambda link: rx.hstack(
                rx.badge(link["purpose"]),
                rx.text("expires ", relative_time(link["expires"]), size="2"),
                rx.cond(
                    DetailState.can_manage,
                    rx.button(
                        "Revoke",
                        size="1",
                        color_scheme="red",
                        variant="soft",
                        on_click=DetailState.revoke_link(link["id"]),
                    ),
                ),
                align="center",
            ),
        ),
        spacing="3",
    )


def incident_callout(incident: rx.Var[dict]) -> rx.Component:
    """An open incident of this integration: what happened, then what to do."""
    return rx.callout.root(
        rx.callout.icon(rx.icon("triangle-alert")),
        rx.callout.text(
            rx.text.strong(incident["title"]),
            " — ",
            incident["advice"],
            " (since ",
            relative_time(incident["opened_at"]),
            ")",
        ),
        color_scheme="red",
        width="100%",
        class_name="incident",
    )


@template(route=routes.INTEGRATION_DETAIL, title="Integration", on_load=DetailState.load_detail)
def integration_detail() -> rx.Component:
    return rx.cond(
        DetailState.missing,
        empty_state(
            "search-x",
            "Integration not found",
            "It may have been deleted.",
            rx.link("Back to integrations", href=routes.INTEGRATIONS),
        ),
        live_region(
            rx.vstack(
                rx.hstack(
                    rx.heading(DetailState.info["name"], size="5"),
                    health_badge(DetailState.info["health"]),
                    rx.spacer(),
                    rx.cond(
                        DetailState.can_connect & DetailState.can_manage,
                        rx.button(
                            rx.icon("plug-zap"),
                            DetailState.connect_label,
                            on_click=DetailState.reconnect_now,
                        ),
                    ),
                    rx.cond(
                        DetailState.actions.contains("sync"),
                        rx.button(
                            rx.icon("refresh-cw"),
                            "Sync all now",
                            on_click=DetailState.sync_now(""),
                        ),
                    ),
                    align="center",
                    width="100%",
                ),
                rx.cond(
                    DetailState.info["health_words"] != "",
                    rx.text(DetailState.info["health_words"], size="2", id="health-words"),
                ),
                rx.foreach(DetailState.incidents, incident_callout),
                rx.tabs.root(
                    rx.tabs.list(
                        rx.tabs.trigger("Status", value="status"),
                        rx.tabs.trigger("Streams", value="streams"),
                        rx.tabs.trigger("Runs", value="runs"),
                        rx.tabs.trigger("Logs", value="logs"),
                        rx.tabs.trigger("Webhooks", value="webhooks"),
                        rx.tabs.trigger("Connect links", value="links"),
                        rx.tabs.trigger("Settings", value="settings"),
                    ),
                    rx.tabs.content(status_tab(), value="status", padding_top="1rem"),
                    rx.tabs.content(streams_tab(), value="streams", padding_top="1rem"),
                    rx.tabs.content(runs_tab(), value="runs", padding_top="1rem"),
                    rx.tabs.content(logs_tab(), value="logs", padding_top="1rem"),
                    rx.tabs.content(webhooks_tab(), value="webhooks", padding_top="1rem"),
                    rx.tabs.content(links_tab(), value="links", padding_top="1rem"),
                    rx.tabs.content(settings_tab(), value="settings", padding_top="1rem"),
                    value=DetailState.tab,
                    on_change=DetailState.set_tab,
                    width="100%",
                ),
                width="100%",
                spacing="4",
            ),
            watch=DetailState.watch,
            stop=DetailState.stop_watching,
        ),
    )
