"""The platform sandbox: local Shopify (and Amazon) servers that follow the published
contracts, for tests, benchmarks and the zero-config demo."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path


def serve(
    *,
    host: str = "127.0.0.1",
    port: int = 8900,
    seed: int = 42,
    time_scale: float = 1.0,
    demo: bool = False,
    state_file: Path | None = None,
    control_token: str,
    redirect_uris: Mapping[str, Sequence[str]] | None = None,
) -> None:
    """Serve the sandbox standalone (``hub sandbox serve``); with ``state_file`` it keeps
    installed apps across restarts. ``control_token`` guards its control API and derives its
    apps' secrets; ``redirect_uris`` are the apps' registered OAuth redirect URIs."""
    import uvicorn

    from connectors.sandbox.app import create_sandbox_app

    app = create_sandbox_app(
        seed=seed,
        time_scale=time_scale,
        demo=demo,
        public_base=f"http://{host}:{port}",
        state_file=state_file,
        control_token=control_token,
        redirect_uris=redirect_uris,
    )
    uvicorn.run(app, host=host, port=port, log_level="info")
