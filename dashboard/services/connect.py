"""Connecting an integration: who may start it, and what happens once a platform approved.

Shared by the platform routes (dashboard/api/<platform>.py) so each route stays a thin
translation between HTTP and these functions.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from dataclasses import dataclass

from sqlmodel import Session, select

from dashboard.db import in_session
from dashboard.models import Integration, Role, WebhookSubscription
from dashboard.services import auth as auth_service
from dashboard.services import integrations as integration_service
from dashboard.services.integrations import LinkInvalid

log = logging.getLogger("hub.connect")
_background: set[asyncio.Task[None]] = set()


class StartRefused(Exception):
    """Starting a connection is not allowed; the message says why, for the person asking."""


@dataclass(frozen=True)
class ConnectStart:
    integration_id: uuid.UUID
    shop_domain: str | None
    region: str | None
    state: str


async def start_connection(
    *, platform: str, integration_id: str | None, link_token: str | None, session_token: str | None
) -> ConnectStart:
    """Issue a single-use OAuth state for a signed-in manager or a merchant's connect link."""

    def start(session: Session) -> ConnectStart:
        link_id = user_id = None
        if link_token:
            try:
                link = integration_service.resolve_connect_link(session=session, token=link_token)
            except LinkInvalid as invalid:
                raise StartRefused(str(invalid)) from None
            integration = session.get(Integration, link.integration_id)
            link_id = link.id
        else:
            user = auth_service.user_for_token(session=session, token=session_token)
            if not auth_service.has_role(user, Role.MANAGER):
                raise StartRefused("Sign in to the hub as a manager to connect an integration.")
            assert user is not None
            user_id = user.id
            try:
                integration = session.get(Integration, uuid.UUID(integration_id or ""))
            except ValueError:
                integration = None
        if integration is None or integration.platform != platform:
            raise StartRefused("That integration does not exist.")
        state = integration_service.issue_oauth_state(
            session=session,
            integration_id=integration.id,
            platform=platform,
            shop_domain=integration.shop_domain,
            connect_link_id=link_id,
            user_id=user_id,
        )
        return ConnectStart(integration.id, integration.shop_domain, integration.region, state)

    return await in_session(start)


def record_webhook_subscriptions(
    *,
    session: Session,
    integration_id: uuid.UUID,
    subscriptions: dict[str, str | None],
    callback_url: str,
) -> None:
    existing = {
        row.topic: row
        for row in session.exec(
            select(WebhookSubscription).where(WebhookSubscription.integration_id == integration_id)
        ).all()
    }
    for topic, remote_id in subscriptions.items():
        row = existing.get(topic) or WebhookSubscription(
            integration_id=integration_id, topic=topic, callback_url=callback_url
        )
        row.remote_id = remote_id or row.remote_id
        row.callback_url = callback_url
        session.add(row)


def schedule_first_sync(integration_id: uuid.UUID) -> None:
    """Start the first sync in the background and let the scheduler pick up the streams."""
    from dashboard.services import scheduler, sync

    async def first_sync() -> None:
        try:
            await sync.request_sync(integration_id=integration_id, trigger="manual")
        except sync.SyncRefused as refused:
            log.warning("first sync of %s not started: %s", integration_id, refused)
        scheduler.poke()

    task = asyncio.get_running_loop().create_task(first_sync())
    _background.add(task)
    task.add_done_callback(_background.discard)
