"""Who may sign in: users, the allowed-email list, and API tokens."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import Boolean, ForeignKey, Integer, String
from sqlalchemy.orm import Mapped, mapped_column, relationship

from dancecat_core.models.meta import Base, UTCDateTime, utcnow


class AllowedEmail(Base):
    """An email that may register; the first sign-in with it sets the password.

    Allowing an email also creates its ``User`` (without a password), so the users screen
    and the console list invited and registered people alike; removing a user removes both.
    """

    __tablename__ = "allowed_emails"

    id: Mapped[int] = mapped_column(primary_key=True)
    email: Mapped[str] = mapped_column(String(254), unique=True)
    is_admin: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)


class User(Base):
    """A person who may sign in.

    ``password_hash`` is None until the first sign-in (or after an admin's password reset)
    sets it. ``session_generation`` is copied into each session cookie; raising it (sign
    out, disable, password reset) ends every session signed before, copied cookies too.
    A user with ``disabled_at`` set can neither sign in nor use a session or a token.
    """

    __tablename__ = "users"

    id: Mapped[int] = mapped_column(primary_key=True)
    email: Mapped[str] = mapped_column(String(254), unique=True)
    password_hash: Mapped[str | None] = mapped_column(String(255))
    is_admin: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_login_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    session_generation: Mapped[int] = mapped_column(Integer, default=0)
    disabled_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    # An admin who opted in gets every job's owner alerts too (``dancecat_core.alerts``).
    alerts_opt_in: Mapped[bool] = mapped_column(Boolean, default=False)

    tokens: Mapped[list[ApiToken]] = relationship(back_populates="user")

    @property
    def is_active(self) -> bool:
        return self.disabled_at is None

    def __repr__(self) -> str:
        return f"<User {self.id} {self.email}>"


class SignInThrottle(Base):
    """Failed sign-ins per email, kept for every email tried, registered or not.

    Counting unknown emails exactly like real ones is what keeps the lockout message from
    telling an attacker which accounts exist. Rows whose last failure is older than the
    lockout period (and that are not locked) are pruned as new failures come in.
    """

    __tablename__ = "sign_in_throttles"

    id: Mapped[int] = mapped_column(primary_key=True)
    email: Mapped[str] = mapped_column(String(254), unique=True)
    failures: Mapped[int] = mapped_column(Integer, default=0)
    last_failure_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, index=True)
    locked_until: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)


class ApiToken(Base):
    """A bearer token; only its SHA-256 is stored (tokens are 256-bit random, not passwords)."""

    __tablename__ = "api_tokens"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    name: Mapped[str] = mapped_column(String(100))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    prefix: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_used_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    revoked_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)

    # Joined: every API request authenticates by token and then needs its user; one
    # query for both instead of two.
    user: Mapped[User] = relationship(back_populates="tokens", lazy="joined")
