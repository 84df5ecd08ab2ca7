"""The hub's one configuration object.

Every value comes from an environment variable with the ``HUB_`` prefix (or ``.env``);
``DATABASE_URL`` and ``REDIS_URL`` are also read unprefixed because hosting platforms set
them that way. An invalid value stops start-up with a message naming the variable.
"""

from __future__ import annotations

import functools
import ipaddress
import os
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

from pydantic import (
    AliasChoices,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, SettingsConfigDict

from connectors.sandbox import access as sandbox_access
from connectors.sandbox.access import load_or_create_token, sandbox_apps

PROJECT_ROOT = Path(__file__).resolve().parent.parent

# The sandbox apps' public ids; their secrets are derived per hub (``sandbox_apps``).
SANDBOX_SHOPIFY_CLIENT_ID = sandbox_access.SHOPIFY_CLIENT_ID
SANDBOX_AMAZON_APP_ID = sandbox_access.AMAZON_APP_ID
SANDBOX_AMAZON_CLIENT_ID = sandbox_access.AMAZON_CLIENT_ID
# The sandbox's control token when HUB_SANDBOX_CONTROL_TOKEN is unset (0600, in the data dir).
SANDBOX_CONTROL_TOKEN_FILE = "sandbox-control.token"  # noqa: S105  a file name, not a secret


def several_workers_reason(redis_url: str | None) -> str | None:
    """What makes ``hub serve`` run several backend processes, if anything: Reflex starts 2n+1
    of them (n cores, at most 8) when Redis holds its state; GRANIAN_WORKERS sets the count."""
    workers = os.environ.get("GRANIAN_WORKERS", "").strip()
    if workers.isascii() and workers.isdigit():
        return f"GRANIAN_WORKERS={workers}" if int(workers) > 1 else None
    return "REDIS_URL" if redis_url else None


def embedded_sandbox_refusal(reason: str) -> str:
    return (
        f"HUB_SANDBOX serves the sandbox inside the hub, but {reason} makes the hub run several "
        "backend workers, each with its own sandbox: an OAuth code one issues is unknown to "
        "the others.\n  Run one sandbox on its own (`hub sandbox serve --port 8900`) and point "
        "the hub at it with\n  HUB_SHOPIFY_BASE_URL=http://127.0.0.1:8900/shopify and "
        "HUB_AMAZON_BASE_URL=http://127.0.0.1:8900/amazon,\n  or set GRANIAN_WORKERS=1, or "
        "HUB_SANDBOX=false for the real platforms (docs/sandbox.md)."
    )


def is_local_url(url: str) -> bool:
    """Whether ``url`` is on this machine only: localhost, 127.0.0.0/8 or ::1."""
    host = (urlsplit(url).hostname or "").lower()
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def sandbox_public_refusal(public_url: str) -> str:
    return (
        f"HUB_SANDBOX mounts the platform sandbox at /sandbox, but HUB_PUBLIC_URL={public_url} "
        "is not local: the sandbox is a development tool (seeded data, fault injection, a "
        "consent page for its own apps) and must not be reachable from other machines.\n  "
        "Set HUB_SANDBOX=false for real platform credentials, or serve the hub on "
        "http://localhost (or 127.0.0.1), or run `hub sandbox serve` on this machine and "
        "point HUB_SHOPIFY_BASE_URL / HUB_AMAZON_BASE_URL at it (docs/sandbox.md)."
    )


class SettingsError(RuntimeError):
    """Raised at start-up when configuration is invalid; the message names the variable."""


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="HUB_", env_file=".env", env_file_encoding="utf-8", extra="ignore"
    )

    # --- serving -------------------------------------------------------------------------
    port: int = Field(3000, ge=1, le=65535, description="Port the hub serves on.")
    public_url: str | None = Field(
        None,
        description="URL merchants and platforms reach the hub at (OAuth redirects, "
        "webhooks, connect links). Default http://localhost:{port}.",
    )
    trusted_proxies: str = Field(
        "127.0.0.1,::1",
        description="Comma-separated addresses of reverse proxies whose X-Forwarded-For and "
        "X-Forwarded-Proto the hub believes (the client's address for the sign-in limit, "
        "https for redirects). Empty: believe none.",
    )
    org_name: str = Field("Connector Hub", description="Organisation shown to merchants.")
    data_dir: Path = Field(PROJECT_ROOT / "data", description="SQLite file, generated key.")
    env: Literal["dev", "prod", "test", "production"] = Field(
        "prod",
        description="production: the production profile, refused at start while anything "
        "still points at local use (dashboard/production_profile.py). prod: a production-mode "
        "build on one machine (make run).",
    )
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"] = Field(
        "INFO", description="Lowest level the backend logs (standard output)."
    )
    log_format: Literal["json", "text"] = Field(
        "text", description="json: one JSON object per line, for a log collector."
    )
    metrics_token: str | None = Field(
        None,
        description="Bearer token for GET /metrics. Default: one generated into "
        "{data_dir}/metrics.token (mode 0600).",
    )

    # --- storage -------------------------------------------------------------------------
    database_url: str | None = Field(
        None, validation_alias=AliasChoices("HUB_DATABASE_URL", "DATABASE_URL")
    )
    redis_url: str | None = Field(None, validation_alias=AliasChoices("HUB_REDIS_URL", "REDIS_URL"))
    encryption_keys: str | None = Field(
        None,
        description="Comma-separated key-id:base64 AES-256 keys, newest first. "
        "Default: one generated into {data_dir}/secret.key.",
    )

    # --- first admin ---------------------------------------------------------------------
    admin_email: str | None = None
    admin_password: str | None = None
    session_hours: int = Field(12, ge=1, le=24 * 30)

    # --- sandbox -------------------------------------------------------------------------
    sandbox: bool = Field(
        False,
        description="Use the platform sandbox: its apps' credentials, mounted at /sandbox "
        "unless the base URLs point at a standalone one (`hub sandbox serve`). Off unless "
        "asked for; `make run` turns it on for the local demo.",
    )
    sandbox_control_token: str | None = Field(
        None,
        description="Bearer token of the sandbox's control API; the sandbox apps' secrets "
        "derive from it. Default: one generated into {data_dir}/sandbox-control.token.",
    )
    sandbox_seed: int = 42
    sandbox_time_scale: float = Field(1.0, gt=0)
    sandbox_demo: bool = Field(True, description="Seed demo shops and a seller.")

    # --- Shopify -------------------------------------------------------------------------
    shopify_client_id: str | None = None
    shopify_client_secret: str | None = None
    shopify_scopes: str = "read_products,read_inventory,read_orders,read_customers,read_locations"
    shopify_base_url: str | None = Field(
        None,
        description="Base replacing https://{shop}; e.g. {public_url}/sandbox/shopify. "
        "Empty means the real Shopify.",
    )
    shopify_bulk_threshold: int = Field(
        10_000, ge=0, description="Backfills larger than this use a bulk operation."
    )
    shopify_reconcile_hours: float = Field(
        24.0,
        ge=0,
        description="Products, orders and customers list their live ids this often to mark "
        "records deleted on Shopify that no webhook reported. 0: never.",
    )
    webhook_concurrency: int = Field(
        8,
        ge=1,
        le=256,
        description="Batches of stored webhook events (up to 50 each) a process applies at "
        "once (its queue's consumers); the rest wait in the queue, beyond it for the recovery "
        "sweep.",
    )
    shopify_refresh_warning_days: int = Field(
        14,
        ge=1,
        le=89,
        description="An incident opens when a Shopify refresh token (90 days) has this many "
        "days or fewer left without a refresh.",
    )
    shopify_webhook_check_minutes: float = Field(
        60.0,
        ge=0,
        description="How often the hub lists each shop's webhook subscriptions and re-creates "
        "the ones it needs that were removed (with an incident). 0: never.",
    )

    # --- Amazon --------------------------------------------------------------------------
    amazon_app_id: str | None = None
    amazon_client_id: str | None = None
    amazon_client_secret: str | None = None
    amazon_client_secret_previous: str | None = Field(
        None,
        description="While rotating the LWA client secret: the old one, tried when Login with "
        "Amazon refuses the new one (invalid_client). Remove it once the rotation is done.",
    )
    amazon_secret_warning_days: int = Field(
        14, ge=1, le=179, description="Days before the LWA secret's 180-day deadline to warn."
    )
    amazon_reauthorization_warning_days: int = Field(
        30, ge=1, le=364, description="Days before a seller's yearly re-authorization to warn."
    )
    amazon_draft_app: bool = Field(False, description="Send version=beta on consent.")
    amazon_base_url: str | None = Field(
        None, description="Base replacing Amazon's hosts; e.g. {public_url}/sandbox/amazon."
    )
    amazon_orders_api: Literal["v2026-01-01", "v0"] = "v2026-01-01"
    amazon_buyer_data: Literal["off", "encrypted"] = Field(
        "off",
        description="Orders v2026-01-01 buyer and recipient (shipping address) data: 'off' "
        "never asks Amazon for it; 'encrypted' asks (includedData BUYER, RECIPIENT; the app "
        "needs Amazon's restricted roles) and stores it encrypted, never in plain text.",
    )

    # --- sync ----------------------------------------------------------------------------
    sync_max_concurrency: int = Field(8, ge=1, le=512)
    # The most runs of one integration running at once across every process: the claim takes
    # the others' queued runs first (a platform account's rate limit is shared by its runs,
    # so more at once would not go faster, only keep other integrations waiting).
    sync_per_integration: int = Field(2, ge=1, le=64)
    sync_default_interval_minutes: int = Field(15, ge=1)
    # A running run that stores no page for this long (and is not waiting for a known
    # rate-limit window) is flagged stalled; a stream's ``stall_minutes`` overrides it.
    sync_stall_minutes: float = Field(15.0, gt=0)
    # After a full pass, a stream whose stored count differs from the platform's own count
    # by more than this share opens a count_drift incident (resolved once back within it).
    completeness_drift_percent: float = Field(1.0, ge=0, le=100)
    tombstone_days: int = Field(
        30,
        ge=1,
        le=3650,
        description="How long a deleted record stays in the Hub API's change feed as a "
        "tombstone; a consumer whose cursor is older reads the feed again from the start.",
    )
    scheduler_enabled: bool = True
    # The host part of this process's worker id (runs, leases and liveness name it): the
    # machine's hostname unless set. Hosts of one hub must differ (containers that share a
    # hostname across machines set it).
    worker_host: str | None = Field(None, min_length=1, max_length=64, pattern=r"^[^:\s]+$")
    alert_webhook_url: str | None = None
    alert_webhook_secret: str | None = Field(
        None,
        description="Signs outgoing alert webhooks (X-Hub-Signature-256). Default: one "
        "generated into {data_dir}/alert-webhook.secret (mode 0600).",
    )

    @field_validator("log_level", "log_format", mode="before")
    @classmethod
    def _any_case(cls, value: object, info: ValidationInfo) -> object:
        """HUB_LOG_LEVEL=debug and HUB_LOG_FORMAT=JSON mean what they say."""
        if not isinstance(value, str):
            return value
        value = value.strip()
        return value.upper() if info.field_name == "log_level" else value.lower()

    @field_validator("public_url", "shopify_base_url", "amazon_base_url")
    @classmethod
    def _strip_slash(cls, value: str | None) -> str | None:
        if value is None or value == "":
            return None
        if not value.startswith(("http://", "https://")):
            raise ValueError("must start with http:// or https://")
        return value.rstrip("/")

    @field_validator("database_url")
    @classmethod
    def _known_database(cls, value: str | None) -> str | None:
        if value and not value.startswith(("sqlite", "postgresql", "postgres:")):
            raise ValueError("only sqlite:/// and postgresql:// URLs are supported")
        if value and value.startswith("postgres://"):
            return "postgresql" + value[len("postgres") :]
        return value

    @model_validator(mode="after")
    def _fill_defaults(self) -> Settings:
        self.data_dir = Path(self.data_dir).resolve()
        if self.public_url is None:
            self.public_url = f"http://localhost:{self.port}"
        if self.sandbox:
            sandbox_base = f"{self.public_url}/sandbox"
            self.shopify_base_url = self.shopify_base_url or f"{sandbox_base}/shopify"
            self.amazon_base_url = self.amazon_base_url or f"{sandbox_base}/amazon"
            if self.sandbox_mounted and not is_local_url(self.public_url):
                raise ValueError(sandbox_public_refusal(self.public_url))
            # The sandbox apps' secrets are this hub's own (derived from its control token),
            # never published constants: nobody else can sign its callbacks.
            self.sandbox_control_token = sandbox_control_token(self)
            apps = sandbox_apps(self.sandbox_control_token)
            self.shopify_client_id = self.shopify_client_id or apps.shopify_client_id
            self.shopify_client_secret = self.shopify_client_secret or apps.shopify_client_secret
            self.amazon_app_id = self.amazon_app_id or apps.amazon_app_id
            self.amazon_client_id = self.amazon_client_id or apps.amazon_client_id
            self.amazon_client_secret = self.amazon_client_secret or apps.amazon_client_secret
        reason = several_workers_reason(self.redis_url)
        if reason and not self.redis_url:
            raise ValueError(
                f"{reason} without REDIS_URL: each backend worker would keep its own UI state, "
                "and a reload reaching another worker loses the tab's (searches, filters, the "
                "wizard). Set REDIS_URL=redis://host:6379/0, or GRANIAN_WORKERS=1."
            )
        if self.sandbox_mounted and reason:
            raise ValueError(embedded_sandbox_refusal(reason))
        if self.env == "prod" and not self.sandbox and self.public_url.startswith("http://"):
            host = self.public_url.split("://", 1)[1].split(":")[0].split("/")[0]
            if host not in {"localhost", "127.0.0.1"}:
                raise ValueError(
                    "HUB_PUBLIC_URL must use https:// outside local use (OAuth and webhooks)"
                )
        return self

    @property
    def sandbox_mounted(self) -> bool:
        """Whether the hub serves the sandbox itself at /sandbox: HUB_SANDBOX is on and a
        connector points there (not at a standalone sandbox through its base URL)."""
        mounted = f"{self.public_url}/sandbox/"
        return self.sandbox and any(
            (url or "").startswith(mounted) for url in (self.shopify_base_url, self.amazon_base_url)
        )

    @property
    def public_origin(self) -> str:
        """The public URL's origin as a browser sends it in ``Origin`` and reads it from
        ``location.origin``: scheme://host[:port], lower case, without a default port. The
        only origin the websocket, sign-in and the pages accept."""
        parts = urlsplit(self.public_url or "")
        host = parts.hostname or ""
        if ":" in host:  # an IPv6 literal keeps its brackets
            host = f"[{host}]"
        default = {"http": 80, "https": 443}.get(parts.scheme)
        port = f":{parts.port}" if parts.port and parts.port != default else ""
        return f"{parts.scheme}://{host}{port}".lower()

    @property
    def sqlalchemy_url(self) -> str:
        """Absolute database URL: relative SQLite paths would follow the working directory."""
        if self.database_url:
            if self.database_url.startswith("postgresql://"):
                return "postgresql+psycopg://" + self.database_url[len("postgresql://") :]
            return self.database_url
        return f"sqlite:///{self.data_dir / 'hub.db'}"

    @property
    def shopify_scope_list(self) -> list[str]:
        return [s.strip() for s in self.shopify_scopes.split(",") if s.strip()]


