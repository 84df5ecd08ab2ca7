"""`hub users`: create users, reset passwords, the first admin, the list (as Settings -> Users
does)."""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path
from typing import Any

from dashboard.cli import users_exist
from dashboard.data_dir import create_private_file, secure_data_dir
from dashboard.production_profile import is_production
from dashboard.settings import get_settings


def _fail(message: str, code: int = 2) -> int:
    print(f"hub: {message}", file=sys.stderr)
    return code


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
    if is_production(settings) and not settings.admin_password and users_exist() is False:
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


def register(sub: Any) -> None:
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
