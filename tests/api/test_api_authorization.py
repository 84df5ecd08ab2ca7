"""Who may call what in /api/v1: a key's scopes, its integration allow-list, revocation and
its rate limit; what the hub keeps of a key (a hash), when it was last used, the audit log."""

from __future__ import annotations

import uuid

import httpx
import pytest
import sqlalchemy as sa

from dashboard.db import session_scope
from dashboard.models import ApiKey, AuditLog
from dashboard.services.api_keys import (
    ApiKeyInvalid,
    create_api_key,
    list_api_keys,
    revoke_api_key,
)
from tests.api.conftest import MakeKey, bearer, new_integration

# (method, path template, body) -> the one scope it needs.
OPERATIONS = [
    ("GET", "/api/v1/integrations", None, "integrations:read"),
    ("GET", "/api/v1/integrations/{id}", None, "integrations:read"),
    ("GET", "/api/v1/integrations/{id}/runs", None, "integrations:read"),
    ("GET", "/api/v1/integrations/{id}/records/orders", None, "records:read"),
    ("GET", "/api/v1/integrations/{id}/records/customers", None, "records:read"),
    ("GET", "/api/v1/integrations/{id}/webhooks", None, "records:read"),
    ("POST", "/api/v1/integrations/{id}/connect-links", {}, "integrations:write"),
    ("POST", "/api/v1/integrations/{id}/syncs", {"stream": "nope"}, "syncs:write"),
]
ALL = ["records:read", "integrations:read", "integrations:write", "syncs:write"]


@pytest.mark.parametrize("scope", ALL)
async def test_each_scope_opens_its_operations_and_no_other(
    hub_db: object, hub: httpx.AsyncClient, make_key: MakeKey, scope: str
) -> None:
    integration_id = new_integration()
    key = make_key(scopes=[scope])
    for method, template, body, needed in OPERATIONS:
        path = template.format(id=integration_id)
        response = await hub.request(method, path, json=body, headers=bearer(key))
        if needed == scope:
            # Allowed through: a result, or the operation's own refusal (an unknown stream).
            assert response.status_code in (200, 201, 409), (path, response.text)
        else:
            assert response.status_code == 403, (path, response.status_code)
            assert response.json()["error"]["code"] == "insufficient_scope"
            assert needed in response.json()["error"]["message"]


async def test_the_allow_list_limits_a_key_to_its_integrations(
    hub_db: object, hub: httpx.AsyncClient, make_key: MakeKey
) -> None:
    mine, other = new_integration(), new_integration("Other", "other.myshopify.com")
    key = make_key(integration_ids=[mine])
    listed = (await hub.get("/api/v1/integrations", headers=bearer(key))).json()
    assert [i["id"] for i in listed["integrations"]] == [str(mine)]
    for method, template, body, _ in OPERATIONS[1:]:
        allowed = await hub.request(
            method, template.format(id=mine), json=body, headers=bearer(key)
        )
        assert allowed.status_code in (200, 201, 409), template
        refused = await hub.request(
            method, template.format(id=other), json=body, headers=bearer(key)
        )
        assert refused.status_code == 403, template
        assert refused.json()["error"]["code"] == "integration_not_allowed"
    create = await hub.post(
        "/api/v1/integrations",
        json={"platform": "shopify", "display_name": "New", "shop_domain": "new.myshopify.com"},
        headers=bearer(key),
    )
    assert create.status_code == 403  # a limited key cannot widen its own reach


async def test_no_key_unknown_key_and_revoked_key_are_refused(
    hub_db: object, hub: httpx.AsyncClient, make_key: MakeKey
) -> None:
    integration_id = new_integration()
    key = make_key()
    url = f"/api/v1/integrations/{integration_id}/records/orders"
    assert (await hub.get(url, headers=bearer(key))).status_code == 200
    nothing = await hub.get(url)
    assert nothing.status_code == 401 and nothing.json()["error"]["code"] == "unauthorized"
    assert nothing.headers["www-authenticate"].startswith("Bearer")
    forged = key[:-4] + ("AAAA" if not key.endswith("AAAA") else "BBBB")
    assert (await hub.get(url, headers=bearer(forged))).status_code == 401
    with session_scope() as session:
        row = session.execute(sa.select(ApiKey)).scalar_one()
        revoke_api_key(session=session, key_id=row.id, actor="admin@example.com")
    revoked = await hub.get(url, headers=bearer(key))
    assert revoked.status_code == 401


async def test_the_hub_keeps_only_a_hash_notes_last_use_and_audits(
    hub_db: object, hub: httpx.AsyncClient, make_key: MakeKey
) -> None:
    key = make_key()
    with session_scope() as session:
        [row] = list_api_keys(session=session)
        assert row.last_used_at is None
        stored = " ".join(str(value) for value in row.model_dump().values())
    secret = key.split("_", 2)[2]  # chk_<prefix>_<secret>; the secret may hold "_" itself
    assert key not in stored and secret not in stored
    assert (await hub.get("/api/v1/integrations", headers=bearer(key))).status_code == 200
    with session_scope() as session:
        [row] = list_api_keys(session=session)
        assert row.last_used_at is not None
        revoke_api_key(session=session, key_id=row.id, actor="admin@example.com")
        actions = session.execute(sa.select(AuditLog.action, AuditLog.context)).all()
    assert [a for a, _ in actions] == ["apikey.create", "apikey.revoke"]
    assert all(key not in str(context) for _, context in actions)


async def test_a_key_over_its_rate_limit_gets_429_with_retry_after(
    hub_db: object, hub: httpx.AsyncClient, make_key: MakeKey
) -> None:
    key = make_key(rate_limit_per_minute=3)
    codes = [
        (await hub.get("/api/v1/integrations", headers=bearer(key))).status_code for _ in range(4)
    ]
    assert codes == [200, 200, 200, 429]
    limited = await hub.get("/api/v1/integrations", headers=bearer(key))
    assert limited.json()["error"]["code"] == "rate_limited"
    assert 1 <= int(limited.headers["retry-after"]) <= 20  # a token comes back every 20 s
    other = make_key()  # the limit is per key
    assert (await hub.get("/api/v1/integrations", headers=bearer(other))).status_code == 200


def test_a_key_needs_a_name_known_scopes_and_existing_integrations(hub_db: object) -> None:
    with session_scope() as session:
        for name, scopes, ids, problem in [
            ("", ["records:read"], [], "name"),
            ("erp", [], [], "scope"),
            ("erp", ["records:delete"], [], "unknown scopes"),
            ("erp", ["records:read"], [uuid.uuid4()], "no integration"),
        ]:
            with pytest.raises(ApiKeyInvalid, match=problem):
                create_api_key(
                    session=session, name=name, scopes=scopes, actor="a@b.c", integration_ids=ids
                )
