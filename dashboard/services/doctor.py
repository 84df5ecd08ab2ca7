"""The go-live check (`hub doctor`): what an operator gets wrong, each with what to fix.

Every check answers ok, warn or fail. The platform checks ask the real endpoints (or whatever
the base URLs point at) with the app's credentials and a code that cannot be valid: an OAuth
token endpoint judges the client before the grant (RFC 6749 §5.2), so ``invalid_client``
means the credentials were refused and ``invalid_grant`` (Shopify: ``invalid_request``, "the
authorization code was not found") means they were accepted and only the bogus code was not.
The same answers carry a ``Date`` header: the clock check compares it with this host's.
"""

from __future__ import annotations

import asyncio
import shutil
from dataclasses import dataclass, field
from datetime import UTC, datetime

import httpx
import sqlalchemy as sa
from sqlmodel import Session, col, select

from dashboard import migrations
from dashboard.db import get_engine
from dashboard.production_profile import is_production, production_problems
from dashboard.services.doctor_platforms import (
    _PlatformAnswer,
    check_amazon,
    check_amazon_secret,
    check_shopify,
)
from dashboard.services.doctor_result import Check, Status
from dashboard.settings import Settings, get_settings

__all__ = ["Check", "DoctorReport", "Status", "check_amazon_secret", "format_report", "run_doctor"]

CLOCK_WARN_SECONDS = 5.0
CLOCK_FAIL_SECONDS = 60.0  # OAuth callbacks and webhooks are refused outside a few minutes
DISK_FAIL_BYTES = 512 * 1024**2
DISK_WARN_BYTES = 2 * 1024**3


@dataclass
class DoctorReport:
    checks: list[Check] = field(default_factory=list)

    @property
    def failed(self) -> bool:
        return any(check.status == "fail" for check in self.checks)


# --- database and keys ---------------------------------------------------------------------


def check_database() -> list[Check]:
    url = get_engine().url.render_as_string(hide_password=True)
    try:
        with get_engine().connect() as connection:
            connection.execute(sa.text("SELECT 1"))
        current, head = migrations.current_revision(), migrations.head_revision()
    except Exception as error:  # any driver error: say which
        return [
            Check(
                "database",
                "fail",
                f"{url} unreachable: {type(error).__name__}: {error}",
                "check DATABASE_URL and that the server runs and accepts this host",
            )
        ]
    if current != head:
        return [
            Check(
                "database",
                "fail",
                f"{url} at revision {current}, the hub needs {head}",
                "run `hub migrate`",
            )
        ]
    return [Check("database", "ok", f"{url} reachable, at the newest migration ({head})")]


def check_keys(settings: Settings) -> list[Check]:
    from dashboard.models import Credential
    from dashboard.services.vault import Vault, VaultError, key_problems

    try:
        vault = Vault.from_settings(settings)
    except VaultError as error:
        return [Check("keys", "fail", str(error), "fix HUB_ENCRYPTION_KEYS")]
    checks = []
    source = "HUB_ENCRYPTION_KEYS" if settings.encryption_keys else "generated key file"
    described = ", ".join(f"{k} ({vault.fingerprints[k]})" for k in vault.key_ids)
    if not settings.encryption_keys:
        checks.append(
            Check(
                "keys",
                "warn" if not is_production(settings) else "fail",
                "no HUB_ENCRYPTION_KEYS: using the key generated into "
                f"{settings.data_dir / 'secret.key'}",
                "back it up with the database; with several hosts set the same "
                "HUB_ENCRYPTION_KEYS on each (`hub keys generate`)",
            )
        )
    try:
        with Session(get_engine()) as session:
            has_fingerprints = sa.inspect(session.connection()).has_table("encryption_keys")
            mismatches = key_problems(session=session, vault=vault) if has_fingerprints else []
            undecryptable: dict[str, int] = {}
            total = 0
            for row in session.exec(select(Credential).order_by(col(Credential.key_id))).all():
                total += 1
                try:
                    vault.decrypt_credential(
                        row.key_id, row.ciphertext, integration_id=row.integration_id, kind=row.kind
                    )
                except VaultError:
                    undecryptable[row.key_id] = undecryptable.get(row.key_id, 0) + 1
    except Exception as error:  # reported by the database check already
        return [
            *checks,
            Check(
                "credentials",
                "fail",
                f"not checked: {type(error).__name__}",
                "fix the database first",
            ),
        ]
    for problem in mismatches:
        checks.append(Check("keys", "fail", problem, "share HUB_ENCRYPTION_KEYS across hosts"))
    if undecryptable:
        listed = ", ".join(f"{n} under {k!r}" for k, n in sorted(undecryptable.items()))
        missing = [k for k in undecryptable if k not in vault.key_ids]
        fix = (
            f"add key(s) {', '.join(missing)} back to HUB_ENCRYPTION_KEYS"
            if missing
            else "configure the key these credentials were encrypted with (another host's "
            "HUB_ENCRYPTION_KEYS or the backup's keys file); otherwise reconnect them"
        )
        checks.append(Check("credentials", "fail", f"{listed} do not decrypt", fix))
    else:
        checks.append(Check("credentials", "ok", f"all {total} decrypt ({source}: {described})"))
    return checks


def check_configuration(settings: Settings) -> list[Check]:
    problems = production_problems(settings)
    if problems:
        return [
            Check("configuration", "fail", p, "see docs/configuration.md#production")
            for p in problems
        ]
    profile = "production profile" if is_production(settings) else "not the production profile"
    return [Check("configuration", "ok", f"{profile}; nothing refused")]


