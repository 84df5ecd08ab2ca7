"""Shared fixtures: one isolated hub database per test, users, and the PostgreSQL switch.

``hub_env`` points the settings at a fresh data dir (SQLite file + generated key) and resets
every process-wide cache, so tests never see each other's rows or keys.
"""

from __future__ import annotations

import logging
import os
import secrets
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlmodel import Session, SQLModel

import dashboard.models  # noqa: F401  registers the tables
from dashboard import db
from dashboard.db import session_scope
from dashboard.services import vault, webhook_signers
from dashboard.services.integrations import create_integration, mark_connected
from dashboard.settings import get_settings

# Shared helpers that assert (a webhook subscription made, an Amazon response's schema)
# get pytest's detailed assertion messages, as they did when they lived in a test module.
pytest.register_assert_rewrite("tests.sandbox_shopify_helpers", "tests.sandbox_amazon_helpers")

PG_ADMIN_URL = os.environ.get("HUB_TEST_PG_URL", "postgresql://postgres@127.0.0.1:5432/postgres")

# Tests never read the developer's .env or environment for hub settings.
for _name in list(os.environ):
    if _name.startswith("HUB_") and _name != "HUB_TEST_PG_URL":
        del os.environ[_name]
os.environ.pop("DATABASE_URL", None)
os.environ.pop("REDIS_URL", None)


def reset_caches() -> None:
    get_settings.cache_clear()
    vault.get_vault.cache_clear()
    db.reset_engines()
    webhook_signers.forget()


@pytest.fixture
def hub_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """Settings for an isolated hub under tmp_path (sandbox on, SQLite, generated key)."""
    monkeypatch.setenv("HUB_DATA_DIR", str(tmp_path / "data"))
    # The sandbox is off by default; these tests use it. Its token is also the one
    # tests.sandbox_server gives a sandbox it starts, so hub and sandbox share app secrets.
    monkeypatch.setenv("HUB_SANDBOX", "true")
    monkeypatch.setenv("HUB_SANDBOX_CONTROL_TOKEN", secrets.token_urlsafe(16))
    monkeypatch.setenv("HUB_ENV", "test")
    monkeypatch.chdir(tmp_path)  # .env of the developer's checkout must not leak in
    reset_caches()
    yield tmp_path / "data"
    reset_caches()


@pytest.fixture
def hub_db(hub_env: Path) -> Iterator[sa.Engine]:
    """A fresh SQLite hub database with every table (create_all: faster than migrating)."""
    engine = db.get_engine()
    SQLModel.metadata.create_all(engine)
    yield engine


@pytest.fixture
def session(hub_db: sa.Engine) -> Iterator[Session]:
    with db.session_scope() as session:
        yield session


def postgres_available() -> str | None:
    """None when PostgreSQL answers, else the reason to skip."""
    try:
        engine = sa.create_engine(PG_ADMIN_URL.replace("postgresql://", "postgresql+psycopg://"))
        with engine.connect() as connection:
            connection.execute(sa.text("SELECT 1"))
        engine.dispose()
        return None
    except Exception as error:
        return f"PostgreSQL not reachable at {PG_ADMIN_URL}: {type(error).__name__}"


@pytest.fixture
def pg_database_url() -> Iterator[str]:
    """A throw-away PostgreSQL database (created and dropped per test); skips without one."""
    reason = postgres_available()
    if reason:
        pytest.skip(reason)
    import uuid

    name = f"hub_test_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(
        PG_ADMIN_URL.replace("postgresql://", "postgresql+psycopg://"), isolation_level="AUTOCOMMIT"
    )
    with admin.connect() as connection:
        connection.execute(sa.text(f'CREATE DATABASE "{name}"'))
    base = PG_ADMIN_URL.rsplit("/", 1)[0]
    try:
        yield f"{base}/{name}"
    finally:
        db.reset_engines()
        with admin.connect() as connection:
            connection.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture
def pg_hub_db(
    pg_database_url: str, hub_env: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[sa.Engine]:
    """The hub configured on a fresh PostgreSQL database with every table."""
    monkeypatch.setenv("DATABASE_URL", pg_database_url)
    reset_caches()
    engine = db.get_engine()
    SQLModel.metadata.create_all(engine)
    yield engine
    reset_caches()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def any_db(request: pytest.FixtureRequest) -> str:
    """The hub database on a SQLite file, then on PostgreSQL (skipped when not reachable);
    the dialect's name."""
    request.getfixturevalue("pg_hub_db" if request.param == "postgres" else "hub_db")
    return str(request.param)


@pytest.fixture
def integration_id(session: Session) -> uuid.UUID:
    """A connected Shopify shop with a products stream, on SQLite (the sync engine's tests)."""
    integration = create_integration(
        session=session,
        platform="shopify",
        display_name="Acme",
        shop_domain="acme.myshopify.com",
        streams={"products": 15},
    )
    mark_connected(session=session, integration_id=integration.id)
    session.commit()
    return integration.id


@pytest.fixture
def shared_integration(any_db: str) -> uuid.UUID:
    """A connected Shopify shop with a products stream, on SQLite then PostgreSQL: for the
    tests of several processes sharing one database."""
    with session_scope() as s:
        integration = create_integration(
            session=s, platform="shopify", display_name="Shared",
            shop_domain="shared.myshopify.com", streams={"products": 15},
        )  # fmt: skip
        mark_connected(session=s, integration_id=integration.id)
        return integration.id


def leaked_secrets(
    records: list[logging.LogRecord], secrets: list[str], *, client_origin: str
) -> list[str]:
    """The log lines (every logger, every level) that contain one of ``secrets``, as the
    message and as the backend writes it in either ``HUB_LOG_FORMAT``: the JSON line also
    carries the fields a record got as ``extra=`` (a platform request's host and path).
    Lines about the test's own requests to ``client_origin`` (what a browser would send) do
    not count."""
    from dashboard.logging_setup import JsonFormatter, TextFormatter

    formats = (JsonFormatter(), TextFormatter())
    leaks = []
    for record in records:
        line = record.getMessage()
        if client_origin in line:
            continue
        written = [line, *(formatter.format(record) for formatter in formats)]
        leaks += [
            f"{record.name}: {text}" for secret in secrets if secret for text in written
            if secret in text
        ]  # fmt: skip
    return leaks


# Tests that serve the hub's frontend build it in the checkout's .web for the session's port
# (tests/browser/conftest.py): under pytest-xdist (`make test` runs two processes) they share
# one process, one at a time, as they did before; every other test may run beside them.
SERVES_THE_FRONTEND = ("tests/browser/", "tests/test_deploy_proxy.py",
                       "tests/security/test_sessions_headers.py")  # fmt: skip


def pytest_xdist_make_scheduler(config: pytest.Config, log: object) -> object:
    """Every test its own unit of work, except those serving the frontend: one unit. (xdist's
    ``--dist loadgroup`` would do it with a marker, but its way of tagging the tests no
    longer reaches pytest 9's node ids.)"""
    from xdist.scheduler import LoadScopeScheduling

    class FrontendTogether(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            return "frontend" if nodeid.startswith(SERVES_THE_FRONTEND) else nodeid

    return FrontendTogether(config, log)
