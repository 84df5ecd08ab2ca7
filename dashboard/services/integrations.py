"""Integrations: creating, finding and connecting them (renaming, disconnecting and deleting
are edits of the Settings tab: ``integration_settings``).

UI, CLI and HTTP routes all go through these keyword-only functions. Connect links and OAuth
``state`` live in ``connect_links`` and are re-exported here for the routes and pages.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from datetime import UTC, datetime

import sqlalchemy as sa
from sqlmodel import Session, col, select
from sqlmodel.sql.expression import SelectOfScalar

from connectors.amazon import regions as amazon_regions
from connectors.errors import InvalidInput
from dashboard.models import (
    Integration,
    IntegrationStatus,
    OAuthState,
    Platform,
    StreamConfig,
    User,
)
from dashboard.services import incidents, schedules
from dashboard.services.audit import record_audit
from dashboard.services.connect_links import (
    CONNECT_LINK_TTL,
    OAUTH_STATE_TTL,
    LinkInvalid,
    active_connect_links,
    connect_link_url,
    consume_oauth_state,
    create_connect_link,
    decline_connect_link,
    finish_connect_link,
    issue_oauth_state,
    resolve_connect_link,
    revoke_connect_link,
)
from dashboard.settings import get_settings

__all__ = [  # the connect-link names, re-exported for existing callers
    "CONNECT_LINK_TTL",
    "OAUTH_STATE_TTL",
    "LinkInvalid",
    "active_connect_links",
    "connect_link_url",
    "consume_oauth_state",
    "create_connect_link",
    "decline_connect_link",
    "finish_connect_link",
    "issue_oauth_state",
    "resolve_connect_link",
    "revoke_connect_link",
]

AMAZON_REGIONS = amazon_regions.REGIONS

# Streams each platform offers, with their default interval in minutes. Kept as data here so
# the wizard can offer them before a connector is loaded; the connectors define the same names.
PLATFORM_STREAMS: dict[str, dict[str, int]] = {
    Platform.SHOPIFY.value: {"products": 15, "inventory": 15, "orders": 5, "customers": 60},
    Platform.AMAZON.value: {"orders": 10, "listings": 60, "inventory": 30},
}

# How the wizard and the Settings tab name each stream.
STREAM_LABELS = {
    "products": "Products and variants",
    "inventory": "Inventory levels",
    "orders": "Orders and line items",
    "customers": "Customers",
    "listings": "Listings (catalog report)",
}


class NotFound(LookupError):
    """No row with that id."""


class AccountTaken(Exception):
    """The shop or seller is already connected to another integration of this hub."""

    def __init__(self, *, account: str, holder: Integration) -> None:
        super().__init__(
            f"{account} is already connected to the integration “{holder.display_name}”."
        )
        self.account = account
        self.holder_id = holder.id
        self.holder_name = holder.display_name


def _now() -> datetime:
    return datetime.now(UTC)


# --- URLs ----------------------------------------------------------------------------------


def connect_callback_url(platform: str) -> str:
    return f"{get_settings().public_url}/api/oauth/{platform}/callback"


def webhook_url(platform: str) -> str:
    return f"{get_settings().public_url}/api/webhooks/{platform}"


# --- integrations --------------------------------------------------------------------------


def normalize_shop_domain(shop: str) -> str:
    """Lower-cased ``name.myshopify.com``; raises InvalidInput for anything else."""
    from connectors.shopify.domains import validate_shop_domain

    return validate_shop_domain(shop)


def shop_from_input(typed: str) -> str:
    """The shop a person typed, as a handle, domain or admin URL: lower-cased
    ``name.myshopify.com``; raises InvalidInput (the same gate as ``normalize_shop_domain``)."""
    from connectors.shopify.domains import shop_domain_from_input

    return normalize_shop_domain(shop_domain_from_input(typed))


NAME_MAX_LENGTH = 120


def checked_name(name: str) -> str:
    """An integration's name as stored: 1 to 120 characters, trimmed; raises InvalidInput."""
    name = " ".join(name.split())
    if not name:
        raise InvalidInput("Give the integration a name.")
    if len(name) > NAME_MAX_LENGTH:
        raise InvalidInput(
            f"Keep the name to {NAME_MAX_LENGTH} characters; this one has {len(name):,}."
        )
    return name


def _validated(
    *,
    platform: str,
    display_name: str,
    shop_domain: str | None,
    region: str | None,
    marketplaces: Iterable[str],
    streams: dict[str, int] | None,
) -> tuple[str, str, str | None, str | None, list[str], dict[str, int]]:
    """An integration's details as stored; raises InvalidInput saying what to fix."""
    try:
        platform = Platform(platform).value
    except ValueError:
        raise InvalidInput(f"unknown platform {platform!r}") from None
    display_name = checked_name(display_name)
    if platform == Platform.SHOPIFY:
        if not shop_domain:
            raise InvalidInput("Enter the shop's myshopify.com domain.")
        shop_domain = shop_from_input(shop_domain)
        region = None
    else:
        region = (region or "").lower()
        if region not in AMAZON_REGIONS:
            raise InvalidInput("Choose the seller's region: NA, EU or FE.")
        marketplaces = amazon_regions.validate_marketplaces(region, list(marketplaces))
        shop_domain = None
    offered = PLATFORM_STREAMS[platform]
    chosen = streams if streams is not None else offered
    unknown = set(chosen) - set(offered)
    if unknown:
        raise InvalidInput(f"{platform} has no stream {', '.join(sorted(unknown))}")
    if not chosen:
        raise InvalidInput("Choose at least one thing to sync.")
    for interval in chosen.values():
        schedules.check_interval(interval)
    return platform, display_name, shop_domain, region, list(marketplaces), dict(chosen)


