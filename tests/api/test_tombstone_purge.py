"""Deleted records leave the change feed after HUB_TOMBSTONE_DAYS, and a consumer that fell
further behind is told so (410 cursor_expired) instead of silently keeping a deleted record."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
import sqlalchemy as sa

from dashboard.db import session_scope
from dashboard.models import Order
from dashboard.services import change_feed
from dashboard.services.change_feed import purge_expired_tombstones
from dashboard.services.records import upsert_records
from tests.api.conftest import MakeKey, bearer, new_integration
from tests.api.test_change_feed import order


async def read_all(
    hub: httpx.AsyncClient, key: str, integration_id: uuid.UUID, since: str | None = None
) -> tuple[httpx.Response, list[tuple[str, bool]], str | None]:
    """Every page from ``since``: the last response, (id, deleted) of each record, the cursor."""
    seen: list[tuple[str, bool]] = []
    while True:
        params: dict[str, Any] = {"limit": 2}
        if since:
            params["since"] = since
        response = await hub.get(
            f"/api/v1/integrations/{integration_id}/records/orders", params=params,
            headers=bearer(key),
        )  # fmt: skip
        if response.status_code != 200:
            return response, seen, since
        page = response.json()
        seen += [(r["id"], r["deleted"]) for r in page["records"]]
        since = page["next_cursor"]
        if not page["has_more"]:
            return response, seen, since


def store(integration_id: uuid.UUID, *records: Any) -> None:
    with session_scope() as session:
        upsert_records(session=session, integration_id=integration_id, records=list(records))


def purge(older_than: datetime) -> int:
    with session_scope() as session:
        return change_feed.purge_tombstones(session=session, older_than=older_than)


async def test_a_consumer_behind_a_purged_deletion_is_told_to_read_again(
    any_db: str, hub: httpx.AsyncClient, make_key: MakeKey
) -> None:
    integration_id = new_integration()
    other = new_integration("Other", "other.myshopify.com")
    key = make_key(scopes=["records:read"])
    store(integration_id, order(1, 1), order(2, 2), order(3, 3))
    store(other, order(1, 1))
    store(other, order(1, 2, deleted=True))
    _, first, behind = await read_all(hub, key, integration_id)
    assert first == [("o1", False), ("o2", False), ("o3", False)]
    store(integration_id, order(1, 4, deleted=True))  # the merchant deleted o1
    _, changes, current = await read_all(hub, key, integration_id, since=behind)
    assert changes == [("o1", True)]  # a consumer that kept up erased its copy

    # Thirty days later (the sweep's cut-off moved past the deletions) the tombstones of
    # every integration go; live records stay.
    removed = purge(datetime.now(UTC) + timedelta(days=1))
    assert removed == 2  # o1 here, o1 of the other integration
    assert purge(datetime.now(UTC) + timedelta(days=1)) == 0
    with session_scope() as session:
        left = session.execute(
            sa.select(Order.external_id).where(Order.integration_id == integration_id)
        ).scalars()
        assert sorted(left) == ["o2", "o3"]

    # The consumer that kept up reads on as before ...
    response, nothing, _ = await read_all(hub, key, integration_id, since=current)
    assert response.status_code == 200 and nothing == []
    # ... the one still before the deletion would keep o1 forever: it is told to start over.
    response, _, _ = await read_all(hub, key, integration_id, since=behind)
    assert response.status_code == 410
    error = response.json()["error"]
    assert error["code"] == "cursor_expired"
    assert "read the feed again from the start" in error["message"]
    # Starting over gives the hub's table as it is now, and a cursor that works again.
    response, fresh, restart = await read_all(hub, key, integration_id)
    assert fresh == [("o2", False), ("o3", False)]
    store(integration_id, order(2, 5))
    response, latest, _ = await read_all(hub, key, integration_id, since=restart)
    assert response.status_code == 200 and latest == [("o2", False)]


async def test_recent_deletions_stay_and_the_sweep_uses_the_setting(
    hub_db: object, hub: httpx.AsyncClient, make_key: MakeKey, monkeypatch: pytest.MonkeyPatch
) -> None:
    integration_id = new_integration()
    key = make_key(scopes=["records:read"])
    store(integration_id, order(1, 1), order(2, 2))
    _, _, cursor = await read_all(hub, key, integration_id)
    store(integration_id, order(1, 3, deleted=True), order(2, 4, deleted=True))
    # o1 was deleted 31 days ago, o2 29 days ago: only o1 is past HUB_TOMBSTONE_DAYS (30).
    now = datetime.now(UTC)
    with session_scope() as session:
        for external_id, age in (("o1", 31), ("o2", 29)):
            session.execute(
                sa.update(Order)
                .where(Order.external_id == external_id)  # type: ignore[arg-type]
                .values(deleted_at=now - timedelta(days=age))
            )
    assert await purge_expired_tombstones() == 1
    response, _, _ = await read_all(hub, key, integration_id, since=cursor)
    assert response.status_code == 410  # o1's tombstone came after this cursor
    # With HUB_TOMBSTONE_DAYS=28, o2 goes too.
    monkeypatch.setenv("HUB_TOMBSTONE_DAYS", "28")
    from dashboard.settings import get_settings

    get_settings.cache_clear()
    assert await purge_expired_tombstones() == 1
    response, fresh, _ = await read_all(hub, key, integration_id)
    assert response.status_code == 200 and fresh == []
