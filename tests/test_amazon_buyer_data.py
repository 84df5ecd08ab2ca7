"""Amazon buyer and shipping data (Orders v2026-01-01 ``includedData`` BUYER, RECIPIENT), over
real HTTP against the sandbox:

- HUB_AMAZON_BUYER_DATA=off (the default): never asked for;
- encrypted, app with Amazon's restricted roles: stored sealed per order, never in plain text
  anywhere in the database, shown decrypted on the record view to managers and admins only;
- encrypted, app without the roles: Amazon refuses, the run fails saying what to do.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa
from reflex.istate.data import RouterData
from sqlmodel import Session, SQLModel, select

from connectors.amazon.client import BucketRegistry
from connectors.amazon.connector import AmazonConfig, AmazonConnector
from connectors.amazon.reports import ReportPolling
from connectors.amazon.streams import StreamOptions
from dashboard.db import get_engine, session_scope
from dashboard.models import AuditLog, Integration, Order, Role, SyncRun
from dashboard.pages.records import RecordsState
from dashboard.services import personal_data
from dashboard.services.auth import create_session, create_user
from dashboard.services.credentials import load_credential
from dashboard.services.sync import SyncEngine
from dashboard.services.vault import generate_key_spec, get_vault
from tests.conftest import reset_caches
from tests.sandbox_amazon_helpers import validate
from tests.sandbox_server import apps, control_headers, running_sandbox
from tests.spapi_contract import RecordingTransport, contract_problems
from tests.test_amazon_sync import any_session, connect

ORDERS = "/orders/2026-01-01/orders"
__all__ = ["any_session"]  # the sync tests' fixture: SQLite, then PostgreSQL


@pytest.fixture
def sandbox() -> Iterator[str]:
    with running_sandbox(seed=29, time_scale=500) as (base, _app):
        yield base


def restricted_roles(base: str, held: bool) -> None:
    httpx.put(
        f"{base}/_sandbox/amazon/app",
        headers=control_headers(base),
        json={"restricted_roles": held},
    ).raise_for_status()


def engine_for(base: str, *, buyer_data: bool, transport: httpx.AsyncBaseTransport) -> SyncEngine:
    config = AmazonConfig(
        app_id=apps(base).amazon_app_id,
        client_id=apps(base).amazon_client_id,
        client_secret=apps(base).amazon_client_secret,
        base_url=f"{base}/amazon",
        options=StreamOptions(buyer_data=buyer_data, polling=ReportPolling(0.02, 0.2, 60)),
    )
    buckets = BucketRegistry()
    return SyncEngine(
        connector_factory=lambda _: AmazonConnector(config, transport, buckets=buckets),
        retry_delays=(0.05,),
    )


async def sync_orders(
    base: str, integration_id: uuid.UUID, *, buyer_data: bool, full_refresh: bool = False
) -> tuple:
    recorder = RecordingTransport()
    engine = engine_for(base, buyer_data=buyer_data, transport=recorder)
    [run_id] = await engine.request_sync(
        integration_id=integration_id, stream="orders", full_refresh=full_refresh
    )
    await engine.wait()
    with session_scope() as s:
        run = s.get(SyncRun, run_id)
        assert run is not None
        s.expunge(run)
    return run, recorder.requests


def asked_datasets(requests: list[httpx.Request]) -> set[str]:
    return {
        dataset
        for request in requests
        if request.url.path.endswith(ORDERS)
        for dataset in request.url.params.get("includedData", "").split(",")
    }


def everything_in_the_database(session: Session) -> str:
    """Every value of every table, as text: what a database dump would show."""
    dump = []
    for table in SQLModel.metadata.sorted_tables:
        for row in session.execute(sa.select(table)).all():
            dump.append(" ".join(str(value) for value in row))
    return "\n".join(dump)


def what_amazon_has(base: str, integration_id: uuid.UUID, order_id: str) -> dict:
    """The order's buyer and recipient, read from the sandbox as Amazon's getOrder answers."""
    with session_scope() as s:
        access = load_credential(session=s, integration_id=integration_id, kind="access_token")
    assert access is not None
    answer = httpx.get(
        f"{base}/amazon/sp/na{ORDERS}/{order_id}",
        params={"includedData": "BUYER,RECIPIENT"},
        headers={"x-amz-access-token": access.secret},
    )
    order: dict = validate("getOrder", "2026", answer)["order"]
    return order


def records_signed_in(session: Session, role: Role) -> RecordsState:
    user, _ = create_user(session=session, email=f"{role.value}@example.com", role=role)
    token = create_session(session=session, user=user)
    session.commit()
    state = RecordsState(_reflex_internal_init=True)
    state.router = RouterData.from_router_data({"headers": {"cookie": f"hub_session={token}"}})
    state.kind = "order"
    return state


async def test_off_never_asks_amazon_for_buyer_data(session: Session, sandbox: str) -> None:
    restricted_roles(sandbox, True)  # even an app allowed to read them does not ask
    integration_id = connect(session, sandbox, orders=40, listings=10, fba_items=5)
    run, requests = await sync_orders(sandbox, integration_id, buyer_data=False)
    assert run.status == "succeeded"
    assert asked_datasets(requests) == {"PROCEEDS", "FULFILLMENT"}
    with session_scope() as s:
        orders = s.exec(select(Order).where(Order.integration_id == integration_id)).all()
        assert len(orders) == 40
        assert all(o.personal_data is None and "buyer" not in o.raw for o in orders)


async def test_encrypted_stores_them_sealed_and_never_in_plain_text(
    any_session: Session, sandbox: str, hub_env: Path
) -> None:
    session = any_session  # SQLite, then PostgreSQL when reachable
    restricted_roles(sandbox, True)
    integration_id = connect(session, sandbox, orders=60, listings=10, fba_items=5)
    run, requests = await sync_orders(sandbox, integration_id, buyer_data=True)
    assert run.status == "succeeded", run.error
    assert {"BUYER", "RECIPIENT"} <= asked_datasets(requests)
    assert [p for r in requests for p in contract_problems(r)] == []
    with session_scope() as s:
        orders = s.exec(select(Order).where(Order.integration_id == integration_id)).all()
        assert len(orders) == 60 and all(o.personal_data for o in orders)
        sample = orders[0]
        sealed = personal_data.open_sealed(
            key_id=sample.personal_key_id, ciphertext=sample.personal_data,
            integration_id=integration_id, external_id=sample.external_id,
        )  # fmt: skip
        dump = everything_in_the_database(s)
    amazon = what_amazon_has(sandbox, integration_id, sample.external_id)
    # What Amazon answered is what the hub kept, and only sealed.
    assert sealed == {"buyer": amazon["buyer"], "recipient": amazon["recipient"]}
    name = amazon["buyer"]["buyerName"]
    street = amazon["recipient"]["deliveryAddress"]["addressLine1"]
    assert name not in dump and street not in dump
    assert "buyerName" not in dump and "deliveryAddress" not in dump
    if session.get_bind().dialect.name == "sqlite":  # and the file itself, WAL included
        database = hub_env / "hub.db"
        assert database.exists()
        on_disk = b"".join(
            p.read_bytes() for p in (database, database.with_name("hub.db-wal")) if p.exists()
        )
        assert name.encode() not in on_disk and street.encode() not in on_disk
    # A sealed value moved onto another order does not open.
    other = orders[1]
    with pytest.raises(Exception, match="does not decrypt"):
        personal_data.open_sealed(
            key_id=sample.personal_key_id, ciphertext=sample.personal_data,
            integration_id=integration_id, external_id=other.external_id,
        )  # fmt: skip

    # The record view: a manager reads them (and the reading is audited), a viewer does not.
    SQLModel.metadata.create_all(get_engine())
    manager = records_signed_in(session, Role.MANAGER)
    await RecordsState.show_record.fn(manager, str(sample.id))
    shown = {line["label"]: line["value"] for line in manager.personal}
    assert shown["Buyer"] == name and street in shown["Address"]
    assert name not in manager.detail_raw  # the raw JSON never held them
    assert all(name not in field["value"] for field in manager.detail_fields)
    viewer = records_signed_in(session, Role.VIEWER)
    await RecordsState.show_record.fn(viewer, str(sample.id))
    assert viewer.personal == [] and "managers and admins" in viewer.personal_note
    assert name not in viewer.detail_raw
    with session_scope() as s:
        audited = s.exec(
            select(AuditLog).where(AuditLog.action == "order.personal_data_viewed")
        ).all()
        assert [(a.actor, a.context["order"]) for a in audited] == [
            ("manager@example.com", sample.external_id)
        ]


async def test_turned_off_again_a_resync_forgets_them(session: Session, sandbox: str) -> None:
    restricted_roles(sandbox, True)
    integration_id = connect(session, sandbox, orders=20, listings=10, fba_items=5)
    await sync_orders(sandbox, integration_id, buyer_data=True)
    run, _ = await sync_orders(sandbox, integration_id, buyer_data=False, full_refresh=True)
    assert run.status == "succeeded"
    with session_scope() as s:
        orders = s.exec(select(Order).where(Order.integration_id == integration_id)).all()
    assert len(orders) == 20
    assert all(o.personal_data is None and o.personal_key_id is None for o in orders)


async def test_without_the_restricted_roles_amazon_refuses_and_the_run_says_why(
    session: Session, sandbox: str
) -> None:
    restricted_roles(sandbox, False)
    integration_id = connect(session, sandbox, orders=20, listings=10, fba_items=5)
    run, _ = await sync_orders(sandbox, integration_id, buyer_data=True)
    assert run.status == "failed"
    assert "restricted roles" in run.error and "HUB_AMAZON_BUYER_DATA=off" in run.error
    with session_scope() as s:
        # Not the seller's doing: no reconnect is asked for.
        integration = s.get(Integration, integration_id)
        assert integration is not None and integration.status != "needs_reauth"
        assert s.exec(select(Order).where(Order.integration_id == integration_id)).all() == []


async def test_the_sandbox_answers_personal_data_as_amazon_does(
    session: Session, sandbox: str
) -> None:
    integration_id = connect(session, sandbox, orders=30, listings=10, fba_items=5)
    await sync_orders(sandbox, integration_id, buyer_data=False)
    with session_scope() as s:
        access = load_credential(session=s, integration_id=integration_id, kind="access_token")
    assert access is not None
    headers = {"x-amz-access-token": access.secret}
    search = {"lastUpdatedAfter": "2020-01-01T00:00:00Z", "includedData": "BUYER,FULFILLMENT"}
    refused = httpx.get(f"{sandbox}/amazon/sp/na{ORDERS}", params=search, headers=headers)
    assert refused.status_code == 403
    assert validate("searchOrders", "2026", refused)["errors"][0]["code"] == "Unauthorized"
    restricted_roles(sandbox, True)
    answered = validate(
        "searchOrders", "2026",
        httpx.get(f"{sandbox}/amazon/sp/na{ORDERS}", params=search, headers=headers),
    )  # fmt: skip
    orders = answered["orders"]
    assert orders and all(o["buyer"]["buyerName"] and "recipient" not in o for o in orders)
    # Amazon's conditions: the email only for merchant-fulfilled, unshipped or shipped orders.
    for order in orders:
        fulfillment = order["fulfillment"]
        eligible = fulfillment["fulfilledBy"] == "MERCHANT" and fulfillment[
            "fulfillmentStatus"
        ] in ("UNSHIPPED", "PARTIALLY_SHIPPED", "SHIPPED")
        assert ("buyerEmail" in order["buyer"]) == eligible


async def test_key_rotation_reseals_them_so_the_old_key_can_go(
    session: Session, sandbox: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    old = generate_key_spec("old")
    monkeypatch.setenv("HUB_ENCRYPTION_KEYS", old)
    reset_caches()
    restricted_roles(sandbox, True)
    integration_id = connect(session, sandbox, orders=15, listings=10, fba_items=5)
    await sync_orders(sandbox, integration_id, buyer_data=True)
    new = generate_key_spec("new")
    monkeypatch.setenv("HUB_ENCRYPTION_KEYS", f"{new},{old}")
    reset_caches()
    with session_scope() as s:
        assert get_vault().key_usage(session=s)["old"] >= 15 + 1  # orders and the tokens
        get_vault().rotate(session=s)
    monkeypatch.setenv("HUB_ENCRYPTION_KEYS", new)  # the old key is gone
    reset_caches()
    with session_scope() as s:
        assert get_vault().key_usage(session=s).get("old", 0) == 0
        orders = s.exec(select(Order).where(Order.integration_id == integration_id)).all()
        opened = [
            personal_data.open_sealed(
                key_id=o.personal_key_id,
                ciphertext=o.personal_data,
                integration_id=integration_id,
                external_id=o.external_id,
            )
            for o in orders
        ]
    assert len(opened) == 15 and all(data and data["buyer"]["buyerName"] for data in opened)