def create_integration(
    *,
    session: Session,
    platform: str,
    display_name: str,
    shop_domain: str | None = None,
    region: str | None = None,
    marketplaces: Iterable[str] = (),
    streams: dict[str, int] | None = None,
    actor: User | None = None,
) -> Integration:
    """Create a pending integration with its stream configs; raises InvalidInput."""
    platform, display_name, shop_domain, region, marketplaces, chosen = _validated(
        platform=platform, display_name=display_name, shop_domain=shop_domain, region=region,
        marketplaces=marketplaces, streams=streams,
    )  # fmt: skip
    integration = Integration(
        platform=platform,
        display_name=display_name,
        shop_domain=shop_domain,
        region=region,
        marketplaces=marketplaces,
        created_by=actor.id if actor else None,
    )
    session.add(integration)
    session.flush()
    for stream, interval in chosen.items():
        session.add(
            StreamConfig(integration_id=integration.id, stream=stream, interval_minutes=interval)
        )
    record_audit(
        session=session,
        actor=actor.email if actor else "system",
        action="integration.create",
        target=str(integration.id),
        context={"platform": platform, "name": integration.display_name},
    )
    session.flush()
    return integration


def save_pending_integration(
    *,
    session: Session,
    pending_id: uuid.UUID | None,
    platform: str,
    display_name: str,
    shop_domain: str | None = None,
    region: str | None = None,
    marketplaces: Iterable[str] = (),
    streams: dict[str, int] | None = None,
    actor: User | None = None,
) -> Integration:
    """The wizard's integration: the one this wizard run created already (``pending_id``),
    brought up to the details as they are now, so that Back and Connect now again leave one
    row; a new one when there is none, or it is no longer pending. Raises InvalidInput, and
    AccountTaken for a shop another integration holds (its connection would be refused)."""
    if platform == Platform.SHOPIFY.value and shop_domain:
        try:
            shop = shop_from_input(shop_domain)
        except InvalidInput:
            shop = None  # _validated says what is wrong with it
        holder = find_connected_account(session=session, platform=platform, shop_domain=shop)
        if holder is not None:
            raise AccountTaken(account=shop or shop_domain, holder=holder)
    existing = session.get(Integration, pending_id) if pending_id else None
    if (
        existing is None
        or existing.status != IntegrationStatus.PENDING.value
        or existing.platform != platform
    ):
        return create_integration(
            session=session, platform=platform, display_name=display_name,
            shop_domain=shop_domain, region=region, marketplaces=marketplaces, streams=streams,
            actor=actor,
        )  # fmt: skip
    platform, display_name, shop_domain, region, marketplaces, chosen = _validated(
        platform=platform, display_name=display_name, shop_domain=shop_domain, region=region,
        marketplaces=marketplaces, streams=streams,
    )  # fmt: skip
    if existing.shop_domain != shop_domain or existing.region != region:
        # A consent already started was asked for the old shop or region: it must not connect
        # this integration to the new one.
        session.execute(
            sa.update(OAuthState)
            .where(col(OAuthState.integration_id) == existing.id, col(OAuthState.used_at).is_(None))
            .values(expires_at=_now())
        )
    existing.display_name, existing.shop_domain, existing.region = display_name, shop_domain, region
    existing.marketplaces = marketplaces
    existing.updated_at = _now()
    session.add(existing)
    session.execute(sa.delete(StreamConfig).where(col(StreamConfig.integration_id) == existing.id))
    for stream, interval in chosen.items():
        session.add(
            StreamConfig(integration_id=existing.id, stream=stream, interval_minutes=interval)
        )
    record_audit(
        session=session,
        actor=actor.email if actor else "system",
        action="integration.update",
        target=str(existing.id),
        context={"name": display_name, "streams": sorted(chosen)},
    )
    session.flush()
    return existing


def get_integration(*, session: Session, integration_id: uuid.UUID | str) -> Integration:
    integration = session.get(Integration, uuid.UUID(str(integration_id)))
    if integration is None:
        raise NotFound(f"no integration {integration_id}")
    return integration


def find_integration_by_shop(*, session: Session, shop_domain: str) -> Integration | None:
    """The integration a shop's webhooks belong to: the one holding the shop, else the newest
    not disconnected (a pending duplicate must not take them from the one that syncs)."""
    found = integration_id_for_shop(session=session, shop_domain=shop_domain)
    return session.get(Integration, found) if found is not None else None


