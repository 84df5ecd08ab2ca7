"""Settings → Account: who you are signed in as, and changing your own password."""

from __future__ import annotations

import reflex as rx

from dashboard import routes
from dashboard.components.common import submit_button
from dashboard.components.shell import template
from dashboard.db import in_session
from dashboard.models import Role, User
from dashboard.pages.settings import settings_nav
from dashboard.services import auth as auth_service
from dashboard.services.auth import MIN_PASSWORD_LENGTH, UserError
from dashboard.state.auth import AuthState
from dashboard.state.guard import acting_user, requires


class AccountState(AuthState):
    form_error: str = ""

    @rx.event
    @requires(Role.VIEWER)
    async def change_password(self, form: dict[str, str]):
        # The passwords go from the form straight to the service: never kept in state.
        current, new = form.get("current") or "", form.get("new") or ""
        self.form_error = ""
        user = acting_user()
        if new != (form.get("repeat") or ""):
            self.form_error = "The new passwords do not match."
            return None
        token, user_id = self.session_token, user.id

        def change(session):
            account = session.get(User, user_id)
            auth_service.change_password(
                session=session, user=account, current=current, new=new, keep_token=token
            )

        try:
            await in_session(change)
        except UserError as error:
            message = str(error)
            self.form_error = (
                message[:1].upper() + message[1:] + ("" if message[-1:] == "." else ".")
            )
            return None
        return rx.toast.success("Password changed. Your other sessions were signed out.")


def password_input(name: str, label: str, autocomplete: str) -> rx.Component:
    return rx.vstack(
        rx.el.label(label, html_for=name, font_size="14px", font_weight="500"),
        rx.input(
            id=name,
            name=name,
            type="password",
            required=True,
            auto_complete=autocomplete,
            width="18rem",
        ),
        spacing="1",
    )


@template(route=routes.ACCOUNT, title="Account")
def account_page() -> rx.Component:
    return rx.vstack(
        settings_nav(),
        rx.text(
            "Signed in as ", rx.text.strong(AuthState.user_email), " (", AuthState.user_role, ")"
        ),
        rx.heading("Change your password", size="4", padding_top="1rem"),
        rx.form(
            rx.vstack(
                password_input("current", "Current password", "current-password"),
                password_input(
                    "new",
                    f"New password ({MIN_PASSWORD_LENGTH}+ characters)",
                    "new-password",
                ),
                password_input("repeat", "Repeat the new password", "new-password"),
                rx.cond(
                    AccountState.form_error != "",
                    rx.callout(AccountState.form_error, icon="triangle_alert", color_scheme="red"),
                ),
                submit_button(rx.icon("key-round"), "Change password"),
                rx.text(
                    "Your other sessions are signed out; this one stays signed in.",
                    size="2",
                    color_scheme="gray",
                ),
                spacing="3",
            ),
            on_submit=AccountState.change_password,
            reset_on_submit=True,
            method="post",
        ),
        width="100%",
        align="start",
    )
