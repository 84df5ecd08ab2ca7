"""The integration page's Settings tab: edit in place (name, streams and their schedules,
Amazon marketplaces, a Shopify integration's own app), reconnect, and the danger zone.
Each field's error is shown once, right under it."""

from __future__ import annotations

import reflex as rx

from dashboard.components.common import field_error
from dashboard.components.formats import exact_time
from dashboard.components.integration_tabs import connect_actions, fact
from dashboard.services.integrations import NAME_MAX_LENGTH
from dashboard.services.schedules import MAX_INTERVAL_MINUTES, MIN_INTERVAL_MINUTES
from dashboard.state.integration_detail import DetailState
from dashboard.state.integration_settings import SettingsEditState as Edit


def name_section() -> rx.Component:
    return rx.vstack(
        rx.heading("Name", size="3"),
        rx.hstack(
            rx.input(
                id="integration-name",
                value=Edit.edit_name,
                on_change=Edit.set_edit_name,
                aria_label="Integration name",
                aria_invalid=rx.cond(Edit.name_error != "", "true", "false"),
                aria_describedby="integration-name-error",
                width="min(24rem, 100%)",
            ),
            rx.button("Save name", variant="soft", on_click=Edit.save_name),
            wrap="wrap",
        ),
        field_error(Edit.name_error, "integration-name-error"),
        rx.text(f"1 to {NAME_MAX_LENGTH} characters.", size="1", color_scheme="gray"),
        spacing="2",
        align="start",
    )


def next_runs(stream: rx.Var[str]) -> rx.Component:
    return rx.cond(
        Edit.cron_next.contains(stream),
        rx.hstack(
            rx.text("Next runs:", size="1", color_scheme="gray"),
            rx.foreach(
                Edit.cron_next[stream].to(list[str]),
                lambda moment: rx.badge(
                    exact_time(moment),
                    variant="soft",
                    color_scheme="gray",
                ),
            ),
            rx.text("(your time zone)", size="1", color_scheme="gray"),
            wrap="wrap",
            align="center",
            class_name="cron-next-runs",
        ),
    )


def schedule_row(row: rx.Var[dict]) -> rx.Component:
    stream = row["stream"].to(str)
    error_id = "schedule-error-" + stream
    return rx.vstack(
        rx.hstack(
            rx.switch(
                checked=row["enabled"].to(bool),
                on_change=lambda on: Edit.set_stream_enabled(stream, on),
                aria_label="Sync " + row["label"].to(str),
            ),
            rx.text(row["label"], weight="medium", min_width="13rem"),
            rx.select.root(
                rx.select.trigger(aria_label="Schedule of " + row["label"].to(str)),
                rx.select.content(
                    rx.select.item("Every … minutes", value="interval"),
                    rx.select.item("Cron expression", value="cron"),
                ),
                value=row["mode"].to(str),
                on_change=lambda mode: Edit.set_schedule_mode(stream, mode),
            ),
            rx.cond(
                row["mode"] == "cron",
                rx.input(
                    value=row["cron"].to(str),
                    on_change=lambda v: Edit.set_stream_cron(stream, v),
                    placeholder="0 */6 * * *",
                    aria_label="Cron expression of " + row["label"].to(str),
                    aria_describedby=error_id,
                    width="12rem",
                ),
                rx.input(
                    value=row["interval"].to(str),
                    on_change=lambda v: Edit.set_stream_interval(stream, v),
                    type="number",
                    min=MIN_INTERVAL_MINUTES,
                    max=MAX_INTERVAL_MINUTES,
                    aria_label="Interval of " + row["label"].to(str) + " in minutes",
                    aria_describedby=error_id,
                    width="7rem",
                ),
            ),
            rx.button(
                "Save",
                size="1",
                variant="soft",
                on_click=Edit.save_stream(stream),
                aria_label="Save the schedule of " + row["label"].to(str),
            ),
            align="center",
            wrap="wrap",
        ),
        field_error(Edit.schedule_errors[stream].to(str), error_id),
        rx.cond(row["mode"] == "cron", next_runs(stream)),
        spacing="1",
        id="schedule-" + stream,
    )


def streams_section() -> rx.Component:
    return rx.vstack(
        rx.heading("Streams and schedule", size="3", padding_top="0.5rem"),
        rx.text(
            f"Each stream runs every {MIN_INTERVAL_MINUTES} minutes to 7 days, or on a cron "
            "expression (five fields, in UTC). A saved change reschedules the stream at once.",
            size="2",
            color_scheme="gray",
            max_width="40rem",
        ),
        rx.foreach(Edit.schedules, schedule_row),
        spacing="3",
        align="start",
    )


def marketplaces_section() -> rx.Component:
    return rx.vstack(
        rx.heading("Marketplaces", size="3", padding_top="0.5rem"),
        rx.grid(
            rx.foreach(
                Edit.marketplace_choices,
                lambda m: rx.checkbox(
                    m[1],
                    checked=Edit.edit_marketplaces.contains(m[0]),
                    on_change=lambda _: Edit.toggle_edit_marketplace(m[0]),
                ),
            ),
            columns=rx.breakpoints(initial="1", sm="2", md="3"),
            spacing="2",
            width="min(40rem, 100%)",
        ),
        field_error(Edit.marketplaces_error, "marketplaces-error"),
        rx.button("Save marketplaces", variant="soft", on_click=Edit.save_marketplaces),
        spacing="2",
        align="start",
    )


