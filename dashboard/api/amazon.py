"""Amazon HTTP routes: the Seller Central website authorization workflow (start, callback)."""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass

from sqlmodel import Session
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from connectors.amazon import auth as amazon_auth
from connectors.amazon.connector import AmazonConnector
from connectors.amazon.regions import primary_marketplace
from connectors.base import IntegrationRef, StoredCredential
from connectors.errors import AuthError, ConnectorError, ConsentCancelled, OAuthError
from dashboard.api.access import Access, route
from dashboard.api.consent import consent_cancelled, redirect_to_consent
from dashboard.api.result_page import account_taken_page, result_page
from dashboard.db import in_session
from dashboard.models import AppstoreState, Integration
from dashboard.services import amazon_lifecycle, audit, connect
from dashboard.services import integrations as integration_service
from dashboard.services.credentials import DbCredentialStore, save_credential
from dashboard.services.integrations import AccountTaken
from dashboard.settings import get_settings

log = logging.getLogger("hub.amazon")
PLATFORM = "amazon"


async def connector() -> AmazonConnector:
    """The Amazon connector with the LWA client secrets in use (environment or Settings)."""
    return AmazonConnector.from_settings(await amazon_lifecycle.amazon_settings_values())


async def start(request: Request) -> Response:
    """Send the browser to the region's Seller Central consent page with a fresh state."""
    settings = get_settings()
    return await redirect_to_consent(
        request,
        PLATFORM,
        lambda started: amazon_auth.consent_url(
            marketplace=primary_marketplace(started.region or "", started.marketplaces),
            app_id=settings.amazon_app_id or "",
            state=started.state,
            redirect_uri=integration_service.connect_callback_url(PLATFORM),
            draft=settings.amazon_draft_app,
            base_url=settings.amazon_base_url,
        ),
    )


def _seller_guard(session: Session, integration_id: uuid.UUID, seller_id: str) -> None:
    """A reconnect must authorize the same seller: its data and history belong to it."""
    integration = session.get(Integration, integration_id)
    if integration is not None and integration.selling_partner_id not in (None, seller_id):
        raise OAuthError(
            "reconnect with another seller",
            user_message="You signed in to Seller Central with a different selling account "
            "than the one this integration belongs to. Sign in with that account and try "
            "again, or ask for a new integration for the other account.",
        )


@dataclass
class _Target:
    """Whose authorization a callback completes: the integration, and who started it."""

    integration_id: uuid.UUID
    connect_link_id: uuid.UUID | None
    user_id: uuid.UUID | None
    appstore: bool = False
    created: bool = False  # made by this Appstore authorization: named after the store


async def _exchange(code: str) -> list[StoredCredential]:
    # The code lives five minutes: exchanged before anything else that can wait.
    settings = get_settings()
    secrets_in_use = await in_session(lambda s: amazon_lifecycle.app_secrets(session=s))
    return await amazon_auth.exchange_code(
        code=code,
        redirect_uri=integration_service.connect_callback_url(PLATFORM),
        client_id=settings.amazon_client_id or "",
        client_secret=secrets_in_use.current or "",
        base_url=settings.amazon_base_url,
        previous_secret=secrets_in_use.previous,
    )


def _appstore_integration(session: Session, start: AppstoreState, seller_id: str) -> _Target:
    """The integration an Appstore authorization is for: the one holding the seller (a renewal
    from "Manage Your Apps", or a reconnect), else a new one with every stream offered."""
    integration = amazon_lifecycle.integration_for_seller(
        session=session, region=start.region, selling_partner_id=seller_id
    )
    created = integration is None
    if integration is None:
        integration = integration_service.create_integration(
            session=session,
            platform=PLATFORM,
            display_name=f"Amazon seller {seller_id}",
            region=start.region,
            marketplaces=[],  # the seller's marketplaces of the region, once known
        )
        log.info("amazon appstore authorization: new integration %s", integration.id)
    return _Target(integration.id, None, None, appstore=True, created=created)


