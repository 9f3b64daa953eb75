"""The one place errors become responses.

``DancecatError`` subclasses map to statuses in ``STATUS_BY_ERROR``; Pyramid's own HTTP
exceptions keep theirs. Under ``/api/`` every error is JSON,
``{"error": {"code", "message", "field"?}}``; elsewhere it is a short HTML page. A 500 is
logged with its traceback and answered with a generic message, never the traceback.
"""

from __future__ import annotations

import html
import logging
from collections.abc import Callable
from typing import Any

from pyramid.config import Configurator
from pyramid.exceptions import BadCSRFOrigin, BadCSRFToken, PredicateMismatch
from pyramid.httpexceptions import HTTPException, HTTPFound
from pyramid.registry import Registry
from pyramid.renderers import render_to_response
from pyramid.request import Request
from pyramid.response import Response
from pyramid.view import exception_view_config, forbidden_view_config, notfound_view_config
from sqlalchemy.exc import DBAPIError
from sqlalchemy.exc import TimeoutError as PoolTimeout

from dancecat_core.db import app_db_unavailable
from dancecat_core.error_text import clean_error
from dancecat_core.errors import (
    Conflict,
    DancecatError,
    IllegalTransition,
    NotFound,
    QueryError,
    ResultExpired,
    StoreError,
    ValidationError,
)

log = logging.getLogger(__name__)


class MalformedBody(DancecatError):
    """The request body is not the JSON document the route expects to parse."""

    code = "malformed_body"


class BodyTooLarge(DancecatError):
    """The request body is over ``MAX_BODY_BYTES``."""

    code = "body_too_large"


# First match wins; anything unlisted is a 500.
STATUS_BY_ERROR: tuple[tuple[type[DancecatError], int], ...] = (
    (MalformedBody, 400),
    (BodyTooLarge, 413),
    (ValidationError, 422),
    # A query that fails or times out is the request's fault (its SQL, its connection).
    (QueryError, 422),
    (NotFound, 404),
    (Conflict, 409),
    (IllegalTransition, 409),
    (ResultExpired, 410),
    # The result store cannot be read or written (disk full, read-only, gone): try later.
    (StoreError, 503),
)

HTTP_CODES = {
    400: "bad_request",
    401: "unauthenticated",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    406: "not_acceptable",
    409: "conflict",
    410: "gone",
    413: "body_too_large",
    415: "unsupported_media_type",
    422: "invalid",
    500: "internal",
    503: "unavailable",
}
UNAVAILABLE = "the app database is not reachable right now; try again in a moment"
RETRY_AFTER_SECONDS = "5"

GENERIC_500 = "DanceCat hit an unexpected error; it has been logged."
FALLBACK_PAGE = (
    "<!doctype html><html lang=en><meta charset=utf-8><title>{status} · DanceCat</title>"
    "<h1>{status}</h1><p>{message}</p><p><a href=/>Back to DanceCat</a></p></html>"
)


def is_api(request: Request) -> bool:
    return request.path_info.startswith("/api/")


def json_error(
    status: int,
    code: str,
    message: str,
    *,
    field: str | None = None,
    extra: dict[str, Any] | None = None,
) -> Response:
    """The common JSON error: ``{"error": {"code", "message", "field"?, ...extra}}``."""
    body: dict[str, Any] = {"code": code, "message": message}
    if field:
        body["field"] = field
    body.update(extra or {})
    response = Response(json={"error": body}, status=status, charset="utf-8")
    response.content_type = "application/json"
    return response


def error_response(
    request: Request,
    status: int,
    code: str,
    message: str,
    *,
    field: str | None = None,
    extra: dict[str, Any] | None = None,
) -> Response:
    """An error in the caller's dialect: JSON under ``/api/``, a small page elsewhere."""
    if is_api(request):
        return json_error(status, code, message, field=field, extra=extra)
    try:
        response = render_to_response(
            "error.jinja2",
            {"status": status, "code": code, "message": message},
            request=request,
        )
    except Exception:
        # An error page must never fail into a traceback: fall back to plain HTML.
        log.exception("the error page could not be rendered")
        response = Response(
            FALLBACK_PAGE.format(status=status, message=html.escape(message)),
            content_type="text/html",
            charset="utf-8",
        )
    response.status_int = status
    return response


@exception_view_config(DancecatError)
def dancecat_error_view(exc: DancecatError, request: Request) -> Response:
    for cls, status in STATUS_BY_ERROR:
        if isinstance(exc, cls):
            return error_response(
                request,
                status,
                exc.code,
                # Query errors were cleaned where they were born; this masks any other text.
                clean_error(str(exc), patterns=request.runtime.value_patterns),
                field=getattr(exc, "field", None),
                extra=getattr(exc, "details", None),
            )
    return server_error_view(exc, request)


