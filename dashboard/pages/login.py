"""Sign-in page."""

from __future__ import annotations

import reflex as rx

from dashboard import routes
from dashboard.components.common import submit_button
from dashboard.db import in_session
from dashboard.services import auth as auth_service
from dashboard.state.auth import AuthState
from dashboard.state.guard import public


class LoginState(AuthState):
    error: str = ""
    signing_in: bool = False

    @rx.event
    @public("it is how a session starts")
    async def sign_in(self, form: dict[str, str]):
        email = (form.get("email") or "").strip()
        password = form.get("password") or ""
        self.error = ""
        if not email or not password:
            self.error = "Enter your email and password."
            return None

        def attempt(session):
            user = auth_service.authenticate(session=session, email=email, password=password)
            return user, auth_service.create_session(session=session, user=user)

        try:
            user, token = await in_session(attempt)
        except auth_service.LoginRefused as refused:
            self.error = str(refused)
            return None
        self.session_token = token
        self._remember(user)
        return rx.redirect(routes.OVERVIEW)

    @rx.event
    @public("it only redirects a tab that is already signed in")
    async def redirect_if_signed_in(self):
        user = await self.current_user()
        if user is not None:
            return rx.redirect(routes.OVERVIEW)
        return None


@rx.page(
    route=routes.LOGIN, title="Sign in · Connector Hub", on_load=LoginState.redirect_if_signed_in
)
def login() -> rx.Component:
    return rx.center(
        rx.card(
            rx.form(
                rx.vstack(
                    rx.hstack(
                        rx.icon("cable", size=28),
                        rx.heading("Connector Hub", size="6"),
                        align="center",
                    ),
                    rx.text("Sign in to manage your integrations.", color_scheme="gray"),
                    rx.el.label("Email", html_for="email", font_size="14px", font_weight="500"),
                    rx.input(
                        id="email",
                        name="email",
                        type="email",
                        placeholder="you@company.com",
                        auto_complete="username",
                        required=True,
                        width="100%",
                        size="3",
                    ),
                    rx.el.label(
                        "Password", html_for="password", font_size="14px", font_weight="500"
                    ),
                    rx.input(
                        id="password",
                        name="password",
                        type="password",
                        auto_complete="current-password",
                        required=True,
                        width="100%",
                        size="3",
                    ),
                    rx.cond(
                        LoginState.error != "",
                        rx.callout(
                            LoginState.error,
                            icon="triangle_alert",
                            color_scheme="red",
                            role="alert",
                            width="100%",
                        ),
                    ),
                    submit_button("Sign in", size="3", width="100%"),
                    spacing="3",
                    width="100%",
                ),
                on_submit=LoginState.sign_in,
                reset_on_submit=False,
                method="post",
            ),
            width="min(24rem, 92vw)",
            size="4",
        ),
        min_height="100vh",
        padding="1rem",
    )
