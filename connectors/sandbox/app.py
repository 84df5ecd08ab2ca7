"""The sandbox as one ASGI app: /shopify, /amazon and the /_sandbox control API."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Mount, Route, Router

from connectors.sandbox.access import ControlTokenRequired, new_control_token, sandbox_apps
from connectors.sandbox.amazon import AmazonSandbox
from connectors.sandbox.amazon import app as amazon_app
from connectors.sandbox.core import FaultConfig, FaultInjector, SandboxClock, SandboxState
from connectors.sandbox.persistence import StateFile, resumed_now
from connectors.sandbox.shopify import ShopifySandbox
from connectors.sandbox.shopify import app as shopify_app
from connectors.sandbox.shopify import graphql_api as shopify_graphql

PLATFORMS = ("shopify", "amazon")
# Registered for both apps when the creator names none (tests, benchmarks): a reserved name
# that never resolves, so a consent code sent there reaches nobody.
DEFAULT_REDIRECT_URI = "http://hub.invalid/callback"
log = logging.getLogger("sandbox")


def create_sandbox_app(
    *,
    seed: int = 42,
    time_scale: float = 1.0,
    demo: bool = False,
    public_base: str | None = None,
    shopify_compliance_url: str | None = None,
    state_file: Path | str | None = None,
    control_token: str | None = None,
    redirect_uris: Mapping[str, Sequence[str]] | None = None,
) -> Starlette:
    """The sandbox as an ASGI app. ``shopify_compliance_url`` is the sandbox Shopify app's
    privacy webhook URL (on Shopify, part of the app's configuration). With ``state_file``
    the sandbox keeps what a platform remembers across restarts there (``persistence.py``);
    without one it forgets everything when it stops.

    ``control_token`` guards the control API and derives the apps' client secrets
    (``access.py``); without one a random token is made (``app.state.control_token``).
    ``redirect_uris`` ({platform: [URL, ...]}) are the apps' registered OAuth redirect URIs,
    the only ones their consent pages send a code to (default: ``DEFAULT_REDIRECT_URI``)."""
    token = control_token or new_control_token()
    apps = sandbox_apps(token)
    registered = {
        platform: list((redirect_uris or {}).get(platform) or [DEFAULT_REDIRECT_URI])
        for platform in PLATFORMS
    }
    file = StateFile(state_file) if state_file is not None else None
    saved = file.load() if file is not None else None
    options = (seed, time_scale, public_base, shopify_compliance_url)
    try:
        state, shopify, amazon = _platforms(*options, saved)
    except (KeyError, TypeError, ValueError, AttributeError) as error:
        assert file is not None  # only a saved state can be refused
        file.set_aside(f"{type(error).__name__} while reading it back")
        saved = None
        state, shopify, amazon = _platforms(*options, saved)
    shopify.client_secret = apps.shopify_client_secret
    amazon.app.client_secret = apps.amazon_client_secret
    # The creator's URIs are registered whatever a state file says, as the hub's own
    # compliance_url wins: an app keeps working for the hub that made it.
    shopify.redirect_uris = _union(shopify.redirect_uris, registered["shopify"])
    amazon.app.redirect_uris = _union(amazon.app.redirect_uris, registered["amazon"])
    known = (len(shopify.shops), len(amazon.sellers))
    if demo:
        shopify_app.seed_demo(shopify)
        amazon_app.seed_demo(amazon)
    if file is not None:
        state.state_file = file  # from now on every change is saved
        rescaled = saved is not None and saved["clock"]["time_scale"] != time_scale
        if rescaled or known != (len(shopify.shops), len(amazon.sellers)):
            state.remember()  # new demo shops, or the clock's pace changed: save them now
    control: list[Any] = [
        *shopify_app.control_routes(shopify),
        *amazon_app.control_routes(amazon),
        *_fault_routes(state),
    ]
    routes: list[Any] = [
        Mount("/shopify", routes=shopify_app.routes(shopify)),
        Mount("/amazon", routes=amazon_app.build_routes(amazon)),
        Mount("/_sandbox", app=ControlTokenRequired(Router(routes=control), token)),
    ]

    running = False

    @contextlib.asynccontextmanager
    async def lifespan(_: Starlette) -> AsyncIterator[None]:
        """The sandbox's background work: the demo's changes (with their webhooks) while it
        runs, the state file's last write when it stops. A host that mounts the sandbox runs
        it through ``background`` (a Mount never runs it); once at a time."""
        nonlocal running
        if running:
            yield
            return
        running = True
        stop = asyncio.Event()
        # The Admin schema takes a second or more to build: in a thread now, not inside the
        # first query's request on the event loop (the hub's own, when mounted).
        tasks = [asyncio.create_task(shopify_graphql.warm_up())]
        if demo:
            tasks.append(asyncio.create_task(shopify_app.run_demo_changes(shopify, stop)))
            tasks.append(asyncio.create_task(amazon_app.run_demo_changes(amazon, stop)))
        try:
            yield
        finally:
            stop.set()
            # Deliveries still retrying (Shopify keeps at it for hours) end with the sandbox.
            tasks.extend(shopify.background)
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            running = False
            if state.state_file is not None:
                await state.state_file.flush()

    app = Starlette(routes=routes, lifespan=lifespan)
    app.state.sandbox = state
    app.state.control_token = token
    app.state.apps = apps
    return app


@contextlib.asynccontextmanager
async def background(app: Starlette) -> AsyncIterator[None]:
    """The background work of a sandbox app (``create_sandbox_app``) as its own lifespan
    runs it standalone. A Starlette ``Mount`` never runs a mounted app's lifespan: a host that
    mounts the sandbox enters this in its own lifespan (the hub: ``demo_lifespan``)."""
    async with app.router.lifespan_context(app):
        yield


def mounted_sandboxes(app: Any) -> list[Starlette]:
    """The sandbox apps mounted in ``app``, at any depth of its ``Mount``s."""
    found: list[Starlette] = []
    for route in getattr(app, "routes", []):
        if not isinstance(route, Mount):
            continue
        mounted = route.app
        if isinstance(mounted, Starlette) and isinstance(
            getattr(mounted.state, "sandbox", None), SandboxState
        ):
            found.append(mounted)
        else:
            found.extend(mounted_sandboxes(route))
    return found


def _union(kept: Sequence[str], added: Sequence[str]) -> list[str]:
    return [*kept, *(uri for uri in added if uri not in kept)]


def _platforms(
    seed: int,
    time_scale: float,
    public_base: str | None,
    shopify_compliance_url: str | None,
    saved: dict[str, Any] | None = None,
) -> tuple[SandboxState, ShopifySandbox, AmazonSandbox]:
    """Both platforms on one state, given back what ``saved`` holds (a state file's content;
    raises KeyError, TypeError or ValueError when it is not what the sandbox wrote)."""
    if saved is not None and saved.get("seed") != seed:
        log.warning(
            "the sandbox state file was written with seed %s, the sandbox runs with seed %s: "
            "its shops and sellers grow other data", saved.get("seed"), seed,
        )  # fmt: skip
    state = SandboxState(
        seed=seed,
        clock=SandboxClock(time_scale, resumed_now(saved["clock"]) if saved else None),
        faults=FaultInjector(seed),
        public_base=public_base,
    )
    shopify = ShopifySandbox(state, compliance_url=shopify_compliance_url)
    state.extras["shopify"] = shopify
    amazon = AmazonSandbox(state)
    state.extras["amazon"] = amazon
    if saved is not None:
        shopify.restore(saved["shopify"])
        amazon.restore(saved["amazon"])
    return state, shopify, amazon


def _fault_routes(state: SandboxState) -> list[Route]:
    async def set_faults(request: Request) -> Response:
        platform = request.path_params["platform"]
        if platform not in PLATFORMS:
            return JSONResponse({"error": f"platform must be one of {PLATFORMS}"}, status_code=404)
        try:
            config = FaultConfig.from_json(await request.json())
        except (ValueError, TypeError) as error:
            return JSONResponse({"error": str(error)}, status_code=400)
        state.faults.set(platform, request.path_params.get("account"), config)
        return JSONResponse(
            {
                "platform": platform,
                "account": request.path_params.get("account"),
                "faults": config.__dict__,
            }
        )

    return [
        Route("/faults/{platform:str}", set_faults, methods=["PUT"]),
        Route("/faults/{platform:str}/{account:str}", set_faults, methods=["PUT"]),
    ]
