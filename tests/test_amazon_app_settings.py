"""Settings → Amazon app: an admin rotates the LWA client secret from the dashboard, with no
downtime, against the sandbox's Login with Amazon over real HTTP.

The new secret is kept encrypted and never shown again; the one before stays the fallback
until the admin confirms the switch; every step is audited; nobody but an admin gets in.
"""

from __future__ import annotations

import uuid

import httpx
import pytest
from reflex.istate.data import RouterData
from sqlmodel import Session, select

from connectors.amazon.connector import AmazonConnector
from connectors.base import IntegrationRef, StoredCredential
from connectors.errors import PlatformError
from connectors.sandbox.installer import install_amazon
from dashboard.db import session_scope
from dashboard.models import AuditLog, LwaClientSecret, Role
from dashboard.pages.settings_amazon import AmazonAppState
from dashboard.services import amazon_lifecycle
from dashboard.services.auth import create_session, create_user
from dashboard.services.credentials import DbCredentialStore, save_credential
from dashboard.services.doctor import check_amazon_secret
from dashboard.services.integrations import create_integration, mark_connected
from dashboard.settings import get_settings
from tests.sandbox_server import apps
from tests.spapi_contract import RecordingTransport, contract_problems
from tests.test_amazon_connect import AMAZON_APP, HUB, SELLER, hub
from tests.test_amazon_install_paths import control

__all__ = ["hub"]


def connected_seller(hub: dict) -> uuid.UUID:
    """An integration holding the seller's refresh token (authorized at the sandbox's
    Seller Central as the connect tests do it, without the hub's callback in between)."""
    with httpx.Client(base_url=hub["base"]) as client:
        refresh = install_amazon(
            client, SELLER, apps(hub["base"]), redirect_uri=f"{HUB}/api/oauth/amazon/callback"
        )
    with session_scope() as s:
        integration = create_integration(
            session=s, platform="amazon", display_name="Seller", region="na",
            marketplaces=["ATVPDKIKX0DER"],
        )  # fmt: skip
        save_credential(
            session=s,
            integration_id=integration.id,
            credential=StoredCredential("refresh_token", refresh),
        )
        mark_connected(session=s, integration_id=integration.id, selling_partner_id=SELLER)
        return integration.id


def signed_in(session: Session, role: Role) -> AmazonAppState:
    user, _ = create_user(session=session, email=f"{role.value}@example.com", role=role)
    token = create_session(session=session, user=user)
    session.commit()
    state = AmazonAppState(_reflex_internal_init=True)
    state.router = RouterData.from_router_data({"headers": {"cookie": f"hub_session={token}"}})
    return state


async def participations(hub: dict, integration_id: uuid.UUID) -> list[str]:
    """Expire the access token at Amazon, then call SP-API through the hub's own settings
    values: the refresh at LWA signs with the secrets the hub holds now."""
    control(hub, "POST", f"/sellers/{SELLER}/expire-tokens")
    recording = RecordingTransport()
    values = await amazon_lifecycle.amazon_settings_values()
    connector = AmazonConnector.from_settings(values, transport=recording)
    ref = IntegrationRef(
        id=str(integration_id), platform="amazon", selling_partner_id=SELLER, region="na"
    )
    found = await connector.marketplace_participations(ref, DbCredentialStore(integration_id))
    assert [p for r in recording.requests for p in contract_problems(r)] == []
    return [p["id"] for p in found]


def state_text(state: AmazonAppState) -> str:
    return repr(state.dict())