def sandbox_control_token_file(settings: Settings) -> Path:
    return settings.data_dir / SANDBOX_CONTROL_TOKEN_FILE


def sandbox_control_token(settings: Settings) -> str:
    """The sandbox's control token: HUB_SANDBOX_CONTROL_TOKEN, else the one generated into
    the data dir on first use (shared by the hub and a `hub sandbox serve` beside it)."""
    return settings.sandbox_control_token or load_or_create_token(
        sandbox_control_token_file(settings)
    )


_UNPREFIXED = {"DATABASE_URL", "REDIS_URL"}


def _format_error(error: ValidationError) -> str:
    lines = []
    for item in error.errors():
        if not item["loc"]:  # a rule across fields; its message names the variables
            lines.append(item["msg"].removeprefix("Value error, "))
            continue
        name = str(item["loc"][0]).upper()
        var = name if name.startswith("HUB_") or name in _UNPREFIXED else f"HUB_{name}"
        lines.append(f"{var}: {item['msg']} (got {item.get('input')!r})")
    return "Invalid configuration:\n  " + "\n  ".join(lines)


def load_settings(**overrides: object) -> Settings:
    """Build settings from the environment; raises SettingsError naming the bad variable."""
    try:
        return Settings(**overrides)  # type: ignore[arg-type]  # pydantic fills the rest
    except ValidationError as error:
        raise SettingsError(_format_error(error)) from None


@functools.cache
def get_settings() -> Settings:
    """Process-wide settings; tests call ``get_settings.cache_clear()`` after changing env."""
    return load_settings()
