"""The read-only queries behind the dashboard's overview, from the database: the notification
center, records per hour, and the integrations waiting for the merchant."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa
from sqlmodel import Session

from dashboard.db import session_scope
from dashboard.models import Notification
from dashboard.services import alerts, overview
from tests.dashboard_views_helpers import NOW, add_integration, add_run

# --- notification center ---------------------------------------------------------------------


def test_notifications_name_their_integration_and_are_marked_read_one_by_one(
    session: Session,
) -> None:
    acme = add_integration(session)
    failed = alerts.notify(
        session=session, kind="run_failed", message="Acme: orders failed", integration_id=acme.id
    )
    alerts.notify(session=session, kind="needs_reauth", message="Acme needs to be reconnected",
                  integration_id=acme.id)  # fmt: skip
    alerts.notify(session=session, kind="run_failed", message="An old integration failed")

    rows = alerts.notification_rows(session=session)
    assert rows[0]["message"] == "An old integration failed"  # newest first
    by_message = {row["message"]: row for row in rows}
    assert by_message["Acme: orders failed"]["integration"] == "Acme"
    assert by_message["Acme: orders failed"]["integration_id"] == str(acme.id)
    assert by_message["An old integration failed"]["integration_id"] == ""
    assert all(row["unread"] for row in rows)

    alerts.mark_read(session=session, notification_id=failed.id)
    assert alerts.unread_count(session=session) == 2
    assert not {r["message"]: r for r in alerts.notification_rows(session=session)}[
        "Acme: orders failed"
    ]["unread"]
    assert alerts.mark_all_read(session=session) == 2
    assert alerts.unread_count(session=session) == 0
    assert alerts.mark_all_read(session=session) == 0


def test_needs_reauth_is_notified_once_until_read(session: Session) -> None:
    acme = add_integration(session)
    for _ in range(3):  # every stream of the integration meets the revoked token
        alerts.notify(session=session, kind="needs_reauth", message="Acme needs to be reconnected",
                      integration_id=acme.id)  # fmt: skip
        alerts.notify(session=session, kind="run_failed", message="Acme: a stream failed",
                      integration_id=acme.id)  # fmt: skip
    assert alerts.unread_count(session=session) == 4  # one needs_reauth, every failed run
    alerts.mark_all_read(session=session)
    alerts.notify(session=session, kind="needs_reauth", message="Acme needs to be reconnected",
                  integration_id=acme.id)  # fmt: skip
    assert alerts.unread_count(session=session) == 1  # revoked again after it was read


def test_notification_list_is_capped(session: Session) -> None:
    for index in range(30):
        session.add(Notification(kind="run_failed", message=f"failure {index}"))
    session.flush()
    assert len(alerts.notification_rows(session=session, limit=20)) == 20
    assert alerts.unread_count(session=session) == 30


# --- overview ------------------------------------------------------------------------------------


def test_records_per_hour_sums_runs_by_the_hour_they_started(session: Session) -> None:
    acme = add_integration(session)
    add_run(session, acme, records_read=5, created_at=NOW)
    add_run(session, acme, records_read=7, created_at=NOW - timedelta(minutes=25))  # 10:05
    add_run(session, acme, records_read=11, created_at=NOW - timedelta(minutes=40))  # 09:50
    add_run(session, acme, records_read=3, status="running", created_at=NOW - timedelta(hours=5))
    add_run(session, acme, records_read=99, created_at=NOW - timedelta(hours=30))  # too old

    hours = overview.records_per_hour(session=session, hours=24, now=NOW)

    assert len(hours) == 24
    assert hours[-1] == {"hour": "10:00", "records": 12}
    assert hours[-2] == {"hour": "09:00", "records": 11}
    assert hours[-6] == {"hour": "05:00", "records": 3}
    assert hours[0]["hour"] == "11:00"  # yesterday's: the window is 24 whole hours
    assert sum(hour["records"] for hour in hours) == 26


def test_live_records_per_hour_reads_the_current_hour_every_time(session: Session) -> None:
    acme = add_integration(session)
    now = datetime.now(UTC)
    add_run(session, acme, records_read=40, created_at=now - timedelta(hours=2))
    add_run(session, acme, records_read=2, created_at=now)
    assert overview.live_records_per_hour(session=session) == overview.records_per_hour(
        session=session
    )
    add_run(session, acme, stream="products", records_read=5, created_at=now)
    add_run(session, acme, stream="products", records_read=7, created_at=now - timedelta(hours=2))
    hours = overview.live_records_per_hour(session=session)
    assert hours[-1]["records"] == 7  # the current hour at once
    assert hours[-3]["records"] == 40  # earlier hours within the minute they are kept
    assert overview.records_per_hour(session=session)[-3]["records"] == 47


@pytest.mark.postgres
def test_records_per_hour_on_postgres(pg_hub_db: sa.Engine) -> None:

    with session_scope() as session:
        acme = add_integration(session)
        add_run(session, acme, records_read=5, created_at=NOW - timedelta(minutes=1))
        add_run(session, acme, records_read=8, created_at=NOW - timedelta(minutes=45))
        hours = overview.records_per_hour(session=session, hours=3, now=NOW)
    assert hours == [
        {"hour": "08:00", "records": 0},
        {"hour": "09:00", "records": 8},
        {"hour": "10:00", "records": 5},
    ]


def test_needs_reauth_lists_only_integrations_waiting_for_the_merchant(session: Session) -> None:
    add_integration(session, "Fine", status="connected")
    add_integration(session, "Revoked", status="needs_reauth")
    assert [row["name"] for row in overview.needs_reauth(session=session)] == ["Revoked"]
