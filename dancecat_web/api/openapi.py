"""``GET /api/v1/openapi.json``: the API described in OpenAPI 3.0.

Paths and answers are written by hand so they say what we promise; the component schemas
(``schemas``) derive request bodies from the input declarations. A few things hold for
every operation and are added to all of them here rather than stated one by one: its tag
(the resource), the 403 of a cookie session without its CSRF token on unsafe methods, the
``Location`` header of a 201 or 202. Each download format is its own operation with its
one content type (``download_paths``), so generated clients read files as files.
``tests/test_web_openapi.py`` checks every route is described, and the schemathesis run
checks the answers match it.
"""

from __future__ import annotations

import re
from typing import Any

from pyramid.request import Request
from pyramid.security import NO_PERMISSION_REQUIRED
from pyramid.view import view_config

from dancecat_core.exporters import Exporter
from dancecat_web.api import paging
from dancecat_web.api.schemas import INTEGER, JSON, STRING, components, ref

ID = {"type": "integer", "minimum": 1}
UNSAFE_METHODS = ("post", "put", "patch", "delete")


def error_response(description: str) -> dict[str, Any]:
    return {"description": description, "content": {JSON: {"schema": ref("Error")}}}


ERRORS = {
    "400": error_response("Malformed request (the body is not JSON, the query not UTF-8)"),
    "401": error_response("Not signed in: send `Authorization: Bearer <token>`"),
    "403": error_response("Cookie session without a valid CSRF token"),
    "404": error_response("No such object, or one you may not see"),
    "405": error_response("The path exists but not for this method"),
    "413": error_response("The body is over MAX_BODY_BYTES"),
    "422": error_response("The body or a parameter was refused; `field` names it"),
}


def responses(*codes: str, **ok: dict[str, Any]) -> dict[str, Any]:
    answer = {code.removeprefix("r"): value for code, value in ok.items()}
    for code in ("400", "401", "405", *codes):
        answer[code] = ERRORS[code]
    return answer


def json_ok(description: str, schema: dict[str, Any]) -> dict[str, Any]:
    return {"description": description, "content": {JSON: {"schema": schema}}}


def body(schema: dict[str, Any], required: bool = True) -> dict[str, Any]:
    return {"required": required, "content": {JSON: {"schema": schema}}}


def path_id(what: str) -> dict[str, Any]:
    return {"name": "id", "in": "path", "required": True, "description": what, "schema": ID}


PAGE_PARAMETERS = [
    {
        "name": "limit",
        "in": "query",
        "description": "Items per page",
        "schema": {
            "type": "integer",
            "minimum": 1,
            "maximum": paging.MAX_LIMIT,
            "default": paging.DEFAULT_LIMIT,
        },
    },
    {
        "name": "cursor",
        "in": "query",
        "description": "Where the page starts: a `next_cursor` from the previous page",
        "schema": {"type": "string", "minLength": 1},
    },
]
RUN_FILTERS = [
    {"name": "status", "in": "query", "schema": ref("RunStatus")},
]


def listing(operation_id: str, summary: str, schema: str, *extra: dict[str, Any]) -> dict:
    """A paged list operation (``paging``): its filters ``extra``, then limit and cursor."""
    return {
        "operationId": operation_id,
        "summary": summary + "; paged (`next`)",
        "parameters": [*extra, *PAGE_PARAMETERS],
        "responses": responses("404", "422", r200=json_ok("A page", ref(schema))),
    }


RESULT_ERRORS = {
    "206": {
        "description": "The one byte range a `Range: bytes=…` header asked for, of a stored "
        "form (CSV, XLSX); `Content-Range` says which",
        "headers": {"Content-Range": {"schema": STRING}, "Content-Length": {"schema": INTEGER}},
    },
    "416": {
        "description": "The range starts past the result's end; `Content-Range: bytes */size`",
        "headers": {"Content-Range": {"schema": STRING}},
    },
    "409": error_response("The run has not finished (or failed): `status` says which"),
    "410": error_response("The result expired (JOB_RESULT_VALID_SECONDS)"),
}

NO_BROWSER = {"409": error_response("The connection's driver has no schema browser")}



