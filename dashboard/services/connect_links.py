"""Merchant connect links and OAuth ``state``: how a connection is started and finished.

A connect link lets a merchant start the platform's OAuth consent without a login; every
start mints a single-use OAuth ``state``. Only hashes of both tokens are stored.
"""

from __future__ import annotations

import hashlib
import secrets
import uuid
from datetime import UTC, datetime, timedelta

import sqlalchemy as sa
from sqlmodel import Session, col, select

from connectors.errors import OAuthError
from dashboard.models import ConnectLink, ConnectPurpose, OAuthState, User
from dashboard.services import incidents
from dashboard.services.audit import record_audit
from dashboard.settings import get_settings

OAUTH_STATE_TTL = timedelta(minutes=10)
CONNECT_LINK_TTL = timedelta(days=7)


class LinkInvalid(Exception):
    """A connect link that cannot be used; ``reason`` is unknown/expired/used/revoked/declined."""

    MESSAGES = {
        "unknown": "This connect link is not valid. Check that you copied the whole link.",
        "expired": "This connect link has expired. Ask your account manager for a new one.",
        "used": "This connect link was used already. Ask your account manager if you need "
        "to connect again.",
        "revoked": "This connect link was withdrawn. Ask your account manager for a new one.",
        "declined": "You declined this request. Ask your account manager for a new link if "
        "you change your mind.",
    }

    def __init__(self, reason: str) -> None:
        super().__init__(self.MESSAGES[reason])
        self.reason = reason


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _now() -> datetime:
    return datetime.now(UTC)


def connect_link_url(token: str) -> str:
    return f"{get_settings().public_url}/connect/{token}"


# --- connect links -------------------------------------------------------------------------


def create_connect_link(
    *,
    session: Session,
    integration_id: uuid.UUID,
    purpose: ConnectPurpose | str = ConnectPurpose.CONNECT,
    actor: User | None = None,
    ttl: timedelta = CONNECT_LINK_TTL,
) -> tuple[ConnectLink, str]:
    """A new link for the merchant; returns (row, raw token). Only the hash is stored."""
    from dashboard.services.integrations import get_integration  # integrations re-exports us

    integration = get_integration(session=session, integration_id=integration_id)
    token = secrets.token_urlsafe(32)
    link = ConnectLink(
        token_hash=_hash(token),
        integration_id=integration.id,
        purpose=ConnectPurpose(purpose).value,
        created_by=actor.id if actor else None,
        expires_at=_now() + ttl,
    )
    session.add(link)
    record_audit(
        session=session,
        actor=actor.email if actor else "system",
        action="connect_link.create",
        target=str(integration.id),
        context={"purpose": link.purpose, "expires_at": link.expires_at.isoformat()},
    )
    session.flush()
    return link, token


def resolve_connect_link(*, session: Session, token: str) -> ConnectLink:
    """The usable link for ``token``; raises LinkInvalid with the reason."""
    link = session.exec(select(ConnectLink).where(ConnectLink.token_hash == _hash(token))).first()
    if link is None:
        raise LinkInvalid("unknown")
    if link.revoked_at is not None:
        raise LinkInvalid("revoked")
    if link.declined_at is not None:
        raise LinkInvalid("declined")
    if link.used_at is not None:
        raise LinkInvalid("used")
    if link.expires_at <= _now():
        raise LinkInvalid("expired")
    return link


def revoke_connect_link(*, session: Session, link_id: uuid.UUID, actor: User | None) -> None:
    """Withdraw the link and end every OAuth flow already started from it.

    A merchant who opened the link before it was revoked is at the platform's consent page
    with a state minted from it: that state expires now, and ``consume_oauth_state`` refuses
    any state whose link is withdrawn, so the callback cannot connect the integration.
    """
    from dashboard.services.integrations import NotFound  # integrations re-exports us

    link = session.get(ConnectLink, link_id)
    if link is None:
        raise NotFound("no such connect link")
    if link.revoked_at is None:
        now = _now()
        link.revoked_at = now
        session.add(link)
        session.execute(
            sa.update(OAuthState)
            .where(
                col(OAuthState.connect_link_id) == link.id,
                col(OAuthState.used_at).is_(None),
                col(OAuthState.expires_at) > now,
            )
            .values(expires_at=now)
        )
        record_audit(
            session=session,
            actor=actor.email if actor else "system",
            action="connect_link.revoke",
            target=str(link.integration_id),
        )


