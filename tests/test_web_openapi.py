"""The hand-written OpenAPI document describes every API route and method, no more."""

from __future__ import annotations

import re

from pyramid.interfaces import IRoutesMapper
from test_web_helpers import make_app

from dancecat_core.inputs.job import JobInput
from dancecat_core.inputs.schedule import ScheduleInput
from dancecat_core.models import CatchUp, ScheduleType


def _routes(app, formats: list[str]) -> dict[str, set[str]]:
    """``{openapi path: {methods}}`` from the app's registered API views; a download
    route's ``{format}`` is one path per registered format."""
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
        for each in (
            [path.replace("{format}", f) for f in formats] if "{format}" in path else [path]
        ):
            found[each] = {m.lower() for m in methods}
    return found


def test_every_api_route_and_method_is_documented(runtime):
    app = make_app(runtime)
    document = app.get("/api/v1/openapi.json").json
    documented = {
        path: {m for m in operations if m in {"get", "post", "put", "patch", "delete"}}
        for path, operations in document["paths"].items()
    }
    assert documented == _routes(app, runtime.formats)


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


def test_operations_are_unique_tagged_and_state_csrf_and_location(runtime):
    document = make_app(runtime).get("/api/v1/openapi.json").json
    operations = [
        (path, method, operation)
        for path, item in document["paths"].items()
        for method, operation in item.items()
        if method != "parameters"
    ]
    ids = [operation["operationId"] for _, _, operation in operations]
    assert len(ids) == len(set(ids))
    tags = {tag["name"] for tag in document["tags"]}
    for path, method, operation in operations:
        assert len(operation["tags"]) == 1 and operation["tags"][0] in tags, path
        answers = operation["responses"]
        if method in ("post", "put", "patch", "delete"):
            assert answers["403"]["content"]["application/json"], (path, method)
        for code in ("201", "202"):
            if code in answers:
                assert "Location" in answers[code]["headers"], (path, method)


def test_every_download_format_is_its_own_operation_with_one_content_type(runtime):
    """A generated client reads each download as what it is: one content type per
    operation, binary unless it is text or the JSON document."""
    paths = make_app(runtime).get("/api/v1/openapi.json").json["paths"]
    for fmt, exporter in runtime.exporters.items():
        for path, prefix in (
            (f"/trackers/{{id}}/result.{fmt}", "downloadRunResult"),
            (f"/jobs/{{id}}/latest/result.{fmt}", "downloadLatestResult"),
        ):
            operation = paths[path]["get"]
            assert operation["operationId"] == prefix + fmt.capitalize()
            content_types = list(operation["responses"]["200"]["content"])
            assert content_types == [exporter.media_type.split(";")[0]]
    xlsx = paths["/trackers/{id}/result.xlsx"]["get"]["responses"]["200"]["content"]
    assert next(iter(xlsx.values()))["schema"] == {"type": "string", "format": "binary"}


def test_lists_state_the_paging_convention_and_answers_state_enums(runtime):
    from dancecat_web.api import paging

    document = make_app(runtime).get("/api/v1/openapi.json").json
    schemas = document["components"]["schemas"]
    for path, item in document["paths"].items():
        operation = item.get("get", {})
        if not operation.get("operationId", "").startswith("list"):
            continue
        names = {parameter["name"]: parameter for parameter in operation["parameters"]}
        assert names["limit"]["schema"]["maximum"] == paging.MAX_LIMIT, path
        assert names["limit"]["schema"]["default"] == paging.DEFAULT_LIMIT, path
        assert "cursor" in names, path
        page = schemas[
            operation["responses"]["200"]["content"]["application/json"]["schema"]["$ref"].rsplit(
                "/", 1
            )[1]
        ]
        assert {"next", "next_cursor"} <= set(page["required"]), path
    assert schemas["Connection"]["properties"]["driver"]["enum"] == sorted(runtime.drivers)
    assert (
        schemas["Schedule"]["properties"]["type"]["enum"]
        == (schemas["ScheduleInput"]["properties"]["type"]["enum"])
    )
    assert schemas["Tracker"]["properties"]["status"] == {"$ref": "#/components/schemas/RunStatus"}