def own_app_section() -> rx.Component:
    return rx.vstack(
        rx.heading("Custom app", size="3", padding_top="0.5rem"),
        rx.text(
            rx.cond(
                Edit.app_client_id != "",
                "This integration uses its own app (custom distribution). The secret is "
                "stored encrypted and never shown; enter a new one to replace it.",
                "This integration uses the hub's app. Enter a custom-distribution app's client "
                "ID and secret to use it instead (stored encrypted, never shown again).",
            ),
            size="2",
            color_scheme="gray",
            max_width="40rem",
        ),
        rx.cond(Edit.app_client_id != "", fact("Client ID", Edit.app_client_id)),
        rx.el.label(
            rx.cond(Edit.app_client_id != "", "New client ID (optional)", "Client ID"),
            html_for="edit-app-client-id",
            font_weight="500",
        ),
        rx.input(
            id="edit-app-client-id",
            on_blur=Edit.set_new_client_id,
            autocomplete="off",
            width="min(24rem, 100%)",
        ),
        rx.el.label("Client secret", html_for="edit-app-client-secret", font_weight="500"),
        rx.input(
            id="edit-app-client-secret",
            type="password",
            on_blur=Edit.set_new_client_secret,
            autocomplete="new-password",
            aria_describedby="app-error",
            width="min(24rem, 100%)",
        ),
        field_error(Edit.app_error, "app-error"),
        rx.button("Save app credentials", variant="soft", on_click=Edit.save_app),
        spacing="2",
        align="start",
    )


def disconnect_dialog() -> rx.Component:
    return rx.alert_dialog.root(
        rx.alert_dialog.trigger(rx.button("Disconnect", color_scheme="orange", variant="soft")),
        rx.alert_dialog.content(
            rx.alert_dialog.title("Disconnect this integration?"),
            rx.alert_dialog.description(
                "Syncing stops and the stored tokens are destroyed. Synced data and history "
                "are kept."
            ),
            rx.hstack(
                rx.alert_dialog.cancel(rx.button("Cancel", variant="soft")),
                rx.alert_dialog.action(
                    rx.button("Disconnect", color_scheme="orange", on_click=DetailState.disconnect)
                ),
            ),
        ),
    )


def delete_dialog() -> rx.Component:
    return rx.alert_dialog.root(
        rx.alert_dialog.trigger(rx.button("Delete", color_scheme="red", variant="soft")),
        rx.alert_dialog.content(
            rx.alert_dialog.title("Delete this integration and all its data?"),
            rx.alert_dialog.description(
                "Its synced records, runs and logs are removed. This cannot be undone."
            ),
            rx.hstack(
                rx.alert_dialog.cancel(rx.button("Cancel", variant="soft")),
                rx.alert_dialog.action(
                    rx.button("Delete", color_scheme="red", on_click=DetailState.delete)
                ),
            ),
        ),
    )


def settings_tab() -> rx.Component:
    actions = DetailState.actions
    return rx.cond(
        actions.contains("edit"),
        rx.vstack(
            rx.cond(
                Edit.loaded_for == DetailState.integration_id,
                rx.vstack(
                    name_section(),
                    streams_section(),
                    rx.cond(DetailState.info["platform"] == "amazon", marketplaces_section()),
                    rx.cond(DetailState.info["platform"] == "shopify", own_app_section()),
                    spacing="3",
                    align="start",
                    width="100%",
                ),
                rx.hstack(rx.spinner(), rx.text("Loading the settings…", size="2")),
            ),
            rx.heading("Authorization", size="3", padding_top="0.5rem"),
            rx.text(
                rx.cond(
                    DetailState.info["status"] == "pending",
                    "Not connected yet: connect it in this browser, or send the merchant a "
                    "connect link.",
                    "Reconnecting asks the platform for new access for the same store or seller; "
                    "the new tokens replace the old ones and the data and history stay.",
                ),
                size="2",
                color_scheme="gray",
                max_width="40rem",
            ),
            connect_actions(),
            rx.cond(
                actions.contains("disconnect") | actions.contains("delete"),
                rx.fragment(
                    rx.heading("Danger zone", size="3", padding_top="0.5rem"),
                    rx.hstack(
                        rx.cond(actions.contains("disconnect"), disconnect_dialog()),
                        rx.cond(actions.contains("delete"), delete_dialog()),
                    ),
                ),
            ),
            spacing="3",
            align="start",
            width="100%",
            on_mount=Edit.load_settings,
        ),
        rx.vstack(
            fact("Name", DetailState.info["name"]),
            rx.text(
                "Managers and admins can edit, reconnect and disconnect integrations.",
                size="2",
                color_scheme="gray",
            ),
            spacing="3",
        ),
    )