def download_schema(exporter: Exporter, media_type: str) -> dict[str, Any]:
    """What a generated client should make of a download: the JSON document parsed, text
    as text, anything else as a binary file."""
    if exporter.format == "json":
        return ref("ResultDocument")
    if media_type == JSON or media_type.endswith("+json"):
        return {}
    if media_type.startswith("text/"):
        return STRING
    return {"type": "string", "format": "binary"}


def operation_suffix(fmt: str) -> str:
    """A format as it ends its download operations' ids: ``csv`` -> ``Csv``."""
    return "".join(part.capitalize() for part in re.split(r"[^A-Za-z0-9]+", fmt))


def download_paths(exporters: list[Exporter]) -> dict[str, Any]:
    """A run's result and a job's latest one, one operation per registered download format
    (``downloadRunResultCsv``, ``downloadLatestResultXlsx``, ...), each answering its
    format's one content type: a format a plugin adds gets its operations too."""
    paths: dict[str, Any] = {}
    for exporter in exporters:
        media_type = exporter.media_type.split(";")[0].strip()
        ok = {
            "description": f"The result as {exporter.label}, streamed as an attachment "
            f"named `Result_tid_<id>.{exporter.extension}`",
            "headers": {
                "Content-Disposition": {"schema": STRING},
                "Content-Length": {"schema": INTEGER},
            },
            "content": {media_type: {"schema": download_schema(exporter, media_type)}},
        }
        name = operation_suffix(exporter.format)
        paths[f"/trackers/{{id}}/result.{exporter.format}"] = {
            "parameters": [path_id("Tracker (run) id")],
            "get": {
                "operationId": f"downloadRunResult{name}",
                "summary": f"The run's result as {exporter.label}",
                "responses": {**responses("404", r200=ok), **RESULT_ERRORS},
            },
        }
        paths[f"/jobs/{{id}}/latest/result.{exporter.format}"] = {
            "parameters": [path_id("Job id")],
            "get": {
                "operationId": f"downloadLatestResult{name}",
                "summary": f"The result of the job's newest successful run as {exporter.label}",
                "responses": {**responses("404", r200=ok), **RESULT_ERRORS},
            },
        }
    return paths


