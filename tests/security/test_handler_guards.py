"""Every state event handler declares who may call it, and refuses everyone else before its
body runs (issue 12, item 1: a websocket with no session called the integration page's
``set_tab("logs")`` and got the integration's logs back).

The handlers come from Reflex's own registry (the state tree under ``rx.State`` once the app
is imported, and each state's ``event_handlers``), so a handler added tomorrow is checked
without anyone listing it here. Each guarded handler is called as a websocket client would
call it (the integration page's route, real ids as arguments) with no session, a viewer's and
a manager's session; where the role falls short, the client may get a redirect or an error
toast and nothing else: no field of its state set, no row of the database changed.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import inspect
import uuid
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import reflex as rx
import sqlalchemy as sa
from reflex.istate.data import RouterData
from reflex.state import BaseState
from reflex_base.event import EventHandler, EventSpec
from sqlmodel import Session, SQLModel

from dashboard.models import (
    Notification,
    Product,
    Role,
    SyncEvent,
    SyncRun,
    User,
    WebhookEvent,
    WebhookSubscription,
)
from dashboard.services import auth as auth_service
from dashboard.services import integrations as integration_service
from dashboard.services.audit import record_audit
from dashboard.services.auth import ROLE_RANK, create_session, create_user
from dashboard.state import guard
from dashboard.state.guard import declared_guard, not_an_event, public, requires

CALLERS: tuple[Role | None, ...] = (None, Role.VIEWER, Role.MANAGER)


def app_states() -> list[type[BaseState]]:
    import dashboard.dashboard  # noqa: F401  registers every page and its states

    return guard.app_states()


def handlers_of(state: type[BaseState]) -> dict[str, EventHandler]:
    """The state's handlers but ``setvar``: Reflex's dispatcher to ``set_<var>``, checked
    on its own below."""
    return {name: h for name, h in state.event_handlers.items() if name != "setvar"}


def undeclared(states: list[type[BaseState]]) -> list[str]:
    """What the app's start-up check (``guard.unguarded_handlers``) refuses."""
    return guard.unguarded_handlers(states)


# --- the hub an attacker finds -------------------------------------------------------------


@dataclass
class Hub:
    integration_id: str
    run_id: str
    link_id: str
    product_id: str
    notification_id: str
    viewer_id: str
    tokens: dict[Role, str]


@pytest.fixture
def hub(hub_db: sa.Engine) -> Hub:
    """An integration with streams, runs, logs, webhooks, links, records and alerts, and a
    signed-in viewer, manager and admin."""
    with Session(hub_db) as session:
        admin, _ = create_user(session=session, email="admin@example.com", role=Role.ADMIN)
        acme = integration_service.create_integration(
            session=session, platform="shopify", display_name="Acme",
            shop_domain="acme.myshopify.com", streams={"products": 15, "orders": 15},
            actor=admin,
        )  # fmt: skip
        acme.status, acme.shop_info = "connected", {"name": "Acme Inc", "plan": "plus"}
        acme.connected_at = datetime.now(UTC) - timedelta(days=1)
        run = SyncRun(integration_id=acme.id, stream="orders", status="failed", error="boom")
        session.add(run)
        session.flush()
        session.add(SyncEvent(run_id=run.id, level="error", message="secret log line"))
        hook = "https://hub.example/api/webhooks"
        session.add(WebhookSubscription(integration_id=acme.id, topic="orders/create",
                                        callback_url=hook))  # fmt: skip
        session.add(WebhookEvent(platform="shopify", webhook_id="w1", topic="orders/create",
                                 integration_id=acme.id, payload={"id": 1}))  # fmt: skip
        product = Product(integration_id=acme.id, external_id="gid://shopify/Product/1",
                          raw={"title": "Secret plans"}, title="Secret plans")  # fmt: skip
        session.add(product)
        notification = Notification(kind="run_failed", message="Acme: orders failed",
                                    integration_id=acme.id)  # fmt: skip
        session.add(notification)
        link, _ = integration_service.create_connect_link(
            session=session, integration_id=acme.id, actor=admin
        )
        record_audit(session=session, actor="admin@example.com", action="integration.create",
                     target=str(acme.id))  # fmt: skip
        tokens = {Role.ADMIN: create_session(session=session, user=admin)}
        users = {}
        for role in (Role.VIEWER, Role.MANAGER):
            user, _ = create_user(session=session, email=f"{role.value}@example.com", role=role)
            tokens[role], users[role] = create_session(session=session, user=user), user
        session.commit()
        return Hub(
            integration_id=str(acme.id), run_id=str(run.id), link_id=str(link.id),
            product_id=str(product.id), notification_id=str(notification.id),
            viewer_id=str(users[Role.VIEWER].id), tokens=tokens,
        )  # fmt: skip


