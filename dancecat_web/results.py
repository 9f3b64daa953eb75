"""Streaming a run's result as a download; shared by the API, the screens and the result links.

The body is the export's chunk iterator handed to the WSGI server as ``app_iter``: nothing
is buffered whole, and the server closes the iterator (and its file) when the client goes
away. It is read after the request's transaction has committed, which is fine: a result
blob never changes once its tracker says Success.

A stored form (the CSV, a rendered XLSX) answers one HTTP byte range, from any store: a
resumed download or a reader skipping ahead gets ``206`` and only those bytes, read from
the store as a range; a range past the end gets ``416``. Several ranges, or an
``If-Range`` (a result has no validator to compare), get the whole result.

When there is no result to give (expired, not finished), a person in a browser gets a page
saying so in words, with a button to run the job again; the API, token clients and scripts
asking for JSON get the common JSON error.
"""

from __future__ import annotations

from pyramid.renderers import render_to_response
from pyramid.request import Request
from pyramid.response import Response

from dancecat_core.errors import Conflict, DancecatError, RangeNotSatisfiable, ResultExpired
from dancecat_core.models import Tracker
from dancecat_core.resultstore import ByteRange
from dancecat_core.services import trackers
from dancecat_web.errors import is_api, json_error
from dancecat_web.security import bearer_token


def download_response(
    request: Request, tracker: Tracker, fmt: str, *, inline: bool = False
) -> Response:
    """The result of ``tracker`` in ``fmt``: 409 (with its status) if it has none yet,
    410 if it expired, 404 for an unknown format. ``inline`` shows it in the browser
    (the result links' ``raw`` JSON view) instead of offering it as a file."""
    try:
        download = trackers.export(request.runtime, tracker, fmt, wanted_range(request))
    except Conflict as exc:
        exc.details = {"status": tracker.current_status}  # type: ignore[attr-defined]
        raise
    except RangeNotSatisfiable as exc:
        response = Response(status=416)
        response.headers["Content-Range"] = f"bytes */{exc.size}"
        return response
    response = Response(app_iter=download.chunks, conditional_response=False)
    response.headers["Content-Type"] = download.media_type
    if download.size is not None:
        response.content_length = download.size
        response.headers["Accept-Ranges"] = "bytes"
    if download.part is not None:
        response.status_int = 206
        response.headers["Content-Range"] = "bytes {}-{}/{}".format(*download.part)
    disposition = "inline" if inline else "attachment"
    response.headers["Content-Disposition"] = f"{disposition}; filename={download.filename}"
    response.headers["Cache-Control"] = "private, no-store"
    return response


def wanted_range(request: Request) -> ByteRange | None:
    """The one byte range the request asks for, or None for the whole result (no Range,
    one we do not serve, or an If-Range)."""
    header = request.headers.get("Range", "")
    if not header or "," in header or "If-Range" in request.headers:
        return None
    asked = request.range  # WebOb's parse: None when malformed
    if asked is None:
        return None
    if asked.start < 0:
        return ByteRange(None, -asked.start)
    return ByteRange(asked.start, None if asked.end is None else asked.end - 1)


def wants_page(request: Request) -> bool:
    """A person in a browser: not the API, not a token, and HTML preferred over JSON."""
    if is_api(request) or bearer_token(request) is not None:
        return False
    offers = request.accept.acceptable_offers(["text/html", "application/json"])
    return bool(offers) and offers[0][0] == "text/html"


def refusal(
    request: Request, tracker: Tracker | None, error: DancecatError, status: int
) -> Response:
    """Why there is no result: a page for a person, the common JSON error for a program."""
    if not wants_page(request):
        details = {"status": tracker.current_status} if tracker is not None else {}
        return json_error(status, error.code, str(error), extra=details)
    response = render_to_response(
        "error.jinja2",
        {
            "status": status,
            "code": error.code,
            "message": str(error),
            "tracker": tracker,
            "expired_at": tracker.result_expires_at if tracker and status == 410 else None,
        },
        request=request,
    )
    response.status_int = status
    return response


def result_or_refusal(
    request: Request, tracker: Tracker, fmt: str, *, inline: bool = False
) -> Response:
    """``download_response``, with its refusals answered in the caller's dialect."""
    try:
        return download_response(request, tracker, fmt, inline=inline)
    except ResultExpired as error:
        return refusal(request, tracker, error, 410)
    except Conflict as error:
        return refusal(request, tracker, error, 409)


def latest_or_refusal(request: Request, job_id: int, fmt: str, *, inline: bool = False) -> Response:
    """A job's newest valid result, or a refusal saying the last one expired (and when)."""
    try:
        tracker = trackers.latest_result(request.dbsession, request.user, job_id)
    except ResultExpired as error:
        return refusal(request, None, error, 410)
    return result_or_refusal(request, tracker, fmt, inline=inline)
