"""Settings -> API keys: an admin creates a key (shown once, in the dialog only), sees it
listed with its scopes and reach, revokes it; the delivery history lists notices; nobody
else can do any of it."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
from reflex.istate.data import RouterData
from sqlmodel import Session

from dashboard import db
from dashboard.models import Role
from dashboard.pages.settings_api_keys import ApiKeysState
from dashboard.services import change_webhooks
from dashboard.services.auth import create_session, create_user
from tests.api.conftest import bearer, new_integration
from tests.api.test_change_feed import order
from tests.api.test_change_webhooks import store


@pytest.fixture
def session(hub_db: object) -> Iterator[Session]:
    with db.session_scope() as session:
        yield session


def signed_in(session: Session, role: Role) -> ApiKeysState:
    user, _ = create_user(session=session, email=f"{role.value}@example.com", role=role)
    token = create_session(session=session, user=user)
    session.commit()
    state = ApiKeysState(_reflex_internal_init=True)
    state.router = RouterData.from_router_data({"headers": {"cookie": f"hub_session={token}"}})
    return state


async def test_an_admin_creates_sees_once_and_revokes_a_key(
    session: Session, hub: httpx.AsyncClient
) -> None:
    integration_id = new_integration("Acme Store")
    state = signed_in(session, Role.ADMIN)
    await ApiKeysState.create_key.fn(
        state, {"name": "warehouse", "records:read": "on", "integrations": "acme store",
                "rate_limit": "120"},
    )  # fmt: skip
    key = state.new_key
    assert key.startswith("chk_") and state.form_error == ""
    [row] = state.keys
    assert (row["name"], row["scopes"], row["integrations"], row["rate"], row["state"]) == (
        "warehouse", "records:read", "Acme Store", "120/min", "active"
    )  # fmt: skip
    assert key not in str(state.keys)  # the list shows the prefix only
    url = f"/api/v1/integrations/{integration_id}/records/orders"
    assert (await hub.get(url, headers=bearer(key))).status_code == 200
    ApiKeysState.dismiss_key.fn(state)
    assert state.new_key == ""
    await ApiKeysState.revoke_key.fn(state, row["id"])
    assert state.keys[0]["state"] == "revoked"
    assert (await hub.get(url, headers=bearer(key))).status_code == 401


async def test_a_key_without_scopes_is_refused_with_the_reason(session: Session) -> None:
    state = signed_in(session, Role.ADMIN)
    await ApiKeysState.create_key.fn(state, {"name": "nothing"})
    assert "scope" in state.form_error and state.new_key == "" and state.keys == []


async def test_the_delivery_history_shows_each_notice(session: Session) -> None:
    integration_id = new_integration()
    change_webhooks.register_webhook(
        session=session, integration_id=integration_id, kind="order",
        url="https://erp.example.com/hook", actor="erp",
    )  # fmt: skip
    session.commit()
    store(integration_id, order(1, 1))
    await change_webhooks.sweep(transport=httpx.MockTransport(lambda _: httpx.Response(503)))
    state = signed_in(session, Role.ADMIN)
    await ApiKeysState.load_api_keys.fn(state)
    assert [w["url"] for w in state.webhooks] == ["https://erp.example.com/hook"]
    [delivery] = state.deliveries
    assert (delivery["state"], delivery["status"], delivery["attempts"]) == ("retrying", "503", "1")


async def test_a_manager_can_neither_see_nor_create_keys(session: Session) -> None:
    admin = signed_in(session, Role.ADMIN)
    await ApiKeysState.create_key.fn(admin, {"name": "erp", "records:read": "on"})
    manager = signed_in(session, Role.MANAGER)
    await ApiKeysState.load_api_keys.fn(manager)
    await ApiKeysState.create_key.fn(manager, {"name": "mine", "syncs:write": "on"})
    assert manager.keys == [] and manager.new_key == ""
    await ApiKeysState.revoke_key.fn(manager, admin.keys[0]["id"])
    await ApiKeysState.load_api_keys.fn(admin)
    assert [k["state"] for k in admin.keys] == ["active"]
