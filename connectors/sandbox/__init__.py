"""The platform sandbox: local Shopify (and Amazon) servers that follow the published
contracts, for tests, benchmarks and the zero-config demo."""

from __future__ import annotations

from pathlib import Path


def serve(
    *,
    host: str = "127.0.0.1",
    port: int = 8900,
    seed: int = 42,
    time_scale: float = 1.0,
    demo: bool = False,
    state_file: Path | None = None,
) -> None:
    """Serve the sandbox standalone (``hub sandbox serve``); with ``state_file`` it keeps
    installed apps across restarts."""
    import uvicorn

    from connectors.sandbox.app import create_sandbox_app

    app = create_sandbox_app(
        seed=seed,
        time_scale=time_scale,
        demo=demo,
        public_base=f"http://{host}:{port}",
        state_file=state_file,
    )
    uvicorn.run(app, host=host, port=port, log_level="info")
