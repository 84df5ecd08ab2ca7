"""Every way a live Amazon seller reaches the hub, over real HTTP against the sandbox's
Seller Central, Appstore and Login with Amazon:

- the website workflow sends the seller to their own marketplace's Seller Central host;
- the Appstore workflow (detail page -> the app's Login URI -> Amazon's confirm page ->
  callback) creates the integration, and the yearly renewal from "Manage Your Apps" renews
  the one that holds the seller;
- the LWA client secret: incident ahead of its 180 days, a rotation with no downtime (the
  previous secret answers while the new one is refused), and a secret past 180 days refused.
"""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qs, urlparse

import httpx
import pytest
from sqlmodel import select

from connectors.amazon.connector import AmazonConnector
from connectors.amazon.regions import MARKETPLACES, SELLER_CENTRAL_HOSTS
from connectors.base import IntegrationRef
from connectors.sandbox.consent import form_fields
from dashboard.db import session_scope
from dashboard.models import Credential, Incident, IncidentCause, Integration
from dashboard.services import amazon_lifecycle, connect, incidents, sync
from dashboard.services.credentials import DbCredentialStore, load_credential
from dashboard.services.integrations import create_connect_link, create_integration
from dashboard.settings import get_settings
from tests.conftest import reset_caches
from tests.sandbox_amazon_helpers import validate
from tests.sandbox_server import control_headers
from tests.spapi_contract import RecordingTransport, contract_problems
from tests.test_amazon_connect import AMAZON_APP, HUB, SELLER, consent, hub, new_link

__all__ = ["hub"]  # the connect tests' hub: sandbox, settings and an HTTP client

AU, ZA, DE = "A39IBJ37TRP1C6", "AE08WJ6YKNBMC", "A1PA6795UKMFR9"
LOGIN_URI = f"{HUB}/api/oauth/amazon/login"
NEW_SELLER = "A6APPSTORESELLER"


def control(hub: dict, method: str, path: str, **kwargs: object) -> dict:
    answer = httpx.request(
        method, f"{hub['base']}/_sandbox/amazon{path}", headers=control_headers(hub["base"]),
        **kwargs,  # type: ignore[arg-type]  # json=... only
    )  # fmt: skip
    answer.raise_for_status()
    body: dict = answer.json()
    return body


def location_path(response: httpx.Response) -> str:
    assert response.status_code == 302, response.text
    return response.headers["location"]


def query(url: str) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(urlparse(url).query).items()}


async def finish_background() -> None:
    await asyncio.gather(*connect._background)
    await sync.get_engine().wait()


# --- consent host per marketplace ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("region", "marketplace", "host"),
    [
        ("fe", AU, "sellercentral.amazon.com.au"),
        ("eu", ZA, "sellercentral.amazon.co.za"),
        ("eu", DE, "sellercentral-europe.amazon.com"),
    ],
)
async def test_consent_opens_on_the_sellers_own_seller_central(
    hub: dict, region: str, marketplace: str, host: str
) -> None:
    """An Australian seller is sent to sellercentral.amazon.com.au (not .co.jp), a South
    African one to .co.za, a German one to the European host Amazon's table gives Germany;
    the page there is the region's consent and completes the connect."""
    seller = "A7" + region.upper() + "SELLER00"
    control(hub, "POST", "/sellers", json={
        "selling_partner_id": seller, "region": region, "marketplaces": [marketplace],
        "orders": 5, "listings": 5, "fba_items": 2,
    })  # fmt: skip
    with session_scope() as s:
        integration = create_integration(
            session=s, platform="amazon", display_name="Far seller", region=region,
            marketplaces=[marketplace], streams={"orders": 10},
        )  # fmt: skip
        _, token = create_connect_link(session=s, integration_id=integration.id)
        integration_id = integration.id
    start = await hub["client"].get(f"/api/oauth/amazon/start?link={token}")
    location = location_path(start)
    assert location.startswith(f"{hub['base']}/amazon/sellercentral/{host}/apps/authorize/consent")
    async with httpx.AsyncClient() as browser:
        page = await browser.get(location)
        assert page.status_code == 200 and host in page.text and seller in page.text
        approved = await browser.post(
            location,
            data={**form_fields(page.text), "decision": "approve", "selling_partner_id": seller},
        )
    result = await hub["client"].get(location_path(approved).removeprefix(HUB))
    assert result.status_code == 200 and "Connected" in result.text, result.text
    await finish_background()
    with session_scope() as s:
        connected = s.get(Integration, integration_id)
        assert connected.selling_partner_id == seller and connected.marketplaces == [marketplace]
        assert connected.authorized_at is not None
        access = load_credential(session=s, integration_id=integration_id, kind="access_token")
    # What the sandbox told the hub about this marketplace is what Amazon's Sellers model
    # allows (South Africa included).
    assert access is not None
    answer = httpx.get(
        f"{hub['base']}/amazon/sp/{region}/sellers/v1/marketplaceParticipations",
        headers={"x-amz-access-token": access.secret},
    )
    payload = validate("getMarketplaceParticipations", "sellers", answer)["payload"]
    assert [p["marketplace"]["id"] for p in payload] == [marketplace]
    assert payload[0]["marketplace"]["countryCode"] == MARKETPLACES[marketplace].country