def check_disk(settings: Settings) -> list[Check]:
    path = settings.data_dir if settings.data_dir.exists() else settings.data_dir.parent
    free = shutil.disk_usage(path).free
    detail = f"{free / 1024**3:.1f} GiB free at {path}"
    if free < DISK_FAIL_BYTES:
        return [Check("disk", "fail", detail, "free space: SQLite, backups and logs need it")]
    if free < DISK_WARN_BYTES:
        return [Check("disk", "warn", detail, "free space before it runs out")]
    return [Check("disk", "ok", detail)]


def check_scheduler(settings: Settings) -> list[Check]:
    from dashboard.models import SchedulerLease
    from dashboard.services.scheduler import LEASE_NAME, lease_holder

    try:
        with Session(get_engine()) as session:
            holder = lease_holder(session)
            lease = session.get(SchedulerLease, LEASE_NAME)
    except Exception as error:
        return [
            Check(
                "scheduler",
                "fail",
                f"not checked: {type(error).__name__}",
                "fix the database first",
            )
        ]
    if holder is not None and lease is not None:
        return [
            Check(
                "scheduler", "ok", f"lease held by {holder} until {lease.expires_at:%H:%M:%S} UTC"
            )
        ]
    fix = (
        "start the hub (`hub serve`); with HUB_SCHEDULER_ENABLED=false on every process "
        "nothing schedules syncs"
    )
    return [Check("scheduler", "warn", "no hub process holds the scheduler lease", fix)]


# --- over HTTP -----------------------------------------------------------------------------


async def check_public_url(settings: Settings, client: httpx.AsyncClient) -> list[Check]:
    public = settings.public_url or ""
    checks = []
    if public.startswith("https://"):
        checks.append(Check("public url", "ok", f"{public} is https"))
    else:
        status: Status = "fail" if is_production(settings) else "warn"
        checks.append(
            Check(
                "public url",
                status,
                f"{public} is not https",
                "set HUB_PUBLIC_URL to the https:// URL behind your TLS proxy; "
                "platforms redirect and deliver webhooks only there",
            )
        )
    try:
        response = await client.get(f"{public}/api/health")
        answered = response.status_code == 200 and response.json().get("status") == "ok"
    except (httpx.HTTPError, ValueError) as error:
        checks.append(
            Check(
                "public url",
                "fail",
                f"{public}/api/health unreachable from this host: {type(error).__name__}: {error}",
                "start the hub, and check DNS, the proxy and its certificate",
            )
        )
        return checks
    if not answered:
        checks.append(
            Check(
                "public url",
                "fail",
                f"{public}/api/health answered {response.status_code}, not the hub's health",
                "point the proxy at the hub (docs/deploy.md)",
            )
        )
    else:
        checks.append(Check("public url", "ok", f"{public}/api/health reached from this host"))
    return checks


def check_clock(answers: list[_PlatformAnswer | None], now: datetime) -> list[Check]:
    dated = [a.date for a in answers if a is not None and a.date is not None]
    if not dated:
        return [
            Check(
                "clock",
                "warn",
                "no platform answered with a Date header to compare",
                "make sure NTP (systemd-timesyncd, chrony) keeps this host's clock",
            )
        ]
    skew = max((now - date).total_seconds() for date in dated)
    skew = max(skew, *((date - now).total_seconds() for date in dated))
    detail = f"{skew:.0f} s from the platforms' clocks"
    if skew > CLOCK_FAIL_SECONDS:
        return [
            Check(
                "clock",
                "fail",
                detail,
                "sync this host's clock (NTP): OAuth callbacks, "
                "webhooks and token expiry depend on it",
            )
        ]
    if skew > CLOCK_WARN_SECONDS:
        return [Check("clock", "warn", detail, "enable NTP on this host")]
    return [Check("clock", "ok", detail)]


# --- all of them ---------------------------------------------------------------------------


async def run_doctor(
    *,
    settings: Settings | None = None,
    shop: str | None = None,
    transport: httpx.AsyncBaseTransport | None = None,
) -> DoctorReport:
    """Every check, in the order an operator fixes them."""
    settings = settings or get_settings()
    report = DoctorReport()
    report.checks += check_configuration(settings)
    report.checks += await asyncio.to_thread(check_database)
    report.checks += await asyncio.to_thread(check_keys, settings)
    async with httpx.AsyncClient(timeout=10, transport=transport) as client:
        public, (shopify, shopify_answer), (amazon, amazon_answer) = await asyncio.gather(
            check_public_url(settings, client),
            check_shopify(settings, client, shop),
            check_amazon(settings, client),
        )
    now = datetime.now(UTC)
    report.checks += public + shopify + amazon
    report.checks += await asyncio.to_thread(check_amazon_secret, settings)
    report.checks += check_clock([shopify_answer, amazon_answer], now)
    report.checks += check_disk(settings)
    report.checks += await asyncio.to_thread(check_scheduler, settings)
    return report


def format_report(report: DoctorReport) -> str:
    lines = []
    for check in report.checks:
        lines.append(f"{check.status:4}  {check.name:14} {check.detail}")
        if check.fix and check.status != "ok":
            lines.append(f"{'':20}fix: {check.fix}")
    failed = sum(check.status == "fail" for check in report.checks)
    warned = sum(check.status == "warn" for check in report.checks)
    lines.append(f"{failed} failed, {warned} warning(s), {len(report.checks)} checks")
    return "\n".join(lines)
