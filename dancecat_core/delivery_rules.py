"""When a recipient is mailed: its rule, its condition on the result, and the decision.

A rule (``always``, ``rows``, ``changed``, ``failed``) and an optional condition ("rows > 0",
``"total" >= 100``, ``status = 'stuck'``) belong to each recipient. What they read is
computed while the result streams, by ``ResultObserver``, which sits after the value
masker and so sees exactly the scrubbed bytes that are stored: it hashes them all (the
``changed`` rule compares that hash with the last successful run's, never the files) and
parses only the header and the first row, to judge column conditions. Nothing here ever
holds more than the first row of a result.

The verdicts are kept with the tracker (``delivery_facts_json``) so the decision, made when
the notifications are created, needs neither the result nor the first row again.
"""

from __future__ import annotations

import csv
import decimal
import enum
import hashlib
import io
import itertools
import json
import operator
import re
from collections.abc import Callable, Iterable
from typing import Any

import attrs
from sqlalchemy import select
from sqlalchemy.orm import Session

from dancecat_core.csvcodec import read_text_rows
from dancecat_core.errors import ValidationError
from dancecat_core.models import Tracker, TrackerStatus


class SendWhen(enum.StrEnum):
    ALWAYS = "always"  # after every finished run (success or failure)
    ROWS = "rows"  # a successful run with at least one row
    CHANGED = "changed"  # a successful run whose result differs from the last success's
    FAILED = "failed"  # only a failed run


RULE_HELP = {
    SendWhen.ALWAYS: "after every run",
    SendWhen.ROWS: "only when the result has at least one row",
    SendWhen.CHANGED: "only when the result differs from the last successful run's",
    SendWhen.FAILED: "only when the run fails",
}

_OPERATORS: dict[str, Callable[[Any, Any], bool]] = {
    "<": operator.lt,
    "<=": operator.le,
    "=": operator.eq,
    "!=": operator.ne,
    ">=": operator.ge,
    ">": operator.gt,
}
_SPELLINGS = {"==": "=", "<>": "!="}
_CONDITION = re.compile(
    r"""^\s*(?:"(?P<quoted>(?:[^"]|"")+)"|(?P<bare>[^\s<>=!"']+))"""
    r"""\s*(?P<op><=|>=|<>|!=|==|=|<|>)\s*(?P<value>.*?)\s*$""",
    re.DOTALL,
)
_NUMBER = re.compile(r"^[-+]?(\d+(\.\d*)?|\.\d+)([eE][-+]?\d+)?$")
MAX_CONDITION_CHARS = 500
# The first row is looked for in at most this many bytes of the result's start.
FIRST_ROW_MAX_BYTES = 4 << 20
ROWS = "rows"


@attrs.frozen
class Condition:
    """``subject`` is ``rows`` (the row count) or a column name (its value in row 1)."""

    subject: str
    op: str
    value: decimal.Decimal | str
    quoted_subject: bool = False  # "rows" in quotes is a column called rows

    @property
    def on_rows(self) -> bool:
        return self.subject == ROWS and not self.quoted_subject

    @property
    def text(self) -> str:
        """The canonical spelling, which is also how it is stored and looked up."""
        subject = ROWS if self.on_rows else '"' + self.subject.replace('"', '""') + '"'
        if isinstance(self.value, str):
            value = "'" + self.value.replace("'", "''") + "'"
        else:
            value = str(self.value)
        return f"{subject} {self.op} {value}"

    def judge(self, actual: str | None, found: bool) -> tuple[bool, str]:
        """(verdict, what was seen) for ``actual``, the first row's text (None: NULL)."""
        shown = ROWS if self.on_rows else self.subject
        if not found:
            return False, f"no column {self.subject!r} in the result"
        if actual is None:
            return False, f"{shown} is NULL"
        if isinstance(self.value, str):
            return _OPERATORS[self.op](actual, self.value), f"{shown} = {_quote(actual)}"
        try:
            number = decimal.Decimal(actual)
        except decimal.InvalidOperation:
            return False, f"{shown} = {_quote(actual)}, not a number"
        if number.is_nan():
            return False, f"{shown} = NaN"
        return _OPERATORS[self.op](number, self.value), f"{shown} = {actual}"


def _quote(text: str) -> str:
    text = text if len(text) <= 60 else text[:57] + "..."
    return "'" + text.replace("'", "''") + "'"