async def test_an_admin_rotates_the_secret_from_settings_without_downtime(
    hub: dict, session: Session
) -> None:
    old = AMAZON_APP["client_secret"]
    integration_id = connected_seller(hub)
    admin = signed_in(session, Role.ADMIN)
    await AmazonAppState.load_amazon_app.fn(admin)
    before = admin.secret
    assert before["source"].startswith("HUB_AMAZON_CLIENT_SECRET") and before["days_left"] == 179
    assert before["fingerprint"] == amazon_lifecycle.secret_fingerprint(old)

    # Solution Provider Portal's "Rotate secret": Amazon shows the new one once.
    new = control(hub, "POST", "/app/rotate-secret")["client_secret"]
    await AmazonAppState.save_secret.fn(admin, {"secret": new})
    assert admin.form_error == ""
    assert admin.secret["source"].startswith("entered in Settings")
    assert admin.secret["switch_pending"] and admin.secret["days_left"] == 179
    assert new not in state_text(admin) and old not in state_text(admin)
    assert await participations(hub, integration_id) == ["ATVPDKIKX0DER"]

    # Amazon's seven days of the old secret are over: the new one alone answers.
    control(hub, "PUT", "/app/secret-age", json={"days": 0})
    await AmazonAppState.confirm_switch.fn(admin)
    assert not admin.secret["switch_pending"] and admin.secret["fallback"] == "none"
    assert await participations(hub, integration_id) == ["ATVPDKIKX0DER"]
    with session_scope() as s:
        secrets = amazon_lifecycle.app_secrets(session=s)
        assert (secrets.current, secrets.previous) == (new, None)
        rows = s.exec(select(LwaClientSecret)).all()
        # Kept encrypted, never in plain text; the retired one's copy is erased.
        assert all(new not in (r.ciphertext or "") for r in rows)
        assert [r.ciphertext is not None for r in rows if r.retired_at is None] == [True]
        assert all(r.ciphertext is None for r in rows if r.retired_at is not None)
        audited = [
            (a.actor, a.action)
            for a in s.exec(select(AuditLog).where(AuditLog.action.startswith("amazon.")))
        ]
    assert audited == [
        ("admin@example.com", "amazon.secret_set"),
        ("admin@example.com", "amazon.secret_switch_confirmed"),
    ]
    # hub doctor judges the secret in use, entered in Settings, not the environment's older one.
    [check] = check_amazon_secret(get_settings())
    assert check.status == "ok" and "179 days left" in check.detail
    assert new not in check.detail


async def test_the_previous_secret_answers_while_amazon_has_not_rotated_yet(
    hub: dict, session: Session
) -> None:
    """An admin who enters a secret Amazon does not know yet loses nothing: the previous one
    answers until the switch is confirmed, and only then do calls fail."""
    integration_id = connected_seller(hub)
    admin = signed_in(session, Role.ADMIN)
    await AmazonAppState.save_secret.fn(admin, {"secret": "amzn1.oa2-cs.v1.not-at-amazon-yet"})
    assert await participations(hub, integration_id) == ["ATVPDKIKX0DER"]
    await AmazonAppState.confirm_switch.fn(admin)
    with pytest.raises(PlatformError, match="invalid_client"):
        await participations(hub, integration_id)


async def test_bad_input_and_other_roles_are_refused(hub: dict, session: Session) -> None:
    admin = signed_in(session, Role.ADMIN)
    await AmazonAppState.save_secret.fn(admin, {"secret": AMAZON_APP["client_secret"]})
    assert admin.form_error == "This is the client secret in use already."
    await AmazonAppState.save_secret.fn(admin, {"secret": "two words"})
    assert "one word" in admin.form_error
    await AmazonAppState.confirm_switch.fn(admin)  # nothing to confirm: a toast, no change
    manager = signed_in(session, Role.MANAGER)
    await AmazonAppState.load_amazon_app.fn(manager)
    assert manager.secret["fingerprint"] == ""
    await AmazonAppState.save_secret.fn(manager, {"secret": "amzn1.oa2-cs.v1.by-a-manager"})
    with session_scope() as s:
        # Nothing was stored: at most the environment's secret, by fingerprint.
        assert all(r.ciphertext is None for r in s.exec(select(LwaClientSecret)).all())
        assert s.exec(select(AuditLog).where(AuditLog.action.startswith("amazon."))).all() == []
    await AmazonAppState.save_secret.fn(admin, {"secret": "amzn1.oa2-cs.v1.first"})
    await AmazonAppState.save_secret.fn(admin, {"secret": "amzn1.oa2-cs.v1.second"})
    assert admin.form_error.startswith("Confirm the switch to the secret entered last")


def test_two_runs_first_seeing_the_environment_secret_both_get_it(
    session: Session, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A seller's first streams start together and each records HUB_AMAZON_CLIENT_SECRET the
    first time it is seen: the run that loses that race reads the other's row instead of
    failing with a unique-constraint error (the demo's orders run once did)."""
    monkeypatch.setenv("HUB_AMAZON_CLIENT_SECRET", "amzn1.oa2-cs.v1.from-the-environment")
    get_settings.cache_clear()
    with session_scope() as first:
        amazon_lifecycle.app_secrets(session=first)  # the other run recorded it first
    seen, looks = amazon_lifecycle._row_of, []

    def looked_before_that_commit(s: Session, fingerprint: str) -> LwaClientSecret | None:
        looks.append(fingerprint)
        return None if len(looks) <= 2 else seen(s, fingerprint)  # the check, the insert's

    monkeypatch.setattr(amazon_lifecycle, "_row_of", looked_before_that_commit)
    with session_scope() as second:
        secrets = amazon_lifecycle.app_secrets(session=second)
    assert secrets.current == "amzn1.oa2-cs.v1.from-the-environment"
    with session_scope() as s:
        assert len(s.exec(select(LwaClientSecret)).all()) == 1
