"""Users, passwords, sign-in sessions and roles.

Passwords are hashed with argon2id at OWASP's parameters; older scrypt hashes still verify
and are replaced on the next successful sign-in. Session tokens are random and only their
SHA-256 is stored. Sign-in attempts are counted per account and per client address with one
atomic database upsert *before* the password is checked (``sign_in_throttle``), so parallel
guesses cannot all be checked; unknown, disabled and wrong look the same, in answer and time.
"""

from __future__ import annotations

import base64
import hashlib
import re
import secrets
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from cryptography.exceptions import InvalidKey
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt
from sqlmodel import Session, col, func, select

from dashboard.models import Role, User, UserSession
from dashboard.services.audit import record_audit
from dashboard.services.sign_in_throttle import (
    ACCOUNT_ATTEMPTS,
    ADDRESS_ATTEMPTS,
    account_key,
    address_key,
    clear_attempts,
    give_back_attempt,
    take_attempt,
)
from dashboard.services.sign_in_throttle import THROTTLE_WINDOW as THROTTLE_WINDOW
from dashboard.services.sign_in_throttle import (
    prune_sign_in_throttles as prune_sign_in_throttles,
)
from dashboard.settings import get_settings

# OWASP Password Storage Cheat Sheet: argon2id, m=19 MiB, t=2, p=1. The modest memory keeps
# the cost of the (throttled) concurrent sign-ins bounded: ~19 MiB each.
_PASSWORD_HASHER = PasswordHasher(time_cost=2, memory_cost=19 * 1024, parallelism=1)
# A window of sign-in attempts: per account (existing or not) and per client address. Every
# attempt counts when it starts; a success gives its slots back.
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
MIN_PASSWORD_LENGTH = 10
SESSION_COOKIE = "hub_session"  # HttpOnly, set only by the sign-in route (dashboard/api/session.py)
REFUSED = "Wrong email or password."

ROLE_RANK = {Role.VIEWER: 0, Role.MANAGER: 1, Role.ADMIN: 2}


class LoginRefused(Exception):
    """Sign-in refused; the message is safe to show (it never says which part was wrong,
    nor whether the account exists or is disabled)."""


class SignInThrottled(LoginRefused):
    """Too many sign-in attempts for this account or address; ``retry_after`` in seconds."""

    def __init__(self, retry_after: int) -> None:
        super().__init__(f"Too many sign-in attempts. Try again in {retry_after} seconds.")
        self.retry_after = retry_after


class PermissionDenied(Exception):
    """The signed-in user's role does not allow this action."""


class UserError(ValueError):
    """Invalid input for a user operation; the message says what to fix."""


# --- passwords ---------------------------------------------------------------------------


def hash_password(password: str) -> str:
    """An argon2id PHC string (``$argon2id$v=19$m=...``) with a random salt."""
    return _PASSWORD_HASHER.hash(password)


def _verify_scrypt(password: str, stored: str) -> bool:
    """Hashes made before argon2id: ``scrypt$N$r$p$salt$key``."""
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


def verify_password(password: str, stored: str) -> bool:
    if stored.startswith("$argon2"):
        try:
            return _PASSWORD_HASHER.verify(stored, password)
        except (VerificationError, InvalidHashError):
            return False
    return _verify_scrypt(password, stored)


def password_needs_rehash(stored: str) -> bool:
    """Whether a hash predates the current scheme or parameters (scrypt, other argon2)."""
    if not stored.startswith("$argon2"):
        return True
    try:
        return _PASSWORD_HASHER.check_needs_rehash(stored)
    except InvalidHashError:
        return True


# A hash to verify against when the account is unknown or disabled, so the time taken does
# not tell which accounts exist.
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
    session.add(user)
    clear_attempts(session=session, email=user.email)
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
    email = user.email
    try:
        # Counted (and committed) before the check, like a sign-in: a stolen session cannot
        # guess the password faster than the sign-in page allows.
        _count_attempt(session=session, key=account_key(email), limit=ACCOUNT_ATTEMPTS)
    except SignInThrottled as throttled:
        raise UserError(
            f"Too many wrong passwords. Try again in {throttled.retry_after} seconds."
        ) from None
    if not verify_password(current, user.password_hash):
        raise UserError("the current password is wrong")
    clear_attempts(session=session, email=email)
    if new == current:
        raise UserError("the new password must differ from the current one")
    _check_password_strength(new)
    user.password_hash = hash_password(new)
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


def _count_attempt(*, session: Session, key: str, limit: int) -> None:
    """Count one attempt for ``key`` (committed); raise SignInThrottled past ``limit``."""
    retry_after = take_attempt(session=session, key=key, limit=limit)
    if retry_after is not None:
        raise SignInThrottled(retry_after)


@dataclass(frozen=True)
class _Candidate:
    id: uuid.UUID
    password_hash: str
    usable: bool


def authenticate(
    *, session: Session, email: str, password: str, client_address: str | None = None
) -> User:
    """Check credentials; raises LoginRefused (SignInThrottled past the limits).

    The attempt is counted for the account and the client address first, committed, and
    only then is a password checked. Unknown and disabled accounts are verified against a
    dummy hash and get the same answer as a wrong password. A correct password gives the
    attempts back, and a hash from an older scheme or parameters is replaced.
    """
    normalized = email.strip().lower()
    _count_attempt(session=session, key=address_key(client_address), limit=ADDRESS_ATTEMPTS)
    _count_attempt(session=session, key=account_key(normalized), limit=ACCOUNT_ATTEMPTS)
    user = get_user_by_email(session=session, email=normalized)
    candidate = (
        _Candidate(id=user.id, password_hash=user.password_hash, usable=not user.disabled)
        if user is not None
        else None
    )
    # End the read before the slow check: on SQLite a transaction that read and then writes
    # can fail at once when another writer committed meanwhile.
    session.commit()
    if candidate is None or not candidate.usable:
        verify_password(password, _DUMMY_HASH)
        raise LoginRefused(REFUSED)
    if not verify_password(password, candidate.password_hash):
        raise LoginRefused(REFUSED)
    user = session.get(User, candidate.id)
    if user is None or user.disabled:  # removed or disabled while the password was checked
        raise LoginRefused(REFUSED)
    if password_needs_rehash(user.password_hash):
        user.password_hash = hash_password(password)
    user.last_login_at = datetime.now(UTC)
    session.add(user)
    clear_attempts(session=session, email=normalized)
    give_back_attempt(session=session, key=address_key(client_address))
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
