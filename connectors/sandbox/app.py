"""The sandbox as one ASGI app: /shopify, /amazon and the /_sandbox control API."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Mount, Route

from connectors.sandbox.amazon import AmazonSandbox
from connectors.sandbox.amazon import app as amazon_app
from connectors.sandbox.core import FaultConfig, FaultInjector, SandboxClock, SandboxState
from connectors.sandbox.shopify import ShopifySandbox
from connectors.sandbox.shopify import app as shopify_app

PLATFORMS = ("shopify", "amazon")


def create_sandbox_app(
    *,
    seed: int = 42,
    time_scale: float = 1.0,
    demo: bool = False,
    public_base: str | None = None,
    shopify_compliance_url: str | None = None,
) -> Starlette:
    """The sandbox as an ASGI app. ``shopify_compliance_url`` is the sandbox Shopify app's
    privacy webhook URL (on Shopify, part of the app's configuration)."""
    state = SandboxState(
        seed=seed,
        clock=SandboxClock(time_scale),
        faults=FaultInjector(seed),
        public_base=public_base,
    )
    shopify = ShopifySandbox(state, compliance_url=shopify_compliance_url)
    state.extras["shopify"] = shopify
    amazon = AmazonSandbox(state)
    state.extras["amazon"] = amazon
    control: list[Any] = [
        *shopify_app.control_routes(shopify),
        *amazon_app.control_routes(amazon),
        *_fault_routes(state),
    ]
    routes: list[Any] = [
        Mount("/shopify", routes=shopify_app.routes(shopify)),
        Mount("/amazon", routes=amazon_app.build_routes(amazon)),
        Mount("/_sandbox", routes=control),
    ]
    if demo:
        shopify_app.seed_demo(shopify)
        amazon_app.seed_demo(amazon)

    @contextlib.asynccontextmanager
    async def lifespan(_: Starlette) -> AsyncIterator[None]:
        stop = asyncio.Event()
        tasks = []
        if demo:
            tasks.append(asyncio.create_task(shopify_app.run_demo_changes(shopify, stop)))
            tasks.append(asyncio.create_task(amazon_app.run_demo_changes(amazon, stop)))
        try:
            yield
        finally:
            stop.set()
            for task in tasks:
                task.cancel()

    app = Starlette(routes=routes, lifespan=lifespan)
    app.state.sandbox = state
    return app


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
