"""Users, passwords, sign-in sessions and roles.

Passwords are hashed with scrypt (``cryptography``); session tokens are random and only
their SHA-256 is stored. Repeated failures lock an account for a growing period.
"""

from __future__ import annotations

import base64
import hashlib
import re
import secrets
import uuid
from datetime import UTC, datetime, timedelta

from cryptography.exceptions import InvalidKey
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt
from sqlmodel import Session, col, func, select

from dashboard.models import Role, User, UserSession
from dashboard.services.audit import record_audit
from dashboard.settings import get_settings

_SCRYPT_N, _SCRYPT_R, _SCRYPT_P = 2**14, 8, 1
_FREE_FAILURES = 5  # failures before lock-out starts
_MAX_LOCK = timedelta(minutes=15)
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
MIN_PASSWORD_LENGTH = 10

ROLE_RANK = {Role.VIEWER: 0, Role.MANAGER: 1, Role.ADMIN: 2}


class LoginRefused(Exception):
    """Sign-in refused; the message is safe to show (it never says which part was wrong)."""


class PermissionDenied(Exception):
    """The signed-in user's role does not allow this action."""


class UserError(ValueError):
    """Invalid input for a user operation; the message says what to fix."""


# --- passwords ---------------------------------------------------------------------------


def hash_password(password: str) -> str:
    salt = secrets.token_bytes(16)
    key = Scrypt(salt=salt, length=32, n=_SCRYPT_N, r=_SCRYPT_R, p=_SCRYPT_P).derive(
        password.encode()
    )
    b64 = base64.b64encode
    return f"scrypt${_SCRYPT_N}${_SCRYPT_R}${_SCRYPT_P}${b64(salt).decode()}${b64(key).decode()}"


def verify_password(password: str, stored: str) -> bool:
    try:
        scheme, n, r, p, salt, key = stored.split("$")
        if scheme != "scrypt":
            return False
        Scrypt(salt=base64.b64decode(salt), length=32, n=int(n), r=int(r), p=int(p)).verify(
            password.encode(), base64.b64decode(key)
        )
        return True
    except (InvalidKey, ValueError):
        return False


# A hash to verify against when the email is unknown, so timing does not reveal accounts.
_DUMMY_HASH = hash_password(secrets.token_urlsafe(16))


def generate_password() -> str:
    return secrets.token_urlsafe(15)


def _check_password_strength(password: str) -> None:
    if len(password) < MIN_PASSWORD_LENGTH:
        raise UserError(f"password must have at least {MIN_PASSWORD_LENGTH} characters")


# --- roles -------------------------------------------------------------------------------


def has_role(user: User | None, role: Role) -> bool:
    if user is None or user.disabled:
        return False
    return ROLE_RANK[Role(user.role)] >= ROLE_RANK[role]


def require_role(user: User | None, role: Role) -> User:
    """Return the user when their role reaches ``role``; raise PermissionDenied otherwise."""
    if user is None:
        raise PermissionDenied("sign in first")
    if not has_role(user, role):
        raise PermissionDenied(f"this needs the {role.value} role; you are {user.role}")
    return user


# --- users -------------------------------------------------------------------------------


def normalize_email(email: str) -> str:
    email = email.strip().lower()
    if not _EMAIL.match(email) or len(email) > 320:
        raise UserError(f"{email!r} is not an email address")
    return email


def get_user_by_email(*, session: Session, email: str) -> User | None:
    return session.exec(select(User).where(User.email == email.strip().lower())).first()


def create_user(
    *,
    session: Session,
    email: str,
    role: Role | str,
    password: str | None = None,
    actor: User | None = None,
) -> tuple[User, str | None]:
    """Create a user; returns (user, generated password or None when one was given)."""
    email = normalize_email(email)
    role = Role(role)
    if get_user_by_email(session=session, email=email):
        raise UserError(f"a user with email {email} exists already")
    generated = None
    if password is None:
        password = generated = generate_password()
    _check_password_strength(password)
    user = User(email=email, role=role.value, password_hash=hash_password(password))
    session.add(user)
    record_audit(
        session=session,
        actor=actor.email if actor else "system",
        action="user.create",
        target=email,
        context={"role": role.value},
    )
    session.flush()
    return user, generated