# Amazon's "Seller Central URLs" table (docs/amazon.md names the sources), by country code.
SELLER_CENTRAL_URLS = {
    "CA": "sellercentral.amazon.ca", "US": "sellercentral.amazon.com",
    "MX": "sellercentral.amazon.com.mx", "BR": "sellercentral.amazon.com.br",
    "ES": "sellercentral-europe.amazon.com", "GB": "sellercentral-europe.amazon.com",
    "FR": "sellercentral-europe.amazon.com", "DE": "sellercentral-europe.amazon.com",
    "IT": "sellercentral-europe.amazon.com", "NL": "sellercentral.amazon.nl",
    "SE": "sellercentral.amazon.se", "PL": "sellercentral.amazon.pl",
    "TR": "sellercentral.amazon.com.tr", "AE": "sellercentral.amazon.ae",
    "IN": "sellercentral.amazon.in", "BE": "sellercentral.amazon.com.be",
    "IE": "sellercentral.amazon.ie", "ZA": "sellercentral.amazon.co.za",
    "SA": "sellercentral.amazon.sa", "EG": "sellercentral.amazon.eg",
    "SG": "sellercentral.amazon.sg", "AU": "sellercentral.amazon.com.au",
    "JP": "sellercentral.amazon.co.jp",
}  # fmt: skip


def test_every_marketplace_consents_on_its_seller_central_url_from_amazons_table() -> None:
    assert {m.country: m.seller_central_host for m in MARKETPLACES.values()} == (
        SELLER_CENTRAL_URLS
    )
    assert MARKETPLACES[ZA].region == "eu" and MARKETPLACES[ZA].country == "ZA"
    # Every host in the table (and each marketplace's own address) names its region.
    for marketplace in MARKETPLACES.values():
        for host in (marketplace.seller_central_host, marketplace.own_host):
            assert SELLER_CENTRAL_HOSTS[host].region == marketplace.region


async def test_a_host_amazon_does_not_have_answers_nothing(hub: dict) -> None:
    async with httpx.AsyncClient() as browser:
        page = await browser.get(
            f"{hub['base']}/amazon/sellercentral/sellercentral.example.com/apps/authorize/consent"
        )
    assert page.status_code == 404


# --- Appstore-initiated authorization -----------------------------------------------------------