def parse_condition(text: str, field: str = "condition", label: str = "Condition") -> Condition:
    """A condition from its text, or one ``ValidationError`` line saying what is wrong."""
    if len(text) > MAX_CONDITION_CHARS:
        raise ValidationError(f"{label} is longer than {MAX_CONDITION_CHARS} characters", field)
    match = _CONDITION.match(text)
    if match is None:
        raise ValidationError(
            f"{label} {text.strip()!r} is not of the form: rows > 0, total >= 100, "
            "\"Order status\" = 'stuck'",
            field,
        )
    quoted = match["quoted"] is not None
    subject = match["quoted"].replace('""', '"') if quoted else match["bare"]
    op = _SPELLINGS.get(match["op"], match["op"])
    raw = match["value"]
    value: decimal.Decimal | str
    if _NUMBER.match(raw):
        value = decimal.Decimal(raw)
    elif len(raw) >= 2 and raw[0] == raw[-1] and raw[0] in "'\"":
        value = raw[1:-1].replace(raw[0] * 2, raw[0])
    elif raw and raw[0] not in "'\"":
        value = raw
    else:
        raise ValidationError(f"{label} {text.strip()!r} has no value to compare with", field)
    condition = Condition(subject, op, value, quoted_subject=quoted)
    if condition.on_rows and not (isinstance(value, decimal.Decimal) and value == int(value)):
        raise ValidationError(f"{label}: rows compares with a whole number", field)
    if isinstance(value, str) and op not in ("=", "!="):
        raise ValidationError(f"{label}: text compares only with = or !=", field)
    return condition


@attrs.frozen
class RecipientRule:
    """One recipient as submitted: ``DESTINATION [when RULE] [if CONDITION]``."""

    destination: str
    send_when: SendWhen = SendWhen.ALWAYS
    condition: Condition | None = None

    @property
    def text(self) -> str:
        parts = [self.destination]
        if self.send_when is not SendWhen.ALWAYS:
            parts.append(f"when {self.send_when.value}")
        if self.condition is not None:
            parts.append(f"if {self.condition.text}")
        return " ".join(parts)


@attrs.frozen
class Decision:
    send: bool
    reason: str


def decide(
    rule: str,
    condition: str | None,
    *,
    status: str,
    row_count: int | None,
    facts: dict[str, Any],
    content_hash: str | None,
    previous: tuple[int, str | None] | None,
) -> Decision:
    """Whether one recipient gets this finished run, and why (shown on the run)."""
    failed = status != "Success"
    if rule == SendWhen.FAILED:
        return Decision(True, "the run failed") if failed else Decision(False, "the run succeeded")
    if failed:
        if condition:  # a condition is about a result; a failed run has none to judge
            return Decision(False, "the run failed (the condition needs a result)")
        if rule == SendWhen.ALWAYS:
            return Decision(True, "the run failed")
        return Decision(False, f"the run failed (rule: {rule})")
    if rule == SendWhen.ROWS and not row_count:
        return Decision(False, "no rows")
    why = {SendWhen.ALWAYS: "always", SendWhen.ROWS: f"{row_count} rows"}.get(rule, "")
    if rule == SendWhen.CHANGED:
        if previous is None:
            why = "first successful run"
        elif previous[1] is None or content_hash is None:
            why = f"run {previous[0]} has no content hash to compare"
        elif previous[1] == content_hash:
            return Decision(False, f"unchanged since run {previous[0]}")
        else:
            why = f"changed since run {previous[0]}"
    if condition:
        verdict = _verdict(condition, facts, row_count)
        if verdict is None:
            return Decision(False, f"condition {condition} was set after the run started")
        ok, seen = verdict
        if not ok:
            return Decision(False, f"condition false: {seen}")
        why = f"{why}; condition true: {seen}"
    return Decision(True, why)


def _verdict(text: str, facts: dict[str, Any], row_count: int | None) -> tuple[bool, str] | None:
    found = facts.get("conditions", {}).get(text)
    if found is not None:
        return bool(found[0]), str(found[1])
    condition = parse_condition(text)
    if condition.on_rows and row_count is not None:
        return condition.judge(str(row_count), True)
    return None


