"""What a person reads about a failure: a raw error such as
``POST /sandbox/shopify/.../graphql.json answered 503`` becomes a category and plain words
("Shopify answered 503", "the store's API is down or overloaded; the hub retries every 15
min"), from one mapping (``FAILURES``). Incidents, the Streams tab and the alert webhook all
read it, so a cause is worded once."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime

from dashboard.models import IncidentCause

PLATFORM_LABELS = {"shopify": "Shopify", "amazon": "Amazon"}
PLATFORM_APIS = {"shopify": "the store's API", "amazon": "Amazon's SP-API"}


@dataclass(frozen=True)
class Failure:
    """What a raw error means: its category, in words, and what happens or what to do."""

    category: str
    words: str
    advice: str


# Raw error text -> category and words, first match wins. ``{platform}``, ``{api}``,
# ``{status}`` and ``{interval}`` are filled in by ``describe_failure``.
FAILURES: tuple[tuple[re.Pattern[str], Failure], ...] = tuple(
    (re.compile(pattern, re.IGNORECASE), failure)
    for pattern, failure in (
        (
            r"refused the hub's access|AuthRevoked|AuthError|\b40[13]\b",
            Failure(
                "access_refused",
                "{platform} refused the hub's access",
                "send the merchant a reconnect link; syncing stops until they approve",
            ),
        ),
        (
            r"throttl|\b429\b|rate.?limit|RateLimited",
            Failure(
                "rate_limited",
                "{platform} kept throttling the hub (429)",
                "another app or hub may share this account's quota; "
                "the hub retries every {interval} min",
            ),
        ),
        (
            r"answered (?P<status>5\d\d)|\b(?P<bare>5\d\d)\b",
            Failure(
                "server_error",
                "{platform} answered {status}",
                "{api} is down or overloaded; the hub retries every {interval} min",
            ),
        ),
        (
            r"timed? ?out|Timeout",
            Failure(
                "timeout",
                "{platform} did not answer in time",
                "{api} is slow or unreachable; the hub retries every {interval} min",
            ),
        ),
        (
            r"malformed|truncated",
            Failure(
                "malformed",
                "{platform} sent broken answers",
                "usually passes by itself; the hub retries every {interval} min",
            ),
        ),
        (
            r"no progress|stalled",
            Failure(
                "stalled",
                "a sync of {platform} made no progress",
                "the hub keeps the run going and tells when it moves again",
            ),
        ),
        (
            r"^internal error",
            Failure(
                "internal",
                "the hub failed while syncing {platform} (a bug on our side)",
                "the run's log has the details; the hub retries every {interval} min",
            ),
        ),
        (
            r".",
            Failure(
                "platform_rejected",
                "{platform} refused a request",
                "retrying will not fix it: read the error and the run's log",
            ),
        ),
    )
)


@dataclass(frozen=True)
class Described:
    category: str
    words: str
    advice: str


def describe_failure(error: str, *, platform: str, interval_minutes: int = 15) -> Described:
    """The category and plain words of a raw error (``FAILURES``, first match)."""
    for pattern, failure in FAILURES:
        match = pattern.search(error or "")
        if match is None:
            continue
        groups = match.groupdict()
        values = {
            "platform": PLATFORM_LABELS.get(platform, platform.title() or "The platform"),
            "api": PLATFORM_APIS.get(platform, "the platform's API"),
            "status": groups.get("status") or groups.get("bare") or "",
            "interval": interval_minutes,
        }
        return Described(
            failure.category, failure.words.format(**values), failure.advice.format(**values)
        )
    raise AssertionError("unreachable: the last pattern matches everything")  # pragma: no cover


def hhmm(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%H:%M")


def plural(count: int, word: str) -> str:
    return f"{count} {word}" if count == 1 else f"{count} {word}s"


# --- the words of every other cause, which no raw error carries --------------------------------


@dataclass(frozen=True)
class CauseWords:
    """What an incident of one cause says when its words do not come from a raw error:
    its category (``Incident.category``), what to do, and its title (``{label}`` is the
    platform's name, ``{shop}`` the shop, ``{since}`` the time it was opened, plus what the
    caller passes)."""

    category: str
    title: str
    advice: str


CAUSES: dict[IncidentCause, CauseWords] = {
    IncidentCause.ACCESS_LOST: CauseWords(
        "access_refused", "{label} refused the hub's access since {since}",
        "send the merchant a reconnect link; scheduled syncs stop until they approve",
    ),
    IncidentCause.UNINSTALLED: CauseWords(
        "uninstalled", "The merchant removed the app from {shop}",
        "the hub's access is gone and syncing stopped; send a reconnect link if this was a "
        "mistake",
    ),
    IncidentCause.DECLINED: CauseWords(
        "declined", "The merchant declined the connection request",
        "talk to the merchant, then send a new connect link",
    ),
    IncidentCause.CONNECT_LINK_EXPIRED_UNUSED: CauseWords(
        "connect_link", "The connect link expired before the merchant used it",
        "send the merchant a new connect link, or discard the integration",
    ),
    IncidentCause.WEBHOOK_SUBSCRIPTION_REMOVED: CauseWords(
        "webhook", "{removed} removed from {shop}: {topics} (found {since})", "{done}",
    ),
    IncidentCause.LWA_SECRET_EXPIRING: CauseWords(
        "credentials", "{title}",
        "an admin rotates it in Solution Provider Portal, then enters it in Settings → "
        "Amazon app (or hub amazon rotate-secret; docs/amazon.md)",
    ),
    IncidentCause.AMAZON_REAUTHORIZATION_DUE: CauseWords(
        "credentials", "{title}",
        "the seller renews it in Seller Central (Apps and Services → Manage Your Apps), "
        "or send them a reconnect link",
    ),
    IncidentCause.REFRESH_TOKEN_EXPIRING: CauseWords(
        "refresh_token", "{title}",
        "resume the integration or run a sync (it refreshes the token for another 90 days); "
        "once ended, reconnect it from the shop's Shopify admin",
    ),
}  # fmt: skip
