"""Error texts fit to store, show, mail and log: no value of the queried data left in them.

A database echoes the value that made a statement fail (``invalid input syntax for type
integer: "$2y$10$..."``, MariaDB's ``XPATH syntax error: 'hunter2'``, ``Duplicate entry
'...' for key``), which would carry a column the scrubber removed, or a value it masks,
into the tracker, the job page, the API, mails and logs. ``clean_error`` is the one
function every error text goes through: where a driver's message enters DanceCat (the
runner, with the query's SQL) and again wherever a text is stored or leaves.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence

from dancecat_core.scrubbing import ValueMasker, ValuePattern

PLACEHOLDER = "[value]"
HIDDEN_SECRET = "*****"

# Words MariaDB quotes in its own messages (``Unknown column 'x' in 'field list'``).
_SERVER_WORDS = frozenset(
    (
        "field list",
        "where clause",
        "order clause",
        "group statement",
        "having clause",
        "on clause",
        "from clause",
        "having",
        "index hint",
        "returning",
    )
)
_QUOTES = "\"'"
_OPENS_AFTER = " \t\n(:=,[{<"
_CLOSES_BEFORE = " \t\n).,;:]}>"
# PostgreSQL's DETAIL lines name values without quoting them.
_KEY_VALUES = re.compile(
    r"(Key \([^)]*\)=\()(.*?)"
    r"(\)(?: already exists| is not present| is still referenced|[.;]|\s|$))"
)
_FAILING_ROW = re.compile(r"(Failing row contains \().*(\))")
_DATA_CONTEXT = re.compile(r"((?:JSON data|XML data|COPY \w+), line \d+(?:, column \w+)?: ).*")
_SQL_WORDS = re.compile(
    r"""[^\W\d][\w$]*|"(?:[^"]|"")*"|`(?:[^`]|``)*`|'(?:[^']|'')*'|\d+(?:\.\d+)?"""
)


class _NullSink:
    def write(self, data: bytes) -> int:
        return len(data)


def _written(sql: str, names: Iterable[str]) -> set[str]:
    """Every name and literal the user wrote: SQL words, quoted identifiers, string
    literals (their text), and the connection's names; lower-cased."""
    words = {name.lower() for name in names if name}
    for token in _SQL_WORDS.findall(sql):
        if token[0] in "\"`'":
            token = token[1:-1].replace(token[0] * 2, token[0])
        words.add(token.lower())
    return words


def _user_wrote(text: str, sql: str, written: set[str], after: str) -> bool:
    folded = text.strip().lower()
    if not folded or folded == PLACEHOLDER or folded in _SERVER_WORDS:
        return True
    if folded in written or all(part in written for part in folded.split(".")):
        return True
    # Syntax errors quote the statement from where parsing stopped: ``near 'FROM x'``.
    return after.rstrip().lower().endswith("near") and folded in sql.lower()


def _hide_quoted(text: str, sql: str, names: Sequence[str]) -> str:
    """Replace quoted literals by ``PLACEHOLDER`` unless the user wrote them.

    A literal opens at a quote after a boundary and closes at the next same quote before a
    boundary. Values may hold quotes themselves, so a literal that is not the user's is
    hidden up to the last closing quote of its kind in the text: a value can never show
    through a quote inside it, at the price of what stands between (rare: two quoted
    values in one message).
    """
    written = _written(sql, names)
    out = []
    position = 0
    index = 0
    while index < len(text):
        quote = text[index]
        if quote not in _QUOTES or (index and text[index - 1] not in _OPENS_AFTER):
            index += 1
            continue
        close = index + 1
        while True:
            close = text.find(quote, close)
            if close < 0 or close + 1 == len(text) or text[close + 1] in _CLOSES_BEFORE:
                break
            close += 1
        if close < 0:
            close = len(text)  # never closed: the value runs to the end
        literal = text[index + 1 : close]
        if _user_wrote(literal, sql, written, text[:index]):
            index = close + 1
            continue
        last = close
        probe = close + 1
        while (probe := text.find(quote, probe)) >= 0:
            if probe + 1 == len(text) or text[probe + 1] in _CLOSES_BEFORE:
                last = probe
            probe += 1
        out.append(text[position:index])
        out.append(f"{quote}{PLACEHOLDER}{quote}")
        position = index = last + 1
    out.append(text[position:])
    return "".join(out)


def _hide_unquoted(text: str) -> str:
    text = _KEY_VALUES.sub(rf"\g<1>{PLACEHOLDER}\g<3>", text)
    text = _FAILING_ROW.sub(rf"\g<1>{PLACEHOLDER}\g<2>", text)
    return _DATA_CONTEXT.sub(rf"\g<1>{PLACEHOLDER}", text)


def clean_error(
    text: str,
    *,
    sql: str | None = None,
    names: Sequence[str | None] = (),
    secrets: Iterable[str] = (),
    patterns: Sequence[ValuePattern] = (),
) -> str:
    """An error text with nothing of the data or the credentials in it.

    - ``secrets`` (the connection's password) are replaced wherever they appear;
    - when ``sql`` is given, the text is a database's message about that statement (use
      ``""`` for a connection attempt): its quoted literals and PostgreSQL's unquoted
      ``Key (...)=(...)``, ``Failing row contains (...)`` and ``JSON data, line 1: ...``
      values become ``[value]``, unless the user wrote the quoted text: a word, quoted
      identifier or string literal of ``sql``, or one of ``names`` (database, user, host);
    - then the value masker (``patterns``) runs over it: password hashes, keys, tokens,
      ``password=...`` and URL credentials. Already cleaned text passes unchanged.
    """
    for secret in sorted((s for s in secrets if s), key=len, reverse=True):
        text = text.replace(secret, HIDDEN_SECRET)
    if sql is not None:
        text = _hide_quoted(_hide_unquoted(text), sql, [n for n in names if n])
    if patterns:
        text = ValueMasker(_NullSink(), patterns).mask_text(text)
    return text


# Masking a short text is ~50 µs of Python (each pattern's triggers looked for), and
# lists show the same stored texts again and again: a job that fails every night for one
# reason. The runs API for a job whose 100 runs failed spent 5 of its 8 ms a request
# there. What a text shows depends on nothing but the text and the patterns, and a tuple
# of frozen patterns cannot change, so its answers are kept (the entry holds the tuple,
# so its id is never another's); another tuple or sequence starts afresh.
_SHOWN_KEPT = 4096
_SHOWN_LONGEST = 2000
_shown: tuple[Sequence[ValuePattern] | None, dict[str, str]] = (None, {})


def shown_error(text: str | None, patterns: Sequence[ValuePattern]) -> str | None:
    """A stored error text as the API, the pages and the console show it.

    Texts are cleaned before they are stored, but rows written before a pattern existed
    were not, so what leaves is masked again (error texts are short; cleaned text passes
    unchanged). Answers for short texts are kept per tuple of patterns.
    """
    global _shown
    if text is None:
        return None
    if not isinstance(patterns, tuple) or len(text) > _SHOWN_LONGEST:
        return clean_error(text, patterns=patterns)
    kept_for, kept = _shown
    if kept_for is not patterns:
        kept = {}
        _shown = (patterns, kept)
    shown = kept.get(text)
    if shown is None:
        shown = clean_error(text, patterns=patterns)
        if len(kept) >= _SHOWN_KEPT:
            kept.clear()
        kept[text] = shown
    return shown
