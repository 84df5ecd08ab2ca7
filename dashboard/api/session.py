"""Sign-in and sign-out as plain HTTP form posts, so the session cookie is set by a response.

The cookie is HttpOnly (no script, so no injected script, can read it), SameSite=Strict (a
cross-site request never carries it: the OAuth return from Shopify or Amazon lands on a route
that needs no session, and its redirect to the integration page loads a document whose own
websocket is same-site and does carry it), Path=/, and Secure when the public URL is https.
The Reflex state reads it from the websocket handshake's Cookie header (``state/auth.py``).

Both routes take a post only from the hub's own origin (``Origin``, else ``Referer``): a page
elsewhere can neither sign a browser in to an attacker's account (login CSRF) nor out.

Per-address limits use the client's address (``request.client.host``). Behind a reverse
proxy, ``build_api``'s forwarded-headers middleware sets it from ``X-Forwarded-For``, but only
for a connection from a proxy in ``HUB_TRUSTED_PROXIES``; from anyone else the header is
ignored.
"""

from __future__ import annotations

import html
from urllib.parse import urlencode, urlsplit

from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response

from dashboard import routes as ui_routes
from dashboard.api.access import Access, route
from dashboard.db import in_session
from dashboard.services import auth as auth_service
from dashboard.settings import get_settings

SIGN_IN = "/api/session"
SIGN_OUT = "/api/session/end"
SESSION_COOKIE = auth_service.SESSION_COOKIE
# The sign-in page as it is served: /login answers 307 to /login/, a second hop for every
# redirect there (and a navigation a browser may still be making when the next one starts).
LOGIN_PAGE = f"{ui_routes.LOGIN}/"
MAX_FIELD = 1024  # longer than any email (320) or sensible password; argon2 cost stays flat


def _same_origin(request: Request) -> bool:
    origin = request.headers.get("origin")
    if origin is None:  # some browsers omit Origin on same-origin posts; Referer then says
        referer = request.headers.get("referer", "")
        parts = urlsplit(referer)
        origin = f"{parts.scheme}://{parts.netloc}" if parts.scheme and parts.netloc else ""
    return origin.lower() == get_settings().public_origin  # the only one allowed to post


def _local_path(target: str) -> str:
    """Where to go after sign-in: a path on this hub only (no open redirect)."""
    if target.startswith("/") and not target.startswith(("//", "/\\")) and "\n" not in target:
        return target
    return ui_routes.OVERVIEW


def _back_to_login(error: str, **extra: str) -> RedirectResponse:
    query = urlencode({"error": error, **extra})
    return RedirectResponse(f"{LOGIN_PAGE}?{query}", status_code=303)


def _cross_origin() -> Response:
    """403 with where the form belongs: usually the hub opened at another address for the
    same server (127.0.0.1 for localhost), whose page can post but not sign in."""
    login = html.escape(f"{get_settings().public_origin}{LOGIN_PAGE}")
    return HTMLResponse(
        "<!doctype html><title>Sign-in refused</title><p>Cross-origin request refused: this "
        "form was not sent from the hub's own address. The hub answers at "
        f'<a href="{login}">{login}</a>; sign in there.</p>',
        status_code=403,
    )


def cookie_secure() -> bool:
    return (get_settings().public_url or "").startswith("https://")


async def sign_in(request: Request) -> Response:
    """POST email + password (+ next): 303 to the page with the session cookie, or back to
    /login/?error=... with one answer for every wrong email, password or disabled account."""
    if not _same_origin(request):
        return _cross_origin()
    async with request.form(max_files=0, max_fields=8, max_part_size=4 * MAX_FIELD) as form:
        email = str(form.get("email") or "").strip()
        password = str(form.get("password") or "")
        target = _local_path(str(form.get("next") or ""))
    if not email or not password or len(email) > MAX_FIELD or len(password) > MAX_FIELD:
        return _back_to_login("missing")
    client_address = request.client.host if request.client else None

    def attempt(session) -> str:
        user = auth_service.authenticate(
            session=session, email=email, password=password, client_address=client_address
        )
        return auth_service.create_session(session=session, user=user)

    try:
        token = await in_session(attempt)
    except auth_service.SignInThrottled as throttled:
        return _back_to_login("throttled", retry=str(throttled.retry_after))
    except auth_service.LoginRefused:
        return _back_to_login("refused")
    response = RedirectResponse(target, status_code=303)
    response.set_cookie(
        SESSION_COOKIE,
        token,
        max_age=get_settings().session_hours * 3600,
        path="/",
        secure=cookie_secure(),
        httponly=True,
        samesite="strict",
    )
    return response


async def sign_out(request: Request) -> Response:
    """POST: revoke the session server-side, clear the cookie, back to the login page."""
    if not _same_origin(request):
        return _cross_origin()
    token = request.cookies.get(SESSION_COOKIE)
    await in_session(lambda session: auth_service.revoke_session(session=session, token=token))
    response = RedirectResponse(LOGIN_PAGE, status_code=303)
    response.delete_cookie(
        SESSION_COOKIE, path="/", secure=cookie_secure(), httponly=True, samesite="strict"
    )
    return response


routes = [
    route(SIGN_IN, sign_in, methods=["POST"], access=Access.SAME_ORIGIN_FORM),
    route(SIGN_OUT, sign_out, methods=["POST"], access=Access.SAME_ORIGIN_FORM),
]
