"""Route paths of the UI, in one place."""

LOGIN = "/login"
OVERVIEW = "/"
INTEGRATIONS = "/integrations"
INTEGRATION_DETAIL = "/integrations/[integration_id]"
NEW_INTEGRATION = "/integrations/new"
RUNS = "/runs"
RECORDS = "/records"
SETTINGS = "/settings"
USERS = "/settings/users"
ACCOUNT = "/settings/account"
CONNECT = "/connect/[token]"


def integration_detail(integration_id: str) -> str:
    return f"/integrations/{integration_id}"
