"""A run's message: subject, body and file name rendered from the job's templates.

The file name template names both a mail's attachment and the file a file destination
(folder, SFTP, S3) writes; every name goes through ``safe_file_name``.

Templates are Jinja, in a sandbox (``message_sandbox``, which loads jinja2 when a template
is first checked or rendered) that is shut on every side an attacker would try:

- no loader, and ``include``/``import``/``extends`` refused on save: no file is ever read;
- ``SandboxedEnvironment``: no ``_``-prefixed attribute (``''.__class__.__mro__`` fails),
  and only a short list of harmless methods on the values (no ``str.format``, whose
  padding builds strings of any size);
- only the names in ``VARIABLES`` plus ``range``: ``config``, ``cycler``, ``joiner``,
  ``namespace``, ``lipsum`` do not exist, and an unknown name is refused on save;
- a whitelist of filters, strings and lists that grow past ``MAX_TEXT`` refuse to
  (``~``, ``+``, ``*``, ``join``), ``%`` formatting is refused, and rendering stops after
  ``RENDER_SECONDS`` (a loop that prints nothing still runs out of time) or ``MAX_TEXT``
  of output.

A template that fails when a run is delivered never costs the delivery: the default is
used instead, and ``Rendered.notes`` says so (the notification row shows it on the run).
Values are plain text; the HTML part of a mail escapes everything, the row table too.
"""

from __future__ import annotations

import html
import re
import unicodedata
import zoneinfo
from collections.abc import Mapping, Sequence
from typing import Any

import attrs

from dancecat_core import parameters
from dancecat_core.errors import ValidationError
from dancecat_core.notifiers import Templates

MAX_TEMPLATE_CHARS = 20_000
MAX_SUBJECT_CHARS = 250
MAX_FILENAME_CHARS = 120
MAX_BODY_ROWS = 100

# What a template may name: the run's facts. ``parameters`` holds the values the run ran
# with (empty for a job without parameters).
VARIABLES = {
    "job_name": "the job's name",
    "job_slug": "the job's name in letters, digits, '.', '_' and '-' (others made '_')",
    "job_id": "the job's id",
    "run_id": "this run's id",
    "status": "Success or Failed",
    "succeeded": "true when the run succeeded",
    "row_count": "rows in the result (none when it failed)",
    "duration_s": "how long it ran, in seconds",
    "finished_at": "when it finished, UTC ISO 8601",
    "due_at": "the scheduled time it stands for (a manual run: when it was queued), UTC",
    "due_date": "that time's date, in the schedule's time zone",
    "parameters": "the parameter values it ran with, by name",
    "error": "why it failed (scrubbed)",
    "result_url": "the XLSX download link",
    "links": "download links by format: links.xlsx, links.ods, links.csv, ...",
    "attachment_note": "what the mail says about its attachment",
    "scrub_note": "what was removed or masked from the result",
    "recipient": "the address this message goes to",
    "columns": "the result's column names",
    "rows": "its first rows (as many as 'rows in the body'), scrubbed",
}

DEFAULT_SUBJECT = (
    "DanceCat: {{ job_name }} — run {{ run_id }} {{ 'succeeded' if succeeded else 'failed' }}"
)
DEFAULT_BODY = """\
Job: {{ job_name }} (job {{ job_id }})
Run: {{ run_id }}
Status: {{ status }}
{% if finished_at %}Finished: {{ finished_at }} (UTC)
{% endif %}{% if duration_s is not none %}Duration: {{ '%.1f'|format(duration_s) }} s
{% endif %}{% if parameters %}Parameters: {% for name, value in parameters|dictsort %}\
{{ name }} = {{ value }}{{ ', ' if not loop.last }}{% endfor %}
{% endif %}{% if succeeded %}{% if row_count is not none %}Rows: {{ row_count }}
{% endif %}
{{ attachment_note }}
Download: {{ result_url }}
{% if scrub_note %}
{{ scrub_note }}
{% endif %}{% else %}
Error: {{ error or 'unknown' }}
{% endif %}
-- \nSent by DanceCat.
"""
DEFAULT_FILENAME = "Result_tid_{{ run_id }}"
# The default name of the file a file destination writes (without extension): the job, the
# date the run stands for, the run: sorted by date in a folder, unique per run.
DEFAULT_FILE_NAME = "{{ job_slug }}_{{ due_date }}_run{{ run_id }}"