async def callback(request: Request) -> Response:
    """Seller Central sends the seller back here: check state, exchange the code at once.

    The state is the hub's own: from a connect start (website workflow) or from the Login URI
    (Appstore workflow, where the integration is found or created once the code is good)."""
    params = dict(request.query_params)
    settings = get_settings()
    try:

        def consume(session: Session) -> tuple[_Target | None, AppstoreState | None]:
            appstore = amazon_lifecycle.consume_appstore_state(
                session=session, state=params.get("state")
            )
            if appstore is not None:
                return None, appstore
            state = integration_service.consume_oauth_state(
                session=session, state=params.get("state"), platform=PLATFORM
            )
            return _Target(state.integration_id, state.connect_link_id, state.user_id), None

        target, appstore = await in_session(consume)
        seller_id, code = amazon_auth.verify_callback(params)
        if appstore is not None:
            if seller_id != appstore.selling_partner_id:
                raise OAuthError(
                    "appstore callback for another seller",
                    user_message="Amazon's answer named another selling account than the one "
                    "that started the authorization. Start again from the Appstore.",
                )
            credentials = await _exchange(code)
            start = appstore
            target = await in_session(lambda s: _appstore_integration(s, start, seller_id))
        else:
            assert target is not None
            known = target
            await in_session(lambda s: _seller_guard(s, known.integration_id, seller_id))
            credentials = None
        integration_id = target.integration_id
        # The seller is known only now: refuse one another integration holds in this region.
        await connect.refuse_account_taken(
            integration_id=integration_id, selling_partner_id=seller_id
        )
        if credentials is None:
            credentials = await _exchange(code)
        exchanged = credentials

        def save_all(session: Session) -> None:
            for credential in exchanged:
                save_credential(
                    session=session, integration_id=integration_id, credential=credential
                )

        await in_session(save_all)
        integration = await in_session(
            lambda s: integration_service.get_integration(session=s, integration_id=integration_id)
        )
        ref = IntegrationRef(
            id=str(integration_id),
            platform=PLATFORM,
            selling_partner_id=seller_id,
            region=integration.region,
        )
        participations = await (await connector()).marketplace_participations(
            ref, DbCredentialStore(integration_id)
        )
        active = [p["id"] for p in participations if p["participating"] and p["id"]]
        chosen = [m for m in integration.marketplaces or [] if m in active] or active
        store = next((p["store"] for p in participations if p.get("store")), None)
        finished = target

        def finish(session: Session) -> str:
            connected = integration_service.mark_connected(
                session=session,
                integration_id=integration_id,
                shop_info={"name": store, "marketplaces": participations},
                selling_partner_id=seller_id,
                marketplaces=chosen,
                actor=audit.actor_of(
                    session=session,
                    # A merchant's link or the Appstore: the merchant; else the manager, named.
                    user_id=None
                    if finished.connect_link_id or finished.appstore
                    else finished.user_id,
                ),
            )
            if finished.created and store:
                connected.display_name = store[:200]
            amazon_lifecycle.seller_authorized(session=session, integration=connected)
            integration_service.finish_connect_link(
                session=session, link_id=finished.connect_link_id
            )
            return connected.display_name

        name = await connect.finish_connection(
            finish, integration_id=integration_id, selling_partner_id=seller_id
        )
    except AccountTaken as taken:
        log.info("amazon callback refused: %s", taken)
        return account_taken_page(
            account=taken.account, holder_id=taken.holder_id, holder_name=taken.holder_name
        )
    except ConsentCancelled:
        log.info("amazon callback: consent cancelled")
        cancelled = target
        return await consent_cancelled(
            platform=PLATFORM,
            platform_label="Amazon",
            integration_id=cancelled.integration_id if cancelled else None,
            user_id=cancelled.user_id if cancelled else None,
        )
    except OAuthError as refused:
        log.info("amazon callback refused: %s", refused)
        return result_page("Connection not completed", refused.user_message, ok=False, status=400)
    except AuthError:
        log.warning("amazon callback: the new authorization was refused by SP-API")
        return result_page(
            "Connection not completed",
            "Amazon accepted the sign-in but refused the hub's first request. The app may "
            "lack the roles it needs; ask your hub administrator to check it in Solution "
            "Provider Portal, then try again.",
            ok=False,
            status=502,
        )
    except ConnectorError as error:
        log.warning("amazon callback failed: %s", type(error).__name__)
        return result_page(
            "Connection not completed",
            "Amazon could not be reached to finish the connection. Please try again in a few "
            "minutes.",
            ok=False,
            status=502,
        )
    connect.schedule_first_sync(integration_id)
    if target.user_id is not None:
        return RedirectResponse(f"/integrations/{integration_id}", status_code=302)
    return result_page(
        "Connected",
        f"{store or 'Your Amazon account'} is now connected to {settings.org_name} ({name}). "
        "You can close this page.",
        ok=True,
    )


async def login(request: Request) -> Response:
    """The app's OAuth Login URI: a seller authorized the hub in the Selling Partner Appstore
    (or renews it from "Manage Your Apps"). Answer Amazon with the hub's own single-use state;
    Amazon then sends the seller to the callback with the code."""
    settings = get_settings()
    try:
        appstore = amazon_auth.verify_login_uri(
            dict(request.query_params),
            app_id=settings.amazon_app_id or "",
            base_url=settings.amazon_base_url,
        )
    except OAuthError as refused:
        log.info("amazon login uri refused: %s", refused)
        return result_page("Authorization not started", refused.user_message, ok=False, status=400)
    state = await in_session(
        lambda s: amazon_lifecycle.issue_appstore_state(
            session=s,
            region=appstore.marketplace.region,
            selling_partner_id=appstore.selling_partner_id,
            marketplace_id=appstore.marketplace.id,
        )
    )
    url = amazon_auth.appstore_redirect(
        appstore,
        state=state,
        redirect_uri=integration_service.connect_callback_url(PLATFORM),
        draft=settings.amazon_draft_app,
    )
    return RedirectResponse(url, status_code=302)


routes = [
    route("/api/oauth/amazon/start", start, methods=["GET"], access=Access.SESSION_OR_LINK),
    route("/api/oauth/amazon/callback", callback, methods=["GET"], access=Access.OAUTH_STATE),
    # Amazon's parameters (amazon_callback_uri on this app's Seller Central confirm page,
    # amazon_state, selling_partner_id) or 400, like a callback without its state.
    route("/api/oauth/amazon/login", login, methods=["GET"], access=Access.OAUTH_STATE),
]
