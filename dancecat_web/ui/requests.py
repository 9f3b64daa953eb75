"""Small request helpers the screens share."""

from __future__ import annotations

from pyramid.request import Request

from dancecat_web.api import object_id

__all__ = ["object_id", "refuse", "wants_json"]


def refuse(request: Request) -> None:
    """A form was refused: whatever the services flushed must not be committed.

    pyramid_tm aborts a doomed transaction instead of committing it, so a job created
    before its schedules failed validation is never saved half-way.
    """
    request.tm.doom()
    request.response.status_int = 422


def wants_json(request: Request) -> bool:
    """The page's script asked (``fetch`` with ``Accept: application/json``)."""
    offers = request.accept.acceptable_offers(["text/html", "application/json"])
    return bool(offers) and offers[0][0] == "application/json"
