"""Streaming a run's result as a download; shared by the API and the browser routes.

The body is the export's chunk iterator handed to the WSGI server as ``app_iter``: nothing
is buffered whole, and the server closes the iterator (and its file) when the client goes
away. It is read after the request's transaction has committed, which is fine: a result
blob never changes once its tracker says Success.
"""

from __future__ import annotations

from pyramid.request import Request
from pyramid.response import Response

from dancecat_core.errors import Conflict
from dancecat_core.models import Tracker
from dancecat_core.services import trackers


def download_response(request: Request, tracker: Tracker, fmt: str) -> Response:
    """The result of ``tracker`` in ``fmt``: 409 (with its status) if it has none yet,
    410 if it expired, 404 for an unknown format."""
    try:
        download = trackers.export(request.runtime, tracker, fmt)
    except Conflict as exc:
        exc.details = {"status": tracker.status}  # type: ignore[attr-defined]
        raise
    response = Response(app_iter=download.chunks, conditional_response=False)
    response.headers["Content-Type"] = download.media_type
    if download.size is not None:
        response.content_length = download.size
    response.headers["Content-Disposition"] = f"attachment; filename={download.filename}"
    response.headers["Cache-Control"] = "private, no-store"
    return response
