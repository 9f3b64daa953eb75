"""Accounts: the allowed-email list, sign-in with first-use registration, API tokens."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import select
from sqlalchemy.orm import Session

from dancecat_core.crypto import (
    hash_password,
    hash_token,
    new_token,
    password_needs_rehash,
    verify_password,
)
from dancecat_core.errors import NotFound, ValidationError
from dancecat_core.models import AllowedEmail, ApiToken, User, utcnow
from dancecat_core.services import validation
from dancecat_core.settings import Settings

TOKEN_LAST_USED_PRECISION = dt.timedelta(minutes=1)


def allow_email(session: Session, address: str, *, admin: bool = False) -> AllowedEmail:
    """Put an email on the allowed list (idempotent; ``admin`` can only be raised here)."""
    address = validation.email(address)
    allowed = session.scalars(select(AllowedEmail).where(AllowedEmail.email == address)).first()
    if allowed is None:
        allowed = AllowedEmail(email=address, is_admin=admin)
        session.add(allowed)
    elif admin:
        allowed.is_admin = True
    user = find_user(session, address)
    if user is not None and admin:
        user.is_admin = True
    session.flush()
    return allowed


def find_user(session: Session, address: str) -> User | None:
    return session.scalars(select(User).where(User.email == address.strip().lower())).first()


class SignInRefused(ValidationError):
    """Wrong email or password, or locked out; the message never says which field."""


def check_password_rule(settings: Settings, password: str) -> None:
    if not isinstance(password, str) or len(password) < settings.password_min_length:
        raise ValidationError(
            f"password must be at least {settings.password_min_length} characters", "password"
        )
    if len(password) > 1024:
        raise ValidationError("password must be at most 1024 characters", "password")
    if len(set(password)) < 4:
        raise ValidationError("password must use at least 4 different characters", "password")


def sign_in(session: Session, settings: Settings, address: str, password: str) -> User:
    """Sign in; the first sign-in of an allowed email registers it with this password."""
    refused = SignInRefused("wrong email or password")
    try:
        address = validation.email(address)
    except ValidationError:
        raise refused from None
    now = utcnow()
    user = find_user(session, address)
    if user is None or user.password_hash is None:
        allowed = session.scalars(select(AllowedEmail).where(AllowedEmail.email == address)).first()
        if allowed is None:
            raise refused
        check_password_rule(settings, password)
        if user is None:
            user = User(email=address, is_admin=allowed.is_admin)
            session.add(user)
        user.password_hash = hash_password(password)
        user.last_login_at = now
        session.flush()
        return user
    if user.locked_until and user.locked_until > now:
        raise SignInRefused("too many failed sign-ins; try again later")
    if not verify_password(user.password_hash, password or ""):
        user.failed_logins = (user.failed_logins or 0) + 1
        if user.failed_logins >= settings.login_max_failures:
            user.locked_until = now + dt.timedelta(seconds=settings.login_lockout_seconds)
            user.failed_logins = 0
        session.flush()
        raise refused
    if password_needs_rehash(user.password_hash):
        user.password_hash = hash_password(password)
    user.failed_logins = 0
    user.locked_until = None
    user.last_login_at = now
    session.flush()
    return user


def create_token(session: Session, user: User, name: str = "") -> tuple[ApiToken, str]:
    """A new API token; the clear token is returned once and never stored."""
    clear = new_token()
    token = ApiToken(
        user_id=user.id,
        name=validation.text(name or "token", "name", max_length=100),
        token_hash=hash_token(clear),
        prefix=clear[:10],
    )
    session.add(token)
    session.flush()
    return token, clear


def authenticate_token(session: Session, clear: str) -> User | None:
    token = session.scalars(
        select(ApiToken).where(
            ApiToken.token_hash == hash_token(clear), ApiToken.revoked_at.is_(None)
        )
    ).first()
    if token is None:
        return None
    # Recorded to the minute: writing the row on every request would serialise
    # concurrent API calls on one write lock (SQLite) for no useful precision.
    now = utcnow()
    if token.last_used_at is None or now - token.last_used_at >= TOKEN_LAST_USED_PRECISION:
        token.last_used_at = now
    return token.user


def list_tokens(session: Session, user: User) -> list[ApiToken]:
    return list(
        session.scalars(
            select(ApiToken).where(ApiToken.user_id == user.id).order_by(ApiToken.id.desc())
        )
    )


def revoke_token(session: Session, user: User, token_id: int) -> ApiToken:
    token = session.get(ApiToken, token_id)
    if token is None or (token.user_id != user.id and not user.is_admin):
        raise NotFound("token not found")
    token.revoked_at = token.revoked_at or utcnow()
    session.flush()
    return token
