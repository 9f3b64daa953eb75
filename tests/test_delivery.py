"""Delivery rules, conditions and message templates, with aiosmtpd as the mail server and
a real consumer (``test_notify``'s fixture): what each recipient got, and why."""

from __future__ import annotations

import hashlib
import io
import time

import pytest
from test_notify import setup, wait  # noqa: F401  (setup: the mail server fixture)

from dancecat_core import db, message_sandbox, messages
from dancecat_core.delivery_rules import ResultObserver, decide, parse_condition
from dancecat_core.errors import ValidationError
from dancecat_core.inputs.job import JobInput
from dancecat_core.models import Connection, Tracker
from dancecat_core.services import jobs as job_service
from dancecat_core.tasks import enqueue_run

ARTISTS = "SELECT ArtistId, Name FROM Artist ORDER BY ArtistId LIMIT 3"
NONE = "SELECT ArtistId, Name FROM Artist WHERE 1 = 0"
BROKEN = "SELECT * FROM NoSuchTable"


@pytest.fixture
def mail(request):
    """``test_notify``'s fixture: (runtime, mailer) with aiosmtpd and a running consumer."""
    return request.getfixturevalue("setup")


HASH = "$2y$10$" + "N9qo8uLOickgx2ZMRZoMyeIjZAgcfl7p92ldGxad68LJZdL17lhWy"


def make_job(runtime, chinook, sql: str, recipients: list[str], **fields) -> int:
    with db.session_scope(runtime.session_factory) as session:
        connection = Connection(name="chinook", driver="sqlite", database=str(chinook))
        session.add(connection)
        session.flush()
        data = JobInput(
            name="Artists", connection_id=connection.id, query=sql, recipients=recipients, **fields
        )
        return job_service.create(runtime, session, None, data).id


def set_sql(runtime, job_id: int, sql: str) -> None:
    with db.session_scope(runtime.session_factory) as session:
        job_service.update(runtime, session, None, job_id, JobInput(query=sql))


def run_and_settle(runtime, job_id: int, expected: int) -> tuple[int, dict[str, tuple]]:
    """Run the job; wait until its ``expected`` notifications are sent or skipped."""
    with db.session_scope(runtime.session_factory) as session:
        tracker_id = job_service.queue_run(session, None, job_id).id
    enqueue_run(tracker_id)

    def outcomes() -> dict[str, tuple]:
        with runtime.session_factory() as session:
            rows = session.get(Tracker, tracker_id).notifications
            return {n.recipient: (n.status, n.note or n.last_error) for n in rows}

    wait(
        f"run {tracker_id} delivered",
        lambda: (
            len(found := outcomes()) == expected
            and all(status in ("sent", "skipped", "failed") for status, _ in found.values())
        ),
    )
    return tracker_id, outcomes()


def inbox_since(mailer, count: int) -> list[str]:
    return sorted(rcpt[0] for rcpt, _ in mailer.inbox.messages[count:])


def test_each_rule_and_condition_mails_only_whom_it_should_and_says_why(mail, sqlite_chinook):
    runtime, mailer = mail()
    recipients = [
        "always@example.com",
        "rows@example.com when rows",
        "changed@example.com when changed",
        "failed@example.com when failed",
        "many@example.com if rows > 5",
        "acdc@example.com when rows if Name = 'AC/DC'",
        'idbig@example.com if "ArtistId" >= 2',
    ]
    job_id = make_job(runtime, sqlite_chinook, ARTISTS, recipients)
    n = len(recipients)

    first, got = run_and_settle(runtime, job_id, n)
    assert got == {
        "always@example.com": ("sent", "always"),
        "rows@example.com": ("sent", "3 rows"),
        "changed@example.com": ("sent", "first successful run"),
        "failed@example.com": ("skipped", "the run succeeded"),
        "many@example.com": ("skipped", "condition false: rows = 3"),
        "acdc@example.com": ("sent", "3 rows; condition true: Name = 'AC/DC'"),
        "idbig@example.com": ("skipped", "condition false: ArtistId = 1"),
    }
    assert inbox_since(mailer, 0) == sorted(
        ["always@example.com", "rows@example.com", "changed@example.com", "acdc@example.com"]
    )

    seen = len(mailer.inbox.messages)
    second, got = run_and_settle(runtime, job_id, n)
    assert got["changed@example.com"] == ("skipped", f"unchanged since run {first}")
    assert "changed@example.com" not in inbox_since(mailer, seen)

    set_sql(runtime, job_id, NONE)
    seen = len(mailer.inbox.messages)
    _, got = run_and_settle(runtime, job_id, n)
    assert got["rows@example.com"] == ("skipped", "no rows")
    assert got["changed@example.com"] == ("sent", f"changed since run {second}")
    assert got["acdc@example.com"] == ("skipped", "no rows")
    assert got["many@example.com"] == ("skipped", "condition false: rows = 0")
    assert got["idbig@example.com"] == ("skipped", "condition false: no rows")
    assert inbox_since(mailer, seen) == ["always@example.com", "changed@example.com"]

    set_sql(runtime, job_id, BROKEN)
    seen = len(mailer.inbox.messages)
    _, got = run_and_settle(runtime, job_id, n)
    assert got["failed@example.com"] == ("sent", "the run failed")
    assert got["rows@example.com"] == ("skipped", "the run failed (rule: rows)")
    assert got["many@example.com"] == ("skipped", "the run failed (the condition needs a result)")
    assert inbox_since(mailer, seen) == ["always@example.com", "failed@example.com"]


