"""Connecting an integration: who may start it, and what happens once a platform approved.

Shared by the platform routes (dashboard/api/<platform>.py) so each route stays a thin
translation between HTTP and these functions.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TypeVar

import sqlalchemy as sa
from sqlmodel import Session, select

from dashboard.db import in_session
from dashboard.models import Integration, Role, WebhookSubscription
from dashboard.services import auth as auth_service
from dashboard.services import integrations as integration_service
from dashboard.services.actions import (
    PENDING,
    Action,
    ActionRefused,
    integration_actions,
    refuse_unless,
)
from dashboard.services.audit import record_audit
from dashboard.services.integrations import AccountTaken, LinkInvalid

log = logging.getLogger("hub.connect")
T = TypeVar("T")
_background: set[asyncio.Task[None]] = set()


class StartRefused(Exception):
    """Starting a connection is not allowed; the message says why, for the person asking."""


@dataclass(frozen=True)
class ConnectStart:
    integration_id: uuid.UUID
    shop_domain: str | None
    region: str | None
    state: str
    marketplaces: list[str] = field(default_factory=list)


async def start_connection(
    *, platform: str, integration_id: str | None, link_token: str | None, session_token: str | None
) -> ConnectStart:
    """Issue a single-use OAuth state for a signed-in manager or a merchant's connect link."""

    def start(session: Session) -> ConnectStart:
        link_id = user_id = None
        user = None
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
        if user_id is not None and user is not None:
            # The page's Connect now / Reconnect now, by the actions rule the page shows.
            wanted = Action.CONNECT if integration.status == PENDING else Action.RECONNECT
            try:
                refuse_unless(
                    integration_actions(status=integration.status, role=user.role),
                    wanted,
                    status=integration.status,
                )
            except ActionRefused as refused:
                raise StartRefused(str(refused)) from None
        state = integration_service.issue_oauth_state(
            session=session,
            integration_id=integration.id,
            platform=platform,
            shop_domain=integration.shop_domain,
            connect_link_id=link_id,
            user_id=user_id,
        )
        return ConnectStart(
            integration.id,
            integration.shop_domain,
            integration.region,
            state,
            list(integration.marketplaces or []),
        )

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


# --- one account, one integration (the rule is in integration_service.refuse_account_taken) ---


def _refused(
    session: Session,
    integration_id: uuid.UUID,
    shop_domain: str | None,
    selling_partner_id: str | None,
) -> None:
    """Raise AccountTaken, audited, when another integration holds the account."""
    try:
        integration_service.refuse_account_taken(
            session=session,
            integration_id=integration_id,
            shop_domain=shop_domain,
            selling_partner_id=selling_partner_id,
        )
    except AccountTaken as taken:
        record_audit(
            session=session,
            actor="system",
            action="integration.connect_refused",
            target=str(integration_id),
            context={"account": taken.account, "connected_to": str(taken.holder_id)},
        )
        raise


async def refuse_account_taken(
    *,
    integration_id: uuid.UUID,
    shop_domain: str | None = None,
    selling_partner_id: str | None = None,
) -> None:
    """Before exchanging the code: raise AccountTaken when the shop or seller is connected to
    another integration, so that no token is issued for a connection that will be refused."""
    refusal: list[AccountTaken] = []

    def check(session: Session) -> None:
        try:
            _refused(session, integration_id, shop_domain, selling_partner_id)
        except AccountTaken as taken:  # commit the audit row, then raise
            refusal.append(taken)

    await in_session(check)
    if refusal:
        raise refusal[0]


async def finish_connection(
    finish: Callable[[Session], T],
    *,
    integration_id: uuid.UUID,
    shop_domain: str | None = None,
    selling_partner_id: str | None = None,
) -> T:
    """Run the callback's last transaction (``finish`` calls ``mark_connected``).

    Another callback for the same account may have connected it since the check before the
    code exchange: then ``mark_connected`` raises AccountTaken, or the unique ``account_key``
    makes the commit fail. Either way this integration is left as it was, without the tokens
    just stored for it, and AccountTaken names the winner.
    """
    from dashboard.services.credentials import delete_credentials

    try:
        return await in_session(finish)
    except (AccountTaken, sa.exc.IntegrityError):
        try:
            await refuse_account_taken(
                integration_id=integration_id,
                shop_domain=shop_domain,
                selling_partner_id=selling_partner_id,
            )
        except AccountTaken:
            await in_session(lambda s: delete_credentials(session=s, integration_id=integration_id))
            raise
        raise  # an integrity error that is not about the account