def decline_connect_link(*, session: Session, token: str) -> ConnectLink:
    link = resolve_connect_link(session=session, token=token)
    link.declined_at = _now()
    session.add(link)
    record_audit(
        session=session,
        actor="merchant",
        action="connect_link.decline",
        target=str(link.integration_id),
    )
    incidents.declined(session=session, integration_id=link.integration_id)
    return link


def active_connect_links(*, session: Session, integration_id: uuid.UUID) -> list[ConnectLink]:
    now = _now()
    rows = session.exec(
        select(ConnectLink)
        .where(ConnectLink.integration_id == integration_id)
        .order_by(col(ConnectLink.created_at).desc())
    ).all()
    return [
        row
        for row in rows
        if row.used_at is None
        and row.revoked_at is None
        and row.declined_at is None
        and row.expires_at > now
    ]


# --- OAuth state ---------------------------------------------------------------------------


def issue_oauth_state(
    *,
    session: Session,
    integration_id: uuid.UUID,
    platform: str,
    shop_domain: str | None = None,
    connect_link_id: uuid.UUID | None = None,
    user_id: uuid.UUID | None = None,
) -> str:
    """A random single-use ``state`` (10 minutes) bound to the integration and its origin."""
    state = secrets.token_urlsafe(32)
    session.add(
        OAuthState(
            state_hash=_hash(state),
            platform=platform,
            integration_id=integration_id,
            shop_domain=shop_domain,
            connect_link_id=connect_link_id,
            user_id=user_id,
            expires_at=_now() + OAUTH_STATE_TTL,
        )
    )
    session.flush()
    return state


def left_consent_unfinished(*, session: Session, link_id: uuid.UUID) -> bool:
    """Whether someone holding the link went to the platform's consent page and came back
    without approving: a state was issued for the link and never used. (Shopify sends nothing
    back when the merchant cancels; the merchant's link is the way back.)"""
    unused = select(OAuthState.id).where(
        OAuthState.connect_link_id == link_id, col(OAuthState.used_at).is_(None)
    )
    return session.exec(unused.limit(1)).first() is not None


def consume_oauth_state(*, session: Session, state: str | None, platform: str) -> OAuthState:
    """Mark the state used and return it; raises OAuthError for unknown, used or expired."""
    restart = "Start the connection again from the hub or from your connect link."
    if not state:
        raise OAuthError(
            "callback without state", user_message=f"The request had no state. {restart}"
        )
    row = session.exec(select(OAuthState).where(OAuthState.state_hash == _hash(state))).first()
    if row is None or row.platform != platform:
        raise OAuthError(
            "unknown state", user_message=f"This sign-in request is unknown. {restart}"
        )
    if row.used_at is not None:
        raise OAuthError(
            "state replayed",
            user_message="This sign-in request was completed already and cannot be reused. "
            + restart,
        )
    _refuse_withdrawn_link(session=session, link_id=row.connect_link_id)
    if row.expires_at <= _now():
        raise OAuthError(
            "state expired",
            user_message=f"This sign-in request expired (they last 10 minutes). {restart}",
        )
    row.used_at = _now()
    session.add(row)
    session.flush()
    return row


def _refuse_withdrawn_link(*, session: Session, link_id: uuid.UUID | None) -> None:
    """Raise OAuthError when the flow was started from a link since revoked or declined."""
    if link_id is None:
        return
    link = session.get(ConnectLink, link_id)
    if link is not None and link.revoked_at is None and link.declined_at is None:
        return
    reason = "declined" if link is not None and link.declined_at is not None else "revoked"
    raise OAuthError(f"connect link {reason}", user_message=LinkInvalid.MESSAGES[reason])


def finish_connect_link(*, session: Session, link_id: uuid.UUID | None) -> None:
    """Mark the connect link behind a completed authorization as used.

    Raises OAuthError when the link was revoked while the merchant was at the platform (after
    the state was consumed): the caller's transaction, which marks the integration connected,
    then rolls back.
    """
    if link_id is None:
        return
    _refuse_withdrawn_link(session=session, link_id=link_id)
    link = session.get(ConnectLink, link_id)
    if link is not None and link.used_at is None:
        link.used_at = _now()
        session.add(link)
