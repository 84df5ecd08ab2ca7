"""Settings → Go-live check: an admin runs `hub doctor`'s checks from the dashboard and sees
each line with what to fix; nobody else can run them."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from reflex.istate.data import RouterData
from sqlmodel import Session

from dashboard import db, migrations
from dashboard.models import Role
from dashboard.pages.golive import GoLiveState
from dashboard.services.auth import create_session, create_user


@pytest.fixture
def migrated(hub_env: Path) -> Iterator[Session]:
    """A hub database as `hub migrate` leaves it (the check looks at the schema revision)."""
    migrations.upgrade_head()
    with db.session_scope() as session:
        yield session


def signed_in(session: Session, role: Role) -> GoLiveState:
    user, _ = create_user(session=session, email=f"{role.value}@example.com", role=role)
    token = create_session(session=session, user=user)
    session.commit()
    state = GoLiveState(_reflex_internal_init=True)
    state.router = RouterData.from_router_data({"headers": {"cookie": f"hub_session={token}"}})
    return state


async def test_an_admin_sees_every_check_with_what_to_fix(migrated: Session) -> None:
    state = signed_in(migrated, Role.ADMIN)
    await GoLiveState.run_checks.fn(state)
    names = [row["name"] for row in state.checks]
    assert "database" in names and "disk" in names, names
    assert not state.running
    by_name = {row["name"]: row for row in state.checks}
    assert by_name["database"]["status"] == "ok"
    # A local hub on the sandbox is not ready for the real platforms: the page says so.
    failing = [row for row in state.checks if row["status"] == "fail"]
    assert failing and all(row["fix"] for row in failing)
    assert state.summary.startswith(f"{len(failing)} failed")


async def test_a_manager_cannot_run_them(migrated: Session) -> None:
    state = signed_in(migrated, Role.MANAGER)
    await GoLiveState.run_checks.fn(state)
    assert state.checks == [] and state.summary == "" and not state.running
