"""Accounts: the allowed-email list, sign-in with first-use registration, API tokens, and
what admins do to users (disable, enable, reset the password, remove).

Sign-in answers alike for registered and unknown emails: the same messages, the same
argon2 work (``crypto.verify_nobody``), and the same lockout, counted per email tried
(``SignInThrottle``). Whatever ends a user's access (sign-out, disable, password reset)
raises ``User.session_generation``, which every session cookie must match.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import attrs
from sqlalchemy import Integer, bindparam, delete, func, inspect, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, make_transient_to_detached

from dancecat_core.crypto import (
    hash_password,
    hash_token,
    new_token,
    password_needs_rehash,
    verify_nobody,
    verify_password,
)
from dancecat_core.errors import NotFound, ValidationError
from dancecat_core.inputs.token import TokenInput
from dancecat_core.models import (
    AllowedEmail,
    ApiToken,
    Connection,
    Job,
    SignInThrottle,
    Tracker,
    User,
    utcnow,
)
from dancecat_core.prepared import Prepared
from dancecat_core.services import validation
from dancecat_core.settings import Settings

TOKEN_LAST_USED_PRECISION = dt.timedelta(minutes=1)
WRONG_EMAIL_OR_PASSWORD = "wrong email or password"
LOCKED_OUT = "too many failed sign-ins; try again later"
DISABLED = "this account is disabled; ask an admin"
PASSWORDS_DIFFER = "the two passwords differ"


def allow_email(session: Session, address: str, *, admin: bool = False) -> AllowedEmail:
    """Put an email on the allowed list (idempotent; ``admin`` can only be raised here).

    Its user is created at once, without a password: the first sign-in sets one.
    """
    address = validation.email(address)
    allowed = session.scalars(select(AllowedEmail).where(AllowedEmail.email == address)).first()
    if allowed is None:
        allowed = AllowedEmail(email=address, is_admin=admin)
        session.add(allowed)
    elif admin:
        allowed.is_admin = True
    user = find_user(session, address)
    if user is None:
        session.add(User(email=address, is_admin=allowed.is_admin))
    elif admin:
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


def sign_in(
    session: Session,
    settings: Settings,
    address: str,
    password: str,
    confirm: str | None = None,
) -> User:
    """Sign in. A user without a password (first sign-in, or after a reset) sets one by
    giving it twice (``confirm``).

    What depends on nothing but the input (the two passwords differ, the password rule) is
    checked first, so those answers say nothing about the account. After that, a refusal
    is ``WRONG_EMAIL_OR_PASSWORD`` or ``LOCKED_OUT`` for every email, at the same cost.
    """
    password = password if isinstance(password, str) else ""
    choosing = bool(confirm)
    if choosing:
        if confirm != password:
            raise ValidationError(PASSWORDS_DIFFER, "confirm")
        check_password_rule(settings, password)
    try:
        address = validation.email(address)
    except ValidationError:
        verify_nobody(password)
        raise SignInRefused(WRONG_EMAIL_OR_PASSWORD) from None
    now = utcnow()
    if _locked_out(session, address, now):
        raise SignInRefused(LOCKED_OUT)
    user = find_user(session, address)
    if user is not None and user.password_hash is not None:
        if verify_password(user.password_hash, password):
            if not user.is_active:
                raise SignInRefused(DISABLED)
            if password_needs_rehash(user.password_hash):
                user.password_hash = hash_password(password)
            return _signed_in(session, user, address, now)
    elif user is not None and choosing and user.is_active:
        user.password_hash = hash_password(password)
        return _signed_in(session, user, address, now)
    else:
        verify_nobody(password)
    _count_failure(session, settings, address, now)
    raise SignInRefused(WRONG_EMAIL_OR_PASSWORD)


def _signed_in(session: Session, user: User, address: str, now: dt.datetime) -> User:
    session.execute(delete(SignInThrottle).where(SignInThrottle.email == address))
    user.last_login_at = now
    session.flush()
    return user


def _locked_out(session: Session, address: str, now: dt.datetime) -> bool:
    locked_until = session.scalar(
        select(SignInThrottle.locked_until).where(SignInThrottle.email == address)
    )
    return locked_until is not None and locked_until > now


def _count_failure(session: Session, settings: Settings, address: str, now: dt.datetime) -> None:
    """One more failure for ``address``; the ``LOGIN_MAX_FAILURES``-th within
    ``LOGIN_LOCKOUT_SECONDS`` of the previous one locks it for ``LOGIN_LOCKOUT_SECONDS``."""
    period = dt.timedelta(seconds=settings.login_lockout_seconds)
    session.execute(
        delete(SignInThrottle).where(
            SignInThrottle.last_failure_at < now - period,
            or_(SignInThrottle.locked_until.is_(None), SignInThrottle.locked_until <= now),
        )
    )
    counted = update(SignInThrottle).where(SignInThrottle.email == address)
    bumped = counted.values(failures=SignInThrottle.failures + 1, last_failure_at=now)
    if session.execute(bumped).rowcount == 0:
        try:
            with session.begin_nested():
                session.add(SignInThrottle(email=address, failures=1, last_failure_at=now))
        except IntegrityError:  # a concurrent failure for the same email inserted it first
            session.execute(bumped)
    failures = session.scalar(
        select(SignInThrottle.failures).where(SignInThrottle.email == address)
    )
    if failures is not None and failures >= settings.login_max_failures:
        session.execute(counted.values(failures=0, locked_until=now + period))
    session.flush()


def session_is_current(user: User | None, generation: object) -> bool:
    """Whether a session cookie carrying ``generation`` still signs ``user`` in."""
    return (
        user is not None
        and user.is_active
        and isinstance(generation, int)
        and generation == user.session_generation
    )


def end_sessions(user: User) -> None:
    """Every session cookie issued to ``user`` so far stops working (copies included)."""
    user.session_generation = (user.session_generation or 0) + 1


def create_token(session: Session, user: User, name: str = "") -> tuple[ApiToken, str]:
    """A new API token; the clear token is returned once and never stored."""
    clear = new_token()
    token = ApiToken(
        user_id=user.id,
        name=TokenInput(name=name).cleaned()["name"],
        token_hash=hash_token(clear),
        prefix=clear[:10],
    )
    session.add(token)
    session.flush()
    return token, clear


# Who asks is read on every request: as columns, by statements built once a process and
# prepared (on the requests that run without a transaction, ``dancecat_web.db``), then made
# the session's ``User`` without a query of its own (``_as_loaded``). As an ORM query (the
# token with its user joined) it was 0.5 ms of the Jobs screen's 3.9 ms of CPU a request.
_USER_ATTRIBUTES = tuple(attribute.key for attribute in inspect(User).column_attrs)
_LIVE_TOKEN = Prepared(
    select(
        ApiToken.id.label("token_id"),
        ApiToken.last_used_at.label("token_last_used_at"),
        *(getattr(User, key) for key in _USER_ATTRIBUTES),
    )
    .join(User, User.id == ApiToken.user_id)
    .where(ApiToken.token_hash == bindparam("token_hash"), ApiToken.revoked_at.is_(None))
)
_USER = Prepared(
    select(*(getattr(User, key) for key in _USER_ATTRIBUTES)).where(
        User.id == bindparam("user_id", type_=Integer)
    )
)


def _as_loaded(session: Session, row: Any) -> User:
    """The session's ``User`` of ``row`` (every column of ``users``) as a query would have
    loaded it: the one the session already holds, else a new instance whose values count
    as loaded (``make_transient_to_detached``), so a change to it is written on flush and
    its relationships load lazily like any other."""
    held = session.identity_map.get(session.identity_key(User, (row.id,)))
    if held is not None:
        return held  # type: ignore[return-value]
    user = User(**{key: getattr(row, key) for key in _USER_ATTRIBUTES})
    make_transient_to_detached(user)
    session.add(user)
    return user


def user_by_id(session: Session, user_id: int) -> User | None:
    """``session.get(User, user_id)`` for the request's signed-in user, from a kept plan."""
    row = _USER.execute(session.connection(), {"user_id": user_id}).first()
    return None if row is None else _as_loaded(session, row)


