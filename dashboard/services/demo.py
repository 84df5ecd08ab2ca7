"""The demo profile of ``make run``: connected demo integrations on an empty hub.

The sandbox seeds two demo shops and a demo seller (``HUB_SANDBOX_DEMO``); this connects
them as a manager would (through the sandbox's consent endpoints), so a newcomer's first
screen shows integrations syncing live, with the sandbox's webhooks arriving. The sandbox is
the one the connectors use: mounted at /sandbox, or standalone (``hub sandbox serve``) when
HUB_SHOPIFY_BASE_URL / HUB_AMAZON_BASE_URL point there, as with several workers.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from functools import partial
from typing import Any

import httpx
from sqlmodel import Session, select

from connectors.amazon.connector import AmazonConnector
from connectors.base import IntegrationRef, StoredCredential
from connectors.sandbox.access import sandbox_apps
from connectors.sandbox.app import background, mounted_sandboxes
from connectors.sandbox.installer import install_amazon, install_shopify
from connectors.shopify.auth import token_credentials
from connectors.shopify.connector import ShopifyConnector
from dashboard.db import in_session
from dashboard.models import Integration, IntegrationStatus, SyncRun
from dashboard.services import connect, sync
from dashboard.services import integrations as integration_service
from dashboard.services.credentials import DbCredentialStore, cross_process_lock
from dashboard.settings import get_settings, sandbox_control_token

log = logging.getLogger("hub.demo")


@dataclass(frozen=True)
class DemoAccount:
    platform: str
    name: str
    account: str  # shop domain or selling partner id
    region: str | None = None


DEMO_ACCOUNTS = (
    DemoAccount("shopify", "Demo Outdoor (Shopify)", "demo-outdoor.myshopify.com"),
    DemoAccount("shopify", "Demo Kitchen (Shopify)", "demo-kitchen.myshopify.com"),
    DemoAccount("amazon", "Demo Outdoor Co. (Amazon)", "A1DEMOSELLER0NA", "na"),
)


async def _hub_is_empty() -> bool:
    def first(session: Session) -> Integration | None:
        return session.exec(select(Integration).limit(1)).first()

    return await in_session(first) is None


def _sandbox_bases() -> dict[str, str]:
    """Each platform's sandbox root (where its control API answers), from the base URL its
    connector uses: ``{root}/shopify`` and ``{root}/amazon``."""
    settings = get_settings()
    return {
        "shopify": (settings.shopify_base_url or "").removesuffix("/shopify"),
        "amazon": (settings.amazon_base_url or "").removesuffix("/amazon"),
    }


def _control_headers() -> dict[str, str]:
    """The sandbox's control API answers the hub's token only (mounted or standalone)."""
    return {"Authorization": f"Bearer {sandbox_control_token(get_settings())}"}


async def _wait_for_sandbox(base: str, platform: str, patience: float = 120.0) -> bool:
    deadline = asyncio.get_running_loop().time() + patience
    async with httpx.AsyncClient(timeout=5, headers=_control_headers()) as client:
        while asyncio.get_running_loop().time() < deadline:
            try:
                answer = await client.get(f"{base}/_sandbox/{platform}/stats")
                if answer.status_code == 401:
                    log.warning(
                        "demo: the sandbox at %s refused the hub's control token (a standalone "
                        "one started with another HUB_SANDBOX_CONTROL_TOKEN or data dir?)",
                        base,
                    )
                    return False
                if answer.status_code == 200:
                    return True
            except httpx.HTTPError:
                pass
            await asyncio.sleep(1)
    return False


def _has_runs(session: Session, *, integration_id: uuid.UUID) -> bool:
    runs = select(SyncRun.id).where(SyncRun.integration_id == integration_id).limit(1)
    return session.exec(runs).first() is not None


async def _connect(account: DemoAccount, base: str) -> None:
    settings = get_settings()
    values = settings.model_dump()

    def create(session: Session) -> Integration:
        # An earlier attempt that failed part-way left it: that one goes on.
        earlier = session.exec(
            select(Integration).where(
                Integration.platform == account.platform,
                Integration.display_name == account.name,
            )
        ).first()
        if earlier is not None:
            return earlier
        return integration_service.create_integration(
            session=session,
            platform=account.platform,
            display_name=account.name,
            shop_domain=account.account if account.platform == "shopify" else None,
            region=account.region,
        )

    integration = await in_session(create)
    if integration.status != IntegrationStatus.PENDING.value:
        # Connected by an earlier attempt that failed only after that (queueing its first
        # sync can meet a busy database): it still gets its first sync.
        if not await in_session(partial(_has_runs, integration_id=integration.id)):
            await sync.request_sync(integration_id=integration.id, trigger="manual")
        return
    store = DbCredentialStore(integration.id)
    apps = sandbox_apps(sandbox_control_token(settings))
    # The consent pages send codes only to the hub's registered callback; the code is read
    # off the redirect, which is never followed.
    redirect_uri = integration_service.connect_callback_url(account.platform)
    with httpx.Client(base_url=base, timeout=30) as client:
        if account.platform == "shopify":
            # Expiring, like the hub's own install flow: the connector refreshes ahead of
            # expiry (and on a 401, should a sped-up sandbox clock outrun it).
            token = await asyncio.to_thread(
                install_shopify, client, account.account, apps, scopes=settings.shopify_scopes,
                expiring=True, redirect_uri=redirect_uri,
            )  # fmt: skip
        else:
            refresh = await asyncio.to_thread(
                install_amazon, client, account.account, apps, "na", redirect_uri=redirect_uri
            )
    extra: dict[str, object] = {}
    if account.platform == "shopify":
        shopify = ShopifyConnector.from_settings(values)
        for credential in token_credentials(token):  # as the hub's own callback stores them
            await store.save(credential)
        extra["shop_info"] = await shopify.fetch_shop(account.account, store)
        callback = integration_service.webhook_url("shopify")
        subscriptions = await shopify.subscribe_webhooks(account.account, store, callback)
    else:
        await store.save(StoredCredential("refresh_token", refresh))
        ref = IntegrationRef(str(integration.id), "amazon", selling_partner_id=account.account,
                             region=account.region)  # fmt: skip
        participations = await AmazonConnector.from_settings(values).marketplace_participations(
            ref, store
        )
        extra = {
            "selling_partner_id": account.account,
            "marketplaces": [p["id"] for p in participations if p["participating"]],
            "shop_info": {"name": participations[0]["store"] if participations else account.name},
        }

    def finish(session: Session) -> None:
        integration_service.mark_connected(
            session=session,
            integration_id=integration.id,
            actor="demo",
            **extra,  # type: ignore[arg-type]
        )
        if account.platform == "shopify":
            connect.record_webhook_subscriptions(
                session=session, integration_id=integration.id,
                subscriptions=subscriptions, callback_url=callback,
            )  # fmt: skip

    await in_session(finish)
    await sync.request_sync(integration_id=integration.id, trigger="manual")


async def seed_demo_integrations() -> int:
    """Connect the demo accounts when the demo profile is on and the hub has none yet."""
    settings = get_settings()
    if not (settings.sandbox and settings.sandbox_demo):
        return 0
    if not await _hub_is_empty():
        return 0
    bases = _sandbox_bases()
    for platform, base in bases.items():
        if not await _wait_for_sandbox(base, platform):
            log.warning("demo: the sandbox at %s did not answer; no demo integrations", base)
            return 0
    async with cross_process_lock("demo-seed"):  # several workers: one seeds
        if not await _hub_is_empty():
            return 0
        created = 0
        for account in DEMO_ACCOUNTS:
            created += await _connect_with_retries(account, bases[account.platform])
        log.info("demo: %d demo integrations connected and syncing", created)
        return created


# A busy machine can make one step of connecting time out; a demo shop left pending would
# get no webhooks at all, so each account is tried again a few times, after growing pauses.
CONNECT_ATTEMPTS = 4
CONNECT_RETRY_AFTER = 5.0  # seconds, times the attempt number


async def _connect_with_retries(account: DemoAccount, base: str) -> int:
    """1 once ``account`` is connected, 0 when every attempt failed (logged)."""
    for attempt in range(1, CONNECT_ATTEMPTS + 1):
        try:
            await _connect(account, base)
            return 1
        except Exception:  # a demo nicety must never stop the hub
            log.warning(
                "demo: connecting %s failed (attempt %d of %d)", account.name, attempt,
                CONNECT_ATTEMPTS, exc_info=True,
            )  # fmt: skip
            if attempt < CONNECT_ATTEMPTS:
                await asyncio.sleep(CONNECT_RETRY_AFTER * attempt)
    return 0


@contextlib.asynccontextmanager
async def demo_lifespan(starlette_app: Any = None) -> AsyncIterator[None]:
    """Lifespan task (Reflex passes the served app as ``starlette_app``): the background work
    of the sandbox mounted at /sandbox, which its own lifespan would run standalone but a
    Mount never runs (the demo shops' changes and their webhooks; the state file's last
    write), then the demo integrations, seeded after start-up since the sandbox answers once
    the server listens. Registered after ``hub_lifespan``: the sandbox's changes start once
    the engine that applies their webhooks runs, and stop before it stops."""
    async with contextlib.AsyncExitStack() as stack:
        for sandbox in mounted_sandboxes(starlette_app):
            await stack.enter_async_context(background(sandbox))
        task = asyncio.get_running_loop().create_task(seed_demo_integrations())
        try:
            yield
        finally:
            task.cancel()
