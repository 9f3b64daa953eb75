"""The request body cap: bodies over ``MAX_BODY_BYTES`` are refused with 413 before parsing.

A declared ``Content-Length`` is checked up front; a chunked body is read up to one byte
past the cap, so a client cannot make the app buffer more than the cap either way.

The WSGI server in front (waitress, under ``dancecat serve``) reads a whole body before
the app sees it, and answers a body over its own limit itself, in plain text, often while
the client is still sending. So its limit is ``server_body_limit``: far enough past the
app's cap that a body a client sends by mistake reaches the app and gets the API's JSON
413, near enough that a hostile one is still cut off (waitress spools it to a temporary
file, not memory).
"""

from __future__ import annotations

import io
from collections.abc import Callable

from pyramid.config import Configurator
from pyramid.registry import Registry
from pyramid.request import Request
from pyramid.response import Response
from pyramid.tweens import EXCVIEW

from dancecat_web.errors import BodyTooLarge

# How many times the app's cap the WSGI server still reads (module docstring).
SERVER_BODY_FACTOR = 16


def server_body_limit(cap: int) -> int:
    """The WSGI server's largest body for an app whose cap is ``cap`` bytes."""
    return cap * SERVER_BODY_FACTOR


def body_limit_tween_factory(
    handler: Callable[[Request], Response], registry: Registry
) -> Callable[[Request], Response]:
    cap = registry["dancecat.runtime"].settings.max_body_bytes

    def body_limit_tween(request: Request) -> Response:
        length = request.content_length
        if length is not None and length > cap:
            raise BodyTooLarge(f"the request body is over the {cap} byte limit")
        if length is None and request.headers.get("Transfer-Encoding", "").lower() == "chunked":
            body = request.body_file_raw.read(cap + 1)
            if len(body) > cap:
                raise BodyTooLarge(f"the request body is over the {cap} byte limit")
            request.body_file = io.BytesIO(body)
            request.content_length = len(body)
        return handler(request)

    return body_limit_tween


def includeme(config: Configurator) -> None:
    # Under the exception view tween, so a 413 is rendered by the one error mapper.
    config.add_tween("dancecat_web.limits.body_limit_tween_factory", under=EXCVIEW)
