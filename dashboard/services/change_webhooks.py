"""Outgoing change webhooks: a consumer's URL told, in batches, that records of one kind of
one integration changed, with the cursor range to read from the feed.

Every ``SWEEP_EVERY`` seconds each hub process looks at each webhook: when the kind's highest
change number passed the one last announced, it moves ``announced_seq`` forward with a
conditional update (so one process announces a range once) and writes a delivery row in the
same transaction (an outbox). Due deliveries are claimed per attempt, as the alert outbox
does, POSTed signed like the hub's alert webhooks (``alerts.sign``: HMAC-SHA256 of
``{timestamp}.{body}`` in ``X-Hub-Signature-256``, ``X-Hub-Timestamp``) with the webhook's own
secret, and retried with doubling delays; after ``MAX_ATTEMPTS`` a delivery is failed. A
notice is only a nudge: a consumer reads the changes from the feed, from its own cursor, so
one that missed notices (or was down) catches up from the feed.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import ipaddress
import json
import logging
import secrets
import time
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

import httpx
import sqlalchemy as sa
from sqlmodel import Session, col, select

from connectors.http import build_client
from dashboard.db import in_session
from dashboard.models import RECORD_TABLES, ChangeWebhook, ChangeWebhookDelivery, Integration
from dashboard.production_profile import is_production
from dashboard.services.alerts import sign
from dashboard.services.audit import record_audit
from dashboard.services.change_feed import encode_cursor
from dashboard.services.vault import get_vault
from dashboard.settings import get_settings

log = logging.getLogger(__name__)

SWEEP_EVERY = 5.0  # seconds: how stale a notice may be (and how many changes one batches)
ATTEMPT_LEASE = timedelta(minutes=2)
MAX_ATTEMPTS = 8
FIRST_RETRY = timedelta(seconds=15)  # doubles with each failed attempt (to ~30 min)
KEEP_DELIVERED = timedelta(days=7)
EVENT = "records.changed"


class WebhookInvalid(ValueError):
    """The URL or kind cannot be registered: the message says why."""


def _associated(webhook_id: uuid.UUID) -> str:
    return f"change-webhook:{webhook_id}"


def _check_url(url: str) -> str:
    parts = urlsplit(url.strip())
    if parts.scheme not in ("https", "http") or not parts.hostname:
        raise WebhookInvalid("the URL must be http(s)://host/...")
    if is_production(get_settings()) and parts.scheme != "https":
        raise WebhookInvalid("the URL must use https")
    if parts.username or parts.password:
        raise WebhookInvalid("put no credentials in the URL: verify the signature instead")
    with contextlib.suppress(ValueError):
        address = ipaddress.ip_address(parts.hostname)
        if address.is_link_local or address.is_multicast or address.is_unspecified:
            raise WebhookInvalid("that address cannot receive webhooks")
    return url.strip()


def register_webhook(
    *, session: Session, integration_id: uuid.UUID, kind: str, url: str, actor: str
) -> tuple[ChangeWebhook, str]:
    """Register ``url`` for changes of ``kind``; returns (row, signing secret shown once).
    Changes stored from now on are announced; earlier ones are read from the feed."""
    if kind not in RECORD_TABLES:
        raise WebhookInvalid(f"unknown record kind {kind!r}")
    if session.get(Integration, integration_id) is None:
        raise LookupError("no such integration")
    url = _check_url(url)
    exists = session.exec(
        select(ChangeWebhook.id).where(
            ChangeWebhook.integration_id == integration_id,
            ChangeWebhook.kind == kind,
            ChangeWebhook.url == url,
        )
    ).first()
    if exists is not None:
        raise WebhookInvalid("that URL is already registered for this kind")
    secret = f"whsec_{secrets.token_urlsafe(32)}"
    webhook = ChangeWebhook(
        integration_id=integration_id,
        kind=kind,
        url=url,
        secret_key_id="",
        secret_ciphertext="",
        announced_seq=_highest_seq(session, integration_id, kind),
        created_by=actor[:320],
    )
    webhook.secret_key_id, webhook.secret_ciphertext = get_vault().encrypt(
        secret, associated_data=_associated(webhook.id)
    )
    session.add(webhook)
    record_audit(
        session=session,
        actor=actor,
        action="change_webhook.create",
        target=str(integration_id),
        context={"kind": kind, "url": url},
    )
    session.flush()
    return webhook, secret


def delete_webhook(
    *, session: Session, webhook_id: uuid.UUID, actor: str, integration_id: uuid.UUID | None = None
) -> None:
    """Raises LookupError when there is no such webhook (of that integration)."""
    webhook = session.get(ChangeWebhook, webhook_id)
    if webhook is None or (integration_id and webhook.integration_id != integration_id):
        raise LookupError("no such webhook")
    session.execute(
        sa.delete(ChangeWebhookDelivery).where(col(ChangeWebhookDelivery.webhook_id) == webhook_id)
    )
    session.delete(webhook)
    record_audit(
        session=session,
        actor=actor,
        action="change_webhook.delete",
        target=str(webhook.integration_id),
        context={"kind": webhook.kind, "url": webhook.url},
    )


def list_webhooks(
    *, session: Session, integration_id: uuid.UUID | None = None
) -> list[ChangeWebhook]:
    statement = select(ChangeWebhook).order_by(col(ChangeWebhook.created_at))
    if integration_id is not None:
        statement = statement.where(ChangeWebhook.integration_id == integration_id)
    return list(session.exec(statement).all())


def recent_deliveries(
    *, session: Session, webhook_id: uuid.UUID | None = None, limit: int = 50
) -> list[ChangeWebhookDelivery]:
    """The newest deliveries (of one webhook, or of all), for the delivery history."""
    statement = select(ChangeWebhookDelivery).order_by(col(ChangeWebhookDelivery.created_at).desc())
    if webhook_id is not None:
        statement = statement.where(ChangeWebhookDelivery.webhook_id == webhook_id)
    return list(session.exec(statement.limit(limit)).all())


def _highest_seq(session: Session, integration_id: uuid.UUID, kind: str) -> int:
    table: sa.Table = RECORD_TABLES[kind].__table__  # type: ignore[attr-defined]
    value = session.execute(
        sa.select(sa.func.max(table.c.change_seq)).where(table.c.integration_id == integration_id)
    ).scalar_one_or_none()
    return int(value or 0)


def announce_changes(session: Session) -> int:
    """Write a delivery for each webhook whose kind changed since its last notice."""
    written = 0
    for webhook in session.exec(select(ChangeWebhook)).all():
        highest = _highest_seq(session, webhook.integration_id, webhook.kind)
        announced = webhook.announced_seq  # (the update below refreshes the object)
        if highest <= announced:
            continue
        moved = session.execute(
            sa.update(ChangeWebhook)
            .where(
                col(ChangeWebhook.id) == webhook.id,
                col(ChangeWebhook.announced_seq) == announced,
            )
            .values(announced_seq=highest)
        )
        if not getattr(moved, "rowcount", 0):
            continue  # another process announced it
        session.add(
            ChangeWebhookDelivery(
                webhook_id=webhook.id,
                payload={
                    "type": EVENT,
                    "webhook_id": str(webhook.id),
                    "integration_id": str(webhook.integration_id),
                    "kind": webhook.kind,
                    # Read with since=after_cursor up to (and including) until_cursor.
                    "after_cursor": encode_cursor(announced),
                    "until_cursor": encode_cursor(highest),
                },
            )
        )
        written += 1
    return written


def _claim_due(
    session: Session, *, limit: int = 50
) -> list[tuple[uuid.UUID, dict[str, Any], str, str]]:
    """Due deliveries, each claimed for one attempt: (id, payload, url, secret)."""
    now = datetime.now(UTC)
    due = session.exec(
        select(ChangeWebhookDelivery, ChangeWebhook)
        .join(ChangeWebhook, col(ChangeWebhook.id) == col(ChangeWebhookDelivery.webhook_id))
        .where(
            col(ChangeWebhookDelivery.delivered_at).is_(None),
            col(ChangeWebhookDelivery.failed_at).is_(None),
            col(ChangeWebhookDelivery.next_attempt_at) <= now,
        )
        .order_by(col(ChangeWebhookDelivery.next_attempt_at))
        .limit(limit)
    ).all()
    claimed = []
    vault = get_vault()
    for delivery, webhook in due:
        result = session.execute(
            sa.update(ChangeWebhookDelivery)
            .where(
                col(ChangeWebhookDelivery.id) == delivery.id,
                col(ChangeWebhookDelivery.attempts) == delivery.attempts,
                col(ChangeWebhookDelivery.delivered_at).is_(None),
            )
            .values(attempts=delivery.attempts + 1, next_attempt_at=now + ATTEMPT_LEASE)
        )
        if getattr(result, "rowcount", 0):
            secret = vault.decrypt(
                webhook.secret_key_id,
                webhook.secret_ciphertext,
                associated_data=_associated(webhook.id),
            )
            claimed.append((delivery.id, dict(delivery.payload), webhook.url, secret))
    return claimed


def _record_outcome(
    session: Session, *, delivery_id: uuid.UUID, status: int | None, error: str | None
) -> None:
    now = datetime.now(UTC)
    delivery = session.get(ChangeWebhookDelivery, delivery_id)
    if delivery is None:
        return
    delivery.last_status = status
    if error is None:
        delivery.delivered_at, delivery.error = now, None
    elif delivery.attempts >= MAX_ATTEMPTS:
        delivery.failed_at, delivery.error = now, error[:500]
    else:
        delivery.error = error[:500]
        delivery.next_attempt_at = now + FIRST_RETRY * 2 ** (delivery.attempts - 1)
    session.add(delivery)
    session.execute(
        sa.delete(ChangeWebhookDelivery).where(
            col(ChangeWebhookDelivery.delivered_at) < now - KEEP_DELIVERED
        )
    )


async def _post(
    client: httpx.AsyncClient, url: str, payload: dict[str, Any], secret: str
) -> tuple[int | None, str | None]:
    body = json.dumps(payload, separators=(",", ":")).encode()
    timestamp = int(time.time())
    headers = {
        "Content-Type": "application/json",
        "X-Hub-Event": EVENT,
        "X-Hub-Timestamp": str(timestamp),
        "X-Hub-Signature-256": sign(body, secret=secret, timestamp=timestamp),
    }
    try:
        response = await client.post(url, content=body, headers=headers)
    except httpx.HTTPError as error:
        return None, type(error).__name__
    if response.status_code >= 300:
        return response.status_code, f"answered {response.status_code}"
    return response.status_code, None


async def sweep(*, transport: httpx.AsyncBaseTransport | None = None) -> int:
    """Announce new changes and send every due delivery once; returns how many succeeded."""
    await in_session(announce_changes)
    delivered = 0
    claimed = await in_session(_claim_due)
    if not claimed:
        return 0
    async with build_client(transport=transport, timeout=10.0) as client:
        for delivery_id, payload, url, secret in claimed:
            status, error = await _post(client, url, payload, secret)
            if error is None:
                delivered += 1
            else:
                log.warning("change webhook delivery failed: %s", error)
            await in_session(
                functools.partial(
                    _record_outcome, delivery_id=delivery_id, status=status, error=error
                )
            )
    return delivered


@contextlib.asynccontextmanager
async def change_webhook_lifespan() -> AsyncIterator[None]:
    """Announce and deliver change notices for as long as the hub process runs."""

    async def run() -> None:
        while True:
            try:
                await sweep()
            except Exception as error:  # a database hiccup: try again on the next round
                log.warning("change webhook sweep failed: %s", type(error).__name__)
            await asyncio.sleep(SWEEP_EVERY)

    task = asyncio.create_task(run())
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
