"""Issue 12 item 6: the session cookie, security headers on every response, CORS.

The first tests drive the hub's routes (``build_api``) around a stand-in for Reflex's app that
serves a page the way its production build does (inline scripts, gzip). The last ones start
the real hub (``hub serve``) and chromium: pages load and sign-in works under the CSP, and
another origin gets no CORS grant.
"""

from __future__ import annotations

import base64
import gzip
import hashlib
import importlib
import re
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa
from sqlmodel import Session
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from dashboard.api import build_api
from dashboard.models import Role
from dashboard.services import auth
from dashboard.state.auth import AuthState
from tests.conftest import reset_caches

PASSWORD = "the right password"
INLINE_SCRIPT = 'window.__reactRouterContext = {"basename": "/"};'
PAGE = (
    f"<!DOCTYPE html><html><head><script>{INLINE_SCRIPT}</script>"
    '<script type="module" src="/assets/app.js"></script></head><body>hub</body></html>'
).encode()


async def _reflex_page(request: Request) -> Response:
    """Like Reflex's static build: precompressed HTML when the browser accepts gzip."""
    if "gzip" in request.headers.get("accept-encoding", ""):
        return Response(gzip.compress(PAGE), media_type="text/html",
                        headers={"content-encoding": "gzip"})  # fmt: skip
    return Response(PAGE, media_type="text/html")


STAND_IN = Starlette(routes=[Route("/{path:path}", _reflex_page)])


def _client(public_url: str) -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=build_api(STAND_IN))  # type: ignore[arg-type]
    return httpx.AsyncClient(transport=transport, base_url=public_url,
                             headers={"Origin": public_url})  # fmt: skip


