"""Issue 12 item 3: sign-in under parallel guessing, and no account enumeration.

Driven over HTTP against the hub's own routes (``build_api``), as an attacker would.
"""

from __future__ import annotations

import asyncio
import base64
import secrets
import threading
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa
from argon2 import PasswordHasher
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt
from sqlmodel import Session, select
from starlette.responses import PlainTextResponse

from dashboard import db
from dashboard.api import build_api
from dashboard.models import Role, SignInThrottle, User
from dashboard.services import auth
from tests.conftest import reset_caches

HUB = "http://localhost:3000"
PASSWORD = "the right password"


@pytest.fixture
def no_sandbox(monkeypatch: pytest.MonkeyPatch, hub_env: Path) -> None:
    monkeypatch.setenv("HUB_SANDBOX", "false")
    reset_caches()


def _hub_app() -> object:
    return build_api(PlainTextResponse("reflex"))


@pytest.fixture
async def client(no_sandbox: None, hub_db: sa.Engine) -> AsyncIterator[httpx.AsyncClient]:
    async with _client() as hub:
        yield hub


def _client(address: str = "203.0.113.7") -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=_hub_app(), client=(address, 50000))  # type: ignore[arg-type]
    return httpx.AsyncClient(transport=transport, base_url=HUB, headers={"Origin": HUB})


class VerifyCounter:
    """Counts password checks (thread-safe: sign-ins run in database threads)."""

    def __init__(self, real: Callable[[str, str], bool]) -> None:
        self.real, self.calls, self.lock = real, 0, threading.Lock()

    def __call__(self, password: str, stored: str) -> bool:
        with self.lock:
            self.calls += 1
        return self.real(password, stored)


@pytest.fixture
def verify_counter(monkeypatch: pytest.MonkeyPatch) -> Iterator[VerifyCounter]:
    counter = VerifyCounter(auth.verify_password)
    monkeypatch.setattr(auth, "verify_password", counter)
    yield counter


def _make_user(engine: sa.Engine, email: str, *, disabled: bool = False, hash_: str = "") -> None:
    with Session(engine) as session:
        user, _ = auth.create_user(
            session=session, email=email, role=Role.VIEWER, password=PASSWORD
        )
        user.disabled = disabled
        if hash_:
            user.password_hash = hash_
        session.add(user)
        session.commit()


async def _sign_in(client: httpx.AsyncClient, email: str, password: str) -> httpx.Response:
    return await client.post("/api/session", data={"email": email, "password": password})


async def _thirty_parallel_wrong_then_right(engine: sa.Engine, counter: VerifyCounter) -> None:
    _make_user(engine, "ann@example.com")
    async with _client() as client:
        answers = await asyncio.gather(
            *(_sign_in(client, "Ann@Example.com", f"guess-{n}") for n in range(30))
        )
        assert all(a.status_code == 303 and "set-cookie" not in a.headers for a in answers)
        assert counter.calls <= auth.ACCOUNT_ATTEMPTS  # the rest never reached a hash
        throttled = [a for a in answers if "error=throttled" in a.headers["location"]]
        assert len(throttled) == 30 - auth.ACCOUNT_ATTEMPTS
        # Every attempt was counted, none lost to a concurrent read-change-write.
        with Session(engine) as session:
            row = session.get(SignInThrottle, "account:ann@example.com")
            assert row is not None and row.attempts == 30
        # Even the right password waits for the window now.
        right = await _sign_in(client, "ann@example.com", PASSWORD)
        assert "error=throttled" in right.headers["location"] and "set-cookie" not in right.headers
        assert counter.calls <= auth.ACCOUNT_ATTEMPTS


async def test_thirty_parallel_wrong_sign_ins_check_at_most_the_limit_sqlite(
    no_sandbox: None, hub_db: sa.Engine, verify_counter: VerifyCounter
) -> None:
    await _thirty_parallel_wrong_then_right(hub_db, verify_counter)


@pytest.mark.postgres
async def test_thirty_parallel_wrong_sign_ins_check_at_most_the_limit_postgres(
    no_sandbox: None, pg_hub_db: sa.Engine, verify_counter: VerifyCounter
) -> None:
    await _thirty_parallel_wrong_then_right(pg_hub_db, verify_counter)


