"""`hub apikeys` as an operator runs it: the key printed once, listed by prefix, revoked."""

from __future__ import annotations

from pathlib import Path

from tests.test_cli import hub


def test_create_list_and_revoke_a_key(tmp_path: Path) -> None:
    data = tmp_path / "data"
    assert hub("migrate", data_dir=data).returncode == 0
    created = hub(
        "apikeys", "create", "--name", "warehouse", "--scope", "records:read",
        "--scope", "integrations:read", data_dir=data,
    )  # fmt: skip
    assert created.returncode == 0, created.stderr
    key = created.stdout.strip()
    assert key.startswith("chk_") and "shown only now" in created.stderr
    prefix = key.split("_")[1]
    listed = hub("apikeys", "list", data_dir=data)
    assert prefix in listed.stdout and "warehouse" in listed.stdout
    assert (
        "records:read,integrations:read" in listed.stdout
        or "integrations:read,records:read" in listed.stdout
    )
    assert key not in listed.stdout and "never used" in listed.stdout
    revoked = hub("apikeys", "revoke", prefix, data_dir=data)
    assert revoked.returncode == 0 and "revoked" in revoked.stdout
    refused = hub("apikeys", "create", "--name", "x", "--scope", "records:delete", data_dir=data)
    assert refused.returncode == 2 and "records:delete" in refused.stderr