def _paths(exporters: list[Exporter]) -> dict[str, Any]:
    connection_id = path_id("Connection id")
    job_id = path_id("Job id")
    tracker_id = path_id("Tracker (run) id")
    connection_ok = json_ok("The connection", ref("ConnectionEnvelope"))
    job_ok = json_ok("The job", ref("JobEnvelope"))
    deleted = {"description": "Deleted"}
    return {
        "/openapi.json": {
            "get": {
                "operationId": "openapi",
                "summary": "This document",
                "security": [],
                "responses": {"200": json_ok("OpenAPI 3 document", {"type": "object"})},
            }
        },
        "/me": {
            "get": {
                "operationId": "me",
                "summary": "Who is signed in",
                "responses": responses(r200=json_ok("The user", ref("Me"))),
            }
        },
        "/connections": {
            "get": listing(
                "listConnections",
                "Connections you may see: yours and the shared ones (admins: all)",
                "ConnectionList",
            ),
            "post": {
                "operationId": "createConnection",
                "requestBody": body(ref("ConnectionInput")),
                "responses": responses("413", "422", r201=connection_ok),
            },
        },
        "/connections/test": {
            "post": {
                "operationId": "testUnsavedConnection",
                "summary": "Try connection values without saving them",
                "requestBody": body(ref("ConnectionInput")),
                "responses": responses("413", "422", r200=json_ok("Outcome", ref("CheckResult"))),
            }
        },
        "/connections/{id}": {
            "parameters": [connection_id],
            "get": {
                "operationId": "getConnection",
                "responses": responses("404", r200=connection_ok),
            },
            "put": {
                "operationId": "replaceConnection",
                "summary": "Replace every field (a missing password keeps the old one)",
                "requestBody": body(ref("ConnectionInput")),
                "responses": responses("404", "413", "422", r200=connection_ok),
            },
            "patch": {
                "operationId": "patchConnection",
                "requestBody": body(ref("ConnectionPatch")),
                "responses": responses("404", "413", "422", r200=connection_ok),
            },
            "delete": {
                "operationId": "deleteConnection",
                "summary": "Delete (jobs using it keep their history)",
                "responses": responses("404", r204=deleted),
            },
        },
        "/connections/{id}/test": {
            "parameters": [connection_id],
            "post": {
                "operationId": "testConnection",
                "summary": "Connect and ping",
                "responses": responses("404", r200=json_ok("Outcome", ref("CheckResult"))),
            },
        },
        "/connections/{id}/schema": {
            "parameters": [connection_id],
            "get": {
                "operationId": "getConnectionSchema",
                "summary": "Tables and views the connection's user may read, cached "
                "(read on first use and after the connection changes)",
                "responses": {
                    **responses("404", "422", r200=json_ok("Catalogue", ref("CatalogueEnvelope"))),
                    **NO_BROWSER,
                },
            },
        },
        "/connections/{id}/schema/refresh": {
            "parameters": [connection_id],
            "post": {
                "operationId": "refreshConnectionSchema",
                "summary": "Read the catalogue again",
                "responses": {
                    **responses(
                        "403", "404", "422", r200=json_ok("Catalogue", ref("CatalogueEnvelope"))
                    ),
                    **NO_BROWSER,
                },
            },
        },
        "/connections/{id}/schema/columns": {
            "parameters": [
                connection_id,
                {"name": "schema", "in": "query", "required": True, "schema": STRING},
                {"name": "table", "in": "query", "required": True, "schema": STRING},
            ],
            "get": {
                "operationId": "getTableColumns",
                "summary": "One table's columns (read on first use, then cached), each "
                "marked when scrubbing would remove it",
                "responses": {
                    **responses("404", "422", r200=json_ok("Columns", ref("CatalogueColumns"))),
                    **NO_BROWSER,
                },
            },
        },
        "/format-sql": {
            "post": {
                "operationId": "formatSql",
                "summary": "Lay a query out one clause a line (sqlparse); parameters kept",
                "requestBody": body(ref("FormatSqlInput")),
                "responses": responses(
                    "403", "404", "413", "422", r200=json_ok("Formatted", ref("FormattedSql"))
                ),
            },
        },
        "/jobs": {
            "get": listing("listJobs", "Jobs you may see, newest first", "JobList"),
            "post": {
                "operationId": "createJob",
                "requestBody": body(ref("JobInput")),
                "responses": responses("413", "422", r201=job_ok),
            },
        },
        "/preview": {
            "post": {
                "operationId": "previewQuery",
                "summary": "First QUERY_TEST_LIMIT rows of an unsaved query",
                "requestBody": body(ref("PreviewInput")),
                "responses": responses("413", "422", r200=json_ok("Rows", ref("Preview"))),
            }
        },
        "/jobs/{id}": {
            "parameters": [job_id],
            "get": {"operationId": "getJob", "responses": responses("404", r200=job_ok)},
            "put": {
                "operationId": "replaceJob",
                "summary": "Replace every field; schedules not listed are deleted",
                "requestBody": body(ref("JobInput")),
                "responses": responses("404", "413", "422", r200=job_ok),
            },
            "patch": {
                "operationId": "patchJob",
                "summary": "Change the given fields; `schedules`, if given, replaces them all",
                "requestBody": body(ref("JobPatch")),
                "responses": responses("404", "413", "422", r200=job_ok),
            },
            "delete": {
                "operationId": "deleteJob",
                "summary": "Delete the job and its schedules",
                "responses": responses("404", r204=deleted),
            },
        },
        "/jobs/{id}/preview": {
            "parameters": [job_id],
            "post": {
                "operationId": "previewJob",
                "summary": "First QUERY_TEST_LIMIT rows of the saved job, scrubbed",
                "requestBody": body(ref("RunInput"), required=False),
                "responses": {
                    **responses("404", "422", r200=json_ok("Rows", ref("Preview"))),
                    "409": error_response("The job's connection was deleted"),
                },
            },
        },
        "/jobs/{id}/runs": {
            "parameters": [job_id],
            "post": {
                "operationId": "runJob",
                "summary": "Queue a run now",
                "requestBody": body(ref("RunInput"), required=False),
                "responses": {
                    **responses(
                        "404", "413", "422", r202=json_ok("Queued", ref("TrackerEnvelope"))
                    ),
                    "409": error_response("The job's connection was deleted"),
                },
            },
            "get": listing("listJobRuns", "The job's runs, newest first", "RunList", *RUN_FILTERS),
        },
        "/runs": {
            "get": listing(
                "listRuns",
                "Runs of every job you may see (deleted jobs' too), newest first",
                "RunList",
                {
                    "name": "job",
                    "in": "query",
                    "description": "Only this job's runs",
                    "schema": ID,
                },
                *RUN_FILTERS,
                {
                    "name": "since",
                    "in": "query",
                    "description": "Only runs queued at or after this instant (no offset: UTC)",
                    "schema": {"type": "string", "format": "date-time"},
                },
            ),
        },
        "/jobs/{id}/pull-urls": {
            "parameters": [job_id],
            "get": listing(
                "listPullUrls",
                "The job's pull URLs (revoked ones too), newest first; owner or admin",
                "PullUrlList",
            ),
            "post": {
                "operationId": "createPullUrl",
                "summary": "A new pull URL for the job's newest valid result; shown once",
                "requestBody": body(ref("PullUrlInput"), required=False),
                "responses": responses(
                    "404", "413", "422", r201=json_ok("Created", ref("NewPullUrl"))
                ),
            },
        },
        "/pull-urls/{id}": {
            "parameters": [path_id("Pull URL id")],
            "delete": {
                "operationId": "revokePullUrl",
                "summary": "Revoke the pull URL: it answers 404 from now on",
                "responses": responses("404", r204=deleted),
            },
        },
        "/pull-urls/{id}/rotate": {
            "parameters": [path_id("Pull URL id")],
            "post": {
                "operationId": "rotatePullUrl",
                "summary": "Revoke the pull URL and make a new one with its name",
                "responses": responses("404", r201=json_ok("Created", ref("NewPullUrl"))),
            },
        },
        "/jobs/{id}/triggers": {
            "parameters": [job_id],
            "get": listing(
                "listTriggers",
                "The job's trigger URLs (revoked ones too), newest first",
                "TriggerList",
            ),
            "post": {
                "operationId": "createTrigger",
                "summary": "A new trigger URL (and secret, if signed); shown once",
                "requestBody": body(ref("TriggerInput"), required=False),
                "responses": responses(
                    "404", "413", "422", r201=json_ok("Created", ref("NewTrigger"))
                ),
            },
        },
        "/triggers/{id}": {
            "parameters": [path_id("Trigger id")],
            "delete": {
                "operationId": "revokeTrigger",
                "summary": "Revoke the trigger URL: it answers 404 from now on",
                "responses": responses("404", r204=deleted),
            },
        },
        "/destinations/test": {
            "post": {
                "operationId": "testDestination",
                "summary": "Send a sample message to a destination as typed, now; nothing stored",
                "requestBody": body(ref("DestinationTestInput")),
                "responses": responses(
                    "413", "422", r200=json_ok("Outcome", ref("DestinationTestResults"))
                ),
            }
        },
        "/jobs/{id}/destinations/test": {
            "parameters": [job_id],
            "post": {
                "operationId": "testJobDestinations",
                "summary": "Send a sample message to each of the job's destinations (or the "
                "one named, as the job shows it) with its stored secrets; owner or admin",
                "requestBody": body(ref("DestinationTestInput"), required=False),
                "responses": responses(
                    "404", "413", "422", r200=json_ok("Outcomes", ref("DestinationTestResults"))
                ),
            },
        },
        "/trackers/{id}": {
            "parameters": [tracker_id],
            "get": {
                "operationId": "getTracker",
                "responses": responses("404", r200=json_ok("The run", ref("TrackerEnvelope"))),
            },
        },
        **download_paths(exporters),
    }


