"""``POST /api/v1/destinations/test`` and ``POST /api/v1/jobs/{id}/destinations/test``:
"Send test" over the API (``services.destination_tests``, as the console and the job
page's button).

The answer lists each destination as shown (secrets masked), whether the sample arrived
and why not; no secret is ever in it, not even a one-off signing secret made for a typed
webhook. A destination that cannot reach its receiver is still a 200 (the test ran; its
outcome is the answer); one that cannot be read is a 422 naming ``destination``.
"""

from __future__ import annotations

from typing import Any

from pyramid.request import Request
from pyramid.view import view_config

from dancecat_core.inputs.destination_test import DestinationTestInput
from dancecat_core.services import destination_tests
from dancecat_web.api import bodies, object_id

FIELDS = bodies.input_fields(DestinationTestInput)


def _answer(outcomes: list[destination_tests.SendOutcome]) -> dict[str, Any]:
    return {"results": [outcome.as_json() for outcome in outcomes]}


@view_config(route_name="api.destinations.test", request_method="POST", renderer="json")
def test_destination(request: Request) -> dict[str, Any]:
    values = bodies.parse(request, FIELDS, required=("destination",))
    data = DestinationTestInput.from_values(values)
    return _answer([destination_tests.send_typed(request.runtime, data)])


@view_config(route_name="api.job.destinations.test", request_method="POST", renderer="json")
def test_job_destinations(request: Request) -> dict[str, Any]:
    values = bodies.parse(request, FIELDS, optional_body=True)
    outcomes = destination_tests.send_to_job(
        request.runtime,
        request.dbsession,
        request.user,
        object_id(request),
        DestinationTestInput.from_values(values),
    )
    return _answer(outcomes)
