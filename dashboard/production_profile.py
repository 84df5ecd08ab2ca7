"""The production profile: refusals before a real-platform start (HUB_ENV=production or an
https public URL).

Kept apart from field validation (dashboard/settings.py): every `hub` command loads the
settings, and the commands that help fix a production configuration (`hub config show`,
`hub doctor`, `hub keys generate`) must run while it is still wrong. `hub serve` and every
backend process (rxconfig.py) call `check_production`.
"""

from __future__ import annotations

from connectors.sandbox.access import sandbox_apps
from dashboard.settings import (
    SANDBOX_AMAZON_APP_ID,
    SANDBOX_AMAZON_CLIENT_ID,
    SANDBOX_SHOPIFY_CLIENT_ID,
    Settings,
    SettingsError,
    sandbox_control_token_file,
    several_workers_reason,
)

LOCAL_HOSTS = frozenset({"localhost", "127.0.0.1", "::1", "[::1]"})
# Each variable: the Settings field, and the sandbox app's public value (the secrets are
# derived per hub from its sandbox control token: see ``_sandbox_value``).
_SHOPIFY_APP = {
    "HUB_SHOPIFY_CLIENT_ID": ("shopify_client_id", SANDBOX_SHOPIFY_CLIENT_ID),
    "HUB_SHOPIFY_CLIENT_SECRET": ("shopify_client_secret", None),
}
_AMAZON_APP = {
    "HUB_AMAZON_APP_ID": ("amazon_app_id", SANDBOX_AMAZON_APP_ID),
    "HUB_AMAZON_CLIENT_ID": ("amazon_client_id", SANDBOX_AMAZON_CLIENT_ID),
    "HUB_AMAZON_CLIENT_SECRET": ("amazon_client_secret", None),
}


def url_host(url: str | None) -> str:
    """The host of ``url`` ('' for none), lower-cased, without port or brackets' contents."""
    rest = (url or "").split("://", 1)[-1].split("/", 1)[0].rsplit("@", 1)[-1].lower()
    if rest.startswith("["):
        return rest.split("]", 1)[0] + "]"
    return rest.split(":", 1)[0]


def is_production(settings: Settings) -> bool:
    """HUB_ENV=production, or (with the default HUB_ENV=prod) a public https URL on a host
    other than this machine's. HUB_ENV=dev and test are explicit choices of local use."""
    public = settings.public_url or ""
    return settings.env == "production" or (
        settings.env == "prod"
        and public.startswith("https://")
        and url_host(public) not in LOCAL_HOSTS
    )


def production_problems(
    settings: Settings, *, users_exist: bool | None = None, interactive: bool = False
) -> list[str]:
    """What makes ``settings`` unfit for production, one line per problem naming the
    variables; [] when fit (or not a production profile). ``users_exist`` (None: unknown)
    decides whether the first admin would be created at this start."""
    if not is_production(settings):
        return []
    problems = []
    if settings.sandbox:
        problems.append(
            "HUB_SANDBOX is on: production talks to the real platforms. Set HUB_SANDBOX=false "
            "(a staging hub against a standalone sandbox sets the base URLs and credentials "
            "itself; docs/configuration.md)"
        )
    if not settings.encryption_keys and (settings.database_url or "").startswith("postgres"):
        problems.append(
            "HUB_ENCRYPTION_KEYS is unset, so this host encrypts with a key it generated into "
            f"{settings.data_dir / 'secret.key'}, while DATABASE_URL points at a shared "
            "PostgreSQL server: another host would generate a different key under the same id. "
            "Run `hub keys generate` once and give every host that HUB_ENCRYPTION_KEYS"
        )
    if not (settings.public_url or "").startswith("https://"):
        problems.append(
            f"HUB_PUBLIC_URL must be the https:// URL merchants and platforms reach the hub at "
            f"(got {settings.public_url!r}): OAuth redirects and webhooks need it"
        )
    shopify = _app_problems(settings, "Shopify", _SHOPIFY_APP)
    amazon = _app_problems(settings, "Amazon", _AMAZON_APP)
    if shopify is None and amazon is None:
        problems.append(
            "no platform app is configured: set HUB_SHOPIFY_CLIENT_ID and "
            "HUB_SHOPIFY_CLIENT_SECRET, and/or HUB_AMAZON_APP_ID, HUB_AMAZON_CLIENT_ID and "
            "HUB_AMAZON_CLIENT_SECRET (docs/shopify.md, docs/amazon.md)"
        )
    problems += (shopify or []) + (amazon or [])
    reason = several_workers_reason(settings.redis_url)
    if reason and not settings.redis_url:
        problems.append(f"REDIS_URL is unset while {reason} runs several backend workers")
    if users_exist is False and not settings.admin_password and not interactive:
        problems.append(
            "HUB_ADMIN_PASSWORD is unset and there is no user yet: the first admin would get a "
            f"generated password in a file under {settings.data_dir}. Set HUB_ADMIN_EMAIL and "
            "HUB_ADMIN_PASSWORD for the first start, or create the admin at a terminal with "
            "`hub users create --email E --role admin`"
        )
    return problems


def _app_problems(
    settings: Settings, platform: str, variables: dict[str, tuple[str, str | None]]
) -> list[str] | None:
    """None when none of the platform's app credentials is set; else its problems."""
    values = {var: getattr(settings, name) for var, (name, _) in variables.items()}
    if not any(values.values()):
        return None
    problems = []
    missing = [var for var, value in values.items() if not value]
    if missing:
        problems.append(f"{', '.join(missing)} unset: the {platform} app needs all of "
                        f"{', '.join(variables)}")  # fmt: skip
    problems += [
        f"{var} is the sandbox app's: set your {platform} app's own"
        for var, (name, sandbox_value) in variables.items()
        if values[var] and values[var] == (sandbox_value or _sandbox_value(settings, name))
    ]
    return problems


def _sandbox_value(settings: Settings, name: str) -> str | None:
    """The sandbox app's derived secret for field ``name``, when this hub has a sandbox control
    token (set, or generated into the data dir); None otherwise (nothing is generated here)."""
    token = settings.sandbox_control_token
    token_file = sandbox_control_token_file(settings)
    if not token and token_file.exists():
        token = token_file.read_text().strip()
    return getattr(sandbox_apps(token), name, None) if token else None


def check_production(
    settings: Settings, *, users_exist: bool | None = None, interactive: bool = False
) -> None:
    """Raise SettingsError listing every production problem at once (see above)."""
    problems = production_problems(settings, users_exist=users_exist, interactive=interactive)
    if problems:
        raise SettingsError(
            "Refusing to start with the production profile (HUB_ENV=production or an https "
            "public URL):\n  " + "\n  ".join(problems)
        )


