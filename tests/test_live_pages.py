"""Live pages re-read the database twice a second; a tick that finds nothing new must send
nothing to the browser. Reflex sends every field assigned in an event, equal or not, so
this checks which fields a page's ``apply`` leaves dirty."""

from __future__ import annotations

import sqlalchemy as sa

from dashboard.models import Integration
from dashboard.pages.overview import OverviewState
from dashboard.pages.runs import RunsState
from dashboard.state.notifications import NotificationState


async def test_overview_sends_only_what_changed_since_the_last_tick(hub_db: sa.Engine) -> None:
    overview = OverviewState(_reflex_internal_init=True)
    overview.apply(await overview.fetch())
    assert "loaded" in overview.dirty_vars  # the first read fills the page
    overview.dirty_vars.clear()

    overview.apply(await overview.fetch())
    assert overview.dirty_vars == set()  # a quiet tick

    with sa.orm.Session(hub_db) as session:
        session.add(Integration(platform="shopify", display_name="Acme",
                                shop_domain="acme.myshopify.com", status="connected"))  # fmt: skip
        session.commit()
    overview.apply(await overview.fetch())
    assert "counts" in overview.dirty_vars
    assert not overview.dirty_vars & {"per_hour", "running", "reauth", "failures_24h", "loaded"}


async def test_runs_page_and_bell_send_nothing_on_a_quiet_tick(hub_db: sa.Engine) -> None:
    for state in (RunsState(_reflex_internal_init=True),
                  NotificationState(_reflex_internal_init=True)):  # fmt: skip
        state.apply(await state.fetch())
        state.dirty_vars.clear()
        state.apply(await state.fetch())
        assert state.dirty_vars == set(), type(state).__name__
