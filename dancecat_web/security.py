"""Who is asking: a signed-in session or an ``Authorization: Bearer`` API token.

Every view needs a signed-in user (the default permission) except the ones registered with
``NO_PERMISSION_REQUIRED`` (sign-in; static files, in ``dancecat_web.assets``). CSRF is
checked on every unsafe request authenticated by the session cookie; a bearer token cannot
be sent by a browser on its own, so token requests are exempt. Which objects a user may see
is the service layer's business (``dancecat_core.services.access``), not this module's.

Every request looks its user up again: a disabled user's tokens and sessions stop at once,
and a session cookie signs in only while it carries the user's current session generation
(raised by sign-out, disabling and password resets), so a copied cookie dies with them.
"""

from __future__ import annotations

from typing import Any

from pyramid.config import Configurator
from pyramid.request import Request
from pyramid.security import Allowed, Denied

from dancecat_core.models import User
from dancecat_core.services import accounts

SIGNED_IN = "signed-in"
SESSION_USER_KEY = "user_id"
SESSION_GENERATION_KEY = "generation"
MAX_TOKEN_LENGTH = 200


def bearer_token(request: Request) -> str | None:
    """The token of an ``Authorization: Bearer`` header, if the request carries one."""
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer":
        return None
    return token.strip()


def _user(request: Request) -> User | None:
    token = bearer_token(request)
    if token is not None:
        if not token or len(token) > MAX_TOKEN_LENGTH:
            return None
        return accounts.authenticate_token(request.dbsession, token)
    user_id = request.session.get(SESSION_USER_KEY)
    if not isinstance(user_id, int):
        return None
    user = accounts.user_by_id(request.dbsession, user_id)
    if not accounts.session_is_current(user, request.session.get(SESSION_GENERATION_KEY)):
        return None
    return user


def csrf_applies(request: Request) -> bool:
    """CSRF protects cookie sessions; requests that name a bearer token are exempt."""
    return bearer_token(request) is None


class SecurityPolicy:
    """Pyramid's security policy: identity is ``request.user``; one permission, signed in."""

    def identity(self, request: Request) -> User | None:
        return request.user

    def authenticated_userid(self, request: Request) -> int | None:
        user = request.user
        return user.id if user is not None else None

    def permits(self, request: Request, context: Any, permission: str) -> Allowed | Denied:
        if permission == SIGNED_IN and request.user is not None:
            return Allowed("signed in")
        return Denied("not signed in")

    def remember(self, request: Request, userid: int, **kw: Any) -> list[tuple[str, str]]:
        """Sign in: a fresh session (no fixation) holding the user id, the user's session
        generation and a new CSRF token."""
        user = request.dbsession.get(User, userid)
        request.session.invalidate()
        request.session[SESSION_USER_KEY] = userid
        request.session[SESSION_GENERATION_KEY] = user.session_generation
        request.session.new_csrf_token()
        return []

    def forget(self, request: Request, **kw: Any) -> list[tuple[str, str]]:
        """Sign out: every session of this user ends, in this browser and any other."""
        if request.user is not None and bearer_token(request) is None:
            accounts.end_sessions(request.user)
        request.session.invalidate()
        return []


def includeme(config: Configurator) -> None:
    config.add_request_method(_user, "user", reify=True)
    config.set_security_policy(SecurityPolicy())
    config.set_default_permission(SIGNED_IN)
    config.set_default_csrf_options(require_csrf=True, callback=csrf_applies)