def test_content_hash_is_the_stored_scrubbed_result(mail, sqlite_chinook):
    runtime, _ = mail()
    job_id = make_job(runtime, sqlite_chinook, f"SELECT '{HASH}' AS secret, 1 AS n", [])
    with db.session_scope(runtime.session_factory) as session:
        tracker_id = job_service.queue_run(session, None, job_id).id
    enqueue_run(tracker_id)
    wait("the run", lambda: _tracker(runtime, tracker_id).content_hash is not None)
    tracker = _tracker(runtime, tracker_id)
    stored = runtime.stores[tracker.result_store].open(tracker.result_key).read()
    assert HASH.encode() not in stored  # masked before it was hashed and stored
    assert tracker.content_hash == hashlib.sha256(stored).hexdigest()


def _tracker(runtime, tracker_id: int) -> Tracker:
    with runtime.session_factory() as session:
        return session.get(Tracker, tracker_id)


def test_templates_render_scrubbed_escaped_rows_and_a_failing_one_falls_back(mail, sqlite_chinook):
    runtime, mailer = mail()
    sql = f"SELECT '<script>alert(1)</script>' AS html, '{HASH}' AS secret, 7 AS n"
    job_id = make_job(
        runtime,
        sqlite_chinook,
        sql,
        ["a@example.com"],
        subject_template="{{ job_name }}: {{ row_count }} row(s) for {{ due_date }}",
        body_template="Rows: {{ row_count }} / {{ 1 // (row_count - row_count) }}",
        filename_template="artists {{ run_id }}/../x",
        body_rows=5,
    )
    tracker_id, got = run_and_settle(runtime, job_id, 1)
    status, note = got["a@example.com"]
    assert status == "sent"
    assert "the body template failed (ZeroDivisionError" in note and "default was used" in note
    [(_, message)] = mailer.inbox.messages
    assert message["Subject"].startswith("Artists: 1 row(s) for 20")
    text = message.get_body(("plain",)).get_content()
    assert f"Run: {tracker_id}" in text  # the default body took over
    page = message.get_body(("html",)).get_content()
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page and "<script>" not in page
    assert "N9qo8uLOickgx2ZMR" not in page and "N9qo8uLOickgx2ZMR" not in text
    [attachment] = list(message.iter_attachments())
    assert attachment.get_filename() == f"artists {tracker_id}_._x.xlsx"


ATTACKS = [
    ("{{ ''.__class__.__mro__ }}", "not allowed"),
    ("{{ ''['__class__'] }}", "not allowed"),
    ("{{ config }}", "unknown name 'config'"),
    ("{% include '/etc/passwd' %}", "cannot include"),
    ("{% import 'x' as y %}", "cannot include"),
    ("{{ cycler(1, 2) }}", "unknown name 'cycler'"),
    ("{{ cycler(1, 2).__init__ }}", "'__init__' is not allowed"),
    ("{{ joiner() }}", "unknown name 'joiner'"),
    ("{% set ns = namespace(a=1) %}", "unknown name 'namespace'"),
    ("{{ lipsum() }}", "unknown name 'lipsum'"),
    ("{{ job_name|attr('__class__') }}", "filter 'attr'"),
    ("{{ job_name|center(999999999) }}", "filter 'center'"),
    ("{{ '{0:>999999999}'.format(1) }}", "method 'format'"),
    ("{{ job_name.ljust(999999999) }}", "method 'ljust'"),
    ("{% if %}", "line 1"),
]


