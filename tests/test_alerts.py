from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import stat
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
import respx
from sqlmodel import Session, select

from dashboard.db import in_session
from dashboard.models import AlertDelivery
from dashboard.services.alerts import (
    alert_delivery_lifespan,
    deliver,
    deliver_pending,
    list_notifications,
    mark_all_read,
    notify,
    unread_count,
)
from dashboard.settings import get_settings
from tests.conftest import reset_caches


def test_notifications_are_listed_and_marked_read(session: Session) -> None:
    notify(session=session, kind="run_failed", message="orders sync failed")
    notify(session=session, kind="needs_reauth", message="Acme needs to reconnect")
    assert unread_count(session=session) == 2
    kinds = {n.kind for n in list_notifications(session=session)}
    assert kinds == {"run_failed", "needs_reauth"}
    mark_all_read(session=session)
    assert unread_count(session=session) == 0


@respx.mock
async def test_outgoing_alert_is_signed(hub_env, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HUB_ALERT_WEBHOOK_URL", "https://alerts.example.com/hook")
    monkeypatch.setenv("HUB_ALERT_WEBHOOK_SECRET", "s3cret")
    reset_caches()
    route = respx.post("https://alerts.example.com/hook").mock(
        side_effect=[httpx.Response(503), httpx.Response(204)]
    )
    assert await deliver({"kind": "run_failed", "message": "boom"}) is True
    request = route.calls.last.request
    timestamp = request.headers["X-Hub-Timestamp"]
    expected = hmac.new(b"s3cret", f"{timestamp}.".encode() + request.content, hashlib.sha256)
    assert request.headers["X-Hub-Signature-256"] == f"sha256={expected.hexdigest()}"
    assert json.loads(request.content)["kind"] == "run_failed"
    assert route.call_count == 2  # the 503 was retried


async def test_no_webhook_configured_sends_nothing(hub_env) -> None:
    assert await deliver({"kind": "x"}) is False


HOOK = "https://alerts.example.com/hook"


@pytest.fixture(params=["sqlite", "postgresql"])
def alert_db(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    """A hub database (SQLite or PostgreSQL) with the alert webhook configured, no secret."""
    request.getfixturevalue("hub_db" if request.param == "sqlite" else "pg_hub_db")
    monkeypatch.setenv("HUB_ALERT_WEBHOOK_URL", HOOK)
    get_settings.cache_clear()


def verified(request: httpx.Request, secret: str) -> bool:
    """What a receiver does (docs/operations.md): recompute the HMAC and compare."""
    timestamp = request.headers["X-Hub-Timestamp"]
    expected = hmac.new(secret.encode(), f"{timestamp}.".encode() + request.content, "sha256")
    return hmac.compare_digest(
        request.headers["X-Hub-Signature-256"], f"sha256={expected.hexdigest()}"
    )


async def wait_for(condition: Callable[[], bool], seconds: float = 5.0) -> None:
    for _ in range(int(seconds / 0.05)):
        if condition():
            return
        await asyncio.sleep(0.05)


@respx.mock
async def test_alerts_go_out_signed_and_only_after_commit(alert_db: None, hub_env: Path) -> None:
    route = respx.post(HOOK).mock(return_value=httpx.Response(204))
    async with alert_delivery_lifespan():

        def raise_then_roll_back(session: Session) -> None:
            notify(session=session, kind="run_failed", message="rolled back")
            raise RuntimeError("the sync's transaction failed")

        with pytest.raises(RuntimeError):
            await in_session(raise_then_roll_back)
        await asyncio.sleep(0.5)
        assert route.call_count == 0  # nothing for a transaction that never happened

        await in_session(
            lambda s: notify(session=s, kind="run_failed", message="orders sync failed")
        )
        await wait_for(lambda: route.called)
    assert route.call_count == 1
    request = route.calls.last.request
    assert json.loads(request.content)["message"] == "orders sync failed"
    # No HUB_ALERT_WEBHOOK_SECRET: a generated one, private, in the data dir, signs it.
    secret_file = hub_env / "alert-webhook.secret"
    assert stat.S_IMODE(secret_file.stat().st_mode) == 0o600
    assert verified(request, secret_file.read_text().strip())
    assert not verified(request, "another secret")


@respx.mock
async def test_a_failed_delivery_is_retried_later_and_sent_once(alert_db: None) -> None:
    route = respx.post(HOOK).mock(
        side_effect=[httpx.Response(400), httpx.Response(204), httpx.Response(204)]
    )
    await in_session(lambda s: notify(session=s, kind="needs_reauth", message="Acme"))
    assert await deliver_pending() == 0  # refused: kept for a later attempt
    assert await deliver_pending() == 0  # not due yet (backoff)

    def make_due(session: Session) -> None:
        for delivery in session.exec(select(AlertDelivery)):
            delivery.next_attempt_at = datetime.now(UTC) - timedelta(seconds=1)
            session.add(delivery)

    await in_session(make_due)
    assert await deliver_pending() == 1
    assert await deliver_pending() == 0  # delivered: never again
    assert route.call_count == 2
