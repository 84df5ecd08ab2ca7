"""Reflex configuration: everything that varies comes from the hub's settings."""

import reflex as rx

from dashboard.production_profile import check_production
from dashboard.settings import SettingsError, get_settings

try:
    settings = get_settings()
    check_production(settings)  # every backend process, however started
except SettingsError as error:  # `reflex run` started directly rather than by `hub serve`
    raise SystemExit(f"hub: {error}") from None

public_url = settings.public_url or f"http://localhost:{settings.port}"
# CORS (Reflex's HTTP endpoints) and the socket.io Origin check (its event websocket) accept
# only the hub's own origin: another site's page cannot drive a signed-in browser's socket.
hub_origin = settings.public_origin

config = rx.Config(
    app_name="dashboard",
    telemetry_enabled=False,
    db_url=settings.sqlalchemy_url,
    redis_url=settings.redis_url,
    frontend_port=settings.port,
    backend_port=settings.port,
    # One origin in production: the browser's websocket goes back to the public URL.
    api_url=public_url,
    cors_allowed_origins=[hub_origin],
    deploy_url=settings.public_url,
    show_built_with_reflex=False,
    default_color_mode="system",
    plugins=[rx.plugins.RadixThemesPlugin(theme=rx.theme(accent_color="indigo", radius="medium"))],
    disable_plugins=[rx.plugins.SitemapPlugin],
)