def list_users(*, session: Session) -> list[User]:
    return list(session.exec(select(User).order_by(col(User.email))).all())


def count_admins(*, session: Session) -> int:
    statement = (
        select(func.count())
        .select_from(User)
        .where(User.role == Role.ADMIN.value, col(User.disabled).is_(False))
    )
    return int(session.exec(statement).one())


def set_role(*, session: Session, user_id: uuid.UUID, role: Role | str, actor: User) -> User:
    require_role(actor, Role.ADMIN)
    user = session.get(User, user_id)
    if user is None:
        raise UserError("no such user")
    role = Role(role)
    if user.role == Role.ADMIN.value and role != Role.ADMIN and count_admins(session=session) <= 1:
        raise UserError("the last admin cannot lose the admin role")
    user.role = role.value
    session.add(user)
    record_audit(
        session=session,
        actor=actor.email,
        action="user.role",
        target=user.email,
        context={"role": role.value},
    )
    return user


def set_disabled(*, session: Session, user_id: uuid.UUID, disabled: bool, actor: User) -> User:
    require_role(actor, Role.ADMIN)
    user = session.get(User, user_id)
    if user is None:
        raise UserError("no such user")
    if user.id == actor.id and disabled:
        raise UserError("you cannot disable your own account")
    if disabled and user.role == Role.ADMIN.value and count_admins(session=session) <= 1:
        raise UserError("the last admin cannot be disabled")
    user.disabled = disabled
    session.add(user)
    if disabled:
        end_sessions(session=session, user_id=user.id)
    record_audit(
        session=session,
        actor=actor.email,
        action="user.disable" if disabled else "user.enable",
        target=user.email,
    )
    return user


def reset_password(
    *, session: Session, user_id: uuid.UUID, actor: User | None, password: str | None = None
) -> str | None:
    """Give a user a new password, generated (and returned, to be shown once) unless one is
    given; the user is signed out everywhere and any sign-in lock-out is lifted.

    ``actor`` is the admin doing it, or None for the operator at the command line (who holds
    the database anyway). Admins change their own password with ``change_password``, which
    asks for the current one.
    """
    if actor is not None:
        require_role(actor, Role.ADMIN)
    user = session.get(User, user_id)
    if user is None:
        raise UserError("no such user")
    if actor is not None and actor.id == user.id:
        raise UserError(
            "change your own password on the Account page (it asks for the current one)"
        )
    generated = None
    if password is None:
        password = generated = generate_password()
    _check_password_strength(password)
    user.password_hash = hash_password(password)
    user.failed_logins, user.locked_until = 0, None
    session.add(user)
    ended = end_sessions(session=session, user_id=user.id)
    record_audit(
        session=session,
        actor=actor.email if actor else "cli",
        action="user.password_reset",
        target=user.email,
        context={"sessions_ended": ended},
    )
    return generated


def change_password(
    *, session: Session, user: User, current: str, new: str, keep_token: str | None = None
) -> None:
    """A signed-in user replaces their own password, proving the current one. Their other
    sessions end; the one holding ``keep_token`` (the browser doing it) stays signed in.

    A wrong current password counts as a failed sign-in (and is committed), so a stolen session
    cannot be used to guess the password faster than the sign-in page allows.
    """
    now = datetime.now(UTC)
    if user.locked_until and user.locked_until > now:
        seconds = int((user.locked_until - now).total_seconds()) + 1
        raise UserError(f"Too many wrong passwords. Try again in {seconds} seconds.")
    if not verify_password(current, user.password_hash):
        _count_failure(session=session, user=user, now=now)
        raise UserError("the current password is wrong")
    if new == current:
        raise UserError("the new password must differ from the current one")
    _check_password_strength(new)
    user.password_hash = hash_password(new)
    user.failed_logins, user.locked_until = 0, None
    session.add(user)
    ended = end_sessions(session=session, user_id=user.id, keep_token=keep_token)
    record_audit(
        session=session,
        actor=user.email,
        action="user.password_change",
        target=user.email,
        context={"sessions_ended": ended},
    )


