"""The wizard, the Integrations page and the Runs page, driven as the browser's events would:
the wizard warns before connecting a shop another integration holds (one account, one
integration) and reuses its own pending integration, stale pending integrations are labelled and
discarded, and a failed run is retried once however often, or however concurrently (on SQLite
and PostgreSQL), Retry is pressed. The callbacks' refusal and the race:
tests/test_one_account_connect.py."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from reflex.istate.data import RouterData
from sqlmodel import select

from dashboard.db import session_scope
from dashboard.models import AuditLog, ConnectLink, Integration, Role, StreamConfig, SyncRun
from dashboard.pages.runs import RunsState
from dashboard.services import runs as runs_service
from dashboard.services import sync
from dashboard.services.auth import create_session, create_user
from dashboard.services.integrations import create_connect_link, create_integration, mark_connected
from dashboard.state.integrations import IntegrationsState
from dashboard.state.wizard import WizardState
from tests.one_account_helpers import SHOP, any_db

__all__ = ["any_db"]  # SQLite, then PostgreSQL: the fixture, imported for this module's tests


# --- the wizard, driven as the browser's events would -----------------------------------------


def signed_in(state: Any, role: Role = Role.MANAGER) -> Any:
    with session_scope() as s:
        user, _ = create_user(session=s, email=f"{uuid.uuid4().hex[:8]}@example.com", role=role)
        token = create_session(session=s, user=user)
    state.router = RouterData.from_router_data({"headers": {"cookie": f"hub_session={token}"}})
    return state


async def wizard_to_streams(wizard: WizardState, name: str, shop: str = SHOP) -> None:
    await WizardState.choose_platform.fn(wizard, "shopify")
    await WizardState.set_name.fn(wizard, name)
    await WizardState.set_shop_domain.fn(wizard, shop)
    await WizardState.go_to.fn(wizard, 3)
    assert wizard.step == 3


async def test_connect_now_again_after_back_reuses_the_pending_integration(
    hub_db: sa.Engine,
) -> None:
    wizard = signed_in(WizardState(_reflex_internal_init=True))
    await WizardState.reset_wizard.fn(wizard)
    await wizard_to_streams(wizard, "Outdoor")
    await WizardState.connect_now.fn(wizard)
    first = wizard.created_id

    await WizardState.go_to.fn(wizard, 2)  # Back, a new name, fewer streams, Connect now again
    await WizardState.set_name.fn(wizard, "Outdoor US")
    await WizardState.go_to.fn(wizard, 3)
    await WizardState.toggle_stream.fn(wizard, "customers")
    await WizardState.connect_now.fn(wizard)

    assert wizard.created_id == first and wizard.error == ""
    with session_scope() as s:
        (integration,) = s.exec(select(Integration)).all()
        assert integration.display_name == "Outdoor US" and integration.status == "pending"
        streams = s.exec(select(StreamConfig.stream).where(
            StreamConfig.integration_id == integration.id)).all()  # fmt: skip
        assert sorted(streams) == ["inventory", "orders", "products"]

    # A connect link from the same run is for that integration too; a new run starts afresh.
    await WizardState.create_link.fn(wizard)
    await WizardState.reset_wizard.fn(wizard)
    await wizard_to_streams(wizard, "Another", shop="another-shop.myshopify.com")
    await WizardState.connect_now.fn(wizard)
    with session_scope() as s:
        assert len(s.exec(select(Integration)).all()) == 2
        (link,) = s.exec(select(ConnectLink)).all()
        assert str(link.integration_id) == first


async def test_the_wizard_warns_when_the_shop_is_connected_and_links_to_it(
    hub_db: sa.Engine,
) -> None:
    with session_scope() as s:
        holder = create_integration(
            session=s, platform="shopify", display_name="Outdoor", shop_domain=SHOP
        )
        mark_connected(session=s, integration_id=holder.id)
    wizard = signed_in(WizardState(_reflex_internal_init=True))
    await WizardState.reset_wizard.fn(wizard)
    await wizard_to_streams(wizard, "Outdoor twice", shop=SHOP.upper())

    assert wizard.connected_id == str(holder.id) and wizard.connected_name == "Outdoor"
    # The page shows that as the warning with a link to /integrations/<id>, and the buttons
    # are disabled; a Connect now sent anyway creates nothing.
    await WizardState.connect_now.fn(wizard)
    assert "already connected to the integration \u201cOutdoor\u201d" in wizard.error
    with session_scope() as s:
        assert len(s.exec(select(Integration)).all()) == 1

    await WizardState.go_to.fn(wizard, 2)  # another shop: no warning
    await WizardState.set_shop_domain.fn(wizard, "fresh-shop.myshopify.com")
    await WizardState.go_to.fn(wizard, 3)
    assert wizard.connected_id == ""


# --- stale pending integrations ---------------------------------------------------------------


async def test_stale_pending_integrations_are_labelled_and_discarded_by_a_manager(
    hub_db: sa.Engine,
) -> None:
    old = datetime.now(UTC) - timedelta(days=3, hours=1)
    with session_scope() as s:
        made = {
            name: create_integration(
                session=s,
                platform="shopify",
                display_name=name,
                shop_domain=f"{name.lower()}.myshopify.com",
            )
            for name in ("Abandoned", "Waiting", "Fresh", "Connected")
        }
        for name in ("Abandoned", "Waiting", "Connected"):
            made[name].created_at = old
        create_connect_link(session=s, integration_id=made["Waiting"].id)  # merchant may answer
        mark_connected(session=s, integration_id=made["Connected"].id)
        ids = {name: integration.id for name, integration in made.items()}

    page = signed_in(IntegrationsState(_reflex_internal_init=True))
    await IntegrationsState.load_integrations.fn(page)
    labels = {row["name"]: row["never_connected"] for row in page.rows}
    assert labels == {
        "Abandoned": "Never connected \u00b7 3 days",
        "Waiting": "",
        "Fresh": "",
        "Connected": "",
    }
    assert page.stale_count == 1
    page.dirty_vars.clear()
    page.apply(await page.fetch())
    assert page.dirty_vars == set()  # the labels cost nothing on a quiet tick

    viewer = signed_in(IntegrationsState(_reflex_internal_init=True), Role.VIEWER)
    await IntegrationsState.discard_stale_pending.fn(viewer)
    with session_scope() as s:
        assert s.get(Integration, ids["Abandoned"]) is not None

    toast = await IntegrationsState.discard_stale_pending.fn(page)
    assert "Discarded 1 pending integration" in str(toast)
    assert page.stale_count == 0 and "Abandoned" not in {row["name"] for row in page.rows}
    with session_scope() as s:
        assert s.get(Integration, ids["Abandoned"]) is None
        assert not s.exec(
            select(StreamConfig).where(StreamConfig.integration_id == ids["Abandoned"])
        ).all()
        (audit,) = s.exec(
            select(AuditLog).where(AuditLog.action == "integration.discard_stale")
        ).all()
        assert audit.context["names"] == ["Abandoned"]
    assert "No stale pending" in str(await IntegrationsState.discard_stale_pending.fn(page))


# --- retry once --------------------------------------------------------------------------------


def failed_run() -> uuid.UUID:
    with session_scope() as s:
        integration = create_integration(
            session=s, platform="shopify", display_name="Acme", shop_domain=SHOP,
            streams={"orders": 5},
        )  # fmt: skip
        mark_connected(session=s, integration_id=integration.id)
        run = SyncRun(integration_id=integration.id, stream="orders", status="failed",
                      error="Shopify answered 503")  # fmt: skip
        s.add(run)
        s.flush()
        return run.id


@pytest.fixture
def engine_starts(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[uuid.UUID]]:
    """The runs the engine was asked to start (not run: this is about what gets queued)."""
    started: list[uuid.UUID] = []
    monkeypatch.setattr(sync.SyncEngine, "start", lambda self, run_id: started.append(run_id))
    sync.set_engine(None)
    yield started
    sync.set_engine(None)


async def test_retry_four_times_queues_one_run(
    hub_db: sa.Engine, engine_starts: list[uuid.UUID]
) -> None:
    run_id = failed_run()
    runs_page = signed_in(RunsState(_reflex_internal_init=True))
    toasts = [str(await RunsState.retry_run.fn(runs_page, str(run_id))) for _ in range(4)]

    assert "Retry queued." in toasts[0]
    assert all("retried already" in toast for toast in toasts[1:]), toasts
    with session_scope() as s:
        retries = s.exec(select(SyncRun).where(SyncRun.trigger == "retry")).all()
        assert len(retries) == 1 and engine_starts == [retries[0].id]
    # The row says so: a retried run names its retry and offers no Retry any more.
    (row,) = [r for r in runs_page.rows if r["id"] == str(run_id)]
    assert row["resumed_by"] == str(retries[0].id)
    assert "retry" not in row["actions"]


async def test_concurrent_retries_queue_one_run(
    any_db: sa.Engine, engine_starts: list[uuid.UUID]
) -> None:
    run_id = failed_run()
    results = await asyncio.gather(
        *[sync.retry_run(run_id=run_id) for _ in range(4)], return_exceptions=True
    )
    queued = [r for r in results if isinstance(r, uuid.UUID)]
    refused = [r for r in results if isinstance(r, sync.SyncRefused)]
    assert len(set(queued)) == 1 and len(queued) + len(refused) == 4, results
    with session_scope() as s:
        assert len(s.exec(select(SyncRun).where(SyncRun.trigger == "retry")).all()) == 1
        assert s.get(SyncRun, run_id).resumed_by == queued[0]
    with session_scope() as s:
        assert runs_service.list_runs(session=s)[-1]["resumed_by"] == str(queued[0])
