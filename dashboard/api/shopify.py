"""Shopify HTTP routes: install (OAuth start and callback) and the webhook endpoint."""

from __future__ import annotations

import logging

from sqlmodel import Session
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response

from connectors.errors import ConnectorError, InvalidInput, OAuthError
from connectors.shopify import auth as shopify_auth
from connectors.shopify.connector import ShopifyConnector
from dashboard.api.access import Access, route
from dashboard.api.consent import redirect_to_consent
from dashboard.api.result_page import account_taken_page, result_page
from dashboard.db import in_session
from dashboard.services import (
    app_credentials,
    audit,
    connect,
    shopify_webhooks,
    webhook_signers,
)
from dashboard.services import integrations as integration_service
from dashboard.services.app_credentials import ShopifyApp
from dashboard.services.credentials import DbCredentialStore, save_credential
from dashboard.services.integrations import AccountTaken
from dashboard.services.metrics import WEBHOOKS_RECEIVED, WEBHOOKS_REJECTED, WEBHOOKS_VERIFIED
from dashboard.settings import get_settings

log = logging.getLogger("hub.shopify")
PLATFORM = "shopify"
MAX_WEBHOOK_BYTES = 1_000_000


def connector(app: ShopifyApp) -> ShopifyConnector:
    return ShopifyConnector.from_settings(app_credentials.settings_values(app))


def consent_url(*, shop: str, app: ShopifyApp, state: str) -> str:
    settings = get_settings()
    return shopify_auth.authorize_url(
        shop=shop,
        client_id=app.client_id,
        scopes=settings.shopify_scope_list,
        redirect_uri=integration_service.connect_callback_url(PLATFORM),
        state=state,
        base_url=settings.shopify_base_url,
    )


async def verified_shop(params: dict[str, str], *, retry: str) -> tuple[str, ShopifyApp]:
    """The shop of a query Shopify signed, and the app whose secret signed it: an own app of
    an integration for that shop (custom distribution) or the default app. Raises OAuthError."""
    try:
        candidates = await app_credentials.shopify_apps_for_shop(
            integration_service.normalize_shop_domain(params.get("shop", ""))
        )
    except InvalidInput:
        candidates = [app_credentials.default_app()]  # verify_callback names the bad shop
    mismatch: OAuthError | None = None
    for app in candidates:
        try:
            shop = shopify_auth.verify_callback(params, secret=app.client_secret, retry=retry)
        except OAuthError as refused:
            if str(refused) != "callback hmac mismatch":
                raise
            mismatch = refused
            continue
        return shop, app
    assert mismatch is not None
    raise mismatch


async def start(request: Request) -> Response:
    """Send the browser to the shop's consent page with a fresh single-use state."""

    async def url(started: connect.ConnectStart) -> str:
        app = await app_credentials.shopify_app(started.integration_id)
        return consent_url(shop=started.shop_domain or "", app=app, state=started.state)

    return await redirect_to_consent(request, PLATFORM, url)


async def app_url(request: Request) -> Response:
    """Shopify opens the app (an install from the App Store or the merchant's admin) with
    ``shop``, ``host``, ``timestamp`` and ``hmac``: verify the signature and age, then start
    OAuth for that shop without asking the merchant anything."""
    params = dict(request.query_params)
    settings = get_settings()
    try:
        shop, signer = await verified_shop(
            params, retry="Open the app again from your Shopify admin."
        )
        install = await connect.start_shopify_install(
            shop_domain=shop, integration_id=signer.integration_id
        )
    except OAuthError as refused:
        log.info("shopify app url refused: %s", refused)
        return result_page(
            "This installation could not be started",
            refused.user_message,
            ok=False,
            status=401,
        )
    except InvalidInput as invalid:
        return result_page("This store cannot be connected", str(invalid), ok=False, status=400)
    if install.state is None:
        return result_page(
            "Already connected",
            f"{shop} is connected to {settings.org_name} ({install.display_name}). "
            "Nothing else to do: you can close this page.",
            ok=True,
        )
    app = await app_credentials.shopify_app(install.integration_id)
    return RedirectResponse(consent_url(shop=shop, app=app, state=install.state), status_code=302)


