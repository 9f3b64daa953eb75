"""A job as submitted: its query, the connection it runs on, who gets the result."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import attrs

from dancecat_core import destinations
from dancecat_core.inputs.fields import Input, Kind, spec
from dancecat_core.inputs.recipients import GRAMMAR_HELP
from dancecat_core.messages import (
    DEFAULT_FILE_NAME,
    DEFAULT_FILENAME,
    DEFAULT_SUBJECT,
    MAX_BODY_ROWS,
    MAX_TEMPLATE_CHARS,
    VARIABLES,
    check,
)
from dancecat_core.models import RunAfter

MAX_QUERY_CHARS = 1_000_000
MAX_TIMEOUT_SECONDS = 7 * 24 * 3600
MAX_ID = 2**62
TEMPLATE_HELP = "Names: " + ", ".join(f"{{{{ {name} }}}}" for name in VARIABLES) + "."


def _template(name: str, label: str) -> Callable[[str], str | None]:
    def checked(text: str) -> str | None:
        return check(text, field=name, label=label)

    return checked


@attrs.frozen
class JobInput(Input):
    """A job. ``recipients`` is its destinations: email addresses and URLs
    (``dancecat_core.destinations``)."""

    name: Any = spec("Name", Kind.TEXT, required=True, max_length=200, flag="name")
    annotation: Any = spec(
        "Annotation",
        Kind.TEXT,
        nullable=True,
        default="",
        max_length=100_000,
        widget="textarea",
        flag="--annotation",
        help="Markdown; shown on the job's page.",
    )
    connection_id: Any = spec(
        "Connection",
        Kind.INTEGER,
        required=True,
        minimum=1,
        maximum=MAX_ID,
        widget="connection",
        flag="--connection",
        help="One of the connections you may use.",
    )
    query: Any = spec(
        "Query",
        Kind.TEXT,
        required=True,
        max_length=MAX_QUERY_CHARS,
        widget="code",
        flag="--sql",
        file_flag="--sql-file",
        help="Tab leaves the editor; Ctrl-Enter runs a preview.",
    )
    parameters: Any = spec(
        "Parameters",
        Kind.PARAMETERS,
        default=(),
        widget="parameters",
        flag="--parameter",
        off_flag="--no-parameters",
        placeholder="since:date=2026-01-01",
        help=(
            "Each NAME:TYPE[=DEFAULT] (on the form, one per line); TYPE is text, integer, "
            "number, date, datetime, boolean or allowed values as A|B|C. Use them as {{ NAME }}."
        ),
    )
    timeout_seconds: Any = spec(
        "Timeout (seconds)",
        Kind.INTEGER,
        nullable=True,
        minimum=1,
        maximum=MAX_TIMEOUT_SECONDS,
        flag="--timeout",
        off_flag="--no-timeout",
        help="Empty: the server's default (DB_TIMEOUT).",
    )
    recipients: Any = spec(
        "Send result to",
        Kind.RECIPIENTS,
        default=(),
        max_length=destinations.MAX_LENGTH + 200,
        widget="emails",
        flag="--recipient",
        off_flag="--no-recipients",
        placeholder="report_to@example.com when rows, or https://…",
        help=GRAMMAR_HELP,
    )
    subject_template: Any = spec(
        "Mail subject",
        Kind.TEXT,
        nullable=True,
        max_length=MAX_TEMPLATE_CHARS,
        flag="--subject",
        check=_template("subject_template", "Mail subject"),
        placeholder=DEFAULT_SUBJECT,
        help="A template; empty: the default. " + TEMPLATE_HELP,
    )
    body_template: Any = spec(
        "Mail body",
        Kind.TEXT,
        nullable=True,
        max_length=MAX_TEMPLATE_CHARS,
        widget="textarea",
        flag="--body",
        check=_template("body_template", "Mail body"),
        help="A template; empty: the default (job, run, status, rows, download link).",
        strip=False,
    )
    filename_template: Any = spec(
        "File name",
        Kind.TEXT,
        nullable=True,
        max_length=1000,
        flag="--attachment-name",
        check=_template("filename_template", "File name"),
        placeholder=DEFAULT_FILE_NAME,
        help="A template for the name, without extension, of the mail's attachment and of "
        f"the file a folder, SFTP or S3 destination writes; empty: {DEFAULT_FILE_NAME} for "
        f"files, {DEFAULT_FILENAME} for attachments.",
    )
    body_rows: Any = spec(
        "Rows in the body",
        Kind.INTEGER,
        default=0,
        minimum=0,
        maximum=MAX_BODY_ROWS,
        flag="--body-rows",
        help=f"The mail shows the first N rows as a table (0: none, at most {MAX_BODY_ROWS}).",
    )
    alert_after_failures: Any = spec(
        "Alert after failures",
        Kind.INTEGER,
        default=1,
        minimum=0,
        maximum=1000,
        flag="--alert-after-failures",
        help="The owner is mailed once when this many runs in a row failed (0: never).",
    )
    after_job_id: Any = spec(
        "Run after job",
        Kind.INTEGER,
        nullable=True,
        minimum=1,
        maximum=MAX_ID,
        widget="job",
        flag="--after",
        off_flag="--no-after",
        help="Empty: not chained. Runs after each run of that job ends as below.",
    )
    after_on: Any = spec(
        "Run after its",
        Kind.CHOICE,
        default=RunAfter.SUCCESS.value,
        widget="select",
        flag="--on",
        choices=((RunAfter.SUCCESS.value, "Success"), (RunAfter.FAILURE.value, "Failure")),
    )
    shared: Any = spec(
        "Shared",
        Kind.BOOLEAN,
        default=False,
        widget="checkbox",
        flag="--shared",
        help="Everyone on this DanceCat may see and run it.",
    )


PREVIEW_FIELDS = ("connection_id", "query", "parameters", "timeout_seconds")