def arguments(handler: EventHandler, hub: Hub) -> dict[str, Any]:
    """Plausible arguments an attacker would send: real ids, the most revealing choices."""
    known: dict[str, Any] = {
        "value": "logs", "integration_id": hub.integration_id, "name": "Acme",
        "run_id": hub.run_id, "link_id": hub.link_id, "record_id": hub.product_id,
        "notification_id": hub.notification_id, "user_id": hub.viewer_id,
        "email": "viewer@example.com", "role": "admin", "stream": "orders",
        "purpose": "connect", "fmt": "json", "platform": "shopify", "marketplace": "x",
        "paused": True, "disable": True, "checked": True, "step": 3,
        "form": {"email": "mallory@example.com", "password": "correct horse battery",
                 "role": "admin", "current": "x", "new": "y" * 16, "repeat": "y" * 16},
    }  # fmt: skip
    by_type = {"str": "x", "bool": True, "int": 1, "dict[str, str]": {}}
    parameters = list(inspect.signature(handler.fn).parameters.values())[1:]
    return {
        p.name: known.get(p.name, by_type.get(str(p.annotation), "x"))
        for p in parameters
        if p.default is inspect.Parameter.empty or p.name in known
    }


def database(engine: sa.Engine, *, but_account_of: str = "") -> dict[str, list[tuple]]:
    """Every row of every table; ``but_account_of``: leave out that user's own account rows
    (their user row, sessions and sign-in throttle, which changing one's own password may
    touch: a wrong current password counts against their account's sign-in limit)."""
    own = uuid.UUID(but_account_of) if but_account_of else None
    with Session(engine) as session:
        owner_user = session.get(User, own) if own else None
        own_throttle = auth_service.account_key(owner_user.email) if owner_user else None

    def mine(table: sa.Table, row: sa.Row) -> bool:
        if table.name == "sign_in_throttles":
            return own_throttle is not None and row._mapping["key"] == own_throttle
        owner = {"users": "id", "user_sessions": "user_id"}.get(table.name)
        return own is not None and owner is not None and row._mapping[owner] == own

    with engine.connect() as connection:
        return {
            table.name: sorted(
                (
                    tuple(row)
                    for row in connection.execute(sa.select(table))
                    if not mine(table, row)
                ),
                key=repr,
            )
            for table in SQLModel.metadata.sorted_tables
        }


def page_state(state_cls: type[BaseState], hub: Hub, caller: Role | None) -> BaseState:
    """The state of a tab on the integration's page, signed in as ``caller``."""
    state = state_cls(_reflex_internal_init=True)
    path = f"/integrations/{hub.integration_id}"
    # The session arrives as the browser sends it: the websocket handshake's Cookie header.
    cookie = f"hub_session={hub.tokens[caller]}" if caller is not None else ""
    state.router = RouterData.from_router_data(
        {"pathname": path, "asPath": path, "query": {}, "headers": {"cookie": cookie}}
    )
    return state


def fields(state: BaseState) -> dict[str, Any]:
    """The state's own fields (Reflex's, like the router and ``is_hydrated``, left out)."""
    names = [name for name in type(state).__fields__ if name not in rx.State.__fields__]
    return {name: copy.deepcopy(getattr(state, name)) for name in names}


async def call(handler: EventHandler, state: BaseState, args: dict[str, Any]) -> list[Any]:
    """Run the handler as Reflex would; the events it returns or yields."""

    async def run() -> list[Any]:
        result = handler.fn(state, **args)
        if inspect.isasyncgen(result):
            return [event async for event in result]
        if inspect.isgenerator(result):
            return list(result)
        if inspect.isawaitable(result):
            result = await result
        if result is None:
            return []
        return list(result) if isinstance(result, list | tuple) else [result]

    return await asyncio.wait_for(run(), timeout=10)


def kind_of(event: Any) -> str:
    """'redirect to /login', 'error toast', or what else the client would receive."""
    if isinstance(event, EventSpec):
        name = event.handler.fn.__qualname__
        shown = " ".join(str(value) for _, value in event.args)
        if name == "_redirect":
            return f"redirect to {shown.split()[0].strip(chr(34))}"
        if name == "_call_function" and "__toast" in shown and '["error"]' in shown:
            return "error toast"
        return f"{name}: {shown[:120]}"
    return repr(event)[:120]


