"""The job page's pull URLs and triggers: create, rotate (shown on that one response,
rendered, not redirected, like API tokens), revoke (one click, then back to the page)."""

from __future__ import annotations

from typing import Any

from pyramid.httpexceptions import HTTPSeeOther
from pyramid.request import Request
from pyramid.view import view_config

from dancecat_core.errors import ValidationError
from dancecat_core.inputs.job_urls import PullUrlInput, TriggerInput
from dancecat_core.services import job_urls
from dancecat_core.services.job_urls import PULL_FORMATS
from dancecat_web.ui.forms import posted
from dancecat_web.ui.helpers import flash
from dancecat_web.ui.jobs import job_page
from dancecat_web.ui.requests import object_id, refuse


def _pull_links(request: Request, clear: str) -> dict[str, str]:
    return {fmt: request.route_url("pull", token=clear, format=fmt) for fmt in PULL_FORMATS}


def _refused(request: Request, job_id: int, error: ValidationError) -> dict[str, Any]:
    refuse(request)
    flash(request, str(error), "error")
    return job_page(request, job_id)


@view_config(route_name="ui.job.pull_urls", request_method="POST", renderer="job.jinja2")
def create_pull_url(request: Request) -> dict[str, Any]:
    job_id = object_id(request)
    data = PullUrlInput.from_values(posted(PullUrlInput, request.POST, "pull-"))
    try:
        url, clear = job_urls.create_pull_url(request.dbsession, request.user, job_id, data)
    except ValidationError as error:
        return _refused(request, job_id, error)
    new = {"kind": "pull URL", "name": url.name, "links": _pull_links(request, clear)}
    return job_page(request, job_id, new_url=new)


@view_config(route_name="ui.pull_url.rotate", request_method="POST", renderer="job.jinja2")
def rotate_pull_url(request: Request) -> dict[str, Any]:
    url, clear = job_urls.rotate_pull_url(request.dbsession, request.user, object_id(request))
    new = {"kind": "pull URL", "name": url.name, "links": _pull_links(request, clear)}
    return job_page(request, url.job_id, new_url=new)


@view_config(route_name="ui.pull_url.revoke", request_method="POST")
def revoke_pull_url(request: Request) -> HTTPSeeOther:
    url = job_urls.revoke_pull_url(request.dbsession, request.user, object_id(request))
    flash(request, f"Pull URL “{url.name}” revoked; it no longer works.")
    return HTTPSeeOther(request.route_url("ui.job", id=url.job_id))


@view_config(route_name="ui.job.triggers", request_method="POST", renderer="job.jinja2")
def create_trigger(request: Request) -> dict[str, Any]:
    job_id = object_id(request)
    data = TriggerInput.from_values(posted(TriggerInput, request.POST, "trigger-"))
    try:
        trigger, clear, secret = job_urls.create_trigger(
            request.runtime, request.dbsession, request.user, job_id, data
        )
    except ValidationError as error:
        return _refused(request, job_id, error)
    new = {
        "kind": "trigger",
        "name": trigger.name,
        "links": {"POST": request.route_url("trigger", token=clear)},
        "secret": secret,
    }
    return job_page(request, job_id, new_url=new)


@view_config(route_name="ui.trigger.revoke", request_method="POST")
def revoke_trigger(request: Request) -> HTTPSeeOther:
    trigger = job_urls.revoke_trigger(request.dbsession, request.user, object_id(request))
    flash(request, f"Trigger “{trigger.name}” revoked; it no longer works.")
    return HTTPSeeOther(request.route_url("ui.job", id=trigger.job_id))
