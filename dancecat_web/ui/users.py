"""The Users screen, for admins: invite (allow an email), disable, enable, reset the
password, remove (after a confirmation page that says what the user owns and who takes it
over). Members get 404 on every one of these routes, like any page they may not see; the
service layer decides that (``accounts`` refuses a member actor as not found).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from pyramid.httpexceptions import HTTPSeeOther
from pyramid.request import Request
from pyramid.view import view_config

from dancecat_core.errors import ValidationError
from dancecat_core.models import User
from dancecat_core.services import accounts
from dancecat_web.ui.forms import FormErrors, checkbox, text
from dancecat_web.ui.helpers import flash
from dancecat_web.ui.requests import object_id, refuse


def _page(request: Request, **extra: Any) -> dict[str, Any]:
    users = accounts.list_users(request.dbsession, request.user)
    page = {
        "users": users,
        "status": accounts.status,
        "errors": FormErrors(),
        "email": "",
        "admin": False,
    }
    page.update(extra)
    return page


@view_config(route_name="ui.users", request_method="GET", renderer="users.jinja2")
def list_users(request: Request) -> dict[str, Any]:
    return _page(request)


@view_config(route_name="ui.users", request_method="POST", renderer="users.jinja2")
def invite_user(request: Request) -> Any:
    """Allow an email, as ``dancecat add-allowed-user`` does."""
    accounts.require_admin(request.user)
    email, admin = text(request.POST, "email"), checkbox(request.POST, "admin")
    try:
        allowed = accounts.allow_email(request.dbsession, email, admin=admin)
    except ValidationError as error:
        errors = FormErrors()
        errors.add(error)
        refuse(request)
        return _page(request, errors=errors, email=email, admin=admin)
    flash(request, f"{allowed.email} may sign up: their first sign-in sets the password.")
    return HTTPSeeOther(request.route_url("ui.users"))


def _act(request: Request, action: Callable[..., User], done: str) -> HTTPSeeOther:
    user = accounts.get_user(request.dbsession, request.user, object_id(request))
    try:
        action(request.dbsession, request.user, user)
    except ValidationError as error:
        request.tm.doom()
        flash(request, str(error), "error")
    else:
        flash(request, done.format(email=user.email))
    return HTTPSeeOther(request.route_url("ui.users"))


@view_config(route_name="ui.user.disable", request_method="POST")
def disable_user(request: Request) -> HTTPSeeOther:
    return _act(request, accounts.disable, "{email} disabled: their sessions and tokens ended.")


@view_config(route_name="ui.user.enable", request_method="POST")
def enable_user(request: Request) -> HTTPSeeOther:
    return _act(request, accounts.enable, "{email} enabled.")


@view_config(route_name="ui.user.reset_password", request_method="POST")
def reset_password(request: Request) -> HTTPSeeOther:
    return _act(
        request,
        accounts.reset_password,
        "{email}: password cleared and sessions ended; their next sign-in sets a new one.",
    )


def _remove_page(request: Request, user: User, errors: FormErrors | None = None) -> dict[str, Any]:
    heirs = [
        other
        for other in accounts.list_users(request.dbsession, request.user)
        if other.id != user.id and other.is_active
    ]
    return {
        "user": user,
        "owned": accounts.owned_by(request.dbsession, user),
        "heirs": heirs,
        "errors": errors or FormErrors(),
    }


@view_config(route_name="ui.user.remove", request_method="GET", renderer="user_remove.jinja2")
def confirm_remove(request: Request) -> dict[str, Any]:
    user = accounts.get_user(request.dbsession, request.user, object_id(request))
    return _remove_page(request, user)


@view_config(route_name="ui.user.remove", request_method="POST", renderer="user_remove.jinja2")
def remove_user(request: Request) -> Any:
    user = accounts.get_user(request.dbsession, request.user, object_id(request))
    email = user.email
    heir_id = text(request.POST, "to")
    try:
        heir = (
            accounts.get_user(request.dbsession, request.user, int(heir_id))
            if heir_id.isdigit()
            else None
        )
        moved = accounts.remove(request.dbsession, request.user, user, heir)
    except ValidationError as error:
        errors = FormErrors()
        errors.add(error)
        refuse(request)
        return _remove_page(request, user, errors)
    moved_to = f" Their {moved} now belong to {heir.email}." if moved and heir else ""
    flash(request, f"{email} removed.{moved_to}")
    return HTTPSeeOther(request.route_url("ui.users"))
