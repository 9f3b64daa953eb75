"""Signing in and out with the session cookie.

The first sign-in of an email on the allowed list (or the first after an admin reset its
password) sets the password, typed twice (``accounts.sign_in``). A refused sign-in is
rendered, not raised, so the transaction commits and the failure counter behind the
lockout is kept. Signing out ends the user's sessions on the server, not just the cookie.
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import unquote, urlsplit

from pyramid.httpexceptions import HTTPSeeOther
from pyramid.request import Request
from pyramid.security import NO_PERMISSION_REQUIRED, forget, remember
from pyramid.view import view_config

from dancecat_core.errors import ValidationError
from dancecat_core.services import accounts

# A path on this site in printable ASCII: no spaces or control characters (browsers drop
# tabs and newlines from URLs, so "/\t/evil" would become "//evil"; CR/LF cannot go in a
# header), no backslash (read as "/" by browsers), and not "//" (another host).
_SAME_SITE_PATH = re.compile(r"/(?![/\\])[!-\[\]-~]*")
# The same once percent-decoded, for anything between here and the browser that decodes.
_DECODED_UNSAFE = re.compile(r"[\x00-\x1f\x7f\\]|^//")


def safe_next(request: Request, target: object) -> str:
    """Only same-site paths; anything else (``//evil``, ``https://...``, CR/LF) goes home."""
    if (
        isinstance(target, str)
        and _SAME_SITE_PATH.fullmatch(target)
        and not _DECODED_UNSAFE.search(unquote(target))
    ):
        parts = urlsplit(target)
        if not parts.scheme and not parts.netloc:
            return target
    return request.route_path("home")


@view_config(
    route_name="accounts.login",
    request_method="GET",
    renderer="login.jinja2",
    permission=NO_PERMISSION_REQUIRED,
)
def login_form(request: Request) -> dict[str, Any]:
    return _page(request, "", None, safe_next(request, request.GET.get("next")))


def _page(request: Request, email: str, error: str | None, target: str) -> dict[str, Any]:
    return {"email": email, "error": error, "next": target, "confirming": False}


@view_config(
    route_name="accounts.login",
    request_method="POST",
    renderer="login.jinja2",
    permission=NO_PERMISSION_REQUIRED,
)
def login(request: Request) -> Any:
    email = request.POST.get("email", "")
    target = safe_next(request, request.POST.get("next"))
    confirm = request.POST.get("confirm", "")
    try:
        user = accounts.sign_in(
            request.dbsession,
            request.dancecat_settings,
            email,
            request.POST.get("password", ""),
            confirm,
        )
    except ValidationError as exc:
        request.response.status_int = 400
        return {**_page(request, email, str(exc), target), "confirming": bool(confirm)}
    headers = remember(request, user.id)
    return HTTPSeeOther(location=target, headers=headers)


@view_config(route_name="accounts.logout", request_method="POST", permission=NO_PERMISSION_REQUIRED)
def logout(request: Request) -> HTTPSeeOther:
    headers = forget(request)
    return HTTPSeeOther(location=request.route_path("accounts.login"), headers=headers)


@view_config(route_name="home", request_method="GET", renderer="home.jinja2")
def home(request: Request) -> dict[str, Any]:
    """A placeholder until the HTML screens arrive: who is signed in, and a sign-out button."""
    return {"user": request.user}
