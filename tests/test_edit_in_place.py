"""Editing an integration after the wizard (issue 15): the name, each stream on or off with
its interval or cron, Amazon marketplaces and a Shopify integration's own app; checked,
audited, refused for viewers, and picked up by the running scheduler without a restart."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from apscheduler.triggers.cron import CronTrigger
from reflex.istate.data import RouterData
from sqlmodel import Session, select

from connectors.errors import InvalidInput
from dashboard.db import session_scope
from dashboard.models import AuditLog, Credential, Integration, Role, StreamConfig
from dashboard.services import integration_settings, schedules
from dashboard.services.auth import create_session, create_user
from dashboard.services.integration_settings import rename_integration
from dashboard.services.integrations import create_integration, mark_connected
from dashboard.services.scheduler import HubScheduler, job_id
from dashboard.state.integration_settings import SettingsEditState


def make_user(role: Role = Role.MANAGER) -> tuple[Any, str]:
    with session_scope() as s:
        user, _ = create_user(session=s, email=f"{uuid.uuid4().hex[:8]}@example.com", role=role)
        token = create_session(session=s, user=user)
        s.expunge(user)
    return user, token


def connected(platform: str = "shopify") -> uuid.UUID:
    with session_scope() as s:
        if platform == "shopify":
            integration = create_integration(
                session=s, platform="shopify", display_name="Acme",
                shop_domain="acme.myshopify.com", streams={"products": 15, "orders": 5},
            )  # fmt: skip
            mark_connected(session=s, integration_id=integration.id)
        else:
            integration = create_integration(
                session=s, platform="amazon", display_name="Acme EU", region="eu",
                marketplaces=["A1PA6795UKMFR9"], streams={"orders": 10},
            )  # fmt: skip
            mark_connected(session=s, integration_id=integration.id, selling_partner_id="A1SELLER")
        return integration.id


def settings_page(integration_id: uuid.UUID, role: Role = Role.MANAGER) -> Any:
    """The Settings tab's state as a signed-in person's websocket would open it."""
    _, token = make_user(role)
    state = SettingsEditState(_reflex_internal_init=True)
    state.router = RouterData.from_router_data(
        {
            "headers": {"cookie": f"hub_session={token}", "origin": "http://localhost:3000"},
            "pathname": "/integrations/[integration_id]",
            "asPath": f"/integrations/{integration_id}",
        }
    )
    return state


def audit_actions(session: Session) -> list[str]:
    return [row.action for row in session.exec(select(AuditLog)).all()]


# --- the name ---------------------------------------------------------------------------------


def test_a_500_character_name_is_refused_everywhere(hub_db: sa.Engine) -> None:
    integration_id = connected()
    manager, _ = make_user()
    too_long = "120 characters; this one has 500"
    with session_scope() as s, pytest.raises(InvalidInput, match=too_long):
        rename_integration(session=s, integration_id=integration_id, name="x" * 500, actor=manager)
    with session_scope() as s, pytest.raises(InvalidInput, match="120 characters"):
        create_integration(
            session=s, platform="shopify", display_name="y" * 500, shop_domain="b.myshopify.com"
        )
    with session_scope() as s:
        assert s.get(Integration, integration_id).display_name == "Acme"


async def open_settings(page: SettingsEditState) -> None:
    """What opening the tab runs: the form is hidden while it loads, shown once it holds
    this integration's values."""
    async for _ in SettingsEditState.load_settings.fn(page):
        assert page.loaded_for == ""
    assert page.loaded_for == page.integration_id


async def test_the_settings_tab_renames_and_says_what_is_wrong_next_to_the_name(
    hub_db: sa.Engine,
) -> None:
    integration_id = connected()
    page = settings_page(integration_id)
    await SettingsEditState.load_detail.fn(page)
    await open_settings(page)
    assert page.edit_name == "Acme"

    await SettingsEditState.set_edit_name.fn(page, "z" * 500)
    assert page.name_error == "Keep the name to 120 characters; this one has 500."
    assert await SettingsEditState.save_name.fn(page) is None  # no toast: the error is by the field
    await SettingsEditState.set_edit_name.fn(page, "  Acme   Outdoor ")
    assert page.name_error == ""
    await SettingsEditState.save_name.fn(page)
    assert page.info["name"] == "Acme Outdoor"
    with session_scope() as s:
        (rename,) = s.exec(select(AuditLog).where(AuditLog.action == "integration.rename")).all()
        assert rename.context == {"name": "Acme Outdoor", "before": "Acme"}