async def test_one_address_guessing_many_accounts_is_slowed_down(
    client: httpx.AsyncClient, hub_db: sa.Engine
) -> None:
    """Password spraying: one guess at each of many emails, from one address."""
    answers = [
        await _sign_in(client, f"user{n}@example.com", "Winter2026!")
        for n in range(auth.ADDRESS_ATTEMPTS + 3)
    ]
    locations = [a.headers["location"] for a in answers]
    assert all("error=refused" in loc for loc in locations[: auth.ADDRESS_ATTEMPTS])
    assert all("error=throttled" in loc for loc in locations[auth.ADDRESS_ATTEMPTS :])
    async with _client("198.51.100.9") as elsewhere:  # another address is not affected
        answer = await _sign_in(elsewhere, "user0@example.com", "Winter2026!")
        assert "error=refused" in answer.headers["location"]


async def test_unknown_wrong_and_disabled_look_the_same(
    client: httpx.AsyncClient, hub_db: sa.Engine, verify_counter: VerifyCounter
) -> None:
    _make_user(hub_db, "known@example.com")
    _make_user(hub_db, "off@example.com", disabled=True)
    answers = []
    for email, password in [
        ("known@example.com", "wrong password"),
        ("nobody@example.com", PASSWORD),
        ("off@example.com", PASSWORD),  # the right password: still not told it is disabled
    ]:
        before = verify_counter.calls
        answer = await _sign_in(client, email, password)
        # Each costs exactly one hash check (a dummy one when there is no usable account).
        assert verify_counter.calls == before + 1
        answers.append((answer.status_code, answer.headers["location"], answer.content,
                        "set-cookie" in answer.headers))  # fmt: skip
    assert answers[0] == answers[1] == answers[2] == (303, "/login/?error=refused", b"", False)
    login = await client.get("/login?error=refused")  # the page shows one fixed message
    assert login.status_code == 200


def _legacy_scrypt_hash(password: str) -> str:
    """What the hub stored before argon2id: scrypt N=2^14, r=8, p=1."""
    salt = secrets.token_bytes(16)
    key = Scrypt(salt=salt, length=32, n=2**14, r=8, p=1).derive(password.encode())
    b64 = base64.b64encode
    return f"scrypt$16384$8$1${b64(salt).decode()}${b64(key).decode()}"


@pytest.mark.parametrize(
    "old_hash",
    [
        pytest.param(lambda: _legacy_scrypt_hash(PASSWORD), id="scrypt"),
        pytest.param(
            lambda: PasswordHasher(time_cost=1, memory_cost=8192).hash(PASSWORD), id="weaker-argon2"
        ),
    ],
)
async def test_old_hash_signs_in_and_is_upgraded_to_argon2id(
    client: httpx.AsyncClient, hub_db: sa.Engine, old_hash: Callable[[], str]
) -> None:
    _make_user(hub_db, "old@example.com", hash_=old_hash())
    answer = await _sign_in(client, "old@example.com", PASSWORD)
    assert answer.status_code == 303 and answer.headers["location"] == "/"
    assert "hub_session=" in answer.headers["set-cookie"]
    with Session(hub_db) as session:
        stored = session.exec(
            sa.select(User.password_hash).where(User.email == "old@example.com")  # type: ignore[arg-type]
        ).scalar_one()
    assert stored.startswith("$argon2id$v=19$m=19456,t=2,p=1$")
    assert auth.verify_password(PASSWORD, stored)


async def test_a_right_password_gives_the_attempts_back(
    client: httpx.AsyncClient, hub_db: sa.Engine
) -> None:
    _make_user(hub_db, "ann@example.com")
    for _ in range(auth.ACCOUNT_ATTEMPTS - 1):
        await _sign_in(client, "ann@example.com", "wrong password")
    assert (await _sign_in(client, "ann@example.com", PASSWORD)).headers["location"] == "/"
    wrong = await _sign_in(client, "ann@example.com", "wrong password")
    assert wrong.headers["location"] == "/login/?error=refused"  # counting starts again


async def test_sign_in_redirects_only_to_a_page_of_the_hub(
    client: httpx.AsyncClient, hub_db: sa.Engine
) -> None:
    _make_user(hub_db, "ann@example.com")
    for target, expected in [("/runs", "/runs"), ("//evil.example/x", "/"),
                             ("https://evil.example/", "/")]:  # fmt: skip
        answer = await client.post(
            "/api/session",
            data={"email": "ann@example.com", "password": PASSWORD, "next": target},
        )
        assert answer.headers["location"] == expected