@pytest.mark.parametrize(("template", "says"), ATTACKS)
def test_attack_templates_are_refused_on_save_in_one_line(template, says):
    with pytest.raises(ValidationError) as refused:
        JobInput(subject_template=template).cleaned(only=["subject_template"])
    message = str(refused.value)
    assert message.startswith("Mail subject: ") and says in message and "\n" not in message


CONTEXT = {name: None for name in messages.VARIABLES} | {
    "job_name": "<b>Jobs</b>",
    "run_id": 9,
    "succeeded": True,
    "status": "Success",
    "parameters": {},
    "links": {},
    "rows": [],
    "columns": [],
}

RUNAWAYS = [
    "{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}",
    "{% for i in range(100000) %}{% for j in range(100000) %}{{ i }}{% endfor %}{% endfor %}",
    "{{ 'x' * 1000000000 }}",
    "{{ ['x'] * 1000000000 }}",
    "{% set a = 'xxxxxxxxxx' %}" + "{% set a = a ~ a %}" * 40 + "{{ a|length }}",
    "{% set a = 'xxxxxxxxxx' %}" + "{% set a = a + a %}" * 40 + "{{ a|length }}",
    "{{ '%0999999999d' % 1 }}",
    "{{ 2 ** 100000000 }}",
    "{{ range(100000)|join('x' * 99999) }}",
    "{% macro f(n) %}{% if n %}{{ f(n - 1) }}{{ f(n - 1) }}{% endif %}{% endmacro %}{{ f(60) }}",
    "{% macro f() %}{{ f() }}{% endmacro %}{{ f() }}",
    "{{ ''.__class__.__mro__[1].__subclasses__() }}",
]


@pytest.mark.parametrize("template", RUNAWAYS)
def test_runaway_templates_stop_and_fall_back_within_limits(template):
    started = time.monotonic()
    templates = messages.Templates(template, template, template)
    rendered = messages.render(CONTEXT, templates)
    assert time.monotonic() - started < 3 * 3 * message_sandbox.RENDER_SECONDS
    assert rendered.subject == "DanceCat: <b>Jobs</b> — run 9 succeeded"
    assert len(rendered.notes) == 3 and all("default was used" in n for n in rendered.notes)
    assert rendered.filename == "Result_tid_9"


def test_values_with_html_stay_text_and_the_table_escapes_them():
    context = CONTEXT | {"columns": ["<i>c</i>"], "rows": [["<script>x</script>", None]]}
    rendered = messages.render(context, messages.Templates("{{ job_name }}", "{{ job_name }}"))
    assert rendered.subject == "<b>Jobs</b>" and rendered.body == "<b>Jobs</b>"
    assert "<script>" not in rendered.html and "&lt;script&gt;x&lt;/script&gt;" in rendered.html
    assert "&lt;b&gt;Jobs&lt;/b&gt;" in rendered.html and "<i>" not in rendered.html


@pytest.mark.parametrize(
    ("text", "canonical"),
    [
        ("rows > 0", "rows > 0"),
        ("rows<>0", "rows != 0"),
        ("total >= 100.5", '"total" >= 100.5'),
        ("\"Order status\" == 'stuck'", "\"Order status\" = 'stuck'"),
        ('"rows" = ok', "\"rows\" = 'ok'"),
        ("name = 'it''s'", "\"name\" = 'it''s'"),
    ],
)
def test_conditions_read_every_spelling_into_one(text, canonical):
    assert parse_condition(text).text == canonical


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("rows", "is not of the form"),
        ("rows > 1.5", "whole number"),
        ("status > 'a'", "only with = or !="),
        ("total >= ", "no value"),
        ("x" * 600, "longer than"),
    ],
)
def test_bad_conditions_are_one_line(text, says):
    with pytest.raises(ValidationError) as refused:
        JobInput(recipients=[f"a@example.com if {text}"]).cleaned(only=["recipients"])
    assert says in str(refused.value) and str(refused.value).startswith("Send result to")


def test_recipient_rule_refusals_name_the_field():
    for entry, says in [
        ("a@example.com when sometimes", "send when must be one of always, rows"),
        ("a@example.com when failed if rows > 0", "needs a rule that sends results"),
        ("not-an-address when rows", "not a valid email address"),
    ]:
        with pytest.raises(ValidationError) as refused:
            JobInput(recipients=[entry]).cleaned(only=["recipients"])
        assert says in str(refused.value), entry


CSV = b'id,"Note, long",total\n1,"first\nline ""quoted""",42.50\n2,x,\n' * 1000