async def appstore_authorize(hub: dict, seller: str, host: str = "sellercentral.amazon.com") -> str:
    """The seller presses "Authorize now" on the app's Appstore page; returns the hub
    callback path Amazon finally sends the browser to."""
    control(hub, "PUT", "/app", json={"login_uri": LOGIN_URI})
    page_url = f"{hub['base']}/amazon/sellercentral/{host}/apps/appstore/authorize"
    async with httpx.AsyncClient() as browser:
        page = await browser.get(page_url, params={"selling_partner_id": seller})
        assert page.status_code == 200 and seller in page.text
        to_login = await browser.post(
            page_url,
            params={"selling_partner_id": seller},
            data={**form_fields(page.text), "decision": "approve"},
        )
        login_url = location_path(to_login)
        assert login_url.startswith(LOGIN_URI)
        amazon = query(login_url)
        assert amazon["selling_partner_id"] == seller and amazon["amazon_state"]
        # The hub's Login URI answers Amazon with redirect_uri, amazon_state and its state.
        answer = await hub["client"].get(login_url.removeprefix(HUB))
        back = location_path(answer)
        assert back.startswith(amazon["amazon_callback_uri"])
        sent = query(back)
        assert sent["amazon_state"] == amazon["amazon_state"]
        assert sent["redirect_uri"] == f"{HUB}/api/oauth/amazon/callback" and sent["state"]
        confirmed = await browser.get(back)
    return location_path(confirmed).removeprefix(HUB)


async def test_appstore_authorization_creates_the_sellers_integration(hub: dict) -> None:
    control(hub, "POST", "/sellers", json={
        "selling_partner_id": NEW_SELLER, "marketplaces": ["ATVPDKIKX0DER"], "orders": 12,
        "listings": 4, "fba_items": 2,
    })  # fmt: skip
    callback = await appstore_authorize(hub, NEW_SELLER)
    result = await hub["client"].get(callback)
    assert result.status_code == 200 and "Connected" in result.text, result.text
    assert "is now connected" in result.text
    await finish_background()
    with session_scope() as s:
        integration = s.exec(
            select(Integration).where(Integration.selling_partner_id == NEW_SELLER)
        ).one()
        assert integration.status == "connected" and integration.region == "na"
        assert integration.account_key == f"amazon:na:{NEW_SELLER}"
        assert integration.marketplaces == ["ATVPDKIKX0DER"]
        assert integration.display_name.startswith("Sandbox Seller")  # the store's name
        assert integration.authorized_at is not None
        assert load_credential(
            session=s, integration_id=integration.id, kind="refresh_token"
        ) is not None  # fmt: skip
    # The state Amazon carried back is single-use.
    replay = await hub["client"].get(callback)
    assert replay.status_code == 400 and "cannot be reused" in replay.text


async def test_yearly_renewal_from_manage_your_apps_renews_the_integration(hub: dict) -> None:
    integration_id, token = new_link(("ATVPDKIKX0DER",))
    assert (await hub["client"].get(await consent(hub, token))).status_code == 200
    await finish_background()
    with session_scope() as s:
        before = load_credential(session=s, integration_id=integration_id, kind="refresh_token")
        count = len(s.exec(select(Integration)).all())
        # Eleven months on, the renewal comes due.
        raised = amazon_lifecycle.sweep(session=s, now=datetime.now(UTC) + timedelta(days=340))
        assert raised >= 1
        due = s.exec(
            select(Incident).where(
                Incident.integration_id == integration_id,
                Incident.cause == IncidentCause.AMAZON_REAUTHORIZATION_DUE.value,
            )
        ).one()
        assert due.status == "open" and "re-authorize" in due.title
    result = await hub["client"].get(await appstore_authorize(hub, SELLER))
    assert result.status_code == 200 and "Connected" in result.text, result.text
    await finish_background()
    with session_scope() as s:
        assert len(s.exec(select(Integration)).all()) == count  # no second integration
        after = load_credential(session=s, integration_id=integration_id, kind="refresh_token")
        assert after is not None and before is not None and after.secret != before.secret
        resolved = s.get(Incident, due.id)
        assert resolved.status == "resolved" and "authorized" in (resolved.resolution or "")


