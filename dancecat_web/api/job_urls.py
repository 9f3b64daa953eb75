"""``/api/v1/jobs/{id}/pull-urls``, ``/api/v1/pull-urls/{id}``, ``/api/v1/jobs/{id}/triggers``
and ``/api/v1/triggers/{id}``: a job owner's pull and trigger URLs.

The URL (and a trigger's secret) is in the answer that creates it, and nowhere after.
"""

from __future__ import annotations

from typing import Any

from pyramid.request import Request
from pyramid.response import Response
from pyramid.view import view_config

from dancecat_core.inputs.job_urls import PullUrlInput, TriggerInput
from dancecat_core.services import job_urls
from dancecat_web.api import bodies, created, no_content, object_id, paging
from dancecat_web.api.present import pull_url_json, trigger_json

PULL_FIELDS = bodies.input_fields(PullUrlInput)
TRIGGER_FIELDS = bodies.input_fields(TriggerInput)


def pull_link(request: Request, clear: str, fmt: str) -> str:
    return request.route_url("pull", token=clear, format=fmt)


def _new_pull_url(request: Request, url: Any, clear: str) -> dict[str, Any]:
    created(request, request.route_url("api.pull_url", id=url.id))
    return {
        "pull_url": {
            **pull_url_json(url),
            **{fmt: pull_link(request, clear, fmt) for fmt in job_urls.PULL_FORMATS},
        }
    }


@view_config(route_name="api.job.pull_urls", request_method="GET", renderer="json")
def list_pull_urls(request: Request) -> dict[str, Any]:
    page = paging.requested(request)
    found = job_urls.list_pull_urls(request.dbsession, request.user, object_id(request), page)
    return paging.answer(
        request, "pull_urls", page, found, lambda kept: list(map(pull_url_json, kept))
    )


@view_config(route_name="api.job.pull_urls", request_method="POST", renderer="json")
def create_pull_url(request: Request) -> dict[str, Any]:
    values = bodies.parse(request, PULL_FIELDS, optional_body=True)
    url, clear = job_urls.create_pull_url(
        request.dbsession, request.user, object_id(request), PullUrlInput.from_values(values)
    )
    return _new_pull_url(request, url, clear)


@view_config(route_name="api.pull_url", request_method="DELETE")
def revoke_pull_url(request: Request) -> Response:
    job_urls.revoke_pull_url(request.dbsession, request.user, object_id(request))
    return no_content()


@view_config(route_name="api.pull_url.rotate", request_method="POST", renderer="json")
def rotate_pull_url(request: Request) -> dict[str, Any]:
    url, clear = job_urls.rotate_pull_url(request.dbsession, request.user, object_id(request))
    return _new_pull_url(request, url, clear)


@view_config(route_name="api.job.triggers", request_method="GET", renderer="json")
def list_triggers(request: Request) -> dict[str, Any]:
    page = paging.requested(request)
    found = job_urls.list_triggers(request.dbsession, request.user, object_id(request), page)
    return paging.answer(
        request, "triggers", page, found, lambda kept: list(map(trigger_json, kept))
    )


@view_config(route_name="api.job.triggers", request_method="POST", renderer="json")
def create_trigger(request: Request) -> dict[str, Any]:
    values = bodies.parse(request, TRIGGER_FIELDS, optional_body=True)
    trigger, clear, secret = job_urls.create_trigger(
        request.runtime,
        request.dbsession,
        request.user,
        object_id(request),
        TriggerInput.from_values(values),
    )
    created(request, request.route_url("api.trigger", id=trigger.id))
    return {
        "trigger": {
            **trigger_json(trigger),
            "url": request.route_url("trigger", token=clear),
            "secret": secret,
        }
    }


@view_config(route_name="api.trigger", request_method="DELETE")
def revoke_trigger(request: Request) -> Response:
    job_urls.revoke_trigger(request.dbsession, request.user, object_id(request))
    return no_content()
