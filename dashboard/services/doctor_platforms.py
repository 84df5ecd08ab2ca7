"""The go-live check's platform checks: each platform's app credentials asked at its token
endpoint with a code that cannot be valid (``invalid_client``: refused; ``invalid_grant`` or
Shopify's ``invalid_request``: accepted), and the Amazon LWA client secret's 180 days.
``dashboard.services.doctor`` runs them with the others."""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

import httpx
from sqlmodel import Session, col, select

from dashboard.db import get_engine
from dashboard.services.doctor_result import Check
from dashboard.settings import Settings

BOGUS_CODE = "hub-doctor-not-a-real-code"


@dataclass
class _PlatformAnswer:
    """What a token endpoint said to the bogus code (or why it said nothing)."""

    status: int | None = None
    error: str = ""
    description: str = ""
    date: datetime | None = None
    failure: str = ""


def check_amazon_secret(settings: Settings) -> list[Check]:
    """The LWA client secret's 180 days (Amazon refuses it after): from the date the hub
    recorded for its fingerprint. Reads only; ``hub amazon rotate-secret`` records."""
    from dashboard.models import LwaClientSecret
    from dashboard.services.amazon_lifecycle import (
        LWA_SECRET_LIFETIME,
        secret_fingerprint,
        settings_entered_secret,
    )

    if not settings.amazon_client_secret or settings.sandbox:
        return []
    try:
        with Session(get_engine()) as session:
            entered = settings_entered_secret(session=session, settings=settings)
            row = entered[0] if entered else session.exec(
                select(LwaClientSecret).where(
                    LwaClientSecret.fingerprint
                    == secret_fingerprint(settings.amazon_client_secret)
                )
            ).first()
    except Exception as error:
        return [Check("amazon secret", "fail", f"not checked: {type(error).__name__}",
                      "fix the database first")]  # fmt: skip
    record = "record the date it was generated: hub amazon rotate-secret --set-at YYYY-MM-DD"
    if row is None:
        unknown = (
            "the hub does not know when the LWA client secret was generated (Amazon refuses "
            "it after 180 days)"
        )
        return [Check("amazon secret", "warn", unknown, record)]
    deadline = row.set_at + LWA_SECRET_LIFETIME
    days = (deadline - datetime.now(UTC)).days
    detail = f"set {row.set_at:%Y-%m-%d}, rotate by {deadline:%Y-%m-%d} ({days} days left)"
    rotate = (
        "rotate it now: Settings → Amazon app, or hub amazon rotate-secret (docs/amazon.md)"
    )
    if days < 0:
        return [Check("amazon secret", "fail", detail, rotate)]
    if days <= settings.amazon_secret_warning_days:
        return [Check("amazon secret", "warn", detail, rotate)]
    return [Check("amazon secret", "ok", detail)]


async def _ask_token_endpoint(
    client: httpx.AsyncClient, url: str, form: dict[str, str]
) -> _PlatformAnswer:
    try:
        response = await client.post(url, data=form, headers={"Accept": "application/json"})
    except httpx.HTTPError as error:
        return _PlatformAnswer(failure=f"{url} unreachable: {type(error).__name__}: {error}")
    answer = _PlatformAnswer(status=response.status_code)
    if "date" in response.headers:
        with contextlib.suppress(TypeError, ValueError):
            answer.date = parsedate_to_datetime(response.headers["date"])
    try:
        body = response.json()
    except ValueError:
        body = {}
    if isinstance(body, dict):
        answer.error = str(body.get("error") or "")
        answer.description = str(body.get("error_description") or "")
    return answer


def _refused_client(answer: _PlatformAnswer) -> bool:
    """The endpoint refused the app itself (not the bogus code)."""
    text = answer.description.lower()
    return (
        answer.error == "invalid_client"
        or answer.status == 401
        # Shopify names an unknown client id this way instead of invalid_client.
        or ("api_key" in text or "application" in text or "client credentials" in text)
    )


