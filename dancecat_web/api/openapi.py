"""``GET /api/v1/openapi.json``: the API described by hand, in OpenAPI 3.0.

Written by hand rather than generated so it says what we promise, not what the code
happens to do; ``tests/test_web_openapi.py`` checks every route is described, and the
schemathesis run checks the answers match it.
"""

from __future__ import annotations

import copy
from typing import Any

from pyramid.request import Request
from pyramid.security import NO_PERMISSION_REQUIRED
from pyramid.view import view_config

from dancecat_core.models import TrackerStatus

JSON = "application/json"
CSV = "text/csv"
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


def ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def nullable(schema: dict[str, Any]) -> dict[str, Any]:
    return {**schema, "nullable": True}


def text(max_length: int, description: str | None = None) -> dict[str, Any]:
    """A required text field: at least one non-space character (the services strip)."""
    schema: dict[str, Any] = {
        "type": "string",
        "minLength": 1,
        "maxLength": max_length,
        "pattern": r"\S",
    }
    if description:
        schema["description"] = description
    return schema


STRING = {"type": "string"}
INTEGER = {"type": "integer"}
BOOLEAN = {"type": "boolean"}
TIMESTAMP = {"type": "string", "format": "date-time"}
ID = {"type": "integer", "minimum": 1}


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


FORMAT = {
    "name": "format",
    "in": "path",
    "required": True,
    "description": "The download format",
    "schema": {"type": "string", "enum": ["json", "csv", "xlsx"]},
}

CONNECTION_FIELDS: dict[str, Any] = {
    "name": text(100, "Shown in lists"),
    "driver": {"type": "string", "description": "A registered driver (see the enum)"},
    "host": nullable(
        {"type": "string", "maxLength": 255, "description": "Required by network drivers"}
    ),
    "port": nullable({"type": "integer", "minimum": 1, "maximum": 65535}),
    "database": text(1024, "Database name (a file path for SQLite)"),
    "user": nullable({"type": "string", "maxLength": 255}),
    "password": nullable(
        {
            "type": "string",
            "maxLength": 1024,
            "writeOnly": True,
            "description": "Never returned; omit (or send empty) to keep the stored one",
        }
    ),
    "read_only": {"type": "boolean", "default": True},
    "shared": {"type": "boolean", "default": False, "description": "Usable by every user"},
    "options": {"type": "object", "description": "Driver-specific options"},
}

SCHEDULE_FIELDS: dict[str, Any] = {
    "id": nullable({"type": "integer", "description": "An existing schedule to keep"}),
    "type": {
        "type": "string",
        "enum": ["once", "hourly", "daily", "weekly", "monthly", "cron"],
    },
    "start": {
        "type": "string",
        "pattern": r"^[0-9]{4}-[0-9]{2}-[0-9]{2}[ T][0-9]{2}:[0-9]{2}(:[0-9]{2})?$",
        "description": "Wall-clock start, `YYYY-MM-DD HH:MM`, in `timezone`",
    },
    "timezone": nullable(
        {"type": "string", "maxLength": 64, "description": "IANA zone; default TIMEZONE"}
    ),
    "cron": nullable(
        {"type": "string", "maxLength": 200, "description": "Five-field cron, type cron only"}
    ),
    "active": {"type": "boolean", "default": True},
    "catch_up": {"type": "string", "enum": ["once", "skip"], "default": "once"},
}

JOB_FIELDS: dict[str, Any] = {
    "name": text(200),
    "annotation": nullable({"type": "string", "maxLength": 100_000}),
    "connection_id": {"type": "integer", "minimum": 1, "description": "A usable connection"},
    "query": text(1_000_000, "The SQL statement"),
    "timeout_seconds": nullable(
        {
            "type": "integer",
            "minimum": 1,
            "maximum": 7 * 24 * 3600,
            "description": "Default DB_TIMEOUT",
        }
    ),
    "recipients": {
        "type": "array",
        "items": {"type": "string", "format": "email", "maxLength": 254},
    },
    "schedules": {"type": "array", "items": ref("ScheduleInput")},
    "shared": {"type": "boolean", "default": False},
}

