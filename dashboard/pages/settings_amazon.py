"""Settings → Amazon app (admins): the LWA client secret's age and 180-day deadline, and its
rotation without downtime: enter the new secret (kept encrypted, never shown again; the one
before stays the fallback), then confirm the switch once the new one works.

The same service as ``hub amazon rotate-secret`` and HUB_AMAZON_CLIENT_SECRET_PREVIOUS
(``amazon_lifecycle``): one mechanism, two ways in."""

from __future__ import annotations

from typing import TypedDict

import reflex as rx
from sqlmodel import Session

from connectors.errors import InvalidInput
from dashboard import routes
from dashboard.components.common import submit_button
from dashboard.components.shell import template
from dashboard.db import in_session
from dashboard.models import IncidentCause, Role
from dashboard.pages.settings import settings_nav
from dashboard.services import amazon_lifecycle, incidents
from dashboard.services.amazon_lifecycle import SecretStatus
from dashboard.settings import get_settings
from dashboard.state.auth import AuthState
from dashboard.state.guard import acting_user, requires


class SecretView(TypedDict):
    fingerprint: str
    set_at: str
    deadline: str
    days_left: int
    source: str
    switch_pending: bool
    fallback: str


NO_SECRET: SecretView = {
    "fingerprint": "", "set_at": "", "deadline": "", "days_left": 0, "source": "",
    "switch_pending": False, "fallback": "",
}  # fmt: skip


def _view(status: SecretStatus | None) -> SecretView:
    if status is None:
        return NO_SECRET
    return {
        "fingerprint": status.fingerprint,
        "set_at": status.set_at.strftime("%d %b %Y"),
        "deadline": status.deadline.strftime("%d %b %Y"),
        "days_left": status.days_left(),
        "source": "entered in Settings (encrypted)"
        if status.from_settings
        else "HUB_AMAZON_CLIENT_SECRET (environment)",
        "switch_pending": status.switch_pending,
        "fallback": "the previous secret is tried when Amazon refuses this one"
        if status.previous_configured
        else "none",
    }


def _load(session: Session) -> tuple[SecretView, str]:
    status = amazon_lifecycle.secret_status(session=session)
    open_incident = next(
        (
            row["text"]
            for row in incidents.list_incidents(session=session, limit=100)
            if row["cause"] == IncidentCause.LWA_SECRET_EXPIRING.value and not row["integration_id"]
        ),
        "",
    )
    return _view(status), open_incident


class AmazonAppState(AuthState):
    secret: SecretView = NO_SECRET  # fingerprint "": no secret configured
    incident: str = ""  # the app's open lwa_secret_expiring incident, in words
    form_error: str = ""
    warning_days: int = 14

    @rx.event
    @requires(Role.ADMIN, quiet=True)
    async def load_amazon_app(self):
        self.form_error = ""
        self.warning_days = get_settings().amazon_secret_warning_days
        self.secret, self.incident = await in_session(_load)

    @rx.event
    @requires(Role.ADMIN)
    async def save_secret(self, form: dict[str, str]):
        """The new secret goes from the form to the vault: never kept in state, never sent
        back to a browser, never logged."""
        self.form_error = ""
        actor = acting_user().email
        new = form.get("secret") or ""
        try:
            await in_session(
                lambda s: amazon_lifecycle.set_secret(session=s, secret=new, actor=actor)
            )
        except InvalidInput as invalid:
            self.form_error = str(invalid)[:1].upper() + str(invalid)[1:] + "."
            return None
        self.secret, self.incident = await in_session(_load)
        return rx.toast.success(
            "Saved: the new secret is in use; the previous one stays the fallback until you "
            "confirm the switch."
        )

    @rx.event
    @requires(Role.ADMIN)
    async def confirm_switch(self):
        actor = acting_user().email
        try:
            await in_session(lambda s: amazon_lifecycle.confirm_switch(session=s, actor=actor))
        except InvalidInput as invalid:
            return rx.toast.error(str(invalid))
        self.secret, self.incident = await in_session(_load)
        return rx.toast.success("Switch confirmed: the previous secret is no longer used.")


