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
from dashboard.services import connect, shopify_webhooks
from dashboard.services import integrations as integration_service
from dashboard.services.credentials import DbCredentialStore, save_credential
from dashboard.services.integrations import AccountTaken
from dashboard.services.metrics import WEBHOOKS_RECEIVED, WEBHOOKS_REJECTED, WEBHOOKS_VERIFIED
from dashboard.settings import get_settings

log = logging.getLogger("hub.shopify")
PLATFORM = "shopify"
MAX_WEBHOOK_BYTES = 1_000_000


def connector() -> ShopifyConnector:
    return ShopifyConnector.from_settings(get_settings().model_dump())


async def start(request: Request) -> Response:
    """Send the browser to the shop's consent page with a fresh single-use state."""
    settings = get_settings()
    return await redirect_to_consent(
        request,
        PLATFORM,
        lambda started: shopify_auth.authorize_url(
            shop=started.shop_domain or "",
            client_id=settings.shopify_client_id or "",
            scopes=settings.shopify_scope_list,
            redirect_uri=integration_service.connect_callback_url(PLATFORM),
            state=started.state,
            base_url=settings.shopify_base_url,
        ),
    )


async def app_url(request: Request) -> Response:
    """Shopify opens the app (an install from the App Store or the merchant's admin) with
    ``shop``, ``host``, ``timestamp`` and ``hmac``: verify the signature and age, then start
    OAuth for that shop without asking the merchant anything."""
    params = dict(request.query_params)
    settings = get_settings()
    try:
        shop = shopify_auth.verify_callback(
            params,
            secret=settings.shopify_client_secret or "",
            retry="Open the app again from your Shopify admin.",
        )
        install = await connect.start_shopify_install(shop_domain=shop)
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
    return RedirectResponse(
        shopify_auth.authorize_url(
            shop=shop,
            client_id=settings.shopify_client_id or "",
            scopes=settings.shopify_scope_list,
            redirect_uri=integration_service.connect_callback_url(PLATFORM),
            state=install.state,
            base_url=settings.shopify_base_url,
        ),
        status_code=302,
    )


async def callback(request: Request) -> Response:
    """Shopify sends the merchant back here: verify everything, store the token, connect."""
    params = dict(request.query_params)
    settings = get_settings()
    try:
        shop = shopify_auth.verify_callback(params, secret=settings.shopify_client_secret or "")
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
        # Before the code exchange: no token is issued for a shop another integration holds.
        await connect.refuse_account_taken(integration_id=state.integration_id, shop_domain=shop)
        credentials = await shopify_auth.exchange_code(
            shop=shop,
            code=params.get("code", ""),
            client_id=settings.shopify_client_id or "",
            client_secret=settings.shopify_client_secret or "",
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
        shopify = connector()
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
                actor="manager" if state.user_id else "merchant",
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
    if declared.isdigit() and int(declared) > limit:
        raise BodyTooLarge
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise BodyTooLarge
    return bytes(body)


async def webhook(request: Request) -> Response:
    """Verify before parsing, persist before answering, process afterwards.

    Whether the signed body agrees with the unsigned topic and shop headers is checked before
    anything is applied (``shopify_webhook_binding``); a mismatch still answers 200, so that
    Shopify does not retry it.
    """
    WEBHOOKS_RECEIVED.labels("shopify").inc()
    try:
        body = await read_body(request, MAX_WEBHOOK_BYTES)
    except BodyTooLarge:
        WEBHOOKS_REJECTED.labels("shopify", "too_large").inc()
        return JSONResponse({"error": "payload too large"}, status_code=413)
    headers = request.headers
    if not body or not headers.get("x-shopify-topic") or not headers.get("x-shopify-webhook-id"):
        WEBHOOKS_REJECTED.labels("shopify", "malformed").inc()
        return JSONResponse({"error": "missing body or Shopify headers"}, status_code=400)
    secret = get_settings().shopify_client_secret or ""
    if not shopify_auth.verify_webhook(body, headers.get("x-shopify-hmac-sha256"), secret):
        WEBHOOKS_REJECTED.labels("shopify", "signature").inc()
        log.warning("shopify webhook with a bad signature refused")
        return JSONResponse({"error": "invalid signature"}, status_code=401)
    WEBHOOKS_VERIFIED.labels("shopify").inc()
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
