"""The deploy recipe, run: the hub behind deploy/nginx/connector-hub.conf on loopback.

Debian's nginx runs the shipped site file, with only its EDIT lines replaced (free ports, a
self-signed certificate made here, the hub's port), in front of a real ``hub serve`` whose
HUB_PUBLIC_URL is the proxy's https origin. chromium signs in through it and watches the
Overview take a database write live; a signed Shopify webhook goes through it, an oversized
one is refused. What an operator checks after deploying: the cookie is Secure and HttpOnly,
the websocket is wss through the proxy, the page loads nothing from anywhere else, http
redirects to https, the hub itself listens on loopback only.

Also here, without a browser: the env file template names exactly the hub's settings and,
filled in, is a configuration the hub accepts and migrates a PostgreSQL database with.
"""

from __future__ import annotations

import base64
import contextlib
import dataclasses
import datetime as dt
import hashlib
import hmac
import ipaddress
import json
import os
import re
import shutil
import socket
import ssl
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa

from dashboard.api.shopify import MAX_WEBHOOK_BYTES
from dashboard.models import Integration, WebhookEvent
from dashboard.services.auth import SESSION_COOKIE
from dashboard.settings import Settings
from tests.browser.conftest import (
    ADMIN_EMAIL,
    ADMIN_PASSWORD,
    CHROMIUM,
    CHROMIUM_ARGS,
    PROJECT_ROOT,
    Hub,
    _free_port,
    require_chromium,
    running_hub,
    screenshot,
    sign_in,
)

DEPLOY = PROJECT_ROOT / "deploy"
SITE = DEPLOY / "nginx" / "connector-hub.conf"
ENV_TEMPLATE = DEPLOY / "hub.env"
NGINX = "/usr/sbin/nginx"
TIMEOUT = 30_000
WEBHOOK_SECRET = "proxy-test-shopify-secret"


# --- the proxy -------------------------------------------------------------------------------