async def test_sign_in_from_another_origin_is_refused(
    client: httpx.AsyncClient, hub_db: sa.Engine, verify_counter: VerifyCounter
) -> None:
    """Login CSRF: a page elsewhere posting the attacker's credentials into the browser."""
    _make_user(hub_db, "attacker@example.com")
    form = {"email": "attacker@example.com", "password": PASSWORD}
    for headers in ({"Origin": "https://evil.example"}, {"Origin": "null"},
                    {"Origin": "", "Referer": "https://evil.example/login"}):  # fmt: skip
        answer = await client.post("/api/session", data=form, headers=headers)
        assert answer.status_code == 403 and "set-cookie" not in answer.headers
    bare = httpx.ASGITransport(app=_hub_app())  # type: ignore[arg-type]
    async with httpx.AsyncClient(transport=bare, base_url=HUB) as no_origin:
        answer = await no_origin.post("/api/session", data=form)
        assert answer.status_code == 403
    assert verify_counter.calls == 0
    # The same post from the hub's own page works.
    assert (await client.post("/api/session", data=form)).headers["location"] == "/"


async def test_sign_in_from_the_hub_page_without_origin_but_with_referer(
    client: httpx.AsyncClient, hub_db: sa.Engine
) -> None:
    _make_user(hub_db, "ann@example.com")
    bare = httpx.ASGITransport(app=_hub_app())  # type: ignore[arg-type]
    async with httpx.AsyncClient(transport=bare, base_url=HUB) as browser:
        answer = await browser.post(
            "/api/session",
            data={"email": "ann@example.com", "password": PASSWORD},
            headers={"Referer": f"{HUB}/login"},
        )
    assert answer.status_code == 303 and answer.headers["location"] == "/"


def test_database_upsert_counts_each_attempt_once(hub_db: sa.Engine) -> None:
    """The counter itself: an upsert per attempt, a fresh window after the old one ends."""
    with db.session_scope() as session:
        for _ in range(3):
            with pytest.raises(auth.LoginRefused):
                auth.authenticate(session=session, email="x@example.com", password="p" * 12)
        row = session.get(SignInThrottle, "account:x@example.com")
        assert row is not None and row.attempts == 3
        row.window_started_at -= auth.THROTTLE_WINDOW
        session.add(row)
        session.commit()
        with pytest.raises(auth.LoginRefused):
            auth.authenticate(session=session, email="x@example.com", password="p" * 12)
        session.expire_all()
        assert session.get(SignInThrottle, "account:x@example.com").attempts == 1  # type: ignore[union-attr]


def test_ended_windows_are_pruned_so_a_spray_of_emails_does_not_grow_the_table(
    hub_db: sa.Engine,
) -> None:
    with db.session_scope() as session:
        for number in range(5):
            with pytest.raises(auth.LoginRefused):
                email = f"x{number}@example.com"
                auth.authenticate(session=session, email=email, password="p" * 12)
        stale = session.get(SignInThrottle, "account:x0@example.com")
        assert stale is not None
        stale.window_started_at -= auth.THROTTLE_WINDOW
        session.add(stale)
        session.commit()
        assert auth.prune_sign_in_throttles(session=session) == 1
        session.commit()
        keys = set(session.exec(select(SignInThrottle.key)).all())
        assert "account:x0@example.com" not in keys and "account:x4@example.com" in keys


async def test_behind_the_proxy_each_client_address_counts_not_the_proxy(
    no_sandbox: None, hub_db: sa.Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The proxy on loopback (trusted by default) names the client in X-Forwarded-For; a
    client elsewhere cannot name an address of its choosing."""

    async def attempt(peer: str, forwarded_for: str) -> None:
        async with _client(peer) as client:
            client.headers["X-Forwarded-For"] = forwarded_for
            await _sign_in(client, "nobody@example.com", "wrong password")

    await attempt("127.0.0.1", "203.0.113.50")  # through the proxy
    await attempt("198.51.100.7", "203.0.113.99")  # straight in, forging the header
    with Session(hub_db) as session:
        keys = set(session.exec(select(SignInThrottle.key)).all())
    assert "address:203.0.113.50" in keys and "address:127.0.0.1" not in keys
    assert "address:198.51.100.7" in keys and "address:203.0.113.99" not in keys

    monkeypatch.setenv("HUB_TRUSTED_PROXIES", "")  # no proxy: nobody's header is believed
    reset_caches()
    await attempt("127.0.0.1", "203.0.113.77")
    with Session(hub_db) as session:
        keys = set(session.exec(select(SignInThrottle.key)).all())
    assert "address:127.0.0.1" in keys and "address:203.0.113.77" not in keys