async def check_shopify(
    settings: Settings, client: httpx.AsyncClient, shop: str | None
) -> tuple[list[Check], _PlatformAnswer | None]:
    from connectors.errors import InvalidInput
    from connectors.shopify.auth import token_endpoint

    public = settings.public_url
    register = Check(
        "shopify urls",
        "ok",
        f"register in the app (Partner Dashboard or shopify.app.toml): redirect URL "
        f"{public}/api/oauth/shopify/callback; compliance webhooks {public}/api/webhooks/shopify "
        "(topic webhooks are subscribed by the hub itself to the same URL)",
    )
    if not (settings.shopify_client_id or settings.shopify_client_secret):
        return [Check("shopify app", "ok", "not configured (no Shopify integrations)")], None
    if not (settings.shopify_client_id and settings.shopify_client_secret):
        return [
            Check(
                "shopify app",
                "fail",
                "only one of HUB_SHOPIFY_CLIENT_ID and HUB_SHOPIFY_CLIENT_SECRET is set",
                "set both",
            ),
            register,
        ], None
    shop = shop or _first_shop()
    if shop is None:
        return [
            Check(
                "shopify app",
                "warn",
                "no shop to ask: Shopify's token endpoint is per "
                "shop and no Shopify integration exists yet",
                "run `hub doctor --shop your-dev-store.myshopify.com`",
            ),
            register,
        ], None
    try:
        endpoint = token_endpoint(
            shop=shop,
            client_id=settings.shopify_client_id,
            client_secret=settings.shopify_client_secret,
            base_url=settings.shopify_base_url,
        )
    except InvalidInput as error:
        return [
            Check("shopify app", "fail", f"{shop!r}: {error}", "pass --shop name.myshopify.com"),
            register,
        ], None
    answer = await _ask_token_endpoint(
        client,
        endpoint.url,
        {
            "client_id": settings.shopify_client_id,
            "client_secret": settings.shopify_client_secret,
            "code": BOGUS_CODE,
        },
    )
    if answer.failure:
        check = Check(
            "shopify app",
            "fail",
            answer.failure,
            "check HUB_SHOPIFY_BASE_URL, DNS and outbound HTTPS from this host",
        )
    elif _refused_client(answer):
        check = Check(
            "shopify app",
            "fail",
            f"Shopify refused the app's credentials "
            f"({answer.error or answer.status}: {answer.description})",
            "copy the Client ID and secret of your app into HUB_SHOPIFY_CLIENT_ID "
            "and HUB_SHOPIFY_CLIENT_SECRET",
        )
    elif answer.status is not None and 400 <= answer.status < 500:
        check = Check(
            "shopify app",
            "ok",
            f"credentials accepted by {shop} (only the test "
            f"code was refused: {answer.error or answer.status})",
        )
    else:
        check = Check(
            "shopify app",
            "fail",
            f"unexpected answer {answer.status} {answer.error} from {endpoint.url}",
            "check HUB_SHOPIFY_BASE_URL",
        )
    return [check, register], answer


def _first_shop() -> str | None:
    from dashboard.models import Integration

    try:
        with Session(get_engine()) as session:
            return session.exec(
                select(Integration.shop_domain)
                .where(Integration.platform == "shopify", col(Integration.shop_domain).is_not(None))
                .limit(1)
            ).first()
    except Exception:
        return None


def _amazon_secret_in_use(settings: Settings) -> str:
    """The secret an admin entered in Settings when it is the one in use, else the
    environment's (reads only; a database problem is the database check's to tell)."""
    from dashboard.services.amazon_lifecycle import settings_entered_secret

    with contextlib.suppress(Exception), Session(get_engine()) as session:
        entered = settings_entered_secret(session=session, settings=settings)
        if entered is not None and entered[1]:
            return entered[1]
    return settings.amazon_client_secret or ""


async def check_amazon(
    settings: Settings, client: httpx.AsyncClient
) -> tuple[list[Check], _PlatformAnswer | None]:
    from connectors.amazon.regions import lwa_token_url

    public = settings.public_url
    register = Check(
        "amazon urls",
        "ok",
        f"register in the app (Developer Central, app client): OAuth redirect URI "
        f"{public}/api/oauth/amazon/callback, OAuth Login URI {public}/api/oauth/amazon/login",
    )
    values = (settings.amazon_app_id, settings.amazon_client_id, settings.amazon_client_secret)
    if not any(values):
        return [Check("amazon app", "ok", "not configured (no Amazon integrations)")], None
    if not all(values):
        return [
            Check(
                "amazon app",
                "fail",
                "HUB_AMAZON_APP_ID, HUB_AMAZON_CLIENT_ID and "
                "HUB_AMAZON_CLIENT_SECRET must all be set",
                "set the missing ones",
            ),
            register,
        ], None
    url = lwa_token_url(settings.amazon_base_url)
    answer = await _ask_token_endpoint(
        client,
        url,
        {
            "grant_type": "authorization_code",
            "code": BOGUS_CODE,
            "client_id": settings.amazon_client_id or "",
            "client_secret": await asyncio.to_thread(_amazon_secret_in_use, settings),
            "redirect_uri": f"{public}/api/oauth/amazon/callback",
        },
    )
    if answer.failure:
        check = Check(
            "amazon app",
            "fail",
            answer.failure,
            "check HUB_AMAZON_BASE_URL, DNS and outbound HTTPS from this host",
        )
    elif answer.error == "invalid_client" or answer.status == 401:
        check = Check(
            "amazon app",
            "fail",
            f"Login with Amazon refused the LWA credentials "
            f"({answer.error or answer.status}: {answer.description})",
            "copy the LWA client identifier and secret of your app into "
            "HUB_AMAZON_CLIENT_ID and HUB_AMAZON_CLIENT_SECRET",
        )
    elif answer.error == "invalid_grant":
        check = Check(
            "amazon app",
            "ok",
            "LWA credentials accepted (only the test code was refused: invalid_grant)",
        )
    else:
        check = Check(
            "amazon app",
            "fail",
            f"unexpected answer {answer.status} {answer.error} from {url}",
            "check HUB_AMAZON_BASE_URL",
        )
    return [check, register], answer