@pytest.mark.parametrize(
    "params",
    [
        {},
        {"amazon_state": "x", "selling_partner_id": SELLER},
        {"amazon_callback_uri": "https://evil.example/apps/authorize/confirm/APP",
         "amazon_state": "x", "selling_partner_id": SELLER},
        {"amazon_callback_uri": "https://sellercentral.amazon.com/apps/authorize/confirm/other",
         "amazon_state": "x", "selling_partner_id": SELLER},
        {"amazon_callback_uri": "https://sellercentral.amazon.com/apps/authorize/confirm/APP",
         "amazon_state": "x", "selling_partner_id": "not a seller"},
    ],
)  # fmt: skip
async def test_login_uri_refuses_what_amazon_did_not_send(
    hub: dict, monkeypatch: pytest.MonkeyPatch, params: dict[str, str]
) -> None:
    """Never an open redirect: only this app's confirm page on a Seller Central host."""
    monkeypatch.setenv("HUB_AMAZON_BASE_URL", "")  # Amazon's real hosts
    reset_caches()
    app_id = get_settings().amazon_app_id or ""
    sent = {k: v.replace("/APP", f"/{app_id}") for k, v in params.items()}
    answer = await hub["client"].get("/api/oauth/amazon/login", params=sent)
    assert answer.status_code == 400 and "location" not in answer.headers
    assert "Authorization not started" in answer.text