class ResultObserver:
    """Fed the scrubbed result bytes as they are stored; hashes them and judges the
    ``conditions`` on the row count and the first row. A ``BinaryIO``-like sink that
    passes everything on to ``sink``."""

    def __init__(self, sink: Any, conditions: Iterable[str]):
        self._sink = sink
        self._hash = hashlib.sha256()
        self._prefix = bytearray()
        self._first: tuple[list[str], list[str | None] | None] | None = None
        self._conditions = {parsed.text: parsed for parsed in _parsed(conditions)}

    def write(self, data: bytes) -> int:
        self._hash.update(data)
        if self._first is None and self._conditions:
            self._prefix.extend(data)
            self._look_for_first_row(ended=False)
        return self._sink.write(data)

    def _look_for_first_row(self, ended: bool) -> None:
        prefix = bytes(self._prefix)
        if not ended:
            if len(prefix) > FIRST_ROW_MAX_BYTES:
                self._first, self._prefix = ([], None), bytearray()
                return
            prefix = prefix[: prefix.rfind(b"\n") + 1]
        try:
            records = list(
                itertools.islice(read_text_rows(io.BytesIO(prefix), skip_header=False), 2)
            )
        except (csv.Error, UnicodeDecodeError):
            return  # a record (or a character) is cut at the prefix's end: wait for more
        if len(records) >= 2 or ended:
            header = [name or "" for name in records[0]] if records else []
            self._first = (header, records[1] if len(records) > 1 else None)
            self._prefix = bytearray()

    @property
    def content_hash(self) -> str:
        return self._hash.hexdigest()

    def facts(self, row_count: int) -> dict[str, Any]:
        """The verdicts, once the stream has ended, by condition text."""
        if self._first is None and self._conditions:
            self._look_for_first_row(ended=True)
        header, row = self._first or ([], None)
        verdicts = {}
        for text, condition in self._conditions.items():
            if condition.on_rows:
                verdicts[text] = condition.judge(str(row_count), True)
            elif row is None:
                verdicts[text] = (False, "no rows" if row_count == 0 else "first row not read")
            else:
                index = _column(header, condition.subject)
                value = row[index] if index is not None and index < len(row) else None
                verdicts[text] = condition.judge(value, index is not None)
        return {"conditions": verdicts}


def _parsed(texts: Iterable[str]) -> list[Condition]:
    found = []
    for text in texts:
        try:
            found.append(parse_condition(text))
        except ValidationError:
            continue  # stored before a rule changed; ``decide`` says it was not judged
    return found


def _column(header: list[str], name: str) -> int | None:
    """The column called ``name``; if no exact match, the only one equal ignoring case."""
    if name in header:
        return header.index(name)
    folded = [i for i, column in enumerate(header) if column.casefold() == name.casefold()]
    return folded[0] if len(folded) == 1 else None


def previous_success(session: Session, tracker: Tracker) -> tuple[int, str | None] | None:
    """The job's last successful run before ``tracker`` (expired ones count: the hash
    outlives the files), as (id, content hash)."""
    found = session.execute(
        select(Tracker.id, Tracker.content_hash)
        .where(
            Tracker.job_id == tracker.job_id,
            Tracker.id < tracker.id,
            Tracker.status.in_((TrackerStatus.SUCCESS.value, TrackerStatus.RESULT_EXPIRED.value)),
        )
        .order_by(Tracker.id.desc())
        .limit(1)
    ).first()
    return (found.id, found.content_hash) if found else None


def decider(session: Session, tracker: Tracker) -> Callable[[str], Decision]:
    """``decide`` for each recipient of a finished ``tracker`` (an address that is not
    one of the job's recipients, picked by a notifier itself, is ``always``)."""
    rules = {recipient.destination: recipient for recipient in tracker.job.recipients}
    facts = json.loads(tracker.delivery_facts_json or "{}")
    previous: list[tuple[int, str | None] | None] = []

    def decide_for(email: str) -> Decision:
        rule = rules.get(email)
        send_when = rule.send_when if rule is not None else SendWhen.ALWAYS.value
        if send_when == SendWhen.CHANGED and not previous:
            previous.append(previous_success(session, tracker))
        return decide(
            send_when,
            rule.condition if rule is not None else None,
            status=tracker.status,
            row_count=tracker.row_count,
            facts=facts,
            content_hash=tracker.content_hash,
            previous=previous[0] if previous else None,
        )

    return decide_for


def facts_json(observer: ResultObserver, row_count: int) -> str:
    return json.dumps(observer.facts(row_count), ensure_ascii=False)