def integration_id_for_shop(*, session: Session, shop_domain: str) -> uuid.UUID | None:
    """``find_integration_by_shop``'s id only (webhook intake: no row loaded per group)."""
    return session.exec(shop_integration_query(shop_domain.lower())).first()


def shop_integration_query(
    shop_domain: str | sa.ColumnElement[str],
) -> SelectOfScalar[uuid.UUID]:
    """The id of the integration a shop's webhooks belong to, for a lower-case domain or an
    SQL expression giving one (the webhook intake's insert looks it up in the statement)."""
    return (
        select(Integration.id)
        .where(Integration.shop_domain == shop_domain)
        .where(Integration.status != IntegrationStatus.DISCONNECTED.value)
        .order_by(col(Integration.account_key).is_(None), col(Integration.created_at).desc())
        .limit(1)
    )


# --- one account, one integration ------------------------------------------------------------
#
# An integration holds its platform account (``Integration.account_key``) from its first
# consent until it is disconnected or deleted, whatever its status in between: connected,
# syncing, paused, needs_reauth and error all still own the account's data and history and
# sync it again once resumed or reconnected, so a second integration would split that history
# and compete for the account's one rate limit. A pending integration never got consent and
# holds nothing; a disconnected one destroyed its tokens and gave the account up (reconnecting
# it takes it back, if no other integration took it meanwhile).


def account_key(
    *,
    platform: str,
    shop_domain: str | None = None,
    selling_partner_id: str | None = None,
    region: str | None = None,
) -> str | None:
    """The key of a platform account, or None when it is not known yet (an Amazon seller is
    known only at the OAuth callback)."""
    if platform == Platform.SHOPIFY.value and shop_domain:
        return f"shopify:{shop_domain.lower()}"
    if platform == Platform.AMAZON.value and selling_partner_id and region:
        return f"amazon:{region.lower()}:{selling_partner_id}"
    return None


def find_connected_account(
    *,
    session: Session,
    platform: str,
    shop_domain: str | None = None,
    selling_partner_id: str | None = None,
    region: str | None = None,
) -> Integration | None:
    """The integration holding this shop (or this seller in this region), if any."""
    key = account_key(
        platform=platform,
        shop_domain=shop_domain,
        selling_partner_id=selling_partner_id,
        region=region,
    )
    if key is None:
        return None
    return session.exec(select(Integration).where(Integration.account_key == key)).first()


def refuse_account_taken(
    *,
    session: Session,
    integration_id: uuid.UUID,
    shop_domain: str | None = None,
    selling_partner_id: str | None = None,
) -> str | None:
    """Raise AccountTaken when the account is held by another integration than
    ``integration_id`` (reconnecting the holder itself is fine); returns the account's key."""
    integration = get_integration(session=session, integration_id=integration_id)
    shop_domain = shop_domain or integration.shop_domain
    seller = selling_partner_id or integration.selling_partner_id
    key = account_key(
        platform=integration.platform,
        shop_domain=shop_domain,
        selling_partner_id=seller,
        region=integration.region,
    )
    if key is None:
        return None
    holder = session.exec(select(Integration).where(Integration.account_key == key)).first()
    if holder is not None and holder.id != integration.id:
        account = (
            f"{shop_domain}"
            if integration.platform == Platform.SHOPIFY.value
            else f"Amazon seller {seller} ({(integration.region or '').upper()})"
        )
        raise AccountTaken(account=account, holder=holder)
    return key


def set_integration_status(
    *,
    session: Session,
    integration_id: uuid.UUID,
    status: IntegrationStatus,
    detail: str | None = None,
) -> None:
    integration = get_integration(session=session, integration_id=integration_id)
    integration.status = IntegrationStatus(status).value
    integration.status_detail = detail
    integration.updated_at = _now()
    session.add(integration)


def mark_connected(
    *,
    session: Session,
    integration_id: uuid.UUID,
    shop_info: dict[str, object] | None = None,
    selling_partner_id: str | None = None,
    marketplaces: Iterable[str] | None = None,
    actor: str = "merchant",
) -> Integration:
    """The merchant approved: status connected, details filled in, audit written.

    Raises AccountTaken when another integration holds the account; a callback racing this
    one past that check makes the flush raise IntegrityError (the unique ``account_key``).
    """
    key = refuse_account_taken(
        session=session, integration_id=integration_id, selling_partner_id=selling_partner_id
    )
    integration = get_integration(session=session, integration_id=integration_id)
    integration.account_key = key
    integration.status = IntegrationStatus.CONNECTED.value
    integration.status_detail = None
    integration.connected_at = integration.updated_at = _now()
    incidents.access_returned(session=session, integration_id=integration_id)  # issue 13
    if shop_info is not None:
        integration.shop_info = dict(shop_info)
    if selling_partner_id is not None:
        integration.selling_partner_id = selling_partner_id
    if marketplaces is not None:
        integration.marketplaces = list(marketplaces)
    session.add(integration)
    session.flush()  # the unique account_key decides a race here, before anything else
    record_audit(
        session=session, actor=actor, action="integration.connected", target=str(integration.id)
    )
    return integration
