"""A merchant's uninstall while an integration's runs are under way or waiting for room: the
integration stays uninstalled (docs/sync-engine.md, *Concurrency*)."""

from __future__ import annotations

from sqlmodel import select

from dashboard.db import session_scope
from dashboard.models import Integration, IntegrationStatus, Notification, RunStatus
from dashboard.services.integrations import set_integration_status
from tests.fake_connector import FakeConnector
from tests.sync_engine_helpers import engine_with, run_row


async def test_a_run_refused_after_the_merchant_uninstalled_leaves_it_uninstalled(
    integration_id,
) -> None:
    """The uninstall webhook disconnects the integration while one of its runs is under way;
    the run's next call is refused. The integration stays disconnected (the merchant removed
    the app: the page says "uninstalled"), not "needs reauth", and no second incident opens."""
    connector = FakeConnector(total=30, page_size=10)

    async def uninstalled(page: int) -> None:
        with session_scope() as s:
            set_integration_status(session=s, integration_id=integration_id,
                                   status=IntegrationStatus.DISCONNECTED)  # fmt: skip
        connector.revoked = True

    connector.on_page = uninstalled
    engine = engine_with(connector)
    [run_id] = await engine.request_sync(integration_id=integration_id)
    await engine.wait()
    run = run_row(run_id)
    assert run.status == RunStatus.FAILED and "refused the hub's access" in (run.error or "")
    with session_scope() as s:
        assert s.get(Integration, integration_id).status == IntegrationStatus.DISCONNECTED
        assert s.exec(select(Notification)).all() == []


async def test_a_queued_run_of_an_integration_uninstalled_meanwhile_does_not_run(
    integration_id,
) -> None:
    """Runs wait for room (at most HUB_SYNC_PER_INTEGRATION of one integration at once): one
    that starts after the merchant uninstalled is cancelled, saying why, and does not turn
    the integration back to "syncing"."""
    connector = FakeConnector(total=30)
    engine = engine_with(connector)
    [run_id] = await engine.request_sync(integration_id=integration_id)
    with session_scope() as s:  # before the run's task first runs
        set_integration_status(session=s, integration_id=integration_id,
                               status=IntegrationStatus.DISCONNECTED)  # fmt: skip
    await engine.wait()
    run = run_row(run_id)
    assert run.status == RunStatus.CANCELLED
    assert run.error == "not run: the integration is disconnected"
    assert connector.pages_served == 0
    with session_scope() as s:
        assert s.get(Integration, integration_id).status == IntegrationStatus.DISCONNECTED
