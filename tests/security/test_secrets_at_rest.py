"""What a local user other than the hub's sees in its data directory: nothing.

The attacker: another account on the same machine (a shared host, a compromised service)
reading the SQLite database, the generated encryption key or the first admin's password.
"""

from __future__ import annotations

import os
import sqlite3
import stat
from pathlib import Path

from tests.test_cli import hub


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_a_fresh_data_dir_is_private_whatever_the_umask(tmp_path: Path) -> None:
    data = tmp_path / "data"
    previous = os.umask(0o022)  # the usual umask: new files 0644, directories 0755
    try:
        assert hub("migrate", data_dir=data).returncode == 0
        assert hub("keys", "status", data_dir=data).returncode == 0  # generates secret.key
    finally:
        os.umask(previous)
    assert mode(data) == 0o700
    assert mode(data / "hub.db") == 0o600
    assert mode(data / "secret.key") == 0o600
    for sidecar in (data / "hub.db-wal", data / "hub.db-shm"):
        if sidecar.exists():
            assert mode(sidecar) == 0o600
    readable = [p for p in data.rglob("*") if p.is_file() and mode(p) & 0o077]
    assert readable == []


def test_an_existing_readable_data_dir_is_narrowed_at_start_up(tmp_path: Path) -> None:
    """What an older hub left behind: data/ 0755, hub.db and its WAL files 0644."""
    data = tmp_path / "data"
    data.mkdir(mode=0o755)
    data.chmod(0o755)
    connection = sqlite3.connect(data / "hub.db")
    connection.execute("PRAGMA journal_mode=WAL")
    connection.execute("CREATE TABLE leftover (x)")
    connection.commit()
    for path in data.iterdir():
        path.chmod(0o644)

    assert hub("migrate", data_dir=data).returncode == 0
    connection.close()

    assert mode(data) == 0o700
    assert mode(data / "hub.db") == 0o600
    assert [p.name for p in data.iterdir() if p.is_file() and mode(p) & 0o077] == []


def test_the_first_admin_password_never_reaches_standard_output(tmp_path: Path) -> None:
    data = tmp_path / "data"
    assert hub("migrate", data_dir=data).returncode == 0
    first = hub("users", "ensure-admin", data_dir=data)
    assert first.returncode == 0
    named = Path(first.stdout.split("password is in ")[1].split()[0])
    assert named.parent == data and mode(named) == 0o600
    password = named.read_text().strip()
    assert len(password) >= 15
    assert password not in first.stdout + first.stderr


def test_a_generated_password_off_a_terminal_goes_to_a_private_file(tmp_path: Path) -> None:
    """`hub users create` in a script (stdout captured, stdin empty): no password printed."""
    data = tmp_path / "data"
    assert hub("migrate", data_dir=data).returncode == 0
    created = hub("users", "create", "--email", "a/../../x@example.com", data_dir=data)
    assert created.returncode == 0, created.stderr
    named = Path(created.stdout.split("password is in ")[1].split()[0])
    assert named.parent == data and mode(named) == 0o600  # the "/" did not escape data/
    assert named.read_text().strip() not in created.stdout + created.stderr
    reset = hub("users", "reset-password", "--email", "a/../../x@example.com", data_dir=data)
    assert reset.returncode == 0 and "password is in" in reset.stdout
    assert named.read_text().strip() not in reset.stdout
