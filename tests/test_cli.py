"""The operator's `hub` command, run as a real process like an operator would."""

from __future__ import annotations

import contextlib
import os
import pty
import socket
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from dashboard.services.vault import generate_key_spec


def hub(*args: str, data_dir: Path, stdin: str = "", env: dict[str, str] | None = None):
    environment = {
        k: v for k, v in os.environ.items() if not k.startswith("HUB_") and k != "DATABASE_URL"
    }
    environment.update({"HUB_DATA_DIR": str(data_dir), "HUB_ENV": "test", **(env or {})})
    return subprocess.run(
        [sys.executable, "-m", "dashboard.cli", *args],
        input=stdin,
        capture_output=True,
        text=True,
        env=environment,
        timeout=120,
        cwd=data_dir.parent,
    )


def test_first_admin_then_users_and_key_rotation(tmp_path: Path) -> None:
    data = tmp_path / "data"
    assert hub("migrate", data_dir=data).returncode == 0

    first = hub("users", "ensure-admin", data_dir=data)
    assert first.returncode == 0
    assert "first admin created: admin@localhost.localdomain" in first.stdout
    # `make run` keeps this output in its log: the password is in a private file it names.
    password_file = Path(first.stdout.split("password is in ")[1].split()[0])
    assert password_file.parent == data
    assert stat.S_IMODE(password_file.stat().st_mode) == 0o600
    password = password_file.read_text().strip()
    assert len(password) >= 15
    assert password not in first.stdout and password not in first.stderr

    again = hub("users", "ensure-admin", data_dir=data)
    assert "users exist already" in again.stdout and "password" not in again.stdout

    created = hub(
        "users",
        "create",
        "--email",
        "v@example.com",
        "--role",
        "viewer",
        data_dir=data,
        stdin="a long password\n",
    )
    assert created.returncode == 0 and "password:" not in created.stdout
    listed = hub("users", "list", data_dir=data).stdout
    assert "v@example.com" in listed and "viewer" in listed

    duplicate = hub("users", "create", "--email", "v@example.com", data_dir=data, stdin="x" * 12)
    assert duplicate.returncode == 2 and "exists already" in duplicate.stderr

    status = hub("keys", "status", data_dir=data)  # generates the embedded default key
    assert "local1" in status.stdout and "newest" in status.stdout
    rotated = hub(
        "keys",
        "rotate",
        data_dir=data,
        env={
            "HUB_ENCRYPTION_KEYS": f"{generate_key_spec('k2')},"
            + (data / "secret.key").read_text().strip()
        },
    )
    assert rotated.returncode == 0 and "under key k2" in rotated.stdout


def test_bad_configuration_names_the_variable(tmp_path: Path) -> None:
    result = hub("migrate", data_dir=tmp_path / "data", env={"HUB_PORT": "eighty"})
    assert result.returncode == 2
    assert "HUB_PORT" in result.stderr and "Traceback" not in result.stderr


def test_wrong_encryption_key_is_a_clear_error(tmp_path: Path) -> None:
    result = hub(
        "keys", "status", data_dir=tmp_path / "data", env={"HUB_ENCRYPTION_KEYS": "k1:tooshort"}
    )
    assert result.returncode == 2 and "32 bytes" in result.stderr


def test_operator_resets_a_password_and_the_old_one_stops_working(tmp_path: Path) -> None:
    import sqlalchemy as sa
    from sqlmodel import Session, select

    from dashboard.models import AuditLog, User
    from dashboard.services.auth import create_session, user_for_token, verify_password

    data = tmp_path / "data"
    assert hub("migrate", data_dir=data).returncode == 0
    hub("users", "create", "--email", "m@example.com", data_dir=data, stdin="first password\n")
    engine = sa.create_engine(f"sqlite:///{data / 'hub.db'}")

    def user() -> User:
        with Session(engine) as session:
            return session.exec(select(User).where(User.email == "m@example.com")).one()

    with Session(engine, expire_on_commit=False) as session:
        token = create_session(session=session, user=user())
        session.commit()

    generated = hub("users", "reset-password", "--email", "M@example.com", data_dir=data)
    assert generated.returncode == 0, generated.stderr
    assert "m@example.com reset" in generated.stdout
    # Not at a terminal: the password is in a private file the output names.
    password_file = Path(generated.stdout.split("password is in ")[1].split()[0])
    password = password_file.read_text().strip()
    assert password not in generated.stdout
    assert verify_password(password, user().password_hash)
    assert not verify_password("first password", user().password_hash)
    with Session(engine) as session:
        assert user_for_token(session=session, token=token) is None  # signed out everywhere
        audit = session.exec(select(AuditLog).where(AuditLog.action == "user.password_reset")).one()
        assert (audit.actor, audit.target) == ("cli", "m@example.com")

    given = hub(
        "users", "reset-password", "--email", "m@example.com", data_dir=data, stdin="chosen one!\n"
    )
    assert given.returncode == 0 and "password:" not in given.stdout
    assert verify_password("chosen one!", user().password_hash)

    short = hub("users", "reset-password", "--email", "m@example.com", data_dir=data, stdin="x\n")
    assert short.returncode == 2 and "at least 10" in short.stderr
    unknown = hub("users", "reset-password", "--email", "nobody@example.com", data_dir=data)
    assert unknown.returncode == 2 and "no user with email nobody@example.com" in unknown.stderr
    engine.dispose()


