"""The OpenAPI component schemas: request bodies and answers.

Request bodies are derived from the input declarations (``dancecat_core.inputs``), the
same ones the services check and the forms draw, so a limit or a choice is stated once;
an answer's field that holds a choice (a driver, a schedule type) states the same enum as
its input. Lists are paged by ``dancecat_web.api.paging``, whose parameters and fields
``page_schema`` states. ``dancecat_web.api.openapi`` puts them in the document.
"""

from __future__ import annotations

import copy
from typing import Any

from dancecat_core import parameters, placeholders
from dancecat_core.inputs.connection import ConnectionInput
from dancecat_core.inputs.destination_test import DestinationTestInput
from dancecat_core.inputs.fields import Input, InputField, Kind
from dancecat_core.inputs.job import PREVIEW_FIELDS, JobInput
from dancecat_core.inputs.job_urls import PullUrlInput, TriggerInput
from dancecat_core.inputs.run import RunInput
from dancecat_core.inputs.schedule import ScheduleInput
from dancecat_core.models import NotificationStatus, RunAfter, TrackerStatus
from dancecat_core.services.job_urls import PULL_FORMATS

JSON = "application/json"


def ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def nullable(schema: dict[str, Any]) -> dict[str, Any]:
    """``schema`` or null. An enum lists null too: OpenAPI 3.0.3 says ``enum`` limits the
    values even when ``nullable`` is true, and generated clients read it so."""
    if "enum" in schema and None not in schema["enum"]:
        schema = {**schema, "enum": [*schema["enum"], None]}
    return {**schema, "nullable": True}