def authenticate_token(session: Session, clear: str) -> User | None:
    """The user of a live token; None for an unknown or revoked token or a disabled user."""
    row = _LIVE_TOKEN.execute(session.connection(), {"token_hash": hash_token(clear)}).first()
    if row is None or row.disabled_at is not None:
        return None
    # Recorded to the minute: writing the row on every request would serialise
    # concurrent API calls on one write lock (SQLite) for no useful precision. Written as
    # the ORM object's change, so at the request's end with its other writes: an UPDATE
    # sent here would hold SQLite's write lock for the whole request (eight slow
    # connection tests at once then queued behind one another).
    now = utcnow()
    used = row.token_last_used_at
    if used is None or now - used >= TOKEN_LAST_USED_PRECISION:
        token = session.get(ApiToken, row.token_id)
        if token is not None:
            token.last_used_at = now
    return _as_loaded(session, row)


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


# -- what admins do to users ---------------------------------------------------------------
#
# ``actor`` is the signed-in admin, or None for the console (which may do anything). A
# member asking gets NotFound, like for any page they may not see. Admins cannot disable,
# remove or reset themselves on the screen: that would lock them out mid-action.


def status(user: User) -> str:
    """``disabled``, ``no password`` (invited, or reset by an admin) or ``active``."""
    if not user.is_active:
        return "disabled"
    if user.password_hash is None:
        return "no password"
    return "active"


