"""Route paths of the UI, in one place."""

from urllib.parse import unquote, urlsplit

LOGIN = "/login"
OVERVIEW = "/"
INTEGRATIONS = "/integrations"
INTEGRATION_DETAIL = "/integrations/[integration_id]"
NEW_INTEGRATION = "/integrations/new"
RUNS = "/runs"
RECORDS = "/records"
LOGS = "/logs"
SETTINGS = "/settings"
USERS = "/settings/users"
ACCOUNT = "/settings/account"
GO_LIVE = "/settings/go-live"
AMAZON_APP = "/settings/amazon"
CONNECT = "/connect/[token]"


def integration_detail(integration_id: str) -> str:
    return f"/integrations/{integration_id}"


def route_arg(url: str, parent: str) -> str:
    """The path segment after ``parent`` in ``url`` ("" on any other page): a dynamic route's
    argument, read off the URL because ``router.page`` is deprecated in Reflex."""
    path = urlsplit(url).path
    prefix = parent.rstrip("/") + "/"
    return unquote(path[len(prefix) :].strip("/")) if path.startswith(prefix) else ""