SCHEMAS: dict[str, Any] = {
    "Error": {
        "type": "object",
        "required": ["error"],
        "properties": {
            "error": {
                "type": "object",
                "required": ["code", "message"],
                "properties": {
                    "code": STRING,
                    "message": STRING,
                    "field": {"type": "string", "description": "The offending input"},
                    "status": {"type": "string", "description": "A run's status (409)"},
                },
            }
        },
    },
    "User": {
        "type": "object",
        "required": ["id", "email", "is_admin"],
        "properties": {"id": INTEGER, "email": STRING, "is_admin": BOOLEAN},
    },
    "Me": {
        "type": "object",
        "required": ["user"],
        "properties": {"user": ref("User"), "csrf_token": STRING},
    },
    "ConnectionInput": {
        "type": "object",
        "additionalProperties": False,
        "required": ["name", "driver", "database"],
        "properties": CONNECTION_FIELDS,
    },
    "ConnectionPatch": {
        "type": "object",
        "additionalProperties": False,
        "properties": CONNECTION_FIELDS,
    },
    "Connection": {
        "type": "object",
        "required": [
            "id",
            "name",
            "driver",
            "host",
            "port",
            "database",
            "user",
            "has_password",
            "read_only",
            "shared",
            "options",
            "owner_id",
            "created_at",
            "updated_at",
        ],
        "properties": {
            "id": INTEGER,
            "name": STRING,
            "driver": STRING,
            "host": nullable(STRING),
            "port": nullable(INTEGER),
            "database": STRING,
            "user": nullable(STRING),
            "has_password": BOOLEAN,
            "read_only": BOOLEAN,
            "shared": BOOLEAN,
            "options": {"type": "object"},
            "owner_id": nullable(INTEGER),
            "created_at": TIMESTAMP,
            "updated_at": TIMESTAMP,
        },
    },
    "ConnectionEnvelope": {
        "type": "object",
        "required": ["connection"],
        "properties": {"connection": ref("Connection")},
    },
    "ConnectionList": {
        "type": "object",
        "required": ["connections"],
        "properties": {"connections": {"type": "array", "items": ref("Connection")}},
    },
    "CheckResult": {
        "type": "object",
        "required": ["ok", "error", "elapsed_ms"],
        "properties": {"ok": BOOLEAN, "error": nullable(STRING), "elapsed_ms": INTEGER},
    },
    "ScheduleInput": {
        "type": "object",
        "additionalProperties": False,
        "required": ["type", "start"],
        "properties": SCHEDULE_FIELDS,
    },
    "Schedule": {
        "type": "object",
        "required": [
            "id",
            "type",
            "start",
            "timezone",
            "cron",
            "active",
            "catch_up",
            "next_run_at",
            "last_run_at",
        ],
        "properties": {
            "id": INTEGER,
            "type": STRING,
            "start": STRING,
            "timezone": STRING,
            "cron": nullable(STRING),
            "active": BOOLEAN,
            "catch_up": STRING,
            "next_run_at": nullable(TIMESTAMP),
            "last_run_at": nullable(TIMESTAMP),
        },
    },
    "JobInput": {
        "type": "object",
        "additionalProperties": False,
        "required": ["name", "connection_id", "query"],
        "properties": JOB_FIELDS,
    },
    "JobPatch": {"type": "object", "additionalProperties": False, "properties": JOB_FIELDS},
    "Job": {
        "type": "object",
        "required": [
            "id",
            "name",
            "annotation",
            "connection_id",
            "connection_deleted",
            "query",
            "timeout_seconds",
            "recipients",
            "schedules",
            "shared",
            "owner_id",
            "run_count",
            "created_at",
            "updated_at",
        ],
        "properties": {
            "id": INTEGER,
            "name": STRING,
            "annotation": STRING,
            "connection_id": INTEGER,
            "connection_deleted": BOOLEAN,
            "query": STRING,
            "timeout_seconds": nullable(INTEGER),
            "recipients": {"type": "array", "items": STRING},
            "schedules": {"type": "array", "items": ref("Schedule")},
            "shared": BOOLEAN,
            "owner_id": nullable(INTEGER),
            "run_count": INTEGER,
            "created_at": TIMESTAMP,
            "updated_at": TIMESTAMP,
        },
    },
    "JobEnvelope": {"type": "object", "required": ["job"], "properties": {"job": ref("Job")}},
    "JobList": {
        "type": "object",
        "required": ["jobs"],
        "properties": {"jobs": {"type": "array", "items": ref("Job")}},
    },
    "PreviewInput": {
        "type": "object",
        "additionalProperties": False,
        "required": ["connection_id", "query"],
        "properties": {
            "connection_id": JOB_FIELDS["connection_id"],
            "query": JOB_FIELDS["query"],
            "timeout_seconds": JOB_FIELDS["timeout_seconds"],
        },
    },
    "Preview": {
        "type": "object",
        "required": ["header", "rows", "scrubbed", "masked", "truncated", "elapsed_ms"],
        "properties": {
            "header": {"type": "array", "items": STRING},
            "rows": {"type": "array", "items": {"type": "array", "items": {}}},
            "scrubbed": {
                "type": "array",
                "description": "Columns removed because they look like credentials",
                "items": {
                    "type": "object",
                    "required": ["column", "reason"],
                    "properties": {"column": STRING, "reason": STRING},
                },
            },
            "masked": {
                "type": "object",
                "description": "How many values of each credential shape were masked",
                "additionalProperties": INTEGER,
            },
            "untraced": {
                "type": "array",
                "description": "Kept columns whose source table columns could not be traced",
                "items": STRING,
            },
            "note": {"type": "string", "description": "What the untraced columns mean, or ''"},
            "truncated": {"type": "boolean", "description": "More rows than QUERY_TEST_LIMIT"},
            "elapsed_ms": INTEGER,
        },
    },
    "Notification": {
        "type": "object",
        "required": ["id", "notifier", "recipient", "status", "attempts", "last_error", "sent_at"],
        "properties": {
            "id": INTEGER,
            "notifier": STRING,
            "recipient": STRING,
            "status": {"type": "string", "enum": ["pending", "sent", "failed"]},
            "attempts": INTEGER,
            "last_error": nullable(STRING),
            "sent_at": nullable(TIMESTAMP),
        },
    },
    "Tracker": {
        "type": "object",
        "required": [
            "id",
            "job_id",
            "schedule_id",
            "status",
            "queued_at",
            "started_at",
            "finished_at",
            "duration_ms",
            "row_count",
            "error",
            "result_expires_at",
            "notifications",
        ],
        "properties": {
            "id": INTEGER,
            "job_id": INTEGER,
            "schedule_id": nullable(INTEGER),
            "status": {"type": "string", "enum": [status.value for status in TrackerStatus]},
            "queued_at": TIMESTAMP,
            "started_at": nullable(TIMESTAMP),
            "finished_at": nullable(TIMESTAMP),
            "duration_ms": nullable(INTEGER),
            "row_count": nullable(INTEGER),
            "error": nullable(STRING),
            "result_expires_at": nullable(TIMESTAMP),
            "notifications": {"type": "array", "items": ref("Notification")},
        },
    },
    "TrackerEnvelope": {
        "type": "object",
        "required": ["tracker"],
        "properties": {"tracker": ref("Tracker")},
    },
    "RunList": {
        "type": "object",
        "required": ["runs", "next_before"],
        "properties": {
            "runs": {"type": "array", "items": ref("Tracker")},
            "next_before": nullable(
                {"type": "integer", "description": "Pass as `before` for the next page"}
            ),
        },
    },
    "ResultDocument": {
        "type": "object",
        "required": ["header", "rows"],
        "properties": {
            "header": {"type": "array", "items": STRING},
            "rows": {"type": "array", "items": {"type": "array", "items": {}}},
        },
    },
}