@attrs.frozen
class Owned:
    """What a user owns that is not deleted: removing them must give it to someone."""

    jobs: int
    connections: int

    def __bool__(self) -> bool:
        return bool(self.jobs or self.connections)

    def __str__(self) -> str:
        parts = [
            f"{count} {what}{'' if count == 1 else 's'}"
            for count, what in ((self.jobs, "job"), (self.connections, "connection"))
            if count
        ]
        return " and ".join(parts)


def owned_by(session: Session, user: User) -> Owned:
    def count(model: type[Job] | type[Connection]) -> int:
        return session.scalar(
            select(func.count())
            .select_from(model)
            .where(model.owner_id == user.id, model.deleted_at.is_(None))
        )

    return Owned(jobs=count(Job), connections=count(Connection))


def list_users(session: Session, actor: User | None) -> list[User]:
    require_admin(actor)
    return list(session.scalars(select(User).order_by(User.email)))


def get_user(session: Session, actor: User | None, user_id: int) -> User:
    require_admin(actor)
    user = session.get(User, user_id)
    if user is None:
        raise NotFound("user not found")
    return user


def user_by_email(session: Session, actor: User | None, address: str) -> User:
    require_admin(actor)
    user = find_user(session, address) if isinstance(address, str) else None
    if user is None:
        raise NotFound(f"no user {address}: add them with `dancecat add-allowed-user`")
    return user


def disable(session: Session, actor: User | None, user: User) -> User:
    """Ends every session and revokes every token at once; the user's data stays, and
    their jobs' schedules keep running. ``enable`` lets them sign in again (tokens stay
    revoked: they make new ones)."""
    require_admin(actor)
    _not_yourself(actor, user, "disable")
    now = utcnow()
    user.disabled_at = user.disabled_at or now
    end_sessions(user)
    session.execute(
        update(ApiToken)
        .where(ApiToken.user_id == user.id, ApiToken.revoked_at.is_(None))
        .values(revoked_at=now)
    )
    session.flush()
    return user


def enable(session: Session, actor: User | None, user: User) -> User:
    require_admin(actor)
    user.disabled_at = None
    session.flush()
    return user


def reset_password(session: Session, actor: User | None, user: User) -> User:
    """Forget the password and end the user's sessions; their next sign-in sets a new one
    (like the first). API tokens keep working: disable the user to stop those too."""
    require_admin(actor)
    _not_yourself(actor, user, "reset the password of")
    user.password_hash = None
    end_sessions(user)
    session.flush()
    return user


def set_alerts_opt_in(session: Session, actor: User | None, user: User, on: bool) -> User:
    """An admin who opts in is told of every job's alert streaks, beside its owner."""
    require_admin(actor)
    if on and not user.is_admin:
        raise ValidationError(f"{user.email} is not an admin; only admins get every job's alerts")
    user.alerts_opt_in = on
    session.flush()
    return user


def remove(
    session: Session, actor: User | None, user: User, transfer_to: User | None = None
) -> Owned:
    """Delete ``user``, their tokens and their allowed-email entry.

    Their jobs and connections (deleted ones too) go to ``transfer_to``; without it a user
    who still owns a job or connection is refused, so nothing is orphaned by accident.
    Runs they started stay, no longer naming who started them. Returns what moved.
    """
    require_admin(actor)
    _not_yourself(actor, user, "remove")
    owned = owned_by(session, user)
    if transfer_to is not None:
        if transfer_to.id == user.id:
            raise ValidationError("transfer to: pick another user than the one removed", "to")
        if not transfer_to.is_active:
            raise ValidationError(f"transfer to: {transfer_to.email} is disabled", "to")
    elif owned:
        raise ValidationError(
            f"{user.email} still owns {owned}: transfer them to another user, "
            "or disable the account instead",
            "to",
        )
    new_owner = transfer_to.id if transfer_to is not None else None
    for model in (Job, Connection):
        session.execute(update(model).where(model.owner_id == user.id).values(owner_id=new_owner))
    session.execute(
        update(Tracker).where(Tracker.triggered_by_id == user.id).values(triggered_by_id=None)
    )
    session.execute(delete(ApiToken).where(ApiToken.user_id == user.id))
    session.execute(delete(AllowedEmail).where(AllowedEmail.email == user.email))
    session.execute(delete(SignInThrottle).where(SignInThrottle.email == user.email))
    session.delete(user)
    session.flush()
    return owned


def require_admin(actor: User | None) -> None:
    """Members asking for what only admins do get not found, like any unseen page."""
    if actor is not None and not actor.is_admin:
        raise NotFound("not found")


def _not_yourself(actor: User | None, user: User, action: str) -> None:
    if actor is not None and actor.id == user.id:
        raise ValidationError(f"you cannot {action} your own account here")