def _links(pointer: str, *operation_ids: str) -> dict[str, Any]:
    """OpenAPI links: the new object's id feeds these operations (fuzzers follow them)."""
    return {
        operation_id: {"operationId": operation_id, "parameters": {"id": pointer}}
        for operation_id in operation_ids
    }


def _with_links(response: dict[str, Any], links: dict[str, Any]) -> dict[str, Any]:
    return {**response, "links": links}


TAGS = [
    {"name": "connections", "description": "Databases jobs query"},
    {"name": "jobs", "description": "Saved queries, their previews and schedules"},
    {"name": "runs", "description": "Runs (trackers): queue, follow, list"},
    {"name": "results", "description": "Downloads, one operation per format"},
    {"name": "pull-urls", "description": "URLs that hand out a job's latest result"},
    {"name": "triggers", "description": "URLs that queue a run of a job"},
    {"name": "account", "description": "Who is signed in, and this document"},
]
LOCATION = {
    "description": "The URL of the object created (the run, for a 202)",
    "schema": {"type": "string", "format": "uri"},
}


def tag(path: str) -> str:
    """The resource a path belongs to (``TAGS``)."""
    if "/result." in path:
        return "results"
    for marker, name in (("/pull-urls", "pull-urls"), ("/triggers", "triggers")):
        if marker in path:
            return name
    if path.endswith("/runs") or path.startswith(("/runs", "/trackers")):
        return "runs"
    if path.startswith("/connections"):
        return "connections"
    if path.startswith(("/jobs", "/preview")):
        return "jobs"
    return "account"