async def test_login_uri_accepts_amazons_own_request(
    hub: dict, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HUB_AMAZON_BASE_URL", "")
    monkeypatch.setenv("HUB_AMAZON_DRAFT_APP", "true")
    reset_caches()
    callback = f"https://sellercentral.amazon.com.au/apps/authorize/confirm/{AMAZON_APP['app_id']}"
    answer = await hub["client"].get(
        "/api/oauth/amazon/login",
        params={"amazon_callback_uri": callback, "amazon_state": "amzn-state",
                "selling_partner_id": SELLER, "version": "beta"},
    )  # fmt: skip
    sent = query(location_path(answer))
    assert location_path(answer).startswith(callback)
    assert sent["version"] == "beta" and sent["amazon_state"] == "amzn-state"
    with session_scope() as s:
        start = s.exec(select(amazon_lifecycle.AppstoreState)).one()
        assert (start.region, start.marketplace_id) == ("fe", AU)


# --- the LWA client secret ----------------------------------------------------------------------


def use_secrets(monkeypatch: pytest.MonkeyPatch, current: str, previous: str | None) -> None:
    monkeypatch.setenv("HUB_AMAZON_CLIENT_SECRET", current)
    if previous is None:
        monkeypatch.delenv("HUB_AMAZON_CLIENT_SECRET_PREVIOUS", raising=False)
    else:
        monkeypatch.setenv("HUB_AMAZON_CLIENT_SECRET_PREVIOUS", previous)
    reset_caches()


async def participations_after_refresh(hub: dict, integration_id: uuid.UUID) -> list[str]:
    """Expire the access token at Amazon, then call SP-API: the token flow refreshes at LWA.
    The SP-API request is checked against Amazon's models."""
    control(hub, "POST", f"/sellers/{SELLER}/expire-tokens")
    recording = RecordingTransport()
    connector = AmazonConnector.from_settings(get_settings().model_dump(), transport=recording)
    ref = IntegrationRef(
        id=str(integration_id), platform="amazon", selling_partner_id=SELLER, region="na"
    )
    found = await connector.marketplace_participations(ref, DbCredentialStore(integration_id))
    problems = [p for r in recording.requests for p in contract_problems(r)]
    assert problems == []
    return [p["id"] for p in found]


async def test_secret_rotation_takes_no_downtime(
    hub: dict, monkeypatch: pytest.MonkeyPatch
) -> None:
    old = AMAZON_APP["client_secret"]
    integration_id, token = new_link(("ATVPDKIKX0DER",))
    assert (await hub["client"].get(await consent(hub, token))).status_code == 200
    await finish_background()
    # The admin sets the new secret before pressing "Rotate secret" finishes at Amazon (or
    # on one hub of several): LWA refuses it, the previous one answers.
    use_secrets(monkeypatch, "amzn1.oa2-cs.v1.not-active-yet", previous=old)
    assert await participations_after_refresh(hub, integration_id) == ["ATVPDKIKX0DER"]
    # Amazon rotates: the new secret works at once and the old one for seven days.
    new = control(hub, "POST", "/app/rotate-secret")["client_secret"]
    use_secrets(monkeypatch, new, previous=old)
    assert await participations_after_refresh(hub, integration_id) == ["ATVPDKIKX0DER"]
    use_secrets(monkeypatch, new, previous=None)
    assert await participations_after_refresh(hub, integration_id) == ["ATVPDKIKX0DER"]


async def test_a_secret_past_180_days_is_refused_and_warned_ahead(
    hub: dict, monkeypatch: pytest.MonkeyPatch
) -> None:
    integration_id, token = new_link(("ATVPDKIKX0DER",))
    assert (await hub["client"].get(await consent(hub, token))).status_code == 200
    await finish_background()
    with session_scope() as s:
        # The hub learns the secret was generated 170 days ago: ten days left.
        amazon_lifecycle.record_secret(
            session=s, secret=AMAZON_APP["client_secret"],
            set_at=datetime.now(UTC) - timedelta(days=170),
        )  # fmt: skip
        # A second Amazon integration: the secret is the app's, so still one incident.
        other = create_integration(
            session=s, platform="amazon", display_name="Second seller", region="na",
            marketplaces=["ATVPDKIKX0DER"],
        )  # fmt: skip
        other.status = "connected"
        s.add(other)
        s.flush()
        assert amazon_lifecycle.sweep(session=s) >= 1
        amazon_lifecycle.sweep(session=s)  # swept again: the same incident, seen again
        incident = s.exec(
            select(Incident).where(Incident.cause == IncidentCause.LWA_SECRET_EXPIRING.value)
        ).one()
        assert incident.integration_id is None and incident.occurrences == 2
        assert "must be rotated by" in incident.title and "9 days left" in incident.title
        assert "Settings → Amazon app" in incident.advice and "rotate-secret" in incident.advice
        # Where admins look: the bell and the Overview list it once, linking to the app's page.
        (row,) = [
            r for r in incidents.list_incidents(session=s) if r["cause"] == incident.cause
        ]
        assert row["integration"] == "Amazon app" and row["href"] == "/settings/amazon"
        stored = [c.ciphertext for c in s.exec(select(Credential)).all()]
        assert all(AMAZON_APP["client_secret"] not in c for c in stored)
    control(hub, "PUT", "/app/secret-age", json={"days": 181})
    with pytest.raises(Exception, match="invalid_client"):
        await participations_after_refresh(hub, integration_id)
    # Rotated: the incident resolves at the next sweep.
    new = control(hub, "POST", "/app/rotate-secret")["client_secret"]
    use_secrets(monkeypatch, new, previous=None)
    assert await participations_after_refresh(hub, integration_id) == ["ATVPDKIKX0DER"]
    with session_scope() as s:
        amazon_lifecycle.sweep(session=s)
        assert s.get(Incident, incident.id).status == "resolved"


async def test_hub_amazon_rotate_secret_tells_the_steps_and_records_the_date(
    hub: dict, capsys: pytest.CaptureFixture[str]
) -> None:
    from dashboard.cli import main

    assert main(["amazon", "rotate-secret", "--set-at", "2026-06-01"]) == 0
    out = capsys.readouterr().out
    assert "Rotate secret" in out and "HUB_AMAZON_CLIENT_SECRET_PREVIOUS" in out
    assert "set 2026-06-01, rotate by 2026-11-28" in out
    assert AMAZON_APP["client_secret"] not in out  # a fingerprint, never the secret
    # Past the warning window: secret-status says so with its exit code.
    assert main(["amazon", "secret-status"]) == 1


async def test_hub_doctor_says_when_the_secret_must_be_rotated(hub: dict) -> None:
    from dashboard.services.doctor import check_amazon_secret

    settings = get_settings()
    [unknown] = check_amazon_secret(settings)
    assert unknown.status == "warn" and "--set-at" in (unknown.fix or "")
    with session_scope() as s:
        amazon_lifecycle.record_secret(
            session=s, secret=AMAZON_APP["client_secret"],
            set_at=datetime.now(UTC) - timedelta(days=175),
        )  # fmt: skip
    [soon] = check_amazon_secret(settings)
    assert soon.status == "warn" and "days left" in soon.detail
    with session_scope() as s:
        amazon_lifecycle.record_secret(
            session=s, secret=AMAZON_APP["client_secret"],
            set_at=datetime.now(UTC) - timedelta(days=200),
        )  # fmt: skip
    [late] = check_amazon_secret(settings)
    assert late.status == "fail" and "rotate-secret" in (late.fix or "")
