"""The audit log in words: every action key the hub writes has a phrase, and an entry names
the person who acted."""

from __future__ import annotations

import ast
import uuid
from collections.abc import Iterator
from pathlib import Path

import sqlalchemy as sa
from reflex.istate.data import RouterData
from sqlmodel import Session

from dashboard.db import session_scope
from dashboard.models import Role
from dashboard.services import audit, integrations, shopify_webhook_actions
from dashboard.services.audit import PHRASES, audit_page, record_audit, sentence
from dashboard.services.auth import create_session, create_user
from dashboard.state.integration_detail import DetailState

ROOT = Path(__file__).resolve().parents[1]


def _string_constants() -> dict[str, str]:
    """Module-level NAME = "..." of the hub's code (action keys kept as constants)."""
    constants: dict[str, str] = {}
    for path in (ROOT / "dashboard").rglob("*.py"):
        for node in ast.parse(path.read_text()).body:
            if isinstance(node, ast.Assign) and isinstance(node.value, ast.Constant):
                for target in node.targets:
                    if isinstance(target, ast.Name) and isinstance(node.value.value, str):
                        constants[target.id] = node.value.value
    return constants


def _keys(node: ast.expr, constants: dict[str, str], where: str) -> Iterator[str]:
    """The action keys an ``action=`` argument can be; fails on a form it cannot read, so a
    new way of writing one cannot slip past."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        yield node.value
    elif isinstance(node, ast.IfExp):
        yield from _keys(node.body, constants, where)
        yield from _keys(node.orelse, constants, where)
    elif isinstance(node, ast.Name) and node.id in constants:
        yield constants[node.id]
    elif isinstance(node, ast.JoinedStr) and ast.unparse(node) == "f'compliance.{event.topic}'":
        yield from (f"compliance.{topic}" for topic in shopify_webhook_actions.COMPLIANCE)
    elif isinstance(node, ast.JoinedStr) and ast.unparse(node) in (
        "f'{scope}.pause'",
        "f'{scope}.resume'",
    ):
        verb = ast.unparse(node).split(".")[1].rstrip("'")
        yield from (f"{scope}.{verb}" for scope in ("integration", "stream"))
    else:
        raise AssertionError(f"{where}: cannot tell which action key {ast.unparse(node)} is")


def written_action_keys() -> set[str]:
    constants = _string_constants()
    keys: set[str] = set()
    for path in (ROOT / "dashboard").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if not isinstance(node, ast.Call):
                continue
            name = getattr(node.func, "id", None) or getattr(node.func, "attr", None)
            if name != "record_audit":
                continue
            for keyword in node.keywords:
                if keyword.arg == "action":
                    where = f"{path.relative_to(ROOT)}:{node.lineno}"
                    keys.update(_keys(keyword.value, constants, where))
    return keys


def test_every_action_key_the_hub_writes_has_a_phrase() -> None:
    written = written_action_keys()
    assert {"integration.create", "stream.pause", "compliance.shop/redact"} <= written
    assert sorted(written - PHRASES.keys()) == []


def test_an_entry_reads_as_a_sentence() -> None:
    assert (
        sentence(
            actor="ann@example.com",
            action="stream.pause",
            target="Demo Outdoor",
            context={"stream": "orders"},
        )
        == "ann@example.com paused the orders sync of Demo Outdoor"
    )
    assert (
        sentence(
            actor="shopify",
            action="compliance.customers/redact",
            target="demo.myshopify.com",
            context={"redacted_rows": 3},
        )
        == "Shopify asked to erase a customer's data held for demo.myshopify.com (3 rows redacted)"
    )
    assert sentence(actor="manager", action="integration.connected", target="Acme",
                    context={}) == "A manager connected Acme"  # fmt: skip
    # A key of a newer hub still says what is known.
    assert sentence(actor="system", action="x.y", target="", context={}) == (
        "The hub did x.y on the hub"
    )


async def test_pausing_a_stream_is_logged_in_the_managers_name(hub_db: sa.Engine) -> None:
    with session_scope() as s:
        demo = integrations.create_integration(
            session=s, platform="shopify", display_name="Demo Outdoor",
            shop_domain="demo-outdoor.myshopify.com",
        )  # fmt: skip
        integrations.mark_connected(session=s, integration_id=demo.id)
        anna, _ = create_user(session=s, email="anna@example.com", role=Role.MANAGER)
        token = create_session(session=s, user=anna)
        demo_id = demo.id
    state = DetailState(_reflex_internal_init=True)
    state.router = RouterData.from_router_data(
        {
            "headers": {"cookie": f"hub_session={token}"},
            "pathname": "/integrations/[integration_id]",
            "asPath": f"/integrations/{demo_id}",
        }
    )
    await DetailState.set_stream_paused.fn(state, "orders", True)
    await DetailState.set_paused.fn(state, True)
    await DetailState.set_paused.fn(state, False)
    with session_scope() as s:
        rows, _ = audit_page(session=s)
    sentences = [row["sentence"] for row in rows]
    assert "anna@example.com paused the orders sync of Demo Outdoor" in sentences
    assert "anna@example.com resumed Demo Outdoor" in sentences
    paused = next(row for row in rows if row["action"] == "stream.pause")
    assert paused["href"] == f"/integrations/{demo_id}"


def test_a_connect_names_the_manager_not_a_role(session: Session) -> None:
    manager, _ = create_user(session=session, email="max@example.com", role=Role.MANAGER)
    assert audit.actor_of(session=session, user_id=manager.id) == "max@example.com"
    assert audit.actor_of(session=session, user_id=None) == "merchant"
    assert audit.actor_of(session=session, user_id=uuid.uuid4()) == "merchant"
    record_audit(session=session, actor="max@example.com", action="user.sign_in")
    rows, _ = audit_page(session=session)
    (signed_in,) = [row for row in rows if row["action"] == "user.sign_in"]
    assert signed_in["sentence"] == "max@example.com signed in"


async def test_the_settings_page_pages_through_the_audit_log(session: Session) -> None:
    """30 entries (a sign-in among them): 25 on the first page, newest first, then 5; the
    pager says where the admin is and stops at both ends."""
    from dashboard.pages.settings import SettingsState

    admin, _ = create_user(session=session, email="ada@example.com", role=Role.ADMIN)
    token = create_session(session=session, user=admin)
    for _ in range(29):
        record_audit(session=session, actor="ada@example.com", action="user.sign_in")
    record_audit(session=session, actor="ada@example.com", action="keys.rotate")
    session.commit()
    state = SettingsState(_reflex_internal_init=True)
    state.router = RouterData.from_router_data({"headers": {"cookie": f"hub_session={token}"}})

    await SettingsState.load_settings.fn(state)
    total = state.total
    assert total >= 30 and state.audit_total_label == f"{total} entries"
    assert len(state.audit) == 25 and state.audit[0]["action"] == "keys.rotate"
    assert state.page_label == "Page 1 of 2"
    await SettingsState.previous_page.fn(state)
    assert state.page_label == "Page 1 of 2"
    await SettingsState.next_page.fn(state)
    assert state.page_label == "Page 2 of 2" and len(state.audit) == total - 25
    await SettingsState.next_page.fn(state)
    assert state.page_label == "Page 2 of 2"
    await SettingsState.previous_page.fn(state)
    assert len(state.audit) == 25 and state.audit[0]["action"] == "keys.rotate"