STRING = {"type": "string"}
INTEGER = {"type": "integer"}
BOOLEAN = {"type": "boolean"}
TIMESTAMP = {"type": "string", "format": "date-time"}
ID = {"type": "integer", "minimum": 1}


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
                ref("ParameterType"),
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
        schema["items"] = ref("ParameterDeclaration")
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
    schedule_id = nullable(
        {
            "type": "integer",
            "description": "One of the job's schedules, to keep and change: the fields left "
            "out keep their values. Without it the item is a new schedule, which needs "
            + " and ".join(f"`{field.name}`" for field in ScheduleInput.fields() if field.required),
        }
    )
    schedules = {"schedules": {"type": "array", "items": ref("ScheduleInput")}}
    run_values = field_schema(RunInput.field("parameters"), runtime)
    return {
        "ConnectionInput": input_schema(ConnectionInput, runtime),
        "ConnectionPatch": input_schema(ConnectionInput, runtime, required=False),
        # Not ``required``: an item with an ``id`` may leave any field out (``schedule_id``).
        "ScheduleInput": input_schema(
            ScheduleInput, runtime, required=False, extra={"id": schedule_id}
        ),
        "JobInput": input_schema(JobInput, runtime, extra=schedules),
        "JobPatch": input_schema(JobInput, runtime, required=False, extra=schedules),
        "PreviewInput": input_schema(
            JobInput, runtime, only=PREVIEW_FIELDS, extra={"values": run_values}
        ),
        "RunInput": input_schema(RunInput, runtime),
        "PullUrlInput": input_schema(PullUrlInput, runtime),
        "TriggerInput": input_schema(TriggerInput, runtime),
        "DestinationTestInput": input_schema(DestinationTestInput, runtime),
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
    "ParameterDeclaration": PARAMETER_SCHEMA,
    "ParameterType": {"type": "string", "enum": list(parameters.TYPES)},
    "Error": {
        "type": "object",
        "description": "Every error the API answers, whatever its status",
        "required": ["error"],
        "properties": {"error": ref("ErrorDetail")},
    },
    "ErrorDetail": {
        "type": "object",
        "required": ["code", "message"],
        "properties": {
            "code": {**STRING, "description": "Stable, for programs (`invalid`, `not_found`)"},
            "message": {**STRING, "description": "Fit to show to a person"},
            "field": {"type": "string", "description": "The offending input"},
            "errors": {
                "type": "array",
                "description": "Every refused field, when there are several",
                "items": ref("FieldError"),
            },
            "status": ref("RunStatus"),
        },
    },
    "FieldError": {
        "type": "object",
        "required": ["field", "message"],
        "properties": {"field": STRING, "message": STRING},
    },
    "RunStatus": {"type": "string", "enum": [status.value for status in TrackerStatus]},
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
    "CatalogueColumn": {
        "type": "object",
        "required": ["name", "type", "scrubbed"],
        "properties": {
            "name": STRING,
            "type": {**STRING, "description": "As the database declares it"},
            "scrubbed": nullable(
                {**STRING, "description": "Why a run would remove this column, if it would"}
            ),
        },
    },
    "Catalogue": {
        "type": "object",
        "required": ["connection_id", "driver", "read_at", "read_ms", "left_out", "tables"],
        "properties": {
            "connection_id": ID,
            "driver": STRING,
            "read_at": TIMESTAMP,
            "read_ms": INTEGER,
            "left_out": {**INTEGER, "description": "Tables beyond what one read keeps"},
            "tables": {
                "type": "array",
                "items": {
                    "type": "object",
                    "required": ["schema", "name", "kind", "searchable", "columns"],
                    "properties": {
                        "schema": STRING,
                        "name": STRING,
                        "kind": {"type": "string", "enum": ["table", "view"]},
                        "searchable": {
                            **BOOLEAN,
                            "description": "Whether the name works without its schema",
                        },
                        "columns": nullable(
                            {
                                "type": "array",
                                "items": ref("CatalogueColumn"),
                                "description": "Null until read (`/schema/columns`)",
                            }
                        ),
                    },
                },
            },
        },
    },
    "CatalogueEnvelope": {
        "type": "object",
        "required": ["schema"],
        "properties": {"schema": ref("Catalogue")},
    },
    "CatalogueColumns": {
        "type": "object",
        "required": ["schema", "table", "columns"],
        "properties": {
            "schema": STRING,
            "table": STRING,
            "columns": {"type": "array", "items": ref("CatalogueColumn")},
        },
    },
    "FormatSqlInput": {
        "type": "object",
        "required": ["query"],
        "additionalProperties": False,
        "properties": {
            "query": STRING,
            "connection_id": nullable(
                {**ID, "description": "Read the query in this connection's dialect"}
            ),
        },
    },
    "FormattedSql": {"type": "object", "required": ["query"], "properties": {"query": STRING}},
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
            "last_run_at",
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
            "parameters": {"type": "array", "items": ref("ParameterDeclaration")},
            "timeout_seconds": nullable(INTEGER),
            "recipients": {"type": "array", "items": STRING},
            "schedules": {"type": "array", "items": ref("Schedule")},
            "after_job_id": nullable(INTEGER),
            "after_on": nullable({"type": "string", "enum": [c.value for c in RunAfter]}),
            "shared": BOOLEAN,
            "owner_id": nullable(INTEGER),
            "run_count": INTEGER,
            "created_at": TIMESTAMP,
            "updated_at": {**TIMESTAMP, "description": "Last edited (a run does not change it)"},
            "last_run_at": nullable({**TIMESTAMP, "description": "When its newest run was queued"}),
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
    "Preview": {
        "type": "object",
        "required": ["header", "rows", "scrubbed", "masked", "truncated", "elapsed_ms"],
        "properties": {
            "header": {"type": "array", "items": STRING},
            "rows": {"type": "array", "items": {"type": "array", "items": {}}},
            "scrubbed": {
                "type": "array",
                "description": "Columns removed because they look like credentials",
                "items": ref("ScrubbedColumn"),
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
    "ScrubbedColumn": {
        "type": "object",
        "required": ["column", "reason"],
        "properties": {"column": STRING, "reason": STRING},
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
            "attempts",
            "note",
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
            "status": ref("RunStatus"),
            "queued_at": TIMESTAMP,
            "started_at": nullable(TIMESTAMP),
            "finished_at": nullable(TIMESTAMP),
            "duration_ms": nullable(INTEGER),
            "row_count": nullable(INTEGER),
            "parameters": VALUES,
            "error": nullable(STRING),
            "attempts": {
                **INTEGER,
                "description": "times it was started (a read-only run whose worker died "
                "is run again, RUN_RETRIES)",
            },
            "note": {**nullable(STRING), "description": "why it ran more than once"},
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
            "pull_url": ref("CreatedPullUrl"),
        },
    },
    "CreatedPullUrl": {
        "type": "object",
        "required": [*URL_FIELDS, *PULL_FORMATS],
        "properties": {
            **URL_PROPERTIES,
            **{
                fmt: {**STRING, "description": f"GET it for {fmt.upper()} (shown once)"}
                for fmt in PULL_FORMATS
            },
        },
    },
    "Trigger": {
        "type": "object",
        "required": [*URL_FIELDS, "signed"],
        "properties": {**URL_PROPERTIES, "signed": BOOLEAN},
    },
    "DestinationTestResults": {
        "type": "object",
        "required": ["results"],
        "properties": {
            "results": {
                "type": "array",
                "items": {
                    "type": "object",
                    "required": ["destination", "sent", "error"],
                    "properties": {
                        "destination": {**STRING, "description": "As shown: secrets masked"},
                        "sent": BOOLEAN,
                        "error": nullable({**STRING, "description": "Why not (secrets masked)"}),
                    },
                },
            }
        },
    },
    "NewTrigger": {
        "type": "object",
        "required": ["trigger"],
        "properties": {
            "trigger": ref("CreatedTrigger"),
        },
    },
    "CreatedTrigger": {
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
    },
    "TrackerEnvelope": {
        "type": "object",
        "required": ["tracker"],
        "properties": {"tracker": ref("Tracker")},
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


def page_schema(name: str, item: str) -> dict[str, Any]:
    """A page of a list (``dancecat_web.api.paging``): ``name`` holds the ``item``s."""
    return {
        "type": "object",
        "required": [name, "next", "next_cursor"],
        "properties": {
            name: {"type": "array", "items": ref(item)},
            "next": nullable(
                {
                    "type": "string",
                    "format": "uri",
                    "description": "The next page's URL; null on the last page",
                }
            ),
            "next_cursor": nullable(
                {"type": "string", "description": "The next page's `cursor`; null on the last"}
            ),
        },
    }


LISTS = {
    "ConnectionList": ("connections", "Connection"),
    "JobList": ("jobs", "Job"),
    "RunList": ("runs", "Tracker"),
    "PullUrlList": ("pull_urls", "PullUrl"),
    "TriggerList": ("triggers", "Trigger"),
}


def _answer_choices(schemas: dict[str, Any], runtime: Any) -> None:
    """An answer's field holding a choice states the enum its input field does."""
    for answer, input_class, names in (
        ("Connection", ConnectionInput, ("driver",)),
        ("Schedule", ScheduleInput, ("type", "catch_up")),
    ):
        for name in names:
            choices = field_schema(input_class.field(name), runtime)["enum"]
            schemas[answer]["properties"][name] = {"type": "string", "enum": choices}


def components(runtime: Any) -> dict[str, Any]:
    """Every component schema, for this runtime's registered plugins."""
    schemas = {
        **copy.deepcopy(SCHEMAS),
        **input_schemas(runtime),
        **{name: page_schema(key, item) for name, (key, item) in LISTS.items()},
    }
    _answer_choices(schemas, runtime)
    return schemas