NOTE = '"Note, long" = \'first\nline "quoted"\''


@pytest.mark.parametrize("chunk", [1, 7, 64, len(CSV)])
def test_observer_judges_the_first_row_wherever_the_stream_is_cut(chunk):
    sink = io.BytesIO()
    observer = ResultObserver(
        sink,
        ['"total" > 42.4', '"Note, long" = \'first\nline "quoted"\'', '"TOTAL" = 7', "rows = 1001"],
    )
    for start in range(0, len(CSV), chunk):
        observer.write(CSV[start : start + chunk])
    facts = observer.facts(1001)["conditions"]
    assert facts['"total" > 42.4'] == (True, "total = 42.50")
    assert facts['"Note, long" = \'first\nline "quoted"\''][0] is True
    assert facts['"TOTAL" = 7'] == (False, "TOTAL = 42.50")  # case-insensitive column
    assert facts["rows = 1001"] == (True, "rows = 1001")
    assert sink.getvalue() == CSV
    assert observer.content_hash == hashlib.sha256(CSV).hexdigest()


def test_a_null_or_missing_column_is_a_false_condition_that_says_why():
    observer = ResultObserver(io.BytesIO(), ['"total" > 0', '"nope" > 0', "\"id\" = 'x'"])
    observer.write(b"id,total\n1,\n")
    facts = observer.facts(1)["conditions"]
    assert facts['"total" > 0'] == (False, "total is NULL")
    assert facts['"nope" > 0'] == (False, "no column 'nope' in the result")
    assert facts["\"id\" = 'x'"] == (False, "id = '1'")


def test_a_condition_set_while_the_run_went_is_not_guessed():
    decision = decide(
        "always",
        '"total" > 0',
        status="Success",
        row_count=3,
        facts={"conditions": {}},
        content_hash="x",
        previous=None,
    )
    assert not decision.send and "set after the run started" in decision.reason


ATTACK_NAMES = [
    ("../../etc/passwd", "etc_passwd"),
    ("..", ""),
    ("...", ""),
    (".bashrc", "bashrc"),
    ("a/../../b", "a_._._b"),
    ("..\\..\\windows\\system32", "windows_system32"),
    ("C:\\boot.ini", "C_boot.ini"),
    ("\uff0e\uff0e\uff0fetc\uff0fpasswd", "etc_passwd"),  # full-width dots and slashes
    ("a\x00b", "a_b"),
    ("line\nbreak\rand\ttab", "line break and tab"),
    ("evil\u202etxt.exe", "eviltxt.exe"),  # a right-to-left override, dropped
    ("zero\u200bwidth", "zerowidth"),
    ("Cafe\u0301", "Caf\u00e9"),  # NFKC: one é, not e + combining accent
    ("NUL", "_NUL"),
    ("con.csv", "_con.csv"),
    ("report .", "report"),
    ("x" * 500, "x" * messages.MAX_FILENAME_CHARS),
    ("\u00e9" * 119, "\u00e9" * (messages.MAX_FILENAME_BYTES // 2)),
    ('a<b>c:d"e|f?g*h', "a_b_c_d_e_f_g_h"),
]


@pytest.mark.parametrize(("typed", "safe"), ATTACK_NAMES)
def test_safe_file_name_takes_the_teeth_out_of_attack_names(typed, safe):
    name = messages.safe_file_name(typed)
    assert name == safe
    assert "/" not in name and "\\" not in name and ".." not in name
    assert not name.startswith(".") and len(name.encode()) <= messages.MAX_FILENAME_BYTES
    assert all(ord(c) >= 32 for c in name)


def test_file_name_comes_from_the_template_the_same_every_time_else_the_default():
    templates = messages.Templates(filename="{{ job_name }}/{{ parameters.region }}-{{ run_id }}")
    context = CONTEXT | {"job_name": "../Sales", "parameters": {"region": "EU"}}
    assert messages.file_name(context, templates) == ("Sales_EU-9", ())
    assert messages.file_name(context, templates) == messages.file_name(context, templates)
    empty = messages.Templates(filename="{{ '' }}")
    default = CONTEXT | {"job_slug": "Sales", "due_date": "2026-12-03"}
    assert messages.file_name(default, empty) == (
        "Sales_2026-12-03_run9",
        ("the file name template gave an empty name; the default was used",),
    )
    failing = messages.Templates(filename="{{ 1 // 0 }}")
    name, [note] = messages.file_name(default, failing)
    assert name == "Sales_2026-12-03_run9" and note.startswith("the file name template failed")