# --- sign-in -----------------------------------------------------------------------------


def _token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _count_failure(*, session: Session, user: User, now: datetime) -> None:
    """Count a wrong password and commit it, so the caller's refusal cannot roll it back."""
    user.failed_logins += 1
    if user.failed_logins >= _FREE_FAILURES:
        # 2 s, 4 s, 8 s ... capped: slows guessing to a crawl, never locks out for long.
        delay = timedelta(seconds=2 ** (user.failed_logins - _FREE_FAILURES + 1))
        user.locked_until = now + min(delay, _MAX_LOCK)
    session.add(user)
    session.commit()


def authenticate(*, session: Session, email: str, password: str) -> User:
    """Check credentials; raises LoginRefused. Failures lock the account for a while."""
    now = datetime.now(UTC)
    user = get_user_by_email(session=session, email=email)
    if user is None:
        verify_password(password, _DUMMY_HASH)
        raise LoginRefused("Wrong email or password.")
    if user.locked_until and user.locked_until > now:
        seconds = int((user.locked_until - now).total_seconds()) + 1
        raise LoginRefused(f"Too many failed sign-ins. Try again in {seconds} seconds.")
    if not verify_password(password, user.password_hash):
        _count_failure(session=session, user=user, now=now)
        raise LoginRefused("Wrong email or password.")
    if user.disabled:
        raise LoginRefused("This account is disabled. Ask an admin to enable it.")
    user.failed_logins, user.locked_until, user.last_login_at = 0, None, now
    session.add(user)
    return user


def create_session(*, session: Session, user: User) -> str:
    token = secrets.token_urlsafe(32)
    hours = get_settings().session_hours
    session.add(
        UserSession(
            token_hash=_token_hash(token),
            user_id=user.id,
            expires_at=datetime.now(UTC) + timedelta(hours=hours),
        )
    )
    record_audit(session=session, actor=user.email, action="user.sign_in")
    session.flush()
    return token


def user_for_token(*, session: Session, token: str | None) -> User | None:
    if not token:
        return None
    row = session.exec(
        select(UserSession).where(UserSession.token_hash == _token_hash(token))
    ).first()
    if row is None or row.revoked_at is not None or row.expires_at <= datetime.now(UTC):
        return None
    user = session.get(User, row.user_id)
    if user is None or user.disabled:
        return None
    return user


def revoke_session(*, session: Session, token: str | None) -> None:
    if not token:
        return
    row = session.exec(
        select(UserSession).where(UserSession.token_hash == _token_hash(token))
    ).first()
    if row is not None and row.revoked_at is None:
        row.revoked_at = datetime.now(UTC)
        session.add(row)


def end_sessions(*, session: Session, user_id: uuid.UUID, keep_token: str | None = None) -> int:
    """Sign a user out everywhere, except the session holding ``keep_token``; returns how many
    sessions ended."""
    keep = _token_hash(keep_token) if keep_token else None
    now = datetime.now(UTC)
    ended = 0
    for row in session.exec(
        select(UserSession).where(
            UserSession.user_id == user_id,
            col(UserSession.revoked_at).is_(None),
            col(UserSession.expires_at) > now,
        )
    ).all():
        if row.token_hash != keep:
            row.revoked_at = now
            session.add(row)
            ended += 1
    return ended


def ensure_admin(
    *, session: Session, email: str | None = None, password: str | None = None
) -> tuple[User, str | None] | None:
    """Create the first admin when there is no user; returns (user, generated password)."""
    if session.exec(select(User).limit(1)).first() is not None:
        return None
    return create_user(
        session=session,
        email=email or "admin@localhost.localdomain",
        role=Role.ADMIN,
        password=password,
    )
