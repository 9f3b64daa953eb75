"""Signing in and out with the session cookie.

The first sign-in of an email on the allowed list sets its password
(``accounts.sign_in``). A refused sign-in is rendered, not raised, so the transaction
commits and the failure counter behind the lockout is kept.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from pyramid.httpexceptions import HTTPSeeOther
from pyramid.request import Request
from pyramid.security import NO_PERMISSION_REQUIRED, forget, remember
from pyramid.view import view_config

from dancecat_core.errors import ValidationError
from dancecat_core.services import accounts


def safe_next(request: Request, target: str | None) -> str:
    """Only same-site paths; anything else (``//evil``, ``https://...``) goes home."""
    if target:
        parts = urlsplit(target)
        if not parts.scheme and not parts.netloc and target.startswith("/") and "\\" not in target:
            return target
    return request.route_path("home")


@view_config(
    route_name="accounts.login",
    request_method="GET",
    renderer="login.jinja2",
    permission=NO_PERMISSION_REQUIRED,
)
def login_form(request: Request) -> dict[str, Any]:
    return {"email": "", "error": None, "next": safe_next(request, request.GET.get("next"))}


@view_config(
    route_name="accounts.login",
    request_method="POST",
    renderer="login.jinja2",
    permission=NO_PERMISSION_REQUIRED,
)
def login(request: Request) -> Any:
    email = request.POST.get("email", "")
    target = safe_next(request, request.POST.get("next"))
    try:
        user = accounts.sign_in(
            request.dbsession, request.dancecat_settings, email, request.POST.get("password", "")
        )
    except ValidationError as exc:
        request.response.status_int = 400
        return {"email": email, "error": str(exc), "next": target}
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
