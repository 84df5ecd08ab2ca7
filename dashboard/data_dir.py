"""The data directory (``HUB_DATA_DIR``): the SQLite database, the generated encryption key,
the alert signing secret and the first admin's password live here.

Only the hub's own user may read it: the directory is 0700 and every file 0600, whatever the
process umask. Files are created with that mode (never created open, then narrowed), and what
an older version left readable is narrowed when the hub starts.
"""

from __future__ import annotations

import logging
import os
import secrets
from pathlib import Path

log = logging.getLogger(__name__)

PRIVATE_DIR_MODE = 0o700
PRIVATE_FILE_MODE = 0o600


def _narrow(path: Path, mode: int) -> None:
    try:
        if (path.stat().st_mode & 0o777) != mode:
            path.chmod(mode)
    except FileNotFoundError:
        pass
    except PermissionError:  # owned by another user: say so, the hub can still run
        log.warning("cannot restrict %s to mode %o: not its owner", path, mode)


def secure_data_dir(data_dir: Path) -> Path:
    """Create ``data_dir`` (0700) or narrow it and what it holds: directories 0700, files 0600."""
    data_dir.mkdir(mode=PRIVATE_DIR_MODE, parents=True, exist_ok=True)
    _narrow(data_dir, PRIVATE_DIR_MODE)
    for entry in data_dir.iterdir():
        if entry.is_symlink():
            continue
        _narrow(entry, PRIVATE_DIR_MODE if entry.is_dir() else PRIVATE_FILE_MODE)
    return data_dir


def secure_sqlite_file(path: Path) -> None:
    """Create the database file 0600 before SQLite does (its -wal and -shm files copy the
    database file's mode), and narrow an existing one and its -wal/-shm."""
    try:
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT, PRIVATE_FILE_MODE))
    except OSError:
        return  # SQLite reports an unusable path better than we could
    for suffix in ("", "-wal", "-shm", "-journal"):
        _narrow(path.with_name(path.name + suffix), PRIVATE_FILE_MODE)


def create_private_file(path: Path, text: str) -> bool:
    """Write ``text`` to a new 0600 file; False (nothing written) when it exists already.

    O_EXCL: two processes starting at once must not overwrite each other's secret.
    """
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, PRIVATE_FILE_MODE)
    except FileExistsError:
        return False
    with os.fdopen(fd, "w") as handle:
        handle.write(text)
    return True


def read_or_create_secret(path: Path) -> str:
    """The secret kept in ``path`` (0600), generated on first use."""
    secure_data_dir(path.parent)
    create_private_file(path, secrets.token_urlsafe(32) + "\n")
    return path.read_text().strip()