async def refusal_problems(
    handler: EventHandler, state_cls: type[BaseState], hub: Hub, caller: Role | None,
    engine: sa.Engine,
) -> list[str]:  # fmt: skip
    """What a refused caller got that it must not: data, fields set, rows changed."""
    state = page_state(state_cls, hub, caller)
    before_fields, before_rows = fields(state), database(engine)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        try:
            events = await call(handler, state, arguments(handler, hub))
        except Exception as error:  # an error is no answer, but say what it was
            events = [f"raised {type(error).__name__}: {error}"]
    allowed = {"redirect to /login"} if caller is None else {"error toast"}
    problems = [f"sent {kind}" for kind in map(kind_of, events) if kind not in allowed]
    after = fields(state)
    problems += [f"set {name}" for name in after if after[name] != before_fields[name]]
    after_rows = database(engine)
    problems += [f"changed {t}" for t in after_rows if after_rows[t] != before_rows[t]]
    return problems


async def viewer_writes(
    handler: EventHandler, state_cls: type[BaseState], hub: Hub, engine: sa.Engine
) -> list[str]:
    """The tables a viewer's call changed: a viewer reads, never writes (a handler that
    writes but is declared for viewers shows up here). Their own password is theirs."""
    before = database(engine, but_account_of=hub.viewer_id)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        # Refused by a service, or a bad argument: what counts is what changed.
        with contextlib.suppress(Exception):
            await call(handler, page_state(state_cls, hub, Role.VIEWER), arguments(handler, hub))
    after = database(engine, but_account_of=hub.viewer_id)
    return [table for table in after if after[table] != before[table]]


# --- the checks ----------------------------------------------------------------------------


def test_every_handler_of_every_state_declares_who_may_call_it() -> None:
    states = app_states()
    assert {s.__name__ for s in states} >= {"DetailState", "NotificationState", "ConnectState"}
    assert undeclared(states) == []


def test_a_handler_without_a_declaration_is_caught() -> None:
    """The enumeration check is not vacuous: an undecorated handler shows up in it."""

    class Probe:  # stands in for a state: only its handler functions matter here
        @staticmethod
        def fresh() -> None: ...

    fake = type("Forgotten", (), {"__name__": "Forgotten"})
    fake.event_handlers = {"fresh": EventHandler(fn=Probe.fresh)}  # type: ignore[attr-defined]
    assert undeclared([fake]) == ["Forgotten.fresh"]  # type: ignore[list-item]


def test_helpers_are_not_handlers_and_auto_setters_are_off() -> None:
    """fetch/apply/current_user are helpers no client may call; Reflex would otherwise
    register them, and auto-generated set_<var> setters would be more unguarded entries."""
    for state in app_states():
        assert not {"fetch", "apply", "current_user", "require", "signed_in"} & set(
            state.event_handlers
        ), state.__name__
        # setvar(name, value) calls set_<name>: each one that exists is a guarded handler.
        for name in state.__fields__:
            setter = getattr(state, f"set_{name}", None)
            if setter is not None and name not in rx.State.__fields__:
                assert declared_guard(setter) in (*Role, "public"), f"{state.__name__}.set_{name}"


async def test_no_session_viewer_and_manager_get_nothing_beyond_their_role(
    hub: Hub, hub_db: sa.Engine
) -> None:
    failures = []
    checked = 0
    for state_cls in app_states():
        for name, handler in sorted(handlers_of(state_cls).items()):
            required = declared_guard(handler)
            if not isinstance(required, Role):
                continue  # public by declaration (sign-in, the merchant's connect page)
            if required == Role.VIEWER and not handler.is_background:
                checked += 1
                if changed := await viewer_writes(handler, state_cls, hub, hub_db):
                    failures.append(f"{state_cls.__name__}.{name} (viewer): changed {changed}")
            for caller in CALLERS:
                if caller is not None and ROLE_RANK[caller] >= ROLE_RANK[required]:
                    continue
                checked += 1
                problems = await refusal_problems(handler, state_cls, hub, caller, hub_db)
                if problems:
                    who = caller.value if caller else "no session"
                    failures.append(f"{state_cls.__name__}.{name} ({who}): {problems}")
    assert checked > 100  # every guarded handler, refused at least to a caller with no session
    assert failures == []


