"""``/api/v1/me``: who the request is signed in as, and the CSRF token for cookie sessions."""

from __future__ import annotations

from typing import Any

from pyramid.csrf import get_csrf_token
from pyramid.request import Request
from pyramid.view import view_config

from dancecat_web.api.present import user_json
from dancecat_web.security import bearer_token


@view_config(route_name="api.me", request_method="GET", renderer="json")
def me(request: Request) -> dict[str, Any]:
    answer: dict[str, Any] = {"user": user_json(request.user)}
    if bearer_token(request) is None:
        # Scripts in the browser send it back as X-CSRF-Token on unsafe requests.
        answer["csrf_token"] = get_csrf_token(request)
    return answer
