from __future__ import annotations

from datetime import timedelta

import pytest
from sqlmodel import Session, select

from dashboard.models import Role, SignInThrottle, User
from dashboard.services import auth
from dashboard.services.audit import list_audit
from dashboard.services.auth import (
    MIN_PASSWORD_LENGTH,
    LoginRefused,
    PermissionDenied,
    UserError,
    authenticate,
    change_password,
    create_session,
    create_user,
    ensure_admin,
    require_role,
    reset_password,
    revoke_session,
    set_disabled,
    set_role,
    user_for_token,
)


def _age_throttles(session: Session, by: timedelta) -> None:
    """Move every sign-in window back by ``by``: as if that much time had passed."""
    for row in session.exec(select(SignInThrottle)).all():
        row.window_started_at -= by
        session.add(row)
    session.commit()


def test_password_hash_verifies_and_hides_password() -> None:
    stored = auth.hash_password("correct horse battery")
    assert "correct horse" not in stored
    assert stored.startswith("$argon2id$v=19$m=19456,t=2,p=1$")  # OWASP's parameters
    assert auth.verify_password("correct horse battery", stored)
    assert not auth.verify_password("correct horse battery!", stored)
    assert not auth.verify_password("x", "garbage")


def test_sign_in_session_survives_and_logout_ends_it(session: Session) -> None:
    user, generated = create_user(session=session, email="Ann@Example.com", role=Role.MANAGER)
    assert generated and len(generated) >= 15
    signed_in = authenticate(session=session, email="ann@example.com", password=generated)
    token = create_session(session=session, user=signed_in)
    assert user_for_token(session=session, token=token).id == user.id
    revoke_session(session=session, token=token)
    assert user_for_token(session=session, token=token) is None
    assert user_for_token(session=session, token="forged") is None


def test_wrong_password_and_unknown_user_look_the_same(session: Session) -> None:
    create_user(session=session, email="a@example.com", role=Role.VIEWER, password="long enough pw")
    with pytest.raises(LoginRefused) as wrong:
        authenticate(session=session, email="a@example.com", password="nope-nope-nope")
    with pytest.raises(LoginRefused) as unknown:
        authenticate(session=session, email="b@example.com", password="nope-nope-nope")
    assert str(wrong.value) == str(unknown.value) == "Wrong email or password."


def test_repeated_failures_slow_down_then_correct_password_works(session: Session) -> None:
    create_user(
        session=session, email="a@example.com", role=Role.VIEWER, password="long enough pw"
    )
    for _ in range(auth.ACCOUNT_ATTEMPTS):
        with pytest.raises(LoginRefused):
            authenticate(session=session, email="a@example.com", password="wrong-wrong")
    with pytest.raises(LoginRefused, match="Too many sign-in attempts"):
        authenticate(session=session, email="a@example.com", password="long enough pw")
    _age_throttles(session, auth.THROTTLE_WINDOW)
    assert authenticate(session=session, email="a@example.com", password="long enough pw")


def test_expired_and_disabled_sessions_are_refused(session: Session) -> None:
    admin, _ = create_user(session=session, email="root@example.com", role=Role.ADMIN)
    user, password = create_user(session=session, email="v@example.com", role=Role.VIEWER)
    token = create_session(session=session, user=user)
    set_disabled(session=session, user_id=user.id, disabled=True, actor=admin)
    assert user_for_token(session=session, token=token) is None
    with pytest.raises(LoginRefused, match=r"^Wrong email or password\.$"):
        authenticate(session=session, email="v@example.com", password=password)


def test_roles_are_ordered() -> None:
    viewer = User(email="v@x.io", password_hash="", role=Role.VIEWER)
    manager = User(email="m@x.io", password_hash="", role=Role.MANAGER)
    admin = User(email="a@x.io", password_hash="", role=Role.ADMIN)
    assert require_role(admin, Role.MANAGER) is admin
    assert require_role(manager, Role.MANAGER) is manager
    with pytest.raises(PermissionDenied):
        require_role(viewer, Role.MANAGER)
    with pytest.raises(PermissionDenied):
        require_role(manager, Role.ADMIN)
    with pytest.raises(PermissionDenied, match="sign in"):
        require_role(None, Role.VIEWER)