RESULT_OK = {
    "description": "The result, streamed as an attachment named `Result_tid_<id>.<ext>`",
    "headers": {
        "Content-Disposition": {"schema": STRING},
        "Content-Length": {"schema": INTEGER},
    },
    "content": {
        JSON: {"schema": ref("ResultDocument")},
        CSV: {"schema": {"type": "string"}},
        XLSX: {"schema": {"type": "string", "format": "binary"}},
    },
}
RESULT_ERRORS = {
    "409": error_response("The run has not finished (or failed): `status` says which"),
    "410": error_response("The result expired (JOB_RESULT_VALID_SECONDS)"),
}


def _paths() -> dict[str, Any]:
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
            "get": {
                "operationId": "listConnections",
                "summary": "Connections you may see: yours and the shared ones (admins: all)",
                "responses": responses(r200=json_ok("Connections", ref("ConnectionList"))),
            },
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
        "/jobs": {
            "get": {
                "operationId": "listJobs",
                "parameters": [
                    {
                        "name": "limit",
                        "in": "query",
                        "schema": {"type": "integer", "minimum": 1, "maximum": 1000},
                    },
                    {"name": "offset", "in": "query", "schema": {"type": "integer", "minimum": 0}},
                ],
                "responses": responses("422", r200=json_ok("Jobs", ref("JobList"))),
            },
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
                "responses": {
                    **responses("404", r202=json_ok("Queued", ref("TrackerEnvelope"))),
                    "409": error_response("The job's connection was deleted"),
                },
            },
            "get": {
                "operationId": "listRuns",
                "summary": "The job's runs, newest first",
                "parameters": [
                    {
                        "name": "status",
                        "in": "query",
                        "schema": {
                            "type": "string",
                            "enum": [status.value for status in TrackerStatus],
                        },
                    },
                    {
                        "name": "limit",
                        "in": "query",
                        "schema": {"type": "integer", "minimum": 1, "maximum": 500, "default": 50},
                    },
                    {"name": "before", "in": "query", "schema": {"type": "integer", "minimum": 1}},
                ],
                "responses": responses("404", "422", r200=json_ok("Runs", ref("RunList"))),
            },
        },
        "/jobs/{id}/latest/result.{format}": {
            "parameters": [job_id, FORMAT],
            "get": {
                "operationId": "latestResult",
                "summary": "The result of the job's newest successful run",
                "responses": {**responses("404", r200=RESULT_OK), **RESULT_ERRORS},
            },
        },
        "/trackers/{id}": {
            "parameters": [tracker_id],
            "get": {
                "operationId": "getTracker",
                "responses": responses("404", r200=json_ok("The run", ref("TrackerEnvelope"))),
            },
        },
        "/trackers/{id}/result.{format}": {
            "parameters": [tracker_id, FORMAT],
            "get": {
                "operationId": "trackerResult",
                "summary": "The run's result",
                "responses": {**responses("404", r200=RESULT_OK), **RESULT_ERRORS},
            },
        },
    }


