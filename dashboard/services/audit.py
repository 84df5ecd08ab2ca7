"""Audit log: who did what to which target, and the same entries in words.

Every action key the hub writes has a phrase in ``PHRASES``
(``tests/test_audit_words.py`` finds every ``record_audit`` call and fails on a key without
one), so the log reads "ann@example.com paused the orders sync of Demo Outdoor", never
"integration.pause".
"""

from __future__ import annotations

import string
import uuid
from typing import Any

from sqlmodel import Session, col, func, select

from dashboard.models import AuditLog, Integration, User

# Action key -> what the actor did, after their name. ``{target}`` is the target in words
# (an integration's current name, a user's email, "3 integrations"); other fields come from
# the entry's context. A field the entry lacks reads as nothing.
PHRASES: dict[str, str] = {
    "integration.create": "created the integration {target}",
    "integration.update": "changed the setup of {target}",
    "integration.connected": "connected {target}",
    "integration.rename": "renamed an integration to {name}",
    "integration.disconnect": "disconnected {target}",
    "integration.delete": "deleted the integration {name}",
    "integration.discard_stale": "discarded {target} that were never connected",
    "integration.pause": "paused {target}",
    "integration.resume": "resumed {target}",
    "stream.pause": "paused the {stream} sync of {target}",
    "stream.resume": "resumed the {stream} sync of {target}",
    "integration.app_credentials_set": "set the app credentials of {target}",
    "integration.consent_cancelled": "cancelled on {platform}'s consent page for {target}",
    "integration.connect_refused": (
        "could not connect {target}: its account {account} belongs to another integration"
    ),
    "integration.install_started": "started installing the app on {shop}",
    "integration.uninstalled": "reported the app uninstalled from {target}",
    "webhook.rejected": "sent a {topic} webhook for {target} that was refused: {reason}",
    "compliance.customers/data_request": "asked for a customer's data held for {target}",
    "compliance.customers/redact": (
        "asked to erase a customer's data held for {target} ({redacted_rows} rows redacted)"
    ),
    "compliance.shop/redact": (
        "asked to erase every record of {target} ({redacted_rows} rows deleted)"
    ),
    "connect_link.create": "created a {purpose} link for {target}",
    "connect_link.revoke": "revoked a connect link of {target}",
    "connect_link.decline": "declined to connect {target}",
    "user.create": "added {target} as {role}",
    "user.role": "made {target} {role}",
    "user.disable": "disabled the account of {target}",
    "user.enable": "enabled the account of {target}",
    "user.password_reset": "reset the password of {target}",
    "user.password_change": "changed their password",
    "user.sign_in": "signed in",
    "keys.rotate": "re-encrypted {credentials} credentials under the newest key",
    "amazon.secret_recorded": "recorded a new Login with Amazon client secret",
    "settings.shopify_install_defaults": "changed what installs started from Shopify sync",
    "amazon.secret_set": "entered a new Login with Amazon client secret ({fingerprint})",
    "amazon.secret_switch_confirmed": (
        "confirmed the switch to the Login with Amazon client secret {fingerprint}"
    ),
    "integration.marketplaces": "changed the marketplaces of {target}",
    "stream.schedule": "changed the {stream} sync of {target}",
    "order.personal_data_viewed": "read the buyer details of order {order} of {target}",
    "webhooks.resubscribed": (
        "found webhook subscriptions removed from {target} and re-created them"
    ),
}
# Actors that are not people, in words (a person is named by their email).
ACTORS = {
    "system": "The hub",
    "merchant": "The merchant",
    "shopify": "Shopify",
    "cli": "An operator (hub command line)",
    "manager": "A manager",  # entries written before the hub named the person
}


def record_audit(
    *,
    session: Session,
    actor: str,
    action: str,
    target: str = "",
    context: dict[str, Any] | None = None,
) -> AuditLog:
    entry = AuditLog(actor=actor, action=action, target=target, context=context or {})
    session.add(entry)
    return entry


def actor_of(*, session: Session, user_id: uuid.UUID | None, otherwise: str = "merchant") -> str:
    """Who to name for an act done by a signed-in user: their email; ``otherwise`` when there
    was no user (a merchant's connect link, the platform)."""
    user = session.get(User, user_id) if user_id is not None else None
    return user.email if user is not None else otherwise


def list_audit(*, session: Session, limit: int = 100, offset: int = 0) -> list[AuditLog]:
    statement = select(AuditLog).order_by(col(AuditLog.at).desc()).offset(offset).limit(limit)
    return list(session.exec(statement).all())


def _integration_id(target: str) -> uuid.UUID | None:
    try:
        return uuid.UUID(target)
    except ValueError:
        return None


class _Blank(dict[str, str]):
    def __missing__(self, key: str) -> str:
        return ""


def actor_words(actor: str) -> str:
    return ACTORS.get(actor, actor)


def sentence(*, actor: str, action: str, target: str, context: dict[str, Any]) -> str:
    """The entry in words: "ann@example.com paused the orders sync of Demo Outdoor"."""
    phrase = PHRASES.get(action)
    if phrase is None:  # written by a newer hub than this one: say what is known
        return f"{actor_words(actor)} did {action} on {target or 'the hub'}"
    values = _Blank({key: str(value) for key, value in context.items()})
    values["target"] = target or "the hub"
    words = string.Formatter().vformat(phrase, (), values)
    return f"{actor_words(actor)} {' '.join(words.split())}"


def audit_page(
    *, session: Session, offset: int = 0, limit: int = 25
) -> tuple[list[dict[str, str]], int]:
    """A page of the audit log, newest first, and how many entries there are. Each entry is
    also told in words; a target that is an integration is named, with a link to it (one
    query for the page's targets); one since deleted keeps its id."""
    entries = list_audit(session=session, limit=limit, offset=offset)
    total = int(session.exec(select(func.count()).select_from(AuditLog)).one())
    ids = {i for i in (_integration_id(e.target) for e in entries) if i is not None}
    names = {
        str(integration_id): name
        for integration_id, name in session.exec(
            select(Integration.id, Integration.display_name).where(col(Integration.id).in_(ids))
        ).all()
    } if ids else {}  # fmt: skip
    rows = [
        {
            "at": entry.at.isoformat(),
            "actor": actor_words(entry.actor),
            "action": entry.action,
            "target": names.get(entry.target, entry.target),
            "href": f"/integrations/{entry.target}" if entry.target in names else "",
            "sentence": sentence(
                actor=entry.actor,
                action=entry.action,
                target=names.get(entry.target, entry.target),
                context=entry.context or {},
            ),
        }
        for entry in entries
    ]
    return rows, total