async def test_setvar_reaches_nothing_without_a_session(hub: Hub, hub_db: sa.Engine) -> None:
    """Reflex's built-in ``setvar(name, value)`` on every state, for every field."""
    for state_cls in app_states():
        state = page_state(state_cls, hub, None)
        before_fields, before_rows = fields(state), database(hub_db)
        for name in before_fields:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)
                with contextlib.suppress(Exception):  # no setter for that field: nothing set
                    state_cls.event_handlers["setvar"].fn(state, name, "logs")
        assert fields(state) == before_fields, state_cls.__name__
        assert database(hub_db) == before_rows


async def test_the_issues_attack_now_gets_nothing_and_the_check_sees_a_forgotten_guard(
    hub: Hub, hub_db: sa.Engine
) -> None:
    """DetailState.set_tab('logs') over a fresh websocket with no session: before, it answered
    with the integration's info and logs. The same call to the body without its guard (what a
    forgotten decorator leaves) is what the check above reports."""
    from dashboard.state.integration_detail import DetailState

    attacker = page_state(DetailState, hub, None)
    events = await call(DetailState.set_tab, attacker, {"value": "logs"})
    assert [kind_of(e) for e in events] == ["redirect to /login"]
    assert attacker.info == {} and attacker.logs == [] and attacker.runs == []

    unguarded = EventHandler(fn=DetailState.set_tab.fn.__wrapped__, state=DetailState)
    problems = await refusal_problems(unguarded, DetailState, hub, None, hub_db)
    assert {"set info", "set logs", "set runs", "set tab"} <= set(problems)
    leaked = page_state(DetailState, hub, None)
    await call(unguarded, leaked, {"value": "logs"})
    assert leaked.info["account"] == "acme.myshopify.com"
    assert [line["message"] for line in leaked.logs] == ["secret log line"]


async def test_a_viewer_sees_the_page_and_is_refused_its_actions(hub: Hub) -> None:
    from dashboard.state.integration_detail import DetailState

    viewer = page_state(DetailState, hub, Role.VIEWER)
    assert await call(DetailState.set_tab, viewer, {"value": "webhooks"}) == []
    assert [s["topic"] for s in viewer.subscriptions] == ["orders/create"]
    events = await call(DetailState.create_link, viewer, {"purpose": "connect"})
    assert [kind_of(e) for e in events] == ["error toast"]
    assert "manager role" in str(events[0].args) and viewer.new_link_url == ""


# --- the guard itself, on every kind of handler --------------------------------------------


class Tab:
    """Enough of a state for the guard: a session lookup."""

    def __init__(self, user: Any) -> None:
        self.user = user

    async def current_user(self) -> Any:
        return self.user


def a_viewer() -> User:
    return User(email="v@example.com", role=Role.VIEWER.value)


async def test_generators_sync_handlers_and_async_generators_are_guarded_too() -> None:
    ran: list[str] = []

    @requires(Role.MANAGER)
    def sync_handler(self: Tab) -> str:
        ran.append("sync")
        return "done"

    @requires(Role.VIEWER)
    def generator(self: Tab) -> Iterator[str]:
        ran.append("generator")
        yield "first"
        return "last"

    @requires(Role.MANAGER)
    async def async_generator(self: Tab) -> Any:
        ran.append("async generator")
        yield "first"

    refused = [event async for event in async_generator(Tab(a_viewer()))]  # type: ignore[arg-type]
    assert [kind_of(e) for e in refused] == ["error toast"]
    assert [kind_of(e) for e in await sync_handler(Tab(None))] == ["redirect to /login"]  # type: ignore[arg-type, misc]
    assert ran == []
    assert [event async for event in generator(Tab(a_viewer()))] == ["first", "last"]  # type: ignore[arg-type, attr-defined]
    assert ran == ["generator"]


def test_a_handler_declares_one_guard_and_public_says_why() -> None:
    @public("a reason")
    def open_handler(self: Any) -> None: ...

    with pytest.raises(TypeError):
        requires(Role.VIEWER)(open_handler)
    with pytest.raises(ValueError):
        public(" ")
    assert declared_guard(not_an_event(lambda self: None)) == "not an event"


def test_background_handlers_stay_background_and_keep_their_arguments() -> None:
    from dashboard.state.integration_detail import DetailState

    assert DetailState.watch.is_background and declared_guard(DetailState.watch) == Role.VIEWER
    assert list(inspect.signature(DetailState.sync_now.fn).parameters) == ["self", "stream"]