def check(text: str | None, *, field: str, label: str) -> str | None:
    """A template as saved: its syntax, names and sandbox rules checked, else one line."""
    if text is None or not text.strip():
        return None
    if len(text) > MAX_TEMPLATE_CHARS:
        raise ValidationError(f"{label} is longer than {MAX_TEMPLATE_CHARS} characters", field)
    from dancecat_core import message_sandbox  # jinja2, when a template is there to check

    try:
        names = message_sandbox.names_used(text)
    except message_sandbox.TemplateSyntaxError as error:
        raise ValidationError(f"{label}: line {error.lineno}: {error.message}", field) from None
    except message_sandbox.SecurityError as error:
        raise ValidationError(f"{label}: {error}", field) from None
    unknown = sorted(names - VARIABLES.keys() - {"range"})
    if unknown:
        raise ValidationError(
            f"{label}: unknown name {unknown[0]!r}; known: {', '.join(VARIABLES)}", field
        )
    return text


@attrs.frozen
class Rendered:
    subject: str
    body: str
    filename: str  # without extension
    html: str  # the body as HTML with the first rows as a table; "" when no rows are shown
    notes: tuple[str, ...] = ()


def render(
    context: Mapping[str, Any],
    templates: Templates,
    *,
    attached: str | None = None,
) -> Rendered:
    """The message for ``context``; a template that fails is replaced by the default,
    and ``notes`` says which and why. ``attached``: the attachment's extension when the
    result goes along (the body's ``attachment_note`` then names the file)."""
    notes: list[str] = []
    context = dict(context)

    def one(what: str, template: str | None, default: str) -> str:
        if template and template.strip():
            try:
                return _render(template, context)
            except Exception as error:  # any failure in user text: fall back, say so
                notes.append(
                    f"the {what} template failed ({_describe(error)}); the default was used"
                )
        return _render(default, context)

    name, name_notes = file_name(context, templates, default=DEFAULT_FILENAME)
    notes.extend(name_notes)
    if attached:
        context["attachment_note"] = f"The result is attached as {name}{attached}."
    subject_text = " ".join(one("subject", templates.subject, DEFAULT_SUBJECT).split())
    subject_text = subject_text[:MAX_SUBJECT_CHARS] or "DanceCat"
    body_text = one("body", templates.body, DEFAULT_BODY)
    table = rows_table(context.get("columns") or [], context.get("rows") or [])
    html_body = (
        '<div style="white-space: pre-wrap; font-family: sans-serif">'
        + html.escape(body_text)
        + "</div>"
        + table
        if table
        else ""
    )
    return Rendered(subject_text, body_text, name, html_body, tuple(notes))


def file_name(
    context: Mapping[str, Any], templates: Templates, *, default: str = DEFAULT_FILE_NAME
) -> tuple[str, tuple[str, ...]]:
    """The file name (without extension) the job's file name template gives for the run in
    ``context``, made safe (``safe_file_name``); ``default`` when the job has none, or when
    it fails or gives an empty name (the notes say so). Rendered only from the run's
    recorded values, so every try of one delivery gets the same name."""
    values = dict(context)
    template = templates.filename
    if template and template.strip():
        try:
            name = safe_file_name(_render(template, values))
        except Exception as error:  # any failure in user text: fall back, say so
            why = f"the file name template failed ({_describe(error)})"
        else:
            if name:
                return name, ()
            why = "the file name template gave an empty name"
        return safe_file_name(_render(default, values)), (f"{why}; the default was used",)
    return safe_file_name(_render(default, values)), ()


def _describe(error: Exception) -> str:
    text = str(error).splitlines()[0] if str(error) else ""
    return f"{type(error).__name__}: {text}"[:300] if text else type(error).__name__


def _render(template: str, context: dict[str, Any]) -> str:
    from dancecat_core import message_sandbox  # jinja2, at the first message

    return message_sandbox.render(template, context)


# Characters never kept in a file name: separators (``/``, ``\\``), what Windows refuses,
# and control characters (NUL included); other invisible ones are dropped by category.
_UNSAFE_NAME = re.compile(r'[\x00-\x1f\x7f/\\:*?"<>|]+')
_DOTS = re.compile(r"\.{2,}")
# Unicode categories dropped: format characters (right-to-left overrides, zero-width
# joiners), unassigned, private use and lone surrogates. Controls become ``_`` or spaces.
_INVISIBLE = frozenset({"Cf", "Cn", "Co", "Cs"})
# Names Windows keeps for devices, with any extension.
_DEVICES = frozenset(
    {"con", "prn", "aux", "nul", *(f"com{n}" for n in range(10)), *(f"lpt{n}" for n in range(10))}
)
# A name's bytes in UTF-8 at most: file systems hold 255, the extension and a temporary
# name's prefix and suffix need the rest.
MAX_FILENAME_BYTES = 180