@pytest.fixture
def hub_at(hub_env: Path, monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    def configure(public_url: str) -> None:
        monkeypatch.setenv("HUB_SANDBOX", "false")
        monkeypatch.setenv("HUB_PUBLIC_URL", public_url)
        reset_caches()

    return configure


@pytest.fixture
async def hub(hub_at, hub_db: sa.Engine) -> AsyncIterator[httpx.AsyncClient]:  # type: ignore[no-untyped-def]
    hub_at("http://localhost:3000")
    async with _client("http://localhost:3000") as client:
        yield client


def _make_user(engine: sa.Engine, email: str = "ann@example.com") -> None:
    with Session(engine) as session:
        auth.create_user(session=session, email=email, role=Role.VIEWER, password=PASSWORD)
        session.commit()


def _cookie_attributes(set_cookie: str) -> set[str]:
    return {part.strip().split("=")[0].lower() for part in set_cookie.split(";")[1:]}


async def test_sign_in_sets_an_httponly_strict_cookie(hub: httpx.AsyncClient, hub_db) -> None:  # type: ignore[no-untyped-def]
    _make_user(hub_db)
    answer = await hub.post("/api/session", data={"email": "ann@example.com", "password": PASSWORD})
    assert answer.status_code == 303
    set_cookie = answer.headers["set-cookie"]
    assert set_cookie.startswith("hub_session=")
    assert {"httponly", "path", "max-age"} <= _cookie_attributes(set_cookie)
    assert "samesite=strict" in set_cookie.lower() and "path=/;" in set_cookie.lower() + ";"
    assert "secure" not in _cookie_attributes(set_cookie)  # http://localhost: would be dropped


async def test_cookie_is_secure_when_the_public_url_is_https(hub_at, hub_db) -> None:  # type: ignore[no-untyped-def]
    hub_at("https://hub.example.com")
    _make_user(hub_db)
    async with _client("https://hub.example.com") as hub:
        answer = await hub.post(
            "/api/session", data={"email": "ann@example.com", "password": PASSWORD}
        )
    assert "secure" in _cookie_attributes(answer.headers["set-cookie"])


async def test_the_state_reads_the_cookie_of_the_socket_and_never_holds_it(
    hub: httpx.AsyncClient, hub_db: sa.Engine
) -> None:
    """The websocket handshake carries the HttpOnly cookie; the state finds the user from it,
    and no var (what the browser is sent) holds the token."""
    from reflex.istate.data import RouterData

    _make_user(hub_db)
    answer = await hub.post("/api/session", data={"email": "ann@example.com", "password": PASSWORD})
    token = answer.cookies["hub_session"]
    state = AuthState(_reflex_internal_init=True)
    assert await state.current_user() is None
    cookie = f"theme=dark; hub_session={token}"
    state.router = RouterData.from_router_data({"headers": {"cookie": cookie}})
    user = await state.current_user()
    assert user is not None and user.email == "ann@example.com"
    sent = str(state.dict())
    assert token not in sent and "session_token" not in AuthState.vars


async def test_sign_out_revokes_the_session_and_clears_the_cookie(
    hub: httpx.AsyncClient, hub_db: sa.Engine
) -> None:
    _make_user(hub_db)
    answer = await hub.post("/api/session", data={"email": "ann@example.com", "password": PASSWORD})
    token = answer.cookies["hub_session"]
    foreign = await hub.post("/api/session/end", headers={"Origin": "https://evil.example"})
    assert foreign.status_code == 403
    out = await hub.post("/api/session/end")  # the client sends the cookie it was given
    assert out.status_code == 303 and out.headers["location"] == "/login/"
    cleared = out.headers["set-cookie"]
    assert cleared.startswith('hub_session=""') and "max-age=0" in cleared.lower()
    with Session(hub_db) as session:
        assert auth.user_for_token(session=session, token=token) is None


@pytest.mark.parametrize("path", ["/login", "/login/", "/connect/some-link-token", "/api/health"])
@pytest.mark.parametrize("encoding", ["gzip", "identity"])
async def test_every_response_forbids_framing_and_sniffing(
    hub: httpx.AsyncClient, path: str, encoding: str
) -> None:
    answer = await hub.get(path, headers={"Accept-Encoding": encoding})
    assert answer.status_code == 200
    headers = answer.headers
    policy = headers["content-security-policy"]
    assert "frame-ancestors 'none'" in policy
    assert headers["x-frame-options"] == "DENY"
    assert headers["x-content-type-options"] == "nosniff"
    # A connect link's token must not leave in a Referer; same-origin posts keep Origin.
    assert headers["referrer-policy"] == "same-origin"
    script_src = re.search(r"script-src ([^;]+)", policy).group(1).split()  # type: ignore[union-attr]
    assert "'unsafe-inline'" not in script_src and "'self'" in script_src
    if answer.headers["content-type"].startswith("text/html"):
        # The page's own inline script is allowed by its hash, and nothing else inline.
        digest = base64.b64encode(hashlib.sha256(INLINE_SCRIPT.encode()).digest()).decode()
        assert f"'sha256-{digest}'" in script_src
        assert answer.content == PAGE  # the body passes unchanged (httpx decodes gzip)


def test_cors_and_the_socket_accept_only_the_public_origin(
    hub_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HUB_PUBLIC_URL", "https://hub.example.com/")
    monkeypatch.setenv("HUB_SANDBOX", "false")  # a mounted sandbox is refused off localhost
    reset_caches()
    import rxconfig

    try:
        config = importlib.reload(rxconfig).config
        assert list(config.cors_allowed_origins) == ["https://hub.example.com"]
    finally:
        monkeypatch.delenv("HUB_PUBLIC_URL")
        reset_caches()
        importlib.reload(rxconfig)


# --- the real hub and chromium ----------------------------------------------------------------


@pytest.fixture(scope="module")
def real_hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[object]:
    from tests.browser.conftest import require_chromium, running_hub

    require_chromium()
    with running_hub(tmp_path_factory.mktemp("hub")) as hub:
        yield hub


@pytest.mark.browser
def test_real_pages_load_and_sign_in_under_the_csp(real_hub) -> None:  # type: ignore[no-untyped-def]
    from playwright.sync_api import sync_playwright

    from tests.browser.conftest import (
        ADMIN_EMAIL,
        ADMIN_PASSWORD,
        CHROMIUM,
        CHROMIUM_ARGS,
        sent_to_sign_in,
    )

    for path in ("/login/", "/connect/not-a-link/", "/api/health"):
        headers = httpx.get(f"{real_hub.url}{path}").headers
        assert "frame-ancestors 'none'" in headers["content-security-policy"], path
        assert headers["x-content-type-options"] == "nosniff"
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_page()
        violations: list[str] = []
        page.on("console", lambda m: violations.append(m.text)
                if "Content Security Policy" in m.text else None)  # fmt: skip
        page.goto(f"{real_hub.url}/login")
        page.get_by_label("Email").fill(ADMIN_EMAIL)
        page.get_by_label("Password").fill(ADMIN_PASSWORD)
        page.get_by_role("button", name="Sign in").click()
        page.wait_for_url(f"{real_hub.url}/", timeout=30_000)
        page.get_by_text("No integrations yet").wait_for(timeout=30_000)
        cookie = next(c for c in page.context.cookies() if c["name"] == "hub_session")
        assert cookie["httpOnly"] and cookie["sameSite"] == "Strict"
        assert page.evaluate("document.cookie").find("hub_session") == -1
        # Signing out ends the session in the browser and on the server.
        page.get_by_role("button", name="User menu").click()
        page.get_by_role("menuitem", name="Sign out").click()
        page.wait_for_url("**/login**", timeout=30_000)
        assert not any(c["name"] == "hub_session" for c in page.context.cookies())
        sent_to_sign_in(page, f"{real_hub.url}/integrations")
        browser.close()
    assert violations == []


@pytest.mark.browser
def test_real_hub_grants_no_cors_to_another_origin(real_hub) -> None:  # type: ignore[no-untyped-def]
    evil = "https://evil.example"
    for path in ("/api/health", "/_event/", "/api/session"):
        preflight = httpx.options(
            f"{real_hub.url}{path}",
            headers={"Origin": evil, "Access-Control-Request-Method": "POST"},
        )
        assert preflight.headers.get("access-control-allow-origin") != evil, path
        assert preflight.headers.get("access-control-allow-origin") != "*", path
        simple = httpx.get(f"{real_hub.url}{path}", headers={"Origin": evil})
        assert "access-control-allow-origin" not in simple.headers, path
    own = httpx.options(
        f"{real_hub.url}/api/health",
        headers={"Origin": real_hub.url, "Access-Control-Request-Method": "GET"},
    )
    assert own.headers.get("access-control-allow-origin") == real_hub.url


async def test_html_sent_by_the_server_itself_gets_its_script_hashes(tmp_path: Path) -> None:
    """Granian serves static files with the ASGI pathsend extension: the middleware must
    release the held headers (with the file's hashes) before the server sends the file."""
    from starlette.responses import FileResponse

    from dashboard.api.security_headers import SecurityHeadersMiddleware

    page = tmp_path / "index.html"
    page.write_bytes(PAGE)
    app = SecurityHeadersMiddleware(FileResponse(page), public_url="http://localhost:3000")
    scope = {"type": "http", "method": "GET", "path": "/", "headers": [],
             "extensions": {"http.response.pathsend": {}}}  # fmt: skip
    sent: list[dict] = []

    async def receive() -> dict:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict) -> None:
        sent.append(message)

    await app(scope, receive, send)  # type: ignore[arg-type]
    assert [m["type"] for m in sent] == ["http.response.start", "http.response.pathsend"]
    policy = dict(sent[0]["headers"])[b"content-security-policy"].decode()
    digest = base64.b64encode(hashlib.sha256(INLINE_SCRIPT.encode()).digest()).decode()
    assert f"'sha256-{digest}'" in policy
