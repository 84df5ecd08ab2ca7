"""Who is signed in. Every protected page and every event handler goes through here.

The browser keeps only a random session token in an HttpOnly cookie, set and cleared by HTTP
responses (``dashboard/api/session.py``): no script reads it and it is never a state var.
The backend reads it from the Cookie header of the websocket handshake, which Reflex keeps
per connection in ``router.headers`` (and never sends to the browser); signing in or out
reloads the page, so the new socket carries the new cookie. The user is looked up
server-side on each check, so a disabled user or a changed role takes effect at once.
"""

from __future__ import annotations

import json
from http.cookies import CookieError, SimpleCookie

import reflex as rx
from reflex.event import EventSpec

from dashboard import routes
from dashboard.api.session import SIGN_OUT
from dashboard.db import in_session
from dashboard.models import Role, User
from dashboard.services import auth as auth_service
from dashboard.settings import get_settings
from dashboard.state.guard import not_an_event, public


def session_token_from_cookie_header(cookie_header: str) -> str:
    """The session token in a Cookie header ("" when there is none)."""
    cookies: SimpleCookie = SimpleCookie()
    try:
        cookies.load(cookie_header or "")
    except CookieError:
        return ""
    morsel = cookies.get(auth_service.SESSION_COOKIE)
    return morsel.value if morsel else ""


class AuthState(rx.State):
    user_email: str = ""
    user_role: str = ""
    org_name: str = get_settings().org_name

    @property
    def session_token(self) -> str:
        """This connection's session token, from its handshake's Cookie header. A plain
        property, not a var: it never reaches the browser."""
        return session_token_from_cookie_header(self.router.headers.cookie)

    @not_an_event
    async def current_user(self) -> User | None:
        token = self.session_token
        return await in_session(lambda s: auth_service.user_for_token(session=s, token=token))

    @not_an_event
    async def require(self, role: Role) -> User:
        """The signed-in user if their role allows ``role``; raises PermissionDenied."""
        user = await self.current_user()
        return auth_service.require_role(user, role)

    @not_an_event
    async def signed_in(self) -> bool:
        """For loaders: a page's data goes only to a signed-in user, whoever sends the event."""
        user = await self.current_user()
        self._remember(user)
        return user is not None

    def _remember(self, user: User | None) -> None:
        self.user_email = user.email if user else ""
        self.user_role = user.role if user else ""

    @rx.var
    def is_admin(self) -> bool:
        return self.user_role == Role.ADMIN.value

    @rx.var
    def can_manage(self) -> bool:
        return self.user_role in (Role.ADMIN.value, Role.MANAGER.value)

    @rx.event
    @public("it is the session check: it only says whether this tab is signed in")
    async def check_session(self):
        """on_load of every signed-in page: back to the login page without a valid session."""
        user = await self.current_user()
        self._remember(user)
        if user is None:
            return rx.redirect(routes.LOGIN)
        return None

    @rx.event
    @public("it is the admin check itself: it only redirects or explains")
    async def check_admin(self):
        user = await self.current_user()
        self._remember(user)
        if user is None:
            return rx.redirect(routes.LOGIN)
        if not auth_service.has_role(user, Role.ADMIN):
            return [
                rx.redirect(routes.OVERVIEW),
                rx.toast.error("Only admins can open that page."),
            ]
        return None

    @rx.event
    @public("it ends the session the tab holds, if any")
    async def sign_out(self):
        """Revoke the session server-side now, then let the sign-out route clear the
        HttpOnly cookie (only a response can) and bring the browser to the login page."""
        token = self.session_token
        await in_session(lambda s: auth_service.revoke_session(session=s, token=token))
        self._remember(None)
        return post_to(SIGN_OUT)


def post_to(url: str) -> EventSpec:
    """A full-page form POST to a hub route (sign-out): a same-origin POST carries Origin."""
    script = (
        "(() => { const form = document.createElement('form'); form.method = 'post'; "
        f"form.action = {json.dumps(url)}; document.body.appendChild(form); form.submit(); }})()"
    )
    return rx.call_script(script)


def leave_app(url: str) -> EventSpec:
    """Full-page navigation to a hub route outside the SPA (OAuth start): Reflex's router
    would otherwise handle a same-origin URL itself and show its 404 page."""
    return rx.call_script(f"window.location.assign({json.dumps(url)})")
