"""``GET /api/v1/openapi.json``: the API described in OpenAPI 3.0.

Paths and answers are written by hand so they say what we promise; request bodies are
derived from the input declarations (``dancecat_core.inputs``), the same ones the
services check and the forms draw, so a limit or a choice is stated once.
``tests/test_web_openapi.py`` checks every route is described, and the schemathesis run
checks the answers match it.
"""

from __future__ import annotations

import copy
from typing import Any

from pyramid.request import Request
from pyramid.security import NO_PERMISSION_REQUIRED
from pyramid.view import view_config

from dancecat_core import parameters, placeholders
from dancecat_core.inputs.connection import ConnectionInput
from dancecat_core.inputs.fields import Input, InputField, Kind
from dancecat_core.inputs.job import PREVIEW_FIELDS, JobInput
from dancecat_core.inputs.job_urls import PullUrlInput, TriggerInput
from dancecat_core.inputs.run import RunInput
from dancecat_core.inputs.schedule import ScheduleInput
from dancecat_core.models import NotificationStatus, RunAfter, TrackerStatus
from dancecat_core.services.job_urls import PULL_FORMATS

JSON = "application/json"
CSV = "text/csv"
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


def ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def nullable(schema: dict[str, Any]) -> dict[str, Any]:
    return {**schema, "nullable": True}


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


def format_parameter(formats: list[str]) -> dict[str, Any]:
    """The ``{format}`` path parameter: one of the registered exporters' formats."""
    return {
        "name": "format",
        "in": "path",
        "required": True,
        "description": "The download format (a registered exporter)",
        "schema": {"type": "string", "enum": list(formats)},
    }


VALUE_SCHEMA = {"oneOf": [{"type": "string"}, {"type": "number"}, {"type": "boolean"}]}
VALUES = {"type": "object", "additionalProperties": VALUE_SCHEMA}
PARAMETER_SCHEMA = {
    "type": "object",
    "required": ["name", "type"],
    "additionalProperties": False,
    "properties": {
        "name": {"type": "string", "pattern": f"^{placeholders.NAME}$"},
        "type": {
            "oneOf": [
                {"type": "string", "enum": list(parameters.TYPES)},
                {"type": "array", "items": {"type": "string", "minLength": 1}, "minItems": 1},
            ],
            "description": "A type, or the list of allowed values.",
        },
        "default": {**VALUE_SCHEMA, "nullable": True},
    },
}


def field_schema(field: InputField, runtime: Any) -> dict[str, Any]:
    """One input field's JSON schema, from its declaration (limits, choices, help)."""
    schema: dict[str, Any] = {"type": field.json_type}
    if field.kind is Kind.EMAILS:
        schema["items"] = {"type": "string", "format": "email", "maxLength": field.max_length}
    elif field.kind is Kind.RECIPIENTS:
        schema["items"] = {"type": "string", "maxLength": field.max_length}
    elif field.kind is Kind.PARAMETERS:
        schema["items"] = PARAMETER_SCHEMA
    elif field.kind is Kind.VALUES:
        schema["additionalProperties"] = VALUE_SCHEMA
    elif field.json_type == "string":
        if field.max_length is not None:
            schema["maxLength"] = field.max_length
        if field.required and field.kind is not Kind.CHOICE:
            schema.update(minLength=1, pattern=field.pattern or r"\S")
        elif field.pattern:
            schema["pattern"] = field.pattern
    if field.kind is Kind.CHOICE:
        schema["enum"] = [value for value, _ in field.options(runtime)]
    if field.minimum is not None:
        schema["minimum"] = field.minimum
    if field.maximum is not None:
        schema["maximum"] = field.maximum
    if field.default not in (None, (), {}):
        schema["default"] = field.default
    if field.write_only:
        schema["writeOnly"] = True
    description = " ".join(part for part in (field.label + ".", field.help) if part)
    schema["description"] = description
    return nullable(schema) if field.nullable else schema