def self_signed_certificate(directory: Path) -> tuple[Path, Path]:
    """A certificate for localhost (and 127.0.0.1, ::1), valid for a day; (cert, key)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = dt.datetime.now(dt.UTC)
    names = [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
             x509.IPAddress(ipaddress.ip_address("::1"))]  # fmt: skip
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName(names), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / "cert.pem", directory / "key.pem"
    cert_path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    key_path.chmod(0o600)
    return cert_path, key_path


def _ipv6_loopback() -> bool:
    try:
        with socket.socket(socket.AF_INET6) as sock:
            sock.bind(("::1", 0))
        return True
    except OSError:
        return False


@dataclasses.dataclass
class Proxy:
    https_port: int
    http_port: int
    cert: Path
    directory: Path

    @property
    def url(self) -> str:
        # Not "localhost": Reflex's frontend sends the websocket of an https page whose
        # backend host is localhost to port 443 ("via load balancer"), whatever the port.
        return f"https://127.0.0.1:{self.https_port}"


def render_site(
    site: str, *, https_port: int, http_port: int, hub_port: int, cert: Path, key: Path
) -> str:
    """The shipped site file with its EDIT lines (and the listen ports) set for loopback.
    Each replacement must hit exactly as often as the file says, so that a changed recipe
    fails here instead of silently running something else."""
    v6 = _ipv6_loopback()
    replacements = [
        (r"server 127\.0\.0\.1:3000;", f"server 127.0.0.1:{hub_port};", 1),
        (r"listen 80;", f"listen 127.0.0.1:{http_port};", 1),
        (r"listen \[::\]:80;", f"listen [::1]:{http_port};" if v6 else "", 1),
        (r"listen 443 ssl http2;", f"listen 127.0.0.1:{https_port} ssl http2;", 1),
        (r"listen \[::\]:443 ssl http2;",
         f"listen [::1]:{https_port} ssl http2;" if v6 else "", 1),
        (r"server_name hub\.example\.com;", "server_name localhost;", 2),
        (r"ssl_certificate /etc/letsencrypt/live/hub\.example\.com/fullchain\.pem;",
         f"ssl_certificate {cert};", 1),
        (r"ssl_certificate_key /etc/letsencrypt/live/hub\.example\.com/privkey\.pem;",
         f"ssl_certificate_key {key};", 1),
    ]  # fmt: skip
    for pattern, replacement, count in replacements:
        site, made = re.subn(pattern, replacement, site)
        assert made == count, f"{SITE.name}: {pattern!r} found {made} times, expected {count}"
    return site


@contextlib.contextmanager
def running_nginx(directory: Path, *, hub_port: int, https_port: int) -> Iterator[Proxy]:
    """Debian's nginx as a foreground process of this test, all its files in ``directory``,
    serving https on ``https_port`` (the port HUB_PUBLIC_URL names) and http on a free one."""
    directory.mkdir(parents=True, exist_ok=True)
    cert, key = self_signed_certificate(directory)
    proxy = Proxy(https_port=https_port, http_port=_free_port(), cert=cert, directory=directory)
    site = directory / "connector-hub.conf"
    site.write_text(
        render_site(
            SITE.read_text(), https_port=proxy.https_port, http_port=proxy.http_port,
            hub_port=hub_port, cert=cert, key=key,
        )
    )  # fmt: skip
    temp_paths = "\n".join(
        f"    {kind}_temp_path {directory / kind};"
        for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    )
    # As root, nginx's workers would switch to `nobody`, who cannot read this directory.
    user = "user root;\n" if os.geteuid() == 0 else ""
    conf = directory / "nginx.conf"
    conf.write_text(
        f"{user}worker_processes 1;\npid {directory / 'nginx.pid'};\n"
        f"error_log {directory / 'error.log'} info;\n"
        "events { worker_connections 256; }\n"
        f"http {{\n    access_log {directory / 'access.log'};\n{temp_paths}\n"
        f"    include {site};\n}}\n"
    )
    command = [NGINX, "-p", str(directory), "-c", str(conf), "-e", str(directory / "error.log")]
    checked = subprocess.run([*command, "-t"], capture_output=True, text=True, check=False)
    assert checked.returncode == 0, f"nginx -t refused the site:\n{checked.stderr}"
    process = subprocess.Popen(
        [*command, "-g", "daemon off;"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        start_new_session=True,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 20
        while True:
            with (
                contextlib.suppress(OSError),
                socket.create_connection(("127.0.0.1", proxy.https_port), timeout=1),
            ):
                break
            if process.poll() is not None or time.monotonic() > deadline:
                error = (directory / "error.log").read_text(errors="replace")[-3000:]
                raise RuntimeError(f"nginx did not start:\n{error}")
            time.sleep(0.2)
        yield proxy
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, 9)
            process.wait()


# --- what goes through it --------------------------------------------------------------------


def _hub_engine(hub: Hub) -> sa.Engine:
    return sa.create_engine(f"sqlite:///{hub.data_dir / 'hub.db'}")


def add_integration_needing_reauth(hub: Hub, name: str) -> None:
    """The database write the Overview must show without a reload."""
    now = dt.datetime.now(dt.UTC)
    engine = _hub_engine(hub)
    with engine.begin() as connection:
        connection.execute(
            sa.insert(Integration),
            [{
                "id": uuid.uuid4(), "platform": "shopify", "display_name": name,
                "shop_domain": "proxy-probe.myshopify.com", "status": "needs_reauth",
                "marketplaces": [], "shop_info": {}, "created_at": now, "updated_at": now,
            }],
        )  # fmt: skip
    engine.dispose()


def stored_webhook_ids(hub: Hub) -> set[str]:
    engine = _hub_engine(hub)
    with engine.connect() as connection:
        ids = set(connection.execute(sa.select(WebhookEvent.webhook_id)).scalars())
    engine.dispose()
    return ids


def shopify_webhook(body: bytes, *, secret: str = WEBHOOK_SECRET) -> dict[str, str]:
    digest = base64.b64encode(hmac.new(secret.encode(), body, hashlib.sha256).digest()).decode()
    return {
        "X-Shopify-Topic": "products/update",
        "X-Shopify-Hmac-Sha256": digest,
        "X-Shopify-Shop-Domain": "not-connected.myshopify.com",
        "X-Shopify-Webhook-Id": str(uuid.uuid4()),
        "Content-Type": "application/json",
    }


def non_loopback_address() -> str | None:
    """An address of this machine other than loopback, if it has one."""
    with contextlib.suppress(OSError):
        for *_, address in socket.getaddrinfo(socket.gethostname(), None, socket.AF_INET):
            if not ipaddress.ip_address(address[0]).is_loopback:
                return str(address[0])
    return None


@pytest.fixture(scope="module")
def proxied_hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Hub, Proxy]]:
    require_chromium()
    if not Path(NGINX).exists():
        pytest.skip(f"{NGINX} missing: `make test` installs Debian's nginx")
    base = tmp_path_factory.mktemp("deploy")
    https_port = _free_port()
    settings = {
        "HUB_PUBLIC_URL": f"https://127.0.0.1:{https_port}",  # local: see Proxy.url
        "HUB_SANDBOX": "false",  # no sandbox, no demo data: only what this test writes
        "HUB_SANDBOX_DEMO": "false",
        "HUB_SHOPIFY_CLIENT_ID": "proxy-test-shopify-client",
        "HUB_SHOPIFY_CLIENT_SECRET": WEBHOOK_SECRET,
        "REFLEX_BACKEND_HOST": "127.0.0.1",  # as deploy/hub.env sets it
    }
    with running_hub(base, settings) as hub:
        hub_port = int(hub.env["HUB_PORT"])
        with running_nginx(base / "nginx", hub_port=hub_port, https_port=https_port) as proxy:
            yield hub, proxy


@pytest.mark.browser
def test_through_the_proxy_sign_in_live_overview_and_webhooks(
    proxied_hub: tuple[Hub, Proxy],
) -> None:
    from playwright.sync_api import sync_playwright

    hub, proxy = proxied_hub
    public = dataclasses.replace(hub, url=proxy.url)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM, args=[*CHROMIUM_ARGS, "--ignore-certificate-errors"]
        )
        context = browser.new_context(ignore_https_errors=True)
        page = context.new_page()
        sockets: list = []
        requested: list[str] = []
        page.on("websocket", lambda socket_: sockets.append(socket_))
        page.on("request", lambda request: requested.append(request.url))

        first = page.goto(f"{proxy.url}/login")
        assert first is not None and first.status == 200
        # The proxy adds HSTS; the hub's own security headers pass through it.
        assert first.headers["strict-transport-security"] == "max-age=31536000"
        assert "frame-ancestors 'none'" in first.headers["content-security-policy"]
        sign_in(page, public, ADMIN_EMAIL, ADMIN_PASSWORD)
        page.get_by_text("No integrations yet").wait_for(timeout=TIMEOUT)

        cookie = next(c for c in context.cookies(proxy.url) if c["name"] == SESSION_COOKIE)
        assert cookie["secure"] and cookie["httpOnly"] and cookie["sameSite"] == "Strict"

        # The Overview follows the database live, over the websocket through the proxy.
        name = f"Proxy probe {uuid.uuid4().hex[:6]}"
        add_integration_needing_reauth(hub, name)
        page.get_by_role("link", name=name, exact=True).wait_for(timeout=TIMEOUT)
        screenshot(page, "deploy-proxy-overview")
        socket_url = f"wss://127.0.0.1:{proxy.https_port}/_event"
        event_sockets = [s for s in sockets if s.url.startswith(socket_url)]
        assert event_sockets, [s.url for s in sockets]
        assert not event_sockets[-1].is_closed()
        # Nothing came from anywhere but the public origin (no direct call to the hub's port).
        foreign = [u for u in requested if not u.startswith((proxy.url, "data:", "blob:"))]
        assert foreign == []
        context.close()
        browser.close()

    trust = ssl.create_default_context(cafile=str(proxy.cert))  # the test's own certificate
    with httpx.Client(base_url=proxy.url, verify=trust, timeout=30) as client:
        ready = client.get("/api/ready")
        assert ready.status_code == 200 and ready.json()["status"] == "ok"

        body = json.dumps({"id": 1, "admin_graphql_api_id": "gid://shopify/Product/1"}).encode()
        headers = shopify_webhook(body)
        accepted = client.post("/api/webhooks/shopify", content=body, headers=headers)
        assert accepted.status_code == 200, accepted.text
        assert headers["X-Shopify-Webhook-Id"] in stored_webhook_ids(hub)

        forged = shopify_webhook(body, secret="not-the-secret")
        refused = client.post("/api/webhooks/shopify", content=body, headers=forged)
        assert refused.status_code == 401
        assert forged["X-Shopify-Webhook-Id"] not in stored_webhook_ids(hub)

        # One byte over the hub's limit: refused with 413 (the proxy's limit is the hub's).
        large = b'{"pad": "' + b"x" * (MAX_WEBHOOK_BYTES - 10) + b'"}'
        assert len(large) == MAX_WEBHOOK_BYTES + 1
        oversized = shopify_webhook(large)
        too_large = client.post("/api/webhooks/shopify", content=large, headers=oversized)
        assert too_large.status_code == 413
        assert oversized["X-Shopify-Webhook-Id"] not in stored_webhook_ids(hub)

    # Plain http answers only with a redirect to https.
    redirect = httpx.get(f"http://127.0.0.1:{proxy.http_port}/login", follow_redirects=False)
    assert redirect.status_code == 301
    assert redirect.headers["location"] == "https://127.0.0.1/login"

    # The hub listens on loopback only (REFLEX_BACKEND_HOST): the proxy is the way in.
    address = non_loopback_address()
    if address is not None:
        with pytest.raises(OSError):
            socket.create_connection((address, int(hub.env["HUB_PORT"])), timeout=2).close()

    # connector-hub.service's ExecStartPost: ready now, and says so.
    waited = subprocess.run(
        [sys.executable, str(DEPLOY / "wait_ready.py"), "--timeout", "20"],
        env={**hub.env}, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert waited.returncode == 0 and '"at_head":true' in waited.stdout.replace(" ", "")


# --- the env file template -------------------------------------------------------------------


def template_variables(text: str) -> dict[str, str | None]:
    """Every variable the template names: set ones with their value, commented ones None."""
    found: dict[str, str | None] = {}
    for line in text.splitlines():
        if match := re.fullmatch(r"([A-Z][A-Z0-9_]*)=(.*)", line):
            found[match[1]] = match[2].strip('"')
        elif match := re.fullmatch(r"# ([A-Z][A-Z0-9_]*)=.*", line):
            found.setdefault(match[1], None)
    return found


def setting_variables() -> set[str]:
    names = set()
    for name, field in Settings.model_fields.items():
        alias = field.validation_alias
        choices = getattr(alias, "choices", None)
        names |= {str(c) for c in choices} if choices else {f"HUB_{name.upper()}"}
    return names - {"HUB_DATABASE_URL", "HUB_REDIS_URL"}  # the unprefixed names are listed


# Read by Reflex, granian or npm, not by the hub's settings.
SERVER_VARIABLES = {
    "GRANIAN_WORKERS", "REFLEX_BACKEND_HOST", "REFLEX_TELEMETRY_ENABLED",
    "REFLEX_CHECK_LATEST_VERSION", "NPM_CONFIG_REGISTRY",
}  # fmt: skip


def test_env_template_names_every_setting_and_nothing_else() -> None:
    names = set(template_variables(ENV_TEMPLATE.read_text()))
    assert setting_variables() - names == set(), "settings missing from deploy/hub.env"
    assert names - setting_variables() - SERVER_VARIABLES == set(), "unknown variables"


def filled_template(tmp_path: Path, database_url: str) -> dict[str, str]:
    """deploy/hub.env with its placeholders filled in as the operator would."""
    from dashboard.services.vault import generate_key_spec

    values = {k: v for k, v in template_variables(ENV_TEMPLATE.read_text()).items() if v}
    assert {k for k, v in values.items() if "CHANGE-ME" in v or "PASTE" in v} == {
        "DATABASE_URL", "HUB_ENCRYPTION_KEYS", "HUB_SHOPIFY_CLIENT_ID",
        "HUB_SHOPIFY_CLIENT_SECRET", "HUB_AMAZON_APP_ID", "HUB_AMAZON_CLIENT_ID",
        "HUB_AMAZON_CLIENT_SECRET",
    }  # fmt: skip
    values.update({
        "DATABASE_URL": database_url, "HUB_ENCRYPTION_KEYS": generate_key_spec("k1"),
        "HUB_DATA_DIR": str(tmp_path / "data"),
    })  # fmt: skip
    return values


@pytest.mark.postgres
def test_filled_in_env_template_migrates_postgres_through_hub_cli(
    tmp_path: Path, pg_database_url: str
) -> None:
    """deploy/hub-cli runs `hub` with the service's env file: what the operator does first."""
    if shutil.which("sh") is None:
        pytest.skip("no /bin/sh")
    values = filled_template(tmp_path, pg_database_url)
    env_file = tmp_path / "hub.env"
    text = ENV_TEMPLATE.read_text()
    for name in ("DATABASE_URL", "HUB_ENCRYPTION_KEYS", "HUB_DATA_DIR"):
        text = re.sub(rf"(?m)^{name}=.*$", f"{name}={values[name]}", text)
    env_file.write_text(text)
    # The app dir is this checkout; its .venv is the one `make setup` made.
    env = {
        "PATH": os.environ["PATH"], "HOME": os.environ.get("HOME", str(tmp_path)),
        "HUB_ENV_FILE": str(env_file), "HUB_APP_DIR": str(PROJECT_ROOT),
        "HUB_SERVICE_USER": subprocess.run(
            ["id", "-un"], capture_output=True, text=True, check=True
        ).stdout.strip(),
    }  # fmt: skip
    if not (PROJECT_ROOT / ".venv" / "bin" / "hub").exists():
        pytest.skip("no .venv/bin/hub: `make setup` makes it")

    def hub_cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(DEPLOY / "hub-cli"), *args], env=env, capture_output=True, text=True,
            timeout=120, check=False,
        )  # fmt: skip

    migrated = hub_cli("migrate")
    assert migrated.returncode == 0, migrated.stderr
    assert "database at revision" in migrated.stdout
    status = hub_cli("keys", "status")
    assert status.returncode == 0, status.stderr
    assert "k1" in status.stdout
    # docs/deploy.md's rollback, through the same wrapper: one migration down, then up again.
    head = migrated.stdout.split()[-1]
    assert hub_cli("alembic", "downgrade", "-1").returncode == 0
    current = hub_cli("alembic", "current")
    assert current.returncode == 0 and re.search(r"\b[0-9a-f]{12}\b", current.stdout)
    assert head not in current.stdout
    assert hub_cli("migrate").stdout.split()[-1] == head
    # A template left with its https public URL but plain http is refused, naming it.
    env_file.write_text(text.replace("HUB_PUBLIC_URL=https://", "HUB_PUBLIC_URL=http://"))
    refused = hub_cli("migrate")
    assert refused.returncode != 0 and "HUB_PUBLIC_URL" in refused.stderr


