"""Amazon HTTP routes: the Seller Central website authorization workflow (start, callback)."""

from __future__ import annotations

import logging
import uuid

from sqlmodel import Session
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from connectors.amazon import auth as amazon_auth
from connectors.amazon.connector import AmazonConnector
from connectors.amazon.regions import primary_marketplace
from connectors.base import IntegrationRef
from connectors.errors import AuthError, ConnectorError, OAuthError
from dashboard.api.access import Access, route
from dashboard.api.consent import redirect_to_consent
from dashboard.api.result_page import account_taken_page, result_page
from dashboard.db import in_session
from dashboard.models import Integration
from dashboard.services import connect
from dashboard.services import integrations as integration_service
from dashboard.services.credentials import DbCredentialStore, save_credential
from dashboard.services.integrations import AccountTaken
from dashboard.settings import get_settings

log = logging.getLogger("hub.amazon")
PLATFORM = "amazon"


def connector() -> AmazonConnector:
    return AmazonConnector.from_settings(get_settings().model_dump())


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


async def callback(request: Request) -> Response:
    """Seller Central sends the seller back here: check state, exchange the code at once."""
    params = dict(request.query_params)
    settings = get_settings()
    try:
        state = await in_session(
            lambda s: integration_service.consume_oauth_state(
                session=s, state=params.get("state"), platform=PLATFORM
            )
        )
        seller_id, code = amazon_auth.verify_callback(params)
        integration_id = state.integration_id
        await in_session(lambda s: _seller_guard(s, integration_id, seller_id))
        # The seller is known only now: refuse one another integration holds in this region.
        await connect.refuse_account_taken(
            integration_id=integration_id, selling_partner_id=seller_id
        )
        # The code lives five minutes: exchange it before anything else.
        credentials = await amazon_auth.exchange_code(
            code=code,
            redirect_uri=integration_service.connect_callback_url(PLATFORM),
            client_id=settings.amazon_client_id or "",
            client_secret=settings.amazon_client_secret or "",
            base_url=settings.amazon_base_url,
            previous_secret=settings.amazon_client_secret_previous,
        )

        def save_all(session: Session) -> None:
            for credential in credentials:
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
        participations = await connector().marketplace_participations(
            ref, DbCredentialStore(integration_id)
        )
        active = [p["id"] for p in participations if p["participating"] and p["id"]]
        chosen = [m for m in integration.marketplaces or [] if m in active] or active
        store = next((p["store"] for p in participations if p.get("store")), None)

        def finish(session: Session) -> str:
            connected = integration_service.mark_connected(
                session=session,
                integration_id=integration_id,
                shop_info={"name": store, "marketplaces": participations},
                selling_partner_id=seller_id,
                marketplaces=chosen,
                actor="merchant" if state.connect_link_id else "manager",
            )
            integration_service.finish_connect_link(session=session, link_id=state.connect_link_id)
            return connected.display_name

        name = await connect.finish_connection(
            finish, integration_id=integration_id, selling_partner_id=seller_id
        )
    except AccountTaken as taken:
        log.info("amazon callback refused: %s", taken)
        return account_taken_page(
            account=taken.account, holder_id=taken.holder_id, holder_name=taken.holder_name
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
    if state.user_id is not None:
        return RedirectResponse(f"/integrations/{integration_id}", status_code=302)
    return result_page(
        "Connected",
        f"{store or 'Your Amazon account'} is now connected to {settings.org_name} ({name}). "
        "You can close this page.",
        ok=True,
    )


routes = [
    route("/api/oauth/amazon/start", start, methods=["GET"], access=Access.SESSION_OR_LINK),
    route("/api/oauth/amazon/callback", callback, methods=["GET"], access=Access.OAUTH_STATE),
]
