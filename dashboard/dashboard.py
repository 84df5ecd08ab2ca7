"""The Reflex app: pages, HTTP routes beside them, background services in the lifespan."""

import logging

import reflex as rx

from dashboard.api import build_api
from dashboard.components.wrong_address import wrong_address_script
from dashboard.pages import (  # noqa: F401  registers pages
    connect,
    golive,
    integration_detail,
    integrations,
    login,
    logs,
    new_integration,
    overview,
    records,
    runs,
    settings,
    settings_account,
    settings_amazon,
    settings_api_keys,
    settings_users,
)
from dashboard.services.demo import demo_lifespan
from dashboard.services.lifespan import hub_lifespan
from dashboard.settings import get_settings
from dashboard.state.guard import unguarded_handlers


class _SamePageAgain(logging.Filter):
    """In production Reflex compiles the app, then forks the backend worker, which applies
    the @rx.page pages it already holds once more and warns for each; the page stays as it
    was, so the eleven warnings on every start say nothing an operator can act on."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "is being redefined with the same component" not in record.getMessage()


logging.getLogger("reflex.app").addFilter(_SamePageAgain())

# Any websocket client can call any handler: a handler without a declared guard is a leak,
# so the app refuses to start with one (tests/security/test_handler_guards.py says which).
if unguarded := unguarded_handlers():
    raise RuntimeError(f"event handlers without a declared guard: {', '.join(unguarded)}")

app = rx.App(
    api_transformer=build_api,  # a factory: a fresh Starlette app each time the App is built
    stylesheets=["/styles.css"],  # assets/styles.css: focus ring, tables on small screens
    # A page opened at another address than HUB_PUBLIC_URL says so and links there.
    head_components=[wrong_address_script(get_settings().public_origin)],
)
app.register_lifespan_task(hub_lifespan)
app.register_lifespan_task(demo_lifespan)  # HUB_SANDBOX_DEMO: connected demo integrations
