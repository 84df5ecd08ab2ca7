"""Which Shopify app an integration uses: its own (custom distribution: one app per merchant,
client id and secret entered in the wizard and kept encrypted beside its tokens) or the hub's
default app from settings (public distribution)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from sqlmodel import Session, col, select

from connectors.base import Connector, StoredCredential
from connectors.errors import InvalidInput
from connectors.registry import get_connector
from connectors.shopify.connector import ShopifyConnector
from dashboard.db import in_session
from dashboard.models import Integration, Platform
from dashboard.services.audit import record_audit
from dashboard.services.credentials import load_credential, save_credential
from dashboard.settings import get_settings

# Credential kinds of an integration's own app; never shown again once saved.
APP_CLIENT_ID = "app_client_id"
APP_CLIENT_SECRET = "app_client_secret"  # noqa: S105  a credential kind, not a secret
APP_KINDS = (APP_CLIENT_ID, APP_CLIENT_SECRET)


@dataclass(frozen=True)
class ShopifyApp:
    client_id: str
    client_secret: str
    integration_id: uuid.UUID | None = None  # None: the hub's default app

    def __repr__(self) -> str:  # never the secret, even in a traceback's locals
        return f"ShopifyApp(client_id={self.client_id!r}, integration_id={self.integration_id})"


def default_app() -> ShopifyApp:
    settings = get_settings()
    return ShopifyApp(settings.shopify_client_id or "", settings.shopify_client_secret or "")


def save_app_credentials(
    *,
    session: Session,
    integration_id: uuid.UUID,
    client_id: str,
    client_secret: str,
    actor: str,
) -> None:
    """Store the integration's own app (both encrypted); raises InvalidInput when one is
    missing or they do not look like a Shopify app's client id and secret."""
    client_id, client_secret = client_id.strip(), client_secret.strip()
    if not client_id or not client_secret:
        raise InvalidInput("Enter both the app's client id and its client secret.")
    if (
        len(client_id) > 200
        or len(client_secret) > 200
        or any(not c.isprintable() or c.isspace() for c in client_id + client_secret)
    ):
        raise InvalidInput("The client id and secret are single words of printable characters.")
    for kind, value in ((APP_CLIENT_ID, client_id), (APP_CLIENT_SECRET, client_secret)):
        save_credential(
            session=session,
            integration_id=integration_id,
            credential=StoredCredential(kind=kind, secret=value, scopes=[], expires_at=None),
        )
    record_audit(
        session=session, actor=actor, action="integration.app_credentials_set",
        target=str(integration_id),
    )  # fmt: skip


def app_of(*, session: Session, integration_id: uuid.UUID) -> ShopifyApp:
    """The integration's own app when it has one, else the default app."""
    client_id = load_credential(session=session, integration_id=integration_id, kind=APP_CLIENT_ID)
    secret = load_credential(session=session, integration_id=integration_id, kind=APP_CLIENT_SECRET)
    if client_id is None or secret is None:
        return default_app()
    return ShopifyApp(client_id.secret, secret.secret, integration_id)


async def shopify_app(integration_id: uuid.UUID) -> ShopifyApp:
    return await in_session(lambda s: app_of(session=s, integration_id=integration_id))


def apps_for_shop(*, session: Session, shop_domain: str) -> list[ShopifyApp]:
    """The apps a request naming ``shop_domain`` may be signed by: the own apps of the
    integrations for that shop (a disconnected one too: reinstalling it starts here), then the
    default app."""
    ids = session.exec(
        select(Integration.id)
        .where(
            Integration.platform == Platform.SHOPIFY.value,
            Integration.shop_domain == shop_domain.lower(),
        )
        .order_by(col(Integration.created_at).desc())
    ).all()
    own = [app_of(session=session, integration_id=i) for i in ids]
    return [app for app in own if app.integration_id is not None] + [default_app()]


async def shopify_apps_for_shop(shop_domain: str) -> list[ShopifyApp]:
    return await in_session(lambda s: apps_for_shop(session=s, shop_domain=shop_domain))


def settings_values(app: ShopifyApp) -> dict[str, Any]:
    """The hub's settings as a connector reads them, with this app's credentials."""
    values = get_settings().model_dump()
    values.update(shopify_client_id=app.client_id, shopify_client_secret=app.client_secret)
    return values


async def connector_for(platform: str, integration_id: uuid.UUID | str) -> Connector:
    """The integration's connector: for Shopify, refreshing tokens with its own app."""
    if platform == Platform.AMAZON.value:  # the LWA secrets in use (environment or Settings)
        from dashboard.services.amazon_lifecycle import amazon_settings_values

        return get_connector(platform, await amazon_settings_values())
    if platform != Platform.SHOPIFY.value:
        return get_connector(platform, get_settings().model_dump())
    return await shopify_connector_for(uuid.UUID(str(integration_id)))


async def shopify_connector_for(integration_id: uuid.UUID) -> ShopifyConnector:
    return ShopifyConnector.from_settings(settings_values(await shopify_app(integration_id)))