def test_systemd_units_pass_systemd_analyze_verify(tmp_path: Path) -> None:
    """The units as installed (paths pointed at this checkout): systemd's own check finds no
    unknown directive, bad value or missing executable. Running them needs a systemd host."""
    if shutil.which("systemd-analyze") is None:
        pytest.skip("systemd-analyze missing (Debian's systemd package)")
    if not (PROJECT_ROOT / ".venv" / "bin" / "hub").exists():
        pytest.skip("no .venv/bin/hub: `make setup` makes it")
    user = subprocess.run(["id", "-un"], capture_output=True, text=True, check=True).stdout
    units = []
    for unit in sorted((DEPLOY / "systemd").glob("*.service")):
        text = unit.read_text().replace("/opt/connector-hub", str(PROJECT_ROOT))
        text = text.replace("/etc/connector-hub/hub.env", str(ENV_TEMPLATE))
        text = re.sub(r"(?m)^(User|Group)=hub$", rf"\1={user.strip()}", text)
        (tmp_path / unit.name).write_text(text)
        units.append(str(tmp_path / unit.name))
    assert len(units) == 3  # the hub, its sync worker, the sandbox
    verified = subprocess.run(
        ["systemd-analyze", "verify", *units], capture_output=True, text=True, check=False
    )
    assert verified.returncode == 0 and verified.stderr == "", verified.stderr
