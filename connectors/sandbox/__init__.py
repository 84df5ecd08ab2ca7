"""The platform sandbox: local Shopify (and Amazon) servers that follow the published
contracts, for tests, benchmarks and the zero-config demo."""

from __future__ import annotations


def serve(
    *,
    host: str = "127.0.0.1",
    port: int = 8900,
    seed: int = 42,
    time_scale: float = 1.0,
    demo: bool = False,
) -> None:
    """Serve the sandbox standalone (``hub sandbox serve``)."""
    import uvicorn

    from connectors.sandbox.app import create_sandbox_app

    app = create_sandbox_app(
        seed=seed, time_scale=time_scale, demo=demo, public_base=f"http://{host}:{port}"
    )
    uvicorn.run(app, host=host, port=port, log_level="info")