async def callback(request: Request) -> Response:
    """Shopify sends the merchant back here: verify everything, store the token, connect."""
    params = dict(request.query_params)
    settings = get_settings()
    try:
        shop, signer = await verified_shop(params, retry=shopify_auth.RETRY_FROM_HUB)
        state = await in_session(
            lambda s: integration_service.consume_oauth_state(
                session=s, state=params.get("state"), platform=PLATFORM
            )
        )
        if state.shop_domain != shop:
            raise OAuthError(
                "shop mismatch",
                user_message="Shopify answered for a different "
                "shop than the one being connected. Start again from the hub.",
            )
        app = await app_credentials.shopify_app(state.integration_id)
        if app.client_id != signer.client_id:
            raise OAuthError(
                "callback signed by another app",
                user_message="Shopify answered for a different app than the one being "
                "connected. Start again from the hub.",
            )
        # Before the code exchange: no token is issued for a shop another integration holds.
        await connect.refuse_account_taken(integration_id=state.integration_id, shop_domain=shop)
        credentials = await shopify_auth.exchange_code(
            shop=shop,
            code=params.get("code", ""),
            client_id=app.client_id,
            client_secret=app.client_secret,
            base_url=settings.shopify_base_url,
            # Shopify requires expiring offline tokens for new public apps (2026-04) and for
            # every app from 2027; the connector refreshes them ahead of expiry.
            expiring=True,
        )
        integration_id = state.integration_id

        def save_all(session: Session) -> None:  # the token and its refresh token together
            for credential in credentials:
                save_credential(
                    session=session, integration_id=integration_id, credential=credential
                )

        await in_session(save_all)
        store = DbCredentialStore(integration_id)
        shopify = connector(app)
        shop_info = await shopify.fetch_shop(shop, store)
        callback_url = integration_service.webhook_url(PLATFORM)
        try:
            subscriptions = await shopify.subscribe_webhooks(shop, store, callback_url)
        except ConnectorError as error:  # syncing still works; webhooks only speed it up
            log.warning("webhook subscription for %s failed: %s", shop, error)
            subscriptions = {}

        def finish(session: Session) -> str:
            integration = integration_service.mark_connected(
                session=session,
                integration_id=integration_id,
                shop_info=shop_info,
                # The manager who connected from the hub, by name; else the merchant's link.
                actor=audit.actor_of(session=session, user_id=state.user_id),
            )
            integration_service.finish_connect_link(session=session, link_id=state.connect_link_id)
            connect.record_webhook_subscriptions(
                session=session,
                integration_id=integration_id,
                subscriptions=subscriptions,
                callback_url=callback_url,
            )
            return integration.display_name

        name = await connect.finish_connection(
            finish, integration_id=integration_id, shop_domain=shop
        )
    except AccountTaken as taken:
        log.info("shopify callback refused: %s", taken)
        return account_taken_page(
            account=taken.account, holder_id=taken.holder_id, holder_name=taken.holder_name
        )
    except OAuthError as refused:
        log.info("shopify callback refused: %s", refused)
        return result_page("Connection not completed", refused.user_message, ok=False, status=400)
    except ConnectorError as error:
        log.warning("shopify callback failed: %s", type(error).__name__)
        return result_page(
            "Connection not completed",
            "Shopify could not be reached to "
            "finish the connection. Please try again in a few minutes.",
            ok=False,
            status=502,
        )
    connect.schedule_first_sync(integration_id)
    if state.user_id is not None:  # a manager connecting from the hub goes back to it
        return RedirectResponse(f"/integrations/{integration_id}", status_code=302)
    return result_page(
        "Connected",
        f"{shop_info.get('name') or shop} is now connected to "
        f"{settings.org_name} ({name}). You can close this page.",
        ok=True,
    )


class BodyTooLarge(Exception):
    """The request body is longer than the route accepts."""


async def read_body(request: Request, limit: int) -> bytes:
    """The body, read as a stream and cut at ``limit`` bytes: raises BodyTooLarge as soon as
    it is exceeded, whatever Content-Length said (absent with chunked encoding, or false)."""
    declared = request.headers.get("content-length", "")
    # isascii: str.isdigit() also takes "¹" and "٣", which int() refuses (a fuzzed 500).
    if declared.isascii() and declared.isdigit() and int(declared) > limit:
        raise BodyTooLarge
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise BodyTooLarge
    return bytes(body)


# The webhook route's counters, labelled once: ``labels()`` takes a lock and builds a key on
# every call, a twentieth of a delivery's CPU at a thousand a second.
_RECEIVED = WEBHOOKS_RECEIVED.labels("shopify")
_VERIFIED = WEBHOOKS_VERIFIED.labels("shopify")


async def webhook(request: Request) -> Response:
    """Verify before parsing, persist before answering, process afterwards.

    Whether the signed body agrees with the unsigned topic and shop headers is checked before
    anything is applied (``shopify_webhook_binding``); a mismatch still answers 200, so that
    Shopify does not retry it.
    """
    _RECEIVED.inc()
    try:
        body = await read_body(request, MAX_WEBHOOK_BYTES)
    except BodyTooLarge:
        WEBHOOKS_REJECTED.labels("shopify", "too_large").inc()
        return JSONResponse({"error": "payload too large"}, status_code=413)
    headers = request.headers
    if not body or not headers.get("x-shopify-topic") or not headers.get("x-shopify-webhook-id"):
        WEBHOOKS_REJECTED.labels("shopify", "malformed").inc()
        return JSONResponse({"error": "missing body or Shopify headers"}, status_code=400)
    # The app that sent it: an own app of an integration for the shop, else the default one.
    signature = headers.get("x-shopify-hmac-sha256")
    shop_header = headers.get("x-shopify-shop-domain", "")
    if not await webhook_signers.signed_by_shop_app(shop_header, body, signature):
        WEBHOOKS_REJECTED.labels("shopify", "signature").inc()
        log.warning("shopify webhook with a bad signature refused")
        return JSONResponse({"error": "invalid signature"}, status_code=401)
    _VERIFIED.inc()
    event_id = await shopify_webhooks.persist(
        webhook_id=headers["x-shopify-webhook-id"],
        topic=headers["x-shopify-topic"],
        shop=headers.get("x-shopify-shop-domain", ""),
        body=body,
    )
    if event_id is not None:
        shopify_webhooks.process_later(event_id)
    return JSONResponse({"ok": True})


routes = [
    route("/api/oauth/shopify/start", start, methods=["GET"], access=Access.SESSION_OR_LINK),
    # The app URL of the Shopify app's configuration: where Shopify sends installs it starts.
    route("/api/shopify/app", app_url, methods=["GET"], access=Access.PLATFORM_SIGNED),
    route("/api/oauth/shopify/callback", callback, methods=["GET"], access=Access.OAUTH_STATE),
    route("/api/webhooks/shopify", webhook, methods=["POST"], access=Access.PLATFORM_SIGNED),
]