def secret_table() -> rx.Component:
    secret = AmazonAppState.secret
    return rx.data_list.root(
        rx.data_list.item(rx.data_list.label("Secret"), rx.data_list.value(rx.code(secret["fingerprint"]))),  # noqa: E501
        rx.data_list.item(rx.data_list.label("Set"), rx.data_list.value(secret["set_at"])),
        rx.data_list.item(
            rx.data_list.label("Rotate by"),
            rx.data_list.value(
                rx.text(
                    secret["deadline"], " (", secret["days_left"].to_string(), " days left)",
                    color_scheme=rx.cond(
                        secret["days_left"] <= AmazonAppState.warning_days, "red", "gray"
                    ),
                    weight="medium",
                )
            ),
        ),
        rx.data_list.item(rx.data_list.label("From"), rx.data_list.value(secret["source"])),
        rx.data_list.item(rx.data_list.label("Fallback"), rx.data_list.value(secret["fallback"])),
        aria_label="LWA client secret",
    )  # fmt: skip


def confirm_dialog() -> rx.Component:
    return rx.alert_dialog.root(
        rx.alert_dialog.trigger(rx.button(rx.icon("check-check"), "Confirm the switch")),
        rx.alert_dialog.content(
            rx.alert_dialog.title("Confirm the switch to the new secret?"),
            rx.alert_dialog.description(
                "Do this once Amazon has rotated the secret and syncs run with the new one. "
                "The previous secret is then no longer tried, and its encrypted copy is erased."
            ),
            rx.hstack(
                rx.alert_dialog.cancel(rx.button("Cancel", variant="soft")),
                rx.alert_dialog.action(
                    rx.button("Confirm the switch", on_click=AmazonAppState.confirm_switch)
                ),
                justify="end",
                padding_top="1rem",
            ),
        ),
    )


@template(
    route=routes.AMAZON_APP,
    title="Amazon app",
    on_load=AmazonAppState.load_amazon_app,
    admin_only=True,
)
def amazon_app_page() -> rx.Component:
    return rx.vstack(
        settings_nav(),
        rx.heading("LWA client secret", size="4"),
        rx.text(
            "Amazon refuses an app's client secret 180 days after it was generated: rotate "
            "it in Solution Provider Portal (the old one keeps working seven days), then "
            "enter the new one here. Secrets are stored encrypted and never shown.",
            size="2",
            color_scheme="gray",
        ),
        rx.cond(
            AmazonAppState.incident != "",
            rx.callout(AmazonAppState.incident, icon="triangle_alert", color_scheme="red"),
        ),
        rx.cond(
            AmazonAppState.secret["fingerprint"] != "",
            secret_table(),
            rx.text("No Amazon app secret is configured (HUB_AMAZON_CLIENT_SECRET).", size="2"),
        ),
        rx.cond(
            AmazonAppState.secret["switch_pending"],
            rx.callout(
                rx.vstack(
                    rx.text(
                        "Switching: the new secret is in use, the previous one is tried when "
                        "Amazon refuses it. Confirm once the rotation is done at Amazon."
                    ),
                    confirm_dialog(),
                ),
                icon="refresh-cw",
                color_scheme="amber",
            ),
        ),
        rx.heading("Enter a new secret", size="3", padding_top="1rem"),
        rx.form(
            rx.vstack(
                rx.el.label("New client secret", html_for="secret", font_size="14px"),
                rx.input(
                    id="secret",
                    name="secret",
                    type="password",
                    required=True,
                    auto_complete="off",
                    width="28rem",
                ),
                rx.cond(
                    AmazonAppState.form_error != "",
                    rx.callout(
                        AmazonAppState.form_error, icon="triangle_alert", color_scheme="red"
                    ),
                ),
                submit_button(rx.icon("key-round"), "Use this secret"),
                spacing="2",
            ),
            on_submit=AmazonAppState.save_secret,
            reset_on_submit=True,
            method="post",
        ),
        spacing="3",
        width="100%",
        align="start",
    )
