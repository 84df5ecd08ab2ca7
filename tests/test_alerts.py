from __future__ import annotations

import hashlib
import hmac
import json

import httpx
import pytest
import respx
from sqlmodel import Session

from dashboard.services.alerts import (
    deliver,
    list_notifications,
    mark_all_read,
    notify,
    unread_count,
)
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