@exception_view_config(BadCSRFToken)
@exception_view_config(BadCSRFOrigin)
def csrf_error_view(exc: HTTPException, request: Request) -> Response:
    return error_response(
        request,
        403,
        "csrf",
        "missing or wrong CSRF token; reload the page and try again",
    )


@forbidden_view_config()
def forbidden_view(exc: HTTPException, request: Request) -> Response:
    """Not signed in: 401 for the API, a redirect to the sign-in page for browsers."""
    if request.user is not None:
        return error_response(request, 403, "forbidden", "you may not do that")
    if is_api(request):
        response = error_response(
            request, 401, "unauthenticated", "sign in or send Authorization: Bearer <token>"
        )
        response.headers["WWW-Authenticate"] = 'Bearer realm="dancecat"'
        return response
    return HTTPFound(location=request.route_url("accounts.login", _query={"next": request.path}))


def _allowed_methods(request: Request, route_name: str) -> tuple[str, ...]:
    """The methods some view of ``route_name`` answers, from Pyramid's introspector."""
    introspector = request.registry.introspector
    route = introspector.get("routes", route_name)
    methods: set[str] = set()
    for related in introspector.related(route) if route is not None else ():
        if related.category_name == "views":
            found = related["request_methods"]
            if isinstance(found, str):
                found = (found,)
            methods.update(found or ())
    return tuple(sorted(methods))


@notfound_view_config()
def notfound_view(exc: HTTPException, request: Request) -> Response:
    """404, or 405 with ``Allow`` when the path exists but not for this method."""
    route = request.matched_route
    if isinstance(exc, PredicateMismatch) and route is not None:
        allowed = _allowed_methods(request, route.name)
        if allowed and request.method not in allowed:
            response = error_response(
                request, 405, "method_not_allowed", f"{request.method} is not allowed here"
            )
            response.headers["Allow"] = ", ".join(allowed)
            return response
    return error_response(request, 404, "not_found", "no such page")


@exception_view_config(HTTPException)
def http_exception_view(exc: HTTPException, request: Request) -> Response:
    """Pyramid's own HTTP errors (and redirects) in our format."""
    if exc.code < 400:
        return exc
    code = HTTP_CODES.get(exc.code, "error")
    message = exc.explanation or exc.title
    return error_response(request, exc.code, code, message)


@exception_view_config(UnicodeDecodeError)
def undecodable_view(exc: UnicodeDecodeError, request: Request) -> Response:
    """Query strings or forms that are not UTF-8: the client's mistake, not ours."""
    return error_response(request, 400, "bad_request", "the request is not valid UTF-8")


@exception_view_config(DBAPIError)
@exception_view_config(PoolTimeout)
def database_error_view(exc: Exception, request: Request) -> Response:
    """The app database is down or restarting: 503 with Retry-After, not a 500.

    Nothing to undo: pyramid_tm rolls the request's transaction back, and the pool's
    pre-ping replaces dead connections, so the app recovers by itself when it returns.
    """
    if isinstance(exc, PoolTimeout) or app_db_unavailable(exc):
        return unavailable_response(exc, request)
    return server_error_view(exc, request)


def unavailable_response(exc: Exception, request: Request) -> Response:
    log.warning(
        "app database unavailable on %s %s: %s",
        request.method,
        request.path,
        type(getattr(exc, "orig", None) or exc).__name__,
    )
    if is_api(request):
        response = error_response(request, 503, "unavailable", UNAVAILABLE)
    else:
        # Not the template: it asks who is signed in, which needs the database.
        response = Response(
            FALLBACK_PAGE.format(status=503, message=html.escape(UNAVAILABLE)),
            content_type="text/html",
            charset="utf-8",
            status=503,
        )
    response.headers["Retry-After"] = RETRY_AFTER_SECONDS
    return response


def outage_tween_factory(
    handler: Callable[[Request], Response], registry: Registry
) -> Callable[[Request], Response]:
    """Over pyramid_tm: an outage met outside the views (the commit, the transaction's
    annotations) is a 503 too, never waitress's bare 500."""

    def outage_tween(request: Request) -> Response:
        try:
            return handler(request)
        except (DBAPIError, PoolTimeout) as exc:
            if isinstance(exc, PoolTimeout) or app_db_unavailable(exc):
                return unavailable_response(exc, request)
            raise

    return outage_tween


def includeme(config: Configurator) -> None:
    config.add_tween("dancecat_web.errors.outage_tween_factory", over="pyramid_tm.tm_tween_factory")


@exception_view_config(Exception)
def server_error_view(exc: Exception, request: Request) -> Response:
    log.error(
        "unhandled %s on %s %s", type(exc).__name__, request.method, request.path, exc_info=exc
    )
    return error_response(request, 500, "internal", GENERIC_500)
