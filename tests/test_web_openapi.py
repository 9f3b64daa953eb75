"""The hand-written OpenAPI document describes every API route and method, no more."""

from __future__ import annotations

import re

from pyramid.interfaces import IRoutesMapper
from test_web_helpers import make_app

from dancecat_core.inputs.job import JobInput
from dancecat_core.inputs.schedule import ScheduleInput
from dancecat_core.models import CatchUp, ScheduleType


def _routes(app) -> dict[str, set[str]]:
    """``{openapi path: {methods}}`` from the app's registered API views."""
    registry = app.app.registry
    introspector = registry.introspector
    found: dict[str, set[str]] = {}
    for route in registry.getUtility(IRoutesMapper).get_routes():
        if not route.name.startswith("api."):
            continue
        path = re.sub(r"\{(\w+)(:[^}]*)?\}", r"{\1}", route.pattern).removeprefix("/api/v1")
        methods: set[str] = set()
        for view in introspector.related(introspector.get("routes", route.name)):
            if view.category_name == "views":
                found_methods = view["request_methods"] or ()
                if isinstance(found_methods, str):
                    found_methods = (found_methods,)
                methods.update(found_methods)
        found[path] = {m.lower() for m in methods}
    return found


def test_every_api_route_and_method_is_documented(runtime):
    app = make_app(runtime)
    document = app.get("/api/v1/openapi.json").json
    documented = {
        path: {m for m in operations if m in {"get", "post", "put", "patch", "delete"}}
        for path, operations in document["paths"].items()
    }
    assert documented == _routes(app)


def test_every_reference_resolves_and_drivers_are_the_registered_ones(runtime):
    document = make_app(runtime).get("/api/v1/openapi.json").json
    text = str(document)
    for name in re.findall(r"#/components/schemas/(\w+)", text):
        assert name in document["components"]["schemas"], name
    drivers = document["components"]["schemas"]["ConnectionInput"]["properties"]["driver"]
    assert drivers["enum"] == sorted(runtime.drivers)


def test_request_bodies_state_the_declared_limits_and_choices(runtime):
    """The request schemas come from the input declarations: a limit changed there is
    changed here, and no field of a declaration is missing from its body."""
    schemas = make_app(runtime).get("/api/v1/openapi.json").json["components"]["schemas"]
    job = schemas["JobInput"]["properties"]
    for field in JobInput.fields():
        assert field.name in job, field.name
        assert job[field.name]["description"].startswith(field.label)
    timeout = JobInput.field("timeout_seconds")
    assert (job["timeout_seconds"]["minimum"], job["timeout_seconds"]["maximum"]) == (
        timeout.minimum,
        timeout.maximum,
    )
    assert job["query"]["maxLength"] == JobInput.field("query").max_length
    assert set(schemas["JobInput"]["required"]) == {"name", "connection_id", "query"}
    assert "required" not in schemas["JobPatch"]
    schedule = schemas["ScheduleInput"]["properties"]
    assert schedule["type"]["enum"] == [kind.value for kind in ScheduleType]
    assert schedule["catch_up"]["enum"] == [choice.value for choice in CatchUp]
    assert set(schedule) == {"id", *(field.name for field in ScheduleInput.fields())}
    connection = schemas["ConnectionInput"]["properties"]
    assert connection["password"]["writeOnly"] is True
    assert connection["options"]["type"] == "object"
