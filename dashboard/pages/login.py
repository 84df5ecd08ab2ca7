"""Sign-in page: a plain HTML form posting to the sign-in route (``dashboard/api/session.py``),
which sets the HttpOnly session cookie and redirects; refusals come back as ``?error=``."""

from __future__ import annotations

import reflex as rx
from reflex.components.component import field
from reflex.components.el.elements.base import BaseHTML
from reflex.vars.base import Var

from dashboard import routes
from dashboard.api.session import SIGN_IN
from dashboard.state.auth import AuthState
from dashboard.state.guard import public

# The only messages the page shows: the query names one, it never supplies the text.
SIGN_IN_ERRORS = {
    "refused": "Wrong email or password.",
    "missing": "Enter your email and password.",
    "throttled": "Too many sign-in attempts. Try again in {retry} seconds.",
}


class NativeForm(BaseHTML):
    """A ``<form>`` the browser submits itself: ``rx.el.form`` always prevents the default
    and sends the fields as a websocket event, and only an HTTP response can set an HttpOnly
    cookie. Works before the page is hydrated, too."""

    tag = "form"
    action: Var[str] = field(doc="URL the form posts to")
    method: Var[str] = field(doc="HTTP method")


class LoginState(AuthState):
    error: str = ""
    next_path: str = ""

    @rx.event
    @public("it only redirects a tab that is already signed in")
    async def redirect_if_signed_in(self):
        """on_load: signed in already -> the overview; else show the refusal, if any."""
        user = await self.current_user()
        if user is not None:
            return rx.redirect(routes.OVERVIEW)
        query = self.router.url.query_parameters
        retry = query.get("retry", "")
        message = SIGN_IN_ERRORS.get(query.get("error", ""), "")
        self.error = message.format(retry=retry if retry.isdigit() else "a few")
        target = query.get("next", "")
        self.next_path = target if target.startswith("/") and not target.startswith("//") else ""
        return None


def _field(label: str, **props) -> list[rx.Component]:
    return [
        rx.el.label(label, html_for=props["id"], font_size="14px", font_weight="500"),
        rx.input(required=True, width="100%", size="3", **props),
    ]


@rx.page(
    route=routes.LOGIN, title="Sign in · Connector Hub", on_load=LoginState.redirect_if_signed_in
)
def login() -> rx.Component:
    return rx.center(
        rx.card(
            NativeForm.create(
                rx.vstack(
                    rx.hstack(
                        rx.icon("cable", size=28),
                        rx.heading("Connector Hub", size="6"),
                        align="center",
                    ),
                    rx.text("Sign in to manage your integrations.", color_scheme="gray"),
                    *_field(
                        "Email",
                        id="email",
                        name="email",
                        type="email",
                        placeholder="you@company.com",
                        auto_complete="username",
                    ),
                    *_field(
                        "Password",
                        id="password",
                        name="password",
                        type="password",
                        auto_complete="current-password",
                    ),
                    rx.el.input(type="hidden", name="next", value=LoginState.next_path),
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
                    rx.button("Sign in", type="submit", size="3", width="100%"),
                    spacing="3",
                    width="100%",
                ),
                action=SIGN_IN,
                method="post",
            ),
            width="min(24rem, 92vw)",
            size="4",
        ),
        min_height="100vh",
        padding="1rem",
    )
