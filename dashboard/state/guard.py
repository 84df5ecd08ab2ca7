"""Who may call a state's event handler, declared where the handler is defined.

Any websocket client can send any handler of any state, whatever page it claims to be on,
so the check cannot live in a page's ``on_load`` or in each handler's body (one forgotten
check was a leak). Every public method of a state is an event handler to Reflex, and every
one carries exactly one of these declarations:

- ``@requires(Role.VIEWER | MANAGER | ADMIN)``: the session is checked before the body runs.
  No session: the body never runs and the client is sent to the login page. A lower role:
  the body never runs and the client gets an error toast. Nothing is read, written or set.
- ``@public("why")``: anyone may call it (signing in, the merchant's connect page, which
  authenticates by its link token); the reason is part of the declaration.
- ``@not_an_event``: a helper the state's own code calls (``fetch``, ``current_user``), taken
  out of Reflex's handler registry so that no client can call it at all.

``tests/security/test_handler_guards.py`` walks Reflex's own registry and fails on any
handler without one of them, and calls each guarded one without a session and with too low
a role.

Usage, under ``@rx.event`` (which also takes ``background=True``)::

    @rx.event
    @requires(Role.MANAGER)
    async def sync_now(self, stream: str = ""):
        actor = acting_user()  # the user the guard let in, without a second query
"""

from __future__ import annotations

import contextvars
import functools
import inspect
import logging
from collections.abc import AsyncIterator, Callable
from typing import Any, Literal, Protocol, TypeVar

import reflex as rx
from reflex.state import BaseState

from dashboard import routes
from dashboard.models import Role, User
from dashboard.services import auth as auth_service

logger = logging.getLogger(__name__)

GUARD = "_hub_guard"  # the declaration, kept on the function: see Declaration
Declaration = Role | Literal["public", "not an event"]
Handler = TypeVar("Handler", bound=Callable[..., Any])

_acting_user: contextvars.ContextVar[User | None] = contextvars.ContextVar(
    "hub_acting_user", default=None
)


class SessionHolder(Protocol):
    async def current_user(self) -> User | None: ...


def acting_user() -> User:
    """The signed-in user a ``requires`` guard let into the running handler.

    Raises RuntimeError outside a guarded handler: a body that needs an actor must be guarded.
    """
    user = _acting_user.get()
    if user is None:
        raise RuntimeError("acting_user() is only known inside a @requires handler")
    return user


def declared_guard(fn: Any) -> Declaration | None:
    """What ``fn`` (a handler function, or a Reflex EventHandler) declares; None if nothing."""
    return getattr(getattr(fn, "fn", fn), GUARD, None)


async def _admit(state: SessionHolder, role: Role, name: str, quiet: bool) -> User | list[Any]:
    """The user when their session and role allow ``role``, else the events that answer."""
    user = await state.current_user()
    if user is None:
        logger.info("refused %s: no session", name)
        return [] if quiet else [rx.redirect(routes.LOGIN)]
    try:
        return auth_service.require_role(user, role)
    except auth_service.PermissionDenied as denied:
        logger.info("refused %s to %s: %s", name, user.email, denied)
        return [] if quiet else [rx.toast.error(str(denied))]


def requires(role: Role, *, quiet: bool = False) -> Callable[[Handler], Handler]:
    """Run the handler only for a signed-in user whose role reaches ``role``.

    ``quiet``: refuse with no answer at all, for page loaders and watchers, whose page's own
    ``check_session`` / ``check_admin`` already redirects or explains.

    Works for sync, async, generator and async generator handlers and with
    ``@rx.event(background=True)``. A sync handler becomes async (the check reads the
    database, off the event loop); Reflex awaits either. ``functools.wraps`` keeps the
    signature and type hints Reflex reads for the handler's arguments.
    """

    def decorate(fn: Handler) -> Handler:
        if declared_guard(fn) is not None:
            raise TypeError(f"{fn.__qualname__} declares its guard twice")
        name = fn.__qualname__

        if inspect.isasyncgenfunction(fn) or inspect.isgeneratorfunction(fn):

            @functools.wraps(fn)
            async def guarded_stream(
                self: SessionHolder, *args: Any, **kwargs: Any
            ) -> AsyncIterator[Any]:
                admitted = await _admit(self, role, name, quiet)
                if not isinstance(admitted, User):
                    for event in admitted:
                        yield event
                    return
                token = _acting_user.set(admitted)
                try:
                    async for event in _events_of(fn(self, *args, **kwargs)):
                        yield event
                finally:
                    _acting_user.reset(token)

            wrapper: Callable[..., Any] = guarded_stream
        else:

            @functools.wraps(fn)
            async def guarded(self: SessionHolder, *args: Any, **kwargs: Any) -> Any:
                admitted = await _admit(self, role, name, quiet)
                if not isinstance(admitted, User):
                    return admitted or None
                token = _acting_user.set(admitted)
                try:
                    result = fn(self, *args, **kwargs)
                    return await result if inspect.isawaitable(result) else result
                finally:
                    _acting_user.reset(token)

            wrapper = guarded
        setattr(wrapper, GUARD, role)
        return wrapper  # type: ignore[return-value]  # same parameters; a sync one is now async

    return decorate


async def _events_of(stream: Any) -> AsyncIterator[Any]:
    """What a generator or async generator handler yields, and what a generator returns."""
    if inspect.isasyncgen(stream):
        async for event in stream:
            yield event
        return
    while True:
        try:
            event = next(stream)
        except StopIteration as stop:  # Reflex also sends a sync generator's return value
            if stop.value is not None:
                yield stop.value
            return
        yield event


def public(reason: str) -> Callable[[Handler], Handler]:
    """Declare that anyone may call the handler, and why (kept on the function)."""
    if not reason.strip():
        raise ValueError("say why the handler is public")

    def decorate(fn: Handler) -> Handler:
        if declared_guard(fn) is not None:
            raise TypeError(f"{fn.__qualname__} declares its guard twice")
        setattr(fn, GUARD, "public")
        fn._hub_public_reason = reason  # type: ignore[attr-defined]
        return fn

    return decorate


def not_an_event(fn: Handler) -> Handler:
    """Keep a public helper method out of Reflex's event handlers: no client can call it.

    Reflex turns every public function of a state class into a handler, except those marked
    as overriding a base method (its ``__override_base_method__``, which is all this sets).
    The registry test notices if a Reflex upgrade stops honouring it.
    """
    fn.__override_base_method__ = True  # type: ignore[attr-defined]
    setattr(fn, GUARD, "not an event")
    return fn



def app_states() -> list[type[BaseState]]:
    """Every state class of the app, from Reflex's state tree (Reflex's own internal states,
    defined in ``reflex.*``, are its business)."""

    def walk(state: type[BaseState]) -> list[type[BaseState]]:
        found = []
        for substate in state.get_substates():
            found += [substate, *walk(substate)]
        return found

    return [state for state in walk(rx.State) if not state.__module__.startswith("reflex")]


def unguarded_handlers(states: list[Any] | None = None) -> list[str]:
    """``State.handler`` for every event handler of ``states`` (default: the app's) that
    declares neither a role nor ``public``. ``setvar`` is Reflex's dispatcher to the
    ``set_<var>`` handlers, which are themselves checked when they exist."""
    return [
        f"{state.__name__}.{name}"
        for state in (app_states() if states is None else states)
        for name, handler in state.event_handlers.items()
        if name != "setvar" and declared_guard(handler) not in (*Role, "public")
    ]