def _links(pointer: str, *operation_ids: str) -> dict[str, Any]:
    """OpenAPI links: the new object's id feeds these operations (fuzzers follow them)."""
    return {
        operation_id: {"operationId": operation_id, "parameters": {"id": pointer}}
        for operation_id in operation_ids
    }


def _with_links(response: dict[str, Any], links: dict[str, Any]) -> dict[str, Any]:
    return {**response, "links": links}


def document(server_url: str, drivers: list[str]) -> dict[str, Any]:
    """The document for this server: its URL and its registered drivers."""
    schemas = copy.deepcopy(SCHEMAS)
    for name in ("ConnectionInput", "ConnectionPatch"):
        schemas[name]["properties"]["driver"]["enum"] = drivers
    paths = _paths()
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
            "listRuns",
            "latestResult",
        ),
    )
    paths["/jobs/{id}/runs"]["post"]["responses"]["202"] = _with_links(
        paths["/jobs/{id}/runs"]["post"]["responses"]["202"],
        _links("$response.body#/tracker/id", "getTracker", "trackerResult"),
    )
    return {
        "openapi": "3.0.3",
        "info": {
            "title": "DanceCat API",
            "version": "1",
            "description": (
                "Saved SQL queries as jobs, run in the background, results as CSV, XLSX "
                "and JSON. Authenticate with `Authorization: Bearer <token>` "
                "(`dancecat token create EMAIL`). Errors are "
                '`{"error": {"code", "message", "field"?}}`. See docs/API.md.'
            ),
        },
        "servers": [{"url": server_url}],
        "security": [{"bearerAuth": []}, {"cookieSession": []}],
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
            "schemas": schemas,
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
    return document(request.application_url + "/api/v1", sorted(request.runtime.drivers))