def test_only_admins_manage_users_and_last_admin_is_kept(session: Session) -> None:
    admin, _ = create_user(session=session, email="root@example.com", role=Role.ADMIN)
    manager, _ = create_user(session=session, email="m@example.com", role=Role.MANAGER)
    with pytest.raises(PermissionDenied):
        set_role(session=session, user_id=manager.id, role=Role.ADMIN, actor=manager)
    with pytest.raises(UserError, match="last admin"):
        set_role(session=session, user_id=admin.id, role=Role.VIEWER, actor=admin)
    set_role(session=session, user_id=manager.id, role=Role.ADMIN, actor=admin)
    assert manager.role == "admin"


def test_short_password_and_bad_email_are_refused(session: Session) -> None:
    with pytest.raises(UserError, match="at least 10"):
        create_user(session=session, email="a@example.com", role=Role.VIEWER, password="short")
    with pytest.raises(UserError, match="not an email"):
        create_user(session=session, email="not-an-email", role=Role.VIEWER)


def test_first_admin_is_created_once(session: Session) -> None:
    created = ensure_admin(session=session, email="boss@example.com", password="a long password")
    assert created is not None and created[0].role == "admin" and created[1] is None
    assert ensure_admin(session=session) is None


def test_admin_reset_gives_a_new_password_and_signs_the_user_out(session: Session) -> None:
    admin, _ = create_user(session=session, email="root@example.com", role=Role.ADMIN)
    manager, _ = create_user(session=session, email="m@example.com", role=Role.MANAGER)
    user, old = create_user(session=session, email="v@example.com", role=Role.VIEWER)
    tokens = [create_session(session=session, user=user) for _ in range(2)]
    for _ in range(auth.ACCOUNT_ATTEMPTS + 1):  # locked out after too many wrong guesses
        with pytest.raises(LoginRefused):
            authenticate(session=session, email="v@example.com", password="wrong-wrong")

    with pytest.raises(PermissionDenied):
        reset_password(session=session, user_id=user.id, actor=manager)
    with pytest.raises(UserError, match="Account page"):
        reset_password(session=session, user_id=admin.id, actor=admin)
    generated = reset_password(session=session, user_id=user.id, actor=admin)

    assert generated and len(generated) >= MIN_PASSWORD_LENGTH
    assert all(user_for_token(session=session, token=token) is None for token in tokens)
    with pytest.raises(LoginRefused, match="Wrong email or password"):
        authenticate(session=session, email="v@example.com", password=old)
    assert authenticate(session=session, email="v@example.com", password=generated)
    entries = list_audit(session=session, limit=5)
    assert any(
        e.action == "user.password_reset" and e.actor == admin.email and e.target == user.email
        for e in entries
    )
    assert not any(generated in str(e.context) for e in entries)


def test_user_changes_own_password_and_keeps_only_this_session(session: Session) -> None:
    user, _ = create_user(
        session=session, email="m@example.com", role=Role.MANAGER, password="first password"
    )
    here = create_session(session=session, user=user)
    elsewhere = create_session(session=session, user=user)

    with pytest.raises(UserError, match="current password is wrong"):
        change_password(
            session=session, user=user, current="nope", new="second password", keep_token=here
        )
    # The wrong current password counted like a failed sign-in.
    assert session.get(SignInThrottle, "account:m@example.com").attempts == 1
    with pytest.raises(UserError, match="at least 10"):
        change_password(
            session=session, user=user, current="first password", new="short", keep_token=here
        )
    change_password(
        session=session,
        user=user,
        current="first password",
        new="second password",
        keep_token=here,
    )

    assert user_for_token(session=session, token=here) is not None
    assert user_for_token(session=session, token=elsewhere) is None
    with pytest.raises(LoginRefused):
        authenticate(session=session, email="m@example.com", password="first password")
    assert authenticate(session=session, email="m@example.com", password="second password")
    assert any(
        e.action == "user.password_change" and e.actor == user.email
        for e in list_audit(session=session, limit=5)
    )


def test_wrong_current_passwords_lock_the_change_form_like_sign_in(session: Session) -> None:
    user, _ = create_user(
        session=session, email="m@example.com", role=Role.MANAGER, password="first password"
    )
    for _ in range(auth.ACCOUNT_ATTEMPTS):
        with pytest.raises(UserError, match="current password is wrong"):
            change_password(session=session, user=user, current="guess", new="second password")
    with pytest.raises(UserError, match="Too many wrong passwords"):
        change_password(session=session, user=user, current="first password", new="second password")