async def test_a_viewer_cannot_edit(hub_db: sa.Engine) -> None:
    integration_id = connected()
    viewer = settings_page(integration_id, Role.VIEWER)
    await SettingsEditState.load_detail.fn(viewer)
    assert viewer.actions == []
    viewer.edit_name = "Taken over"
    events = await SettingsEditState.save_name.fn(viewer)
    assert "manager role" in str(events)
    viewer.schedules = [
        {"stream": "orders", "label": "Orders", "enabled": False, "mode": "interval",
         "interval": "60", "cron": ""}
    ]  # fmt: skip
    await SettingsEditState.save_stream.fn(viewer, "orders")
    with session_scope() as s:
        assert s.get(Integration, integration_id).display_name == "Acme"
        orders = s.exec(select(StreamConfig).where(StreamConfig.stream == "orders")).one()
        assert orders.enabled and orders.interval_minutes == 5


# --- streams and schedules ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("typed", "message"),
    [
        ("", "Enter how often to sync, in minutes."),
        ("  ", "Enter how often to sync, in minutes."),
        ("4", "The interval must be at least 5 minutes."),
        ("100000000", "The interval must be at most 7 days (10,080 minutes)."),
        ("1.5", "Enter the interval as whole minutes, for example 15."),
    ],
)
def test_interval_bounds_say_what_to_fix(typed: str, message: str) -> None:
    with pytest.raises(InvalidInput) as refused:
        schedules.parse_interval(typed)
    assert str(refused.value) == message


def test_interval_bounds_accept_5_minutes_to_7_days() -> None:
    assert schedules.parse_interval(" 5 ") == 5
    assert schedules.parse_interval("10080") == 10080


@pytest.mark.parametrize(
    ("expression", "message"),
    [
        ("* * * * *", "runs more often than every 5 minutes"),
        ("0 0 1 * *", "less often than once every 7 days"),
        ("0 */6 * *", "five fields"),
        ("61 * * * *", "not valid"),
        ("0 9 * * 8", "not valid"),
    ],
)
def test_a_cron_expression_is_checked_with_apscheduler(expression: str, message: str) -> None:
    with pytest.raises(InvalidInput, match=message):
        schedules.cron_trigger(expression)


def test_cron_days_of_the_week_count_from_sunday_as_cron_does() -> None:
    """APScheduler numbers days from Monday; "1-5" must still mean Monday to Friday."""
    sunday = datetime(2026, 12, 6, 12, tzinfo=UTC)
    runs = schedules.upcoming_runs(schedules.cron_trigger("0 9 * * 1-5"), count=6, now=sunday)
    assert [run.strftime("%a") for run in runs] == ["Mon", "Tue", "Wed", "Thu", "Fri", "Mon"]
    sundays = schedules.upcoming_runs(schedules.cron_trigger("30 8 * * 0"), count=2, now=sunday)
    assert [run.strftime("%a %d %H:%M") for run in sundays] == ["Sun 13 08:30", "Sun 20 08:30"]


