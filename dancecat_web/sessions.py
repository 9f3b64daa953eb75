"""Signed cookie sessions: HttpOnly, SameSite=Lax, Secure when ``SECURE_COOKIES``.

The cookie holds only the user id, the user's session generation and the CSRF token,
signed with ``SECRET_KEY``; nothing secret is in it, and signing stops anyone forging
another user's id. The generation is what lets the server end a session before the cookie
expires (``dancecat_web.security``).
"""

from __future__ import annotations

from pyramid.config import Configurator
from pyramid.session import JSONSerializer, SignedCookieSessionFactory

SESSION_MAX_AGE = 14 * 24 * 3600


def includeme(config: Configurator) -> None:
    settings = config.registry["dancecat.runtime"].settings
    factory = SignedCookieSessionFactory(
        settings.secret_key,
        cookie_name="dancecat_session",
        salt="dancecat.session.",
        secure=settings.secure_cookies,
        httponly=True,
        samesite="Lax",
        max_age=SESSION_MAX_AGE,
        timeout=SESSION_MAX_AGE,
        reissue_time=3600,
        serializer=JSONSerializer(),
    )
    config.set_session_factory(factory)