def input_schema(
    input_class: type[Input],
    runtime: Any,
    *,
    required: bool = True,
    only: tuple[str, ...] | None = None,
    extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The request schema of an input class: every field, ``required`` ones required
    (``required=False``: a patch, where every field may be left out)."""
    fields = [f for f in input_class.fields() if only is None or f.name in only]
    schema: dict[str, Any] = {
        "type": "object",
        "additionalProperties": False,
        "properties": {
            **(extra or {}),
            **{field.name: field_schema(field, runtime) for field in fields},
        },
    }
    names = [field.name for field in fields if field.required]
    if required and names:
        schema["required"] = names
    return schema


def input_schemas(runtime: Any) -> dict[str, Any]:
    """The request bodies, derived from the input declarations for this runtime."""
    schedule_id = nullable({"type": "integer", "description": "An existing schedule to keep"})
    schedules = {"schedules": {"type": "array", "items": ref("ScheduleInput")}}
    run_values = field_schema(RunInput.field("parameters"), runtime)
    return {
        "ConnectionInput": input_schema(ConnectionInput, runtime),
        "ConnectionPatch": input_schema(ConnectionInput, runtime, required=False),
        "ScheduleInput": input_schema(ScheduleInput, runtime, extra={"id": schedule_id}),
        "JobInput": input_schema(JobInput, runtime, extra=schedules),
        "JobPatch": input_schema(JobInput, runtime, required=False, extra=schedules),
        "PreviewInput": input_schema(
            JobInput, runtime, only=PREVIEW_FIELDS, extra={"values": run_values}
        ),
        "RunInput": input_schema(RunInput, runtime),
        "PullUrlInput": input_schema(PullUrlInput, runtime),
        "TriggerInput": input_schema(TriggerInput, runtime),
    }


URL_FIELDS = [
    "id",
    "job_id",
    "name",
    "prefix",
    "active",
    "created_at",
    "last_used_at",
    "revoked_at",
]
URL_PROPERTIES: dict[str, Any] = {
    "id": INTEGER,
    "job_id": INTEGER,
    "name": STRING,
    "prefix": {**STRING, "description": "The token's first characters, to tell URLs apart"},
    "active": BOOLEAN,
    "created_at": TIMESTAMP,
    "last_used_at": nullable(TIMESTAMP),
    "revoked_at": nullable(TIMESTAMP),
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
                    "errors": {
                        "type": "array",
                        "description": "Every refused field, when there are several",
                        "items": {
                            "type": "object",
                            "required": ["field", "message"],
                            "properties": {"field": STRING, "message": STRING},
                        },
                    },
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
            "parameters",
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
            "parameters": VALUES,
            "next_run_at": nullable(TIMESTAMP),
            "last_run_at": nullable(TIMESTAMP),
        },
    },
    "Job": {
        "type": "object",
        "required": [
            "id",
            "name",
            "annotation",
            "connection_id",
            "connection_deleted",
            "query",
            "parameters",
            "timeout_seconds",
            "recipients",
            "schedules",
            "after_job_id",
            "after_on",
            "shared",
            "owner_id",
            "run_count",
            "created_at",
            "updated_at",
            "subject_template",
            "body_template",
            "filename_template",
            "body_rows",
            "alert_after_failures",
        ],
        "properties": {
            "id": INTEGER,
            "name": STRING,
            "annotation": STRING,
            "subject_template": nullable(STRING),
            "body_template": nullable(STRING),
            "filename_template": nullable(STRING),
            "body_rows": INTEGER,
            "alert_after_failures": INTEGER,
            "connection_id": INTEGER,
            "connection_deleted": BOOLEAN,
            "query": STRING,
            "parameters": {"type": "array", "items": PARAMETER_SCHEMA},
            "timeout_seconds": nullable(INTEGER),
            "recipients": {"type": "array", "items": STRING},
            "schedules": {"type": "array", "items": ref("Schedule")},
            "after_job_id": nullable(INTEGER),
            "after_on": nullable({"type": "string", "enum": [c.value for c in RunAfter]}),
            "shared": BOOLEAN,
            "owner_id": nullable(INTEGER),
            "run_count": INTEGER,
            "created_at": TIMESTAMP,
            "updated_at": TIMESTAMP,
        },
    },
    "JobEnvelope": {
        "type": "object",
        "required": ["job"],
        "properties": {
            "job": ref("Job"),
            "secrets": {
                "type": "array",
                "items": STRING,
                "description": "After a save that added destinations with a generated "
                "secret (webhooks): 'webhook secret for URL: SECRET', shown this once",
            },
        },
    },
    "JobList": {
        "type": "object",
        "required": ["jobs"],
        "properties": {"jobs": {"type": "array", "items": ref("Job")}},
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
        "required": [
            "id",
            "notifier",
            "recipient",
            "status",
            "attempts",
            "last_error",
            "sent_at",
            "note",
        ],
        "properties": {
            "id": INTEGER,
            "notifier": STRING,
            "recipient": STRING,
            "status": {"type": "string", "enum": [s.value for s in NotificationStatus]},
            "note": nullable(STRING),
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
            "upstream_run_id",
            "trigger_id",
            "due_at",
            "status",
            "queued_at",
            "started_at",
            "finished_at",
            "duration_ms",
            "row_count",
            "parameters",
            "error",
            "result_expires_at",
            "notifications",
        ],
        "properties": {
            "id": INTEGER,
            "job_id": INTEGER,
            "schedule_id": nullable(INTEGER),
            "upstream_run_id": nullable(INTEGER),
            "trigger_id": nullable(INTEGER),
            "due_at": nullable(TIMESTAMP),
            "status": {"type": "string", "enum": [status.value for status in TrackerStatus]},
            "queued_at": TIMESTAMP,
            "started_at": nullable(TIMESTAMP),
            "finished_at": nullable(TIMESTAMP),
            "duration_ms": nullable(INTEGER),
            "row_count": nullable(INTEGER),
            "parameters": VALUES,
            "error": nullable(STRING),
            "result_expires_at": nullable(TIMESTAMP),
            "notifications": {"type": "array", "items": ref("Notification")},
        },
    },
    "PullUrl": {
        "type": "object",
        "required": URL_FIELDS,
        "properties": {**URL_PROPERTIES},
    },
    "NewPullUrl": {
        "type": "object",
        "required": ["pull_url"],
        "properties": {
            "pull_url": {
                "type": "object",
                "required": [*URL_FIELDS, *PULL_FORMATS],
                "properties": {
                    **URL_PROPERTIES,
                    **{
                        fmt: {**STRING, "description": f"GET it for {fmt.upper()} (shown once)"}
                        for fmt in PULL_FORMATS
                    },
                },
            }
        },
    },
    "PullUrlList": {
        "type": "object",
        "required": ["pull_urls"],
        "properties": {"pull_urls": {"type": "array", "items": ref("PullUrl")}},
    },
    "Trigger": {
        "type": "object",
        "required": [*URL_FIELDS, "signed"],
        "properties": {**URL_PROPERTIES, "signed": BOOLEAN},
    },
    "NewTrigger": {
        "type": "object",
        "required": ["trigger"],
        "properties": {
            "trigger": {
                "type": "object",
                "required": [*URL_FIELDS, "signed", "url", "secret"],
                "properties": {
                    **URL_PROPERTIES,
                    "signed": BOOLEAN,
                    "url": {**STRING, "description": "POST to it to queue a run (shown once)"},
                    "secret": nullable(
                        {**STRING, "description": "The HMAC key of a signed trigger (shown once)"}
                    ),
                },
            }
        },
    },
    "TriggerList": {
        "type": "object",
        "required": ["triggers"],
        "properties": {"triggers": {"type": "array", "items": ref("Trigger")}},
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


def _paths(formats: list[str]) -> dict[str, Any]:
    fmt = format_parameter(formats)
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
            "parameters": [job_id, fmt],
            "get": {
                "operationId": "latestResult",
                "summary": "The result of the job's newest successful run",
                "responses": {**responses("404", r200=RESULT_OK), **RESULT_ERRORS},
            },
        },
        "/jobs/{id}/pull-urls": {
            "parameters": [job_id],
            "get": {
                "operationId": "listPullUrls",
                "summary": "The job's pull URLs (revoked ones too), newest first; owner or admin",
                "responses": responses("404", r200=json_ok("Pull URLs", ref("PullUrlList"))),
            },
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
            "get": {
                "operationId": "listTriggers",
                "summary": "The job's trigger URLs (revoked ones too), newest first",
                "responses": responses("404", r200=json_ok("Triggers", ref("TriggerList"))),
            },
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
        "/trackers/{id}": {
            "parameters": [tracker_id],
            "get": {
                "operationId": "getTracker",
                "responses": responses("404", r200=json_ok("The run", ref("TrackerEnvelope"))),
            },
        },
        "/trackers/{id}/result.{format}": {
            "parameters": [tracker_id, fmt],
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


def document(server_url: str, runtime: Any) -> dict[str, Any]:
    """The document for this server: its URL, and request bodies whose choices are the
    runtime's registered plugins (drivers, schedule types, download formats)."""
    schemas = {**copy.deepcopy(SCHEMAS), **input_schemas(runtime)}
    paths = _paths(runtime.formats)
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
                "Saved SQL queries as jobs, run in the background, results in every "
                "registered download format (CSV, XLSX, JSON, ...). Authenticate with "
                "`Authorization: Bearer <token>` "
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
    return document(request.application_url + "/api/v1", request.runtime)