def test_turning_streams_on_and_off_and_setting_a_cron_is_audited(hub_db: sa.Engine) -> None:
    integration_id = connected()
    manager, _ = make_user()
    with session_scope() as s:
        # customers was not chosen in the wizard: turning it on creates its stream
        assert integration_settings.update_stream_schedule(
            session=s, integration_id=integration_id, stream="customers", enabled=True,
            interval_minutes=120, cron=None, actor=manager,
        )  # fmt: skip
        assert integration_settings.update_stream_schedule(
            session=s, integration_id=integration_id, stream="orders", enabled=False,
            interval_minutes=5, cron=None, actor=manager,
        )  # fmt: skip
        assert integration_settings.update_stream_schedule(
            session=s, integration_id=integration_id, stream="products", enabled=True,
            interval_minutes=15, cron="0  */6 * * *", actor=manager,
        )  # fmt: skip
        assert not integration_settings.update_stream_schedule(  # the same again: no change
            session=s, integration_id=integration_id, stream="products", enabled=True,
            interval_minutes=15, cron="0 */6 * * *", actor=manager,
        )  # fmt: skip
        with pytest.raises(InvalidInput, match="at least 5 minutes"):
            integration_settings.update_stream_schedule(
                session=s, integration_id=integration_id, stream="products", enabled=True,
                interval_minutes=1, cron=None, actor=manager,
            )  # fmt: skip
    with session_scope() as s:
        rows = {
            row["stream"]: row
            for row in integration_settings.stream_schedules(
                session=s, integration_id=integration_id
            )
        }
        assert rows["customers"] == {
            "stream": "customers", "enabled": True, "interval": 120, "cron": ""
        }  # fmt: skip
        assert rows["orders"]["enabled"] is False
        assert rows["products"]["cron"] == "0 */6 * * *"
        assert rows["inventory"]["enabled"] is False  # offered, never chosen
        audits = s.exec(select(AuditLog).where(AuditLog.action == "stream.schedule")).all()
        assert [a.context["stream"] for a in audits] == ["customers", "orders", "products"]
        assert audits[1].context["before"]["enabled"] is True
        assert audits[1].context["after"]["enabled"] is False
        assert all(a.actor == manager.email for a in audits)


async def test_the_running_scheduler_picks_up_a_changed_schedule_without_a_restart(
    hub_db: sa.Engine,
) -> None:
    integration_id = connected()
    manager, _ = make_user()
    hub = HubScheduler(holder="edit-test")
    await hub._start_scheduler()
    try:
        await hub.reconcile()
        products = job_id(integration_id, "products")
        first = hub.scheduler.get_job(products).next_run_time
        assert first - datetime.now(UTC) < timedelta(seconds=10)  # a new stream starts soon

        with session_scope() as s:
            integration_settings.update_stream_schedule(
                session=s, integration_id=integration_id, stream="products", enabled=True,
                interval_minutes=6 * 60, cron=None, actor=manager,
            )  # fmt: skip
        before = datetime.now(UTC)
        await hub.reconcile()  # what the running loop does at once after poke()
        job = hub.scheduler.get_job(products)
        assert job.trigger.interval == timedelta(hours=6)
        assert before + timedelta(hours=6) - timedelta(seconds=61) <= job.next_run_time
        assert job.next_run_time <= datetime.now(UTC) + timedelta(hours=6, seconds=61)
        with session_scope() as s:
            stored = s.exec(select(StreamConfig).where(StreamConfig.stream == "products")).one()
            assert abs(stored.next_run_at.replace(tzinfo=UTC) - job.next_run_time) < timedelta(
                seconds=1
            )

        with session_scope() as s:
            integration_settings.update_stream_schedule(
                session=s, integration_id=integration_id, stream="products", enabled=True,
                interval_minutes=6 * 60, cron="15 3 * * *", actor=manager,
            )  # fmt: skip
        await hub.reconcile()
        job = hub.scheduler.get_job(products)
        assert isinstance(job.trigger, CronTrigger)
        assert (job.next_run_time.hour, job.next_run_time.minute) == (3, 15)
        assert job.next_run_time - datetime.now(UTC) <= timedelta(days=1)

        with session_scope() as s:
            integration_settings.update_stream_schedule(
                session=s, integration_id=integration_id, stream="orders", enabled=False,
                interval_minutes=5, cron=None, actor=manager,
            )  # fmt: skip
        await hub.reconcile()
        assert hub.scheduler.get_job(job_id(integration_id, "orders")) is None
        with session_scope() as s:
            orders = s.exec(select(StreamConfig).where(StreamConfig.stream == "orders")).one()
            assert orders.next_run_at is None
    finally:
        hub._stop_scheduler()