# --- installs started from Shopify (the App Store or the merchant's admin) ---------------------

INSTALL_DEFAULTS_KEY = "shopify_install_defaults"


def install_defaults(*, session: Session) -> dict[str, int]:
    """Streams and their intervals (minutes) for an integration created by a Shopify-initiated
    install: what an admin saved (``set_install_defaults``), else the platform's defaults."""
    from dashboard.models import AppSetting

    row = session.get(AppSetting, INSTALL_DEFAULTS_KEY)
    offered = integration_service.PLATFORM_STREAMS["shopify"]
    saved = (row.value.get("streams") if row is not None else None) or {}
    chosen = {k: int(v) for k, v in saved.items() if k in offered and int(v) >= 1}
    return chosen or dict(offered)


def set_install_defaults(*, session: Session, streams: dict[str, int], actor: str) -> None:
    """Save the streams (name -> interval in minutes) that Shopify-initiated installs get;
    raises InvalidInput for an unknown stream, an interval under a minute or no stream."""
    from connectors.errors import InvalidInput
    from dashboard.models import AppSetting

    offered = integration_service.PLATFORM_STREAMS["shopify"]
    unknown = set(streams) - set(offered)
    if unknown:
        raise InvalidInput(f"shopify has no stream {', '.join(sorted(unknown))}")
    if not streams:
        raise InvalidInput("choose at least one thing to sync")
    if any(interval < 1 for interval in streams.values()):
        raise InvalidInput("every interval must be at least one minute")
    row = session.get(AppSetting, INSTALL_DEFAULTS_KEY) or AppSetting(key=INSTALL_DEFAULTS_KEY)
    row.value = {"streams": dict(streams)}
    session.add(row)
    record_audit(
        session=session, actor=actor, action="settings.shopify_install_defaults",
        target=INSTALL_DEFAULTS_KEY, context={"streams": dict(streams)},
    )  # fmt: skip


@dataclass(frozen=True)
class ShopifyInstall:
    """What the app URL handler does for a verified shop: start OAuth, or say it is done."""

    integration_id: uuid.UUID
    state: str | None  # None: the shop is connected already, nothing to install
    display_name: str


async def start_shopify_install(
    *, shop_domain: str, integration_id: uuid.UUID | None = None
) -> ShopifyInstall:
    """Shopify opened the app for ``shop_domain`` (already verified): ``integration_id`` when
    the query was signed by that integration's own app, else the integration that holds the
    shop (or the newest one for it), else a new one with the admin's defaults; a fresh
    single-use OAuth state bound to the shop, unless the shop is connected already."""

    def start(session: Session) -> ShopifyInstall:
        own = session.get(Integration, integration_id) if integration_id else None
        integration = own or integration_service.find_connected_account(
            session=session, platform="shopify", shop_domain=shop_domain
        ) or integration_service.find_integration_by_shop(session=session, shop_domain=shop_domain)
        if integration is None:
            integration = integration_service.create_integration(
                session=session,
                platform="shopify",
                display_name=shop_domain.removesuffix(".myshopify.com"),
                shop_domain=shop_domain,
                streams=install_defaults(session=session),
            )
            record_audit(
                session=session, actor="shopify", action="integration.install_started",
                target=str(integration.id), context={"shop": shop_domain},
            )  # fmt: skip
        elif integration.status in ("connected", "syncing", "paused"):
            return ShopifyInstall(integration.id, None, integration.display_name)
        state = integration_service.issue_oauth_state(
            session=session,
            integration_id=integration.id,
            platform="shopify",
            shop_domain=shop_domain,
        )
        return ShopifyInstall(integration.id, state, integration.display_name)

    return await in_session(start)
