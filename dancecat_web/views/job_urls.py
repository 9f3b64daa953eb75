"""``GET /pull/<token>.csv|.json`` and ``POST /trigger/<token>``: no session, the token is
the key (``dancecat_core.services.job_urls``).

Both answer programs (spreadsheets, curl, a CI job), so every answer is JSON or the result
itself, never a page. An unknown, revoked or unusable token is the same 404.
"""

from __future__ import annotations

import logging
from typing import Any

from pyramid.request import Request
from pyramid.response import Response
from pyramid.security import NO_PERMISSION_REQUIRED
from pyramid.view import view_config

from dancecat_core.error_text import clean_error
from dancecat_core.errors import Conflict, DancecatError, NotFound, ResultExpired
from dancecat_core.services import job_urls, trackers
from dancecat_web.api.bodies import Field, check_object, json_body
from dancecat_web.errors import json_error
from dancecat_web.queue import enqueue_committed
from dancecat_web.results import download_response

log = logging.getLogger(__name__)

TRIGGER_BODY = {"parameters": Field("object")}


def _not_found(what: str) -> Response:
    return json_error(404, "not_found", f"no such {what}")


def _refused(request: Request, error: DancecatError, status: int) -> Response:
    message = clean_error(str(error), patterns=request.runtime.value_patterns)
    return json_error(status, error.code, message, field=getattr(error, "field", None))


@view_config(route_name="pull", request_method="GET", permission=NO_PERMISSION_REQUIRED)
def pull(request: Request) -> Response:
    """The job's newest valid result, as its owner would download it; every pull through
    a known URL is logged, except those refused by the rate limit (logged as warnings)."""
    session = request.dbsession
    fmt = request.matchdict["format"]
    url = job_urls.pull_url_by_token(session, request.matchdict["token"])
    if url is None:
        return _not_found("pull URL")
    wait = job_urls.take_pull(session, url, request.dancecat_settings.pull_url_rate_limit)
    if wait is not None:
        log.warning("pull URL %s: over the rate limit; retry in %s s", url.id, wait)
        response = json_error(429, "rate_limited", f"too many pulls of this URL; retry in {wait} s")
        response.headers["Retry-After"] = str(wait)
        return response
    tracker = None
    try:
        tracker = trackers.latest_result(session, url.job.owner, url.job_id)
        if request.method == "HEAD":
            trackers.stored_result(request.runtime, tracker)  # the same refusals as GET
            response = Response(content_type=request.runtime.exporter(fmt).media_type)
            response.headers["Cache-Control"] = "private, no-store"
        else:
            response = download_response(request, tracker, fmt)
    except ResultExpired as error:
        response = _refused(request, error, 410)
    except Conflict as error:
        response = _refused(request, error, 409)
    except NotFound as error:
        response = _refused(request, error, 404)
    job_urls.log_pull(
        session, url, request.method, fmt, response.status_int, tracker.id if tracker else None
    )
    return response


@view_config(
    route_name="trigger",
    request_method="POST",
    renderer="json",
    permission=NO_PERMISSION_REQUIRED,
    require_csrf=False,
)
def trigger(request: Request) -> Any:
    """Queue a run: ``202 {"run": id}``. A signed trigger needs ``X-DanceCat-Signature``
    over the raw body; a repeated ``Idempotency-Key`` answers the first delivery's run."""
    session = request.dbsession
    found = job_urls.trigger_by_token(session, request.matchdict["token"])
    if found is None:
        return _not_found("trigger")
    body = request.body
    header = request.headers.get(job_urls.SIGNATURE_HEADER)
    if not job_urls.signature_ok(request.runtime, found, body, header):
        return json_error(
            401, "bad_signature", f"{job_urls.SIGNATURE_HEADER} is missing or does not match"
        )
    try:
        key = job_urls.idempotency_key(request.headers.get("Idempotency-Key"))
        values = check_object(json_body(request), TRIGGER_BODY) if body.strip() else {}
        given = job_urls.run_values(found.job, values.get("parameters") or {})
    except DancecatError as error:
        return _refused(request, error, 400 if error.code == "malformed_body" else 422)
    tracker_id, new = job_urls.fire(request.runtime, found.id, key, given)
    if new:
        enqueue_committed(request, tracker_id)
    request.response.status_int = 202
    return {"run": tracker_id}
