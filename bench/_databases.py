"""A database of a bench's own: a fresh PostgreSQL database on the server a URL names
(dropped afterwards), or a temporary SQLite file. A bench never writes into the database it
is pointed at, which is usually the server's ``postgres``."""

from __future__ import annotations

import contextlib
import tempfile
import uuid
from collections.abc import Iterator


@contextlib.contextmanager
def fresh_database(url: str | None) -> Iterator[str]:
    """The URL of a new, empty database beside ``url`` (PostgreSQL), else of a SQLite file."""
    if url is None or not url.startswith("postgresql"):
        with tempfile.TemporaryDirectory(prefix="hub-bench-db-") as tmp:
            yield f"sqlite:///{tmp}/hub.db"
        return
    import psycopg

    plain = url.replace("postgresql+psycopg://", "postgresql://")
    name = f"hub_bench_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(plain, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield url.rsplit("/", 1)[0] + f"/{name}"
    finally:
        with psycopg.connect(plain, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
