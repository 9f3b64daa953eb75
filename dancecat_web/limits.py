"""The request body cap: bodies over ``MAX_BODY_BYTES`` are refused with 413 before parsing.

A declared ``Content-Length`` is checked up front; a chunked body is read up to one byte
past the cap, so a client cannot make the app buffer more than the cap either way.
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
