"""The editor's "Format SQL": one clause a line, keywords in capitals, nothing else changed.

sqlparse only re-spaces the tokens it reads and changes the case of keywords: it never
rewrites an expression (a transpiler such as sqlglot would), and reads every dialect the
drivers speak, where pglast's formatter knows PostgreSQL's alone. A job's ``{{ name }}``
placeholders (found as the job's dialect reads them: ``placeholders``) are set aside
first, so a parameter named ``day`` or ``year`` keeps its case and its braces.
"""

from __future__ import annotations

import uuid

from dancecat_core import placeholders
from dancecat_core.errors import ValidationError


def format_sql(sql: str, dialect: str = "standard") -> str:
    """``sql`` laid out one clause a line; a text sqlparse cannot lay out is refused."""
    import sqlparse  # at first use: the console never formats

    parts, names = placeholders.cut(sql, dialect)
    tag = f"dancecat_{uuid.uuid4().hex}_"
    stand_ins = [f"{tag}{index}" for index in range(len(names))]
    joined = parts[0] + "".join(s + part for s, part in zip(stand_ins, parts[1:], strict=True))
    try:
        text = sqlparse.format(joined, reindent=True, keyword_case="upper").strip()
    except sqlparse.exceptions.SQLParseError as exc:
        raise ValidationError(f"Query: could not be formatted ({exc})", "query") from None
    # Backwards, so that stand-in 1 is not found inside stand-in 10.
    for index in reversed(range(len(names))):
        text = text.replace(stand_ins[index], "{{ " + names[index] + " }}")
    return text