def safe_file_name(text: str) -> str:
    """``text`` as one safe file name on every file system, for every destination:
    Unicode NFKC-normalised first (so full-width slashes and dots are caught as ``/`` and
    ``.``), invisible characters dropped, separators, control (NUL included) and
    Windows-refused characters made ``_``, runs of dots made one (no ``..``), line breaks,
    tabs and runs of spaces made single spaces, no leading dots, spaces or ``_``, a Windows
    device name (``NUL``, ``CON``) prefixed with ``_``; at most ``MAX_FILENAME_CHARS``
    characters and ``MAX_FILENAME_BYTES`` bytes of UTF-8. "" when nothing is left."""
    text = unicodedata.normalize("NFKC", text)
    text = "".join(c for c in text if unicodedata.category(c) not in _INVISIBLE)
    name = _UNSAFE_NAME.sub("_", " ".join(text.split()))
    name = _DOTS.sub(".", name).strip(" ._")[:MAX_FILENAME_CHARS]
    while len(name.encode()) > MAX_FILENAME_BYTES:
        name = name[:-1]
    name = name.rstrip(" .")
    if name.split(".")[0].strip().lower() in _DEVICES:
        name = "_" + name
    return name


def rows_table(columns: Sequence[str], rows: Sequence[Sequence[str | None]]) -> str:
    """The first rows as an HTML table, every value escaped; "" when there are none."""
    if not rows:
        return ""
    cell = "border: 1px solid #ccc; padding: 2px 6px"
    head = "".join(f'<th style="{cell}">{html.escape(str(c))}</th>' for c in columns)
    body = "".join(
        "<tr>"
        + "".join(
            f'<td style="{cell}">{"" if v is None else html.escape(str(v))}</td>' for v in row
        )
        + "</tr>"
        for row in rows
    )
    return (
        '<table style="border-collapse: collapse; margin-top: 1em">'
        f"<thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"
    )


def run_parameters(tracker: Any) -> dict[str, Any]:
    """The parameter values the run used, declared and built-in, by name (as recorded:
    text, numbers and booleans)."""
    return parameters.load_values(tracker.parameter_values_json)


def run_context(
    tracker: Any,
    recipient: str,
    *,
    scrub_note: str,
    error: str,
    first_rows: tuple[Sequence[str], Sequence[Sequence[str | None]]] = ((), ()),
) -> dict[str, Any]:
    """What a template may name (``VARIABLES``) for one finished run and one recipient;
    ``first_rows`` is (column names, the first ``Job.body_rows`` rows, scrubbed). The
    links and ``attachment_note`` are the notifier's to fill in (empty here)."""
    job = tracker.job
    due = tracker.due_at or tracker.queued_at
    zone_name = tracker.schedule.timezone if tracker.schedule is not None else "UTC"
    columns, rows = first_rows
    return {
        "job_name": job.name,
        "job_slug": slug(job.name),
        "job_id": job.id,
        "run_id": tracker.id,
        "status": tracker.status,
        "succeeded": tracker.status == "Success",
        "row_count": tracker.row_count,
        "duration_s": None if tracker.duration_ms is None else tracker.duration_ms / 1000,
        "finished_at": tracker.finished_at.isoformat() if tracker.finished_at else None,
        "due_at": due.isoformat() if due else None,
        "due_date": _local_date(due, zone_name),
        "parameters": run_parameters(tracker),
        "error": error,
        "result_url": "",
        "links": {},
        "attachment_note": "",
        "scrub_note": scrub_note,
        "recipient": recipient,
        "columns": list(columns),
        "rows": [list(row) for row in rows],
    }


_NOT_SLUG = re.compile(r"[^A-Za-z0-9._-]+")


def slug(name: str) -> str:
    """``name`` reduced to ASCII letters, digits, ``.``, ``_`` and ``-``: a file name part
    that needs no quoting anywhere (a URL, a shell, an S3 key)."""
    return _NOT_SLUG.sub("_", name).strip("._-")[:100] or "job"


def _local_date(instant: Any, zone_name: str) -> str | None:
    if instant is None:
        return None
    try:
        return instant.astimezone(zoneinfo.ZoneInfo(zone_name)).date().isoformat()
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        return instant.date().isoformat()