async def test_the_settings_tab_shows_a_crons_next_three_runs_and_saves_it(
    hub_db: sa.Engine,
) -> None:
    integration_id = connected()
    page = settings_page(integration_id)
    await SettingsEditState.load_detail.fn(page)
    await open_settings(page)
    assert [row["stream"] for row in page.schedules] == [
        "products", "inventory", "orders", "customers"
    ]  # fmt: skip

    await SettingsEditState.set_stream_interval.fn(page, "orders", "")
    assert page.schedule_errors == {"orders": "Enter how often to sync, in minutes."}
    assert await SettingsEditState.save_stream.fn(page, "orders") is None
    await SettingsEditState.set_stream_interval.fn(page, "orders", "30")
    assert page.schedule_errors == {}

    await SettingsEditState.set_schedule_mode.fn(page, "products", "cron")
    await SettingsEditState.set_stream_cron.fn(page, "products", "*/2 * * * *")
    assert "more often than every 5 minutes" in page.schedule_errors["products"]
    await SettingsEditState.set_stream_cron.fn(page, "products", "0 */6 * * *")
    assert "products" not in page.schedule_errors
    upcoming = [datetime.fromisoformat(moment) for moment in page.cron_next["products"]]
    assert len(upcoming) == 3 and all(m.hour % 6 == 0 and m.minute == 0 for m in upcoming)
    assert upcoming == sorted(upcoming) and upcoming[0] > datetime.now(UTC)

    await SettingsEditState.save_stream.fn(page, "products")
    await SettingsEditState.save_stream.fn(page, "orders")
    rows = {row["stream"]: row for row in page.streams}
    assert rows["products"]["schedule"] == "cron 0 */6 * * * (UTC)"
    assert rows["orders"]["schedule"] == "every 30 min"


# --- Amazon marketplaces, a Shopify integration's own app ---------------------------------------


def test_amazon_marketplaces_change_within_the_region(hub_db: sa.Engine) -> None:
    integration_id = connected("amazon")
    manager, _ = make_user()
    with session_scope() as s:
        assert integration_settings.set_marketplaces(
            session=s, integration_id=integration_id,
            marketplaces=["A1PA6795UKMFR9", "A13V1IB3VIYZZH"], actor=manager,
        )  # fmt: skip
        with pytest.raises(InvalidInput, match="not in the EU region"):
            integration_settings.set_marketplaces(
                session=s, integration_id=integration_id, marketplaces=["ATVPDKIKX0DER"],
                actor=manager,
            )  # fmt: skip
        with pytest.raises(InvalidInput, match="at least one marketplace"):
            integration_settings.set_marketplaces(
                session=s, integration_id=integration_id, marketplaces=[], actor=manager
            )
    with session_scope() as s:
        assert s.get(Integration, integration_id).marketplaces == [
            "A1PA6795UKMFR9", "A13V1IB3VIYZZH"
        ]  # fmt: skip
        assert "integration.marketplaces" in audit_actions(s)


async def test_own_app_client_id_is_shown_and_its_secret_replaced_never_shown(
    hub_db: sa.Engine,
) -> None:
    integration_id = connected()
    page = settings_page(integration_id)
    await SettingsEditState.load_detail.fn(page)
    await open_settings(page)
    assert page.app_client_id == ""
    await SettingsEditState.set_new_client_id.fn(page, "own-client-id")
    await SettingsEditState.set_new_client_secret.fn(page, "first-secret-value")
    await SettingsEditState.save_app.fn(page)
    assert page.app_client_id == "own-client-id" and page.app_error == ""

    await SettingsEditState.set_new_client_secret.fn(page, "second-secret-value")
    await SettingsEditState.save_app.fn(page)  # the client id stays, the secret is replaced
    with session_scope() as s:
        app = integration_settings.app_credentials.app_of(session=s, integration_id=integration_id)
        assert (app.client_id, app.client_secret) == ("own-client-id", "second-secret-value")
        stored = " ".join(c.ciphertext for c in s.exec(select(Credential)).all())
        assert "second-secret-value" not in stored  # encrypted at rest
    assert "second-secret-value" not in str(page.dict())  # never in what the browser gets
    await SettingsEditState.save_app.fn(page)  # no secret typed this time
    assert page.app_error == "Enter both the app's client id and its client secret."


async def test_a_hand_edited_unusable_cron_skips_only_its_stream(hub_db: sa.Engine) -> None:
    integration_id = connected()
    with session_scope() as s:
        products = s.exec(select(StreamConfig).where(StreamConfig.stream == "products")).one()
        products.cron = "every day at nine"  # not through the service, which refuses it
    hub = HubScheduler(holder="bad-cron")
    await hub._start_scheduler()
    try:
        await hub.reconcile()
        assert hub.scheduler.get_job(job_id(integration_id, "products")) is None
        assert hub.scheduler.get_job(job_id(integration_id, "orders")) is not None
    finally:
        hub._stop_scheduler()