def test_at_a_terminal_a_generated_password_is_shown_to_the_operator(tmp_path: Path) -> None:
    """A person at a terminal reads it there; no file keeps it."""
    data = tmp_path / "data"
    assert hub("migrate", data_dir=data).returncode == 0
    controller, terminal = pty.openpty()
    environment = {
        k: v for k, v in os.environ.items() if not k.startswith("HUB_") and k != "DATABASE_URL"
    }
    environment.update({"HUB_DATA_DIR": str(data), "HUB_ENV": "test"})
    process = subprocess.run(
        [sys.executable, "-m", "dashboard.cli", "users", "create", "--email", "t@example.com"],
        stdin=terminal,
        stdout=terminal,
        stderr=subprocess.DEVNULL,
        env=environment,
        timeout=120,
        cwd=tmp_path,
    )
    os.close(terminal)
    output = b""
    with contextlib.suppress(OSError):  # EIO once everything written was read
        while chunk := os.read(controller, 4096):
            output += chunk
    os.close(controller)
    assert process.returncode == 0
    assert "password: " in output.decode() and "shown once" in output.decode()
    assert not list(data.glob("password-*"))


@pytest.fixture
def reflex_runs(
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[list[tuple[list[str], dict[str, str]]]]:
    """``hub serve`` in this process with the default settings, Reflex itself not started:
    the commands and environments it would have been started with."""
    from dashboard import cli
    from dashboard.settings import get_settings

    for name in ("HUB_PORT", "HUB_PUBLIC_URL", "HUB_SANDBOX"):
        monkeypatch.delenv(name, raising=False)
    get_settings.cache_clear()
    started: list[tuple[list[str], dict[str, str]]] = []
    monkeypatch.setattr(cli, "run_reflex", lambda command, env: started.append((command, env)) or 0)
    yield started
    get_settings.cache_clear()


def test_serve_announces_the_address_of_the_port_it_was_given(
    reflex_runs: list[tuple[list[str], dict[str, str]]], capsys: pytest.CaptureFixture[str]
) -> None:
    from dashboard import cli

    assert cli.main(["serve", "--port", "3300"]) == 0
    ((command, env),) = reflex_runs
    assert command[command.index("--frontend-port") + 1] == "3300"
    assert env["HUB_PORT"] == "3300"
    assert "http://localhost:3300" in capsys.readouterr().out
    # Reflex finds the Node.js pyproject.toml installs, in the version it asks for.
    from reflex import constants

    node_bin = cli.node_bin_dir()
    assert node_bin is not None and env["PATH"].split(os.pathsep)[0] == str(node_bin)
    version = subprocess.run(
        [str(node_bin / "node"), "--version"], capture_output=True, text=True, check=True
    ).stdout
    wanted = tuple(int(n) for n in constants.Node.MIN_VERSION.split("."))
    assert tuple(int(n) for n in version.strip().lstrip("v").split(".")) >= wanted


def test_serve_on_a_port_in_use_says_so_before_building_anything(
    reflex_runs: list[tuple[list[str], dict[str, str]]], capsys: pytest.CaptureFixture[str]
) -> None:
    from dashboard import cli

    with socket.socket() as other:
        other.bind(("127.0.0.1", 0))
        other.listen()
        port = other.getsockname()[1]
        assert cli.main(["serve", "--port", str(port)]) == 2
    assert reflex_runs == []
    error = capsys.readouterr().err
    assert f"port {port} is in use" in error and f"HUB_PORT={port + 1} make run" in error


def test_serve_leaves_out_reflex_hints_that_do_not_apply() -> None:
    from dashboard import cli

    assert (
        cli.quiet("Success: Initialized dashboard. Run `uv run reflex run` to start the app.\n")
        == "Success: Initialized dashboard.\n"
    )
    assert cli.quiet("App running at: http://0.0.0.0:3000/\n") == (
        "App running at: http://0.0.0.0:3000/\n"
    )