def _for_every_operation(paths: dict[str, Any]) -> None:
    """What holds for every operation (module docstring): tag, CSRF 403, Location."""
    for path, item in paths.items():
        for method, operation in item.items():
            if method == "parameters":
                continue
            operation["tags"] = [tag(path)]
            answers = operation["responses"]
            if method in UNSAFE_METHODS:
                answers.setdefault("403", ERRORS["403"])
            for code in ("201", "202"):
                if code in answers:
                    answers[code] = {**answers[code], "headers": {"Location": LOCATION}}


def document(server_url: str, runtime: Any) -> dict[str, Any]:
    """The document for this server: its URL, and request bodies whose choices are the
    runtime's registered plugins (drivers, schedule types, download formats)."""
    paths = _paths(runtime.download_exporters)
    _for_every_operation(paths)
    paths["/connections"]["post"]["responses"]["201"] = _with_links(
        paths["/connections"]["post"]["responses"]["201"],
        _links(
            "$response.body#/connection/id",
            "getConnection",
            "replaceConnection",
            "patchConnection",
            "deleteConnection",
            "testConnection",
        ),
    )
    formats = [operation_suffix(fmt) for fmt in runtime.formats]
    paths["/jobs"]["post"]["responses"]["201"] = _with_links(
        paths["/jobs"]["post"]["responses"]["201"],
        _links(
            "$response.body#/job/id",
            "getJob",
            "replaceJob",
            "patchJob",
            "deleteJob",
            "previewJob",
            "runJob",
            "listJobRuns",
            *(f"downloadLatestResult{name}" for name in formats),
        ),
    )
    paths["/jobs/{id}/runs"]["post"]["responses"]["202"] = _with_links(
        paths["/jobs/{id}/runs"]["post"]["responses"]["202"],
        _links(
            "$response.body#/tracker/id",
            "getTracker",
            *(f"downloadRunResult{name}" for name in formats),
        ),
    )
    return {
        "openapi": "3.0.3",
        "info": {
            "title": "DanceCat API",
            "version": "1",
            "description": (
                "Saved SQL queries as jobs, run in the background, results in every "
                "registered download format (CSV, XLSX, JSON, ...). Authenticate with "
                "`Authorization: Bearer <token>` "
                "(`dancecat token create EMAIL`). Errors are "
                '`{"error": {"code", "message", "field"?}}`. Lists are newest first and '
                "paged: follow `next`. See docs/API.md."
            ),
        },
        "servers": [{"url": server_url}],
        "security": [{"bearerAuth": []}, {"cookieSession": []}],
        "tags": TAGS,
        "paths": paths,
        "components": {
            "securitySchemes": {
                "bearerAuth": {"type": "http", "scheme": "bearer"},
                "cookieSession": {
                    "type": "apiKey",
                    "in": "cookie",
                    "name": "dancecat_session",
                    "description": "Browser session; unsafe methods need X-CSRF-Token",
                },
            },
            "schemas": components(runtime),
        },
    }


@view_config(
    route_name="api.openapi",
    request_method="GET",
    renderer="json",
    permission=NO_PERMISSION_REQUIRED,
)
def openapi(request: Request) -> dict[str, Any]:
    request.response.headers["Cache-Control"] = "public, max-age=300"
    return document(request.application_url + "/api/v1", request.runtime)
