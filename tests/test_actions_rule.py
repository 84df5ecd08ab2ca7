"""Actions fit the state (issue 15): one rule decides what an integration, a stream and a run
offer, and the server refuses the rest with the same rule."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
import sqlalchemy as sa
from reflex.istate.data import RouterData
from sqlmodel import select

from dashboard.db import session_scope
from dashboard.models import ConnectLink, Integration, Role, RunStatus, StreamConfig, SyncRun
from dashboard.pages.runs import RunsState
from dashboard.services.actions import (
    Action,
    integration_actions,
    run_actions,
    stream_actions,
)
from dashboard.services.auth import create_session, create_user
from dashboard.services.integrations import create_integration, mark_connected
from dashboard.state.integration_detail import DetailState

A = Action
MANAGER, ADMIN, VIEWER = Role.MANAGER.value, Role.ADMIN.value, Role.VIEWER.value
LIVE = {A.SYNC, A.PAUSE, A.RECONNECT, A.RECONNECT_LINK, A.DISCONNECT, A.EDIT}


@pytest.mark.parametrize(
    ("status", "offered"),
    [
        ("pending", {A.CONNECT, A.CONNECT_LINK, A.EDIT}),
        ("connected", LIVE),
        ("syncing", LIVE),
        ("error", LIVE),
        ("paused", {A.RESUME, A.RECONNECT, A.RECONNECT_LINK, A.DISCONNECT, A.EDIT}),
        ("needs_reauth", {A.RECONNECT, A.RECONNECT_LINK, A.DISCONNECT, A.EDIT}),
        ("disconnected", {A.RECONNECT, A.RECONNECT_LINK, A.EDIT}),
    ],
)
def test_the_integration_rule_table(status: str, offered: set[Action]) -> None:
    assert integration_actions(status=status, role=MANAGER) == offered
    assert integration_actions(status=status, role=ADMIN) == offered | {A.DELETE}
    assert integration_actions(status=status, role=VIEWER) == frozenset()
    assert integration_actions(status=status, role="") == frozenset()


def test_a_never_connected_integration_offers_nothing_to_sync_pause_resync_or_reconnect() -> None:
    offered = integration_actions(status="pending", role=ADMIN)
    assert not offered & {A.SYNC, A.PAUSE, A.RESUME, A.RECONNECT, A.RECONNECT_LINK, A.DISCONNECT}
    assert stream_actions(status="pending", role=ADMIN, enabled=True, paused=False) == frozenset()


@pytest.mark.parametrize(
    ("status", "enabled", "paused", "offered"),
    [
        ("connected", True, False, {A.SYNC, A.FULL_RESYNC, A.PAUSE}),
        ("connected", True, True, {A.SYNC, A.FULL_RESYNC, A.RESUME}),
        ("connected", False, False, set()),  # a stream turned off offers nothing
        ("paused", True, False, {A.PAUSE}),
        ("needs_reauth", True, True, {A.RESUME}),
        ("disconnected", True, False, set()),
        ("pending", True, False, set()),
    ],
)
def test_the_stream_rule_table(
    status: str, enabled: bool, paused: bool, offered: set[Action]
) -> None:
    assert stream_actions(status=status, role=MANAGER, enabled=enabled, paused=paused) == offered
    assert stream_actions(status=status, role=VIEWER, enabled=enabled, paused=paused) == set()


@pytest.mark.parametrize(
    ("run_status", "retried", "cancel_requested", "status", "offered"),
    [
        ("queued", False, False, "connected", {A.CANCEL}),
        ("running", False, False, "connected", {A.CANCEL}),
        ("running", False, True, "connected", set()),  # cancelling already
        ("failed", False, False, "connected", {A.RETRY}),
        ("failed", True, False, "connected", set()),  # a retried run's Retry is gone
        ("interrupted", False, False, "error", {A.RETRY}),
        ("cancelled", False, False, "connected", {A.RETRY}),
        ("failed", False, False, "paused", set()),  # its integration cannot sync now
        ("failed", False, False, "needs_reauth", set()),
        ("succeeded", False, False, "connected", set()),
    ],
)
def test_the_run_rule_table(
    run_status: str, retried: bool, cancel_requested: bool, status: str, offered: set[Action]
) -> None:
    assert (
        run_actions(
            run_status=run_status, retried=retried, cancel_requested=cancel_requested,
            status=status, role=MANAGER,
        )
        == offered
    )  # fmt: skip
    assert not run_actions(
        run_status=run_status, retried=retried, cancel_requested=cancel_requested,
        status=status, role=VIEWER,
    )  # fmt: skip


# --- the same rule on the server ----------------------------------------------------------------


def page(state_class: type, integration_id: uuid.UUID | None, role: Role = Role.MANAGER) -> Any:
    with session_scope() as s:
        user, _ = create_user(session=s, email=f"{uuid.uuid4().hex[:8]}@example.com", role=role)
        token = create_session(session=s, user=user)
    state = state_class(_reflex_internal_init=True)
    router: dict[str, Any] = {"headers": {"cookie": f"hub_session={token}"}}
    if integration_id is not None:
        router |= {
            "pathname": "/integrations/[integration_id]",
            "asPath": f"/integrations/{integration_id}",
        }
    state.router = RouterData.from_router_data(router)
    return state


def pending_integration() -> uuid.UUID:
    with session_scope() as s:
        integration = create_integration(
            session=s, platform="shopify", display_name="Never connected",
            shop_domain="never.myshopify.com", streams={"products": 15},
        )  # fmt: skip
        return integration.id


async def test_a_never_connected_integration_is_refused_what_it_does_not_offer(
    hub_db: sa.Engine,
) -> None:
    integration_id = pending_integration()
    detail = page(DetailState, integration_id, Role.ADMIN)
    await DetailState.load_detail.fn(detail)
    assert set(detail.actions) == {"connect", "connect_link", "edit", "delete"}
    assert detail.streams[0]["actions"] == []
    assert detail.info["has_token"] == ""  # so no "Token expires: does not expire"

    for handler, args, why in [
        (DetailState.sync_now, ("",), "It cannot sync now (it is pending)."),
        (DetailState.sync_now, ("products",), "It cannot sync now (it is pending)."),
        (DetailState.full_resync, ("products",), "It cannot sync now (it is pending)."),
        (DetailState.set_paused, (True,), "There is nothing to pause (it is pending)."),
        (DetailState.set_stream_paused, ("products", True), "nothing to pause"),
        (DetailState.create_link, ("reconnect",), "never connected: send a connect link"),
        (DetailState.disconnect, (), "holds no access to disconnect"),
    ]:
        toast = str(await handler.fn(detail, *args))
        assert why in toast, (handler, toast)
    with session_scope() as s:
        assert s.exec(select(SyncRun)).all() == []
        assert s.exec(select(ConnectLink)).all() == []
        assert s.get(Integration, integration_id).status == "pending"
        assert not s.exec(select(StreamConfig)).one().paused
    assert "Link created" in str(await DetailState.create_link.fn(detail, "connect"))


async def test_a_paused_integration_offers_resume_not_sync(hub_db: sa.Engine) -> None:
    with session_scope() as s:
        integration = create_integration(
            session=s, platform="shopify", display_name="Paused", shop_domain="p.myshopify.com",
            streams={"products": 15},
        )  # fmt: skip
        mark_connected(session=s, integration_id=integration.id)
        integration.status = "paused"
        integration_id = integration.id
    detail = page(DetailState, integration_id)
    await DetailState.load_detail.fn(detail)
    assert "sync" not in detail.actions and "resume" in detail.actions
    assert "It cannot sync now (it is paused)." in str(await DetailState.sync_now.fn(detail, ""))
    assert "connected already" in str(await DetailState.create_link.fn(detail, "connect"))
    await DetailState.set_paused.fn(detail, False)
    with session_scope() as s:
        assert s.get(Integration, integration_id).status == "connected"


async def test_a_retried_runs_retry_is_refused_and_not_offered(hub_db: sa.Engine) -> None:
    with session_scope() as s:
        integration = create_integration(
            session=s, platform="shopify", display_name="Runs", shop_domain="r.myshopify.com",
            streams={"products": 15},
        )  # fmt: skip
        mark_connected(session=s, integration_id=integration.id)
        retry = SyncRun(integration_id=integration.id, stream="products", status="succeeded")
        s.add(retry)
        s.flush()
        failed = SyncRun(
            integration_id=integration.id, stream="products",
            status=RunStatus.FAILED.value, resumed_by=retry.id,
        )  # fmt: skip
        s.add(failed)
        s.flush()
        failed_id = failed.id
    runs = page(RunsState, None)
    await RunsState.load_runs.fn(runs)
    row = next(r for r in runs.rows if r["id"] == str(failed_id))
    assert row["actions"] == []
    toast = str(await RunsState.retry_run.fn(runs, str(failed_id)))
    assert "retried already" in toast
    assert "not queued or running" in str(await RunsState.cancel_run.fn(runs, str(failed_id)))
    viewer = page(RunsState, None, Role.VIEWER)
    await RunsState.load_runs.fn(viewer)
    assert all(r["actions"] == [] for r in viewer.rows)


async def test_bulk_pause_changes_only_what_the_rule_lets_pause(hub_db: sa.Engine) -> None:
    from dashboard.state.integrations import IntegrationsState

    pending = pending_integration()
    with session_scope() as s:
        live = create_integration(
            session=s, platform="shopify", display_name="Live", shop_domain="l.myshopify.com",
            streams={"products": 15},
        )  # fmt: skip
        mark_connected(session=s, integration_id=live.id)
        live_id = live.id
    listing = page(IntegrationsState, None)
    await IntegrationsState.load_integrations.fn(listing)
    listing.selected = [str(pending), str(live_id)]
    toast = str(await IntegrationsState.pause_selected.fn(listing, True))
    assert "Paused 1 of 2; 1 had nothing to pause." in toast
    with session_scope() as s:
        assert s.get(Integration, pending).status == "pending"
        assert s.get(Integration, live_id).status == "paused"
