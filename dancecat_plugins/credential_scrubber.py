"""The built-in scrubber: credential-looking columns removed, credential-shaped values masked.

Column names are matched case-insensitively, inside longer names too
(``user_password_hash``), against ``SCRUB_COLUMN_PATTERNS``; separators are ignored, so
``api_key``, ``API-Key`` and ``apikey`` are one pattern. The column's source table column is
checked as well, which catches ``SELECT password AS p``.

Values are masked by shape whatever their column is called. Each shape names literal
"triggers" it must contain, so data without any of them costs only a few fast byte scans.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from dancecat_core.columns import Column
from dancecat_core.hookspecs import hookimpl
from dancecat_core.scrubbing import ColumnRemoval, ValuePattern
from dancecat_core.settings import Settings

_SEPARATORS = re.compile(r"[\s_\-.]+")


def _squash(name: str) -> str:
    return _SEPARATORS.sub("", name.lower())


@hookimpl
def dancecat_scrub_columns(columns: Sequence[Column], settings: Settings) -> list[ColumnRemoval]:
    patterns = [(p, _squash(p)) for p in settings.scrub_column_patterns]
    removals = []
    for index, column in enumerate(columns):
        for label, squashed in (
            (column.name, _squash(column.name)),
            (column.source, _squash(column.source)),
        ):
            hit = next((p for p, sq in patterns if sq and sq in squashed), None)
            if hit:
                where = "name" if label == column.name else f"source column {label}"
                removals.append(ColumnRemoval(index, f"its {where} matches {hit!r}"))
                break
    return removals


# Shapes of credentials. None may match '"' or ',' outside the shape, so a mask cannot
# break the CSV field it sits in.
VALUE_PATTERNS = (
    ValuePattern(
        "bcrypt hash",
        re.compile(rb"\$2[abxy]?\$\d{2}\$[./A-Za-z0-9]{53}"),
        (b"$2",),
    ),
    ValuePattern(
        "argon2 hash",
        re.compile(
            rb"\$argon2(?:id|i|d)\$(?:v=\d+\$)?m=\d+,t=\d+,p=\d+\$[A-Za-z0-9+/=]+\$[A-Za-z0-9+/=]+"
        ),
        (b"$argon2",),
    ),
    ValuePattern(
        "scrypt hash",
        re.compile(rb"\$(?:scrypt|7)\$[A-Za-z0-9./$=+]{20,}"),
        (b"$scrypt$", b"$7$"),
    ),
    ValuePattern(
        "crypt hash",
        re.compile(rb"\$(?:1|5|6|y|gy|md5|sha1|pbkdf2[a-z0-9-]*)\$[A-Za-z0-9./$=+]{8,}"),
        (b"$1$", b"$5$", b"$6$", b"$y$", b"$gy$", b"$md5", b"$sha1$", b"$pbkdf2"),
    ),
    ValuePattern(
        "Django password hash",
        re.compile(rb"(?:pbkdf2_sha256|pbkdf2_sha1|argon2|bcrypt_sha256)\$[A-Za-z0-9./$=+]{20,}"),
        (b"pbkdf2_", b"bcrypt_sha256$"),
    ),
    ValuePattern(
        "private key",
        re.compile(
            rb"-----BEGIN (?:[A-Z0-9]+ )*PRIVATE KEY(?: BLOCK)?-----[A-Za-z0-9+/=\s:-]*?"
            rb"-----END (?:[A-Z0-9]+ )*PRIVATE KEY(?: BLOCK)?-----"
        ),
        (b"PRIVATE KEY",),
    ),
    ValuePattern(
        "JWT",
        re.compile(rb"eyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}"),
        (b"eyJ",),
    ),
    ValuePattern(
        "AWS access key",
        re.compile(rb"\b(?:AKIA|ASIA|AGPA|AIDA|AROA)[0-9A-Z]{16}\b"),
        (b"AKIA", b"ASIA", b"AGPA", b"AIDA", b"AROA"),
    ),
    ValuePattern(
        "GitHub token",
        re.compile(rb"\b(?:gh[pousr]_[A-Za-z0-9]{36,}|github_pat_[A-Za-z0-9_]{22,})"),
        (b"ghp_", b"gho_", b"ghu_", b"ghs_", b"ghr_", b"github_pat_"),
    ),
    ValuePattern(
        "GitLab token",
        re.compile(rb"\bglpat-[A-Za-z0-9_-]{20,}"),
        (b"glpat-",),
    ),
    ValuePattern(
        "Slack token",
        re.compile(rb"\bxox[abposr]-[A-Za-z0-9-]{10,}"),
        (b"xox",),
    ),
    ValuePattern(
        "Stripe key",
        re.compile(rb"\b(?:sk|rk)_(?:live|test)_[A-Za-z0-9]{16,}"),
        (b"sk_live_", b"sk_test_", b"rk_live_", b"rk_test_"),
    ),
    ValuePattern(
        "Google API key",
        re.compile(rb"\bAIza[0-9A-Za-z_-]{35}"),
        (b"AIza",),
    ),
    ValuePattern(
        "OpenAI-style secret key",
        re.compile(rb"\bsk-(?:proj-|ant-)?[A-Za-z0-9_-]{32,}"),
        (b"sk-",),
    ),
    ValuePattern(
        # "password": "hunter2" inside JSON text, also as CSV writes it (quotes doubled):
        # the value goes, the name stays. Only up to the value's closing quote.
        "JSON credential field",
        re.compile(
            rb'(?i)"(?:password|passwd|pwd|passphrase|secret|client_secret|token|'
            rb"access_token|refresh_token|api_?key|private_?key|secret_?key|access_?key)"
            rb'""?\s*:\s*""?(?P<secret>[^"\r\n]{1,512})"'
        ),
        (b'":', b'" :'),
    ),
    ValuePattern(
        "URL credentials",
        re.compile(rb"(?<=://)[^/\s:@\",]+:[^/\s@\",]+(?=@)"),
        (b"://",),
    ),
)


@hookimpl
def dancecat_value_patterns(settings: Settings) -> list[ValuePattern]:
    return list(VALUE_PATTERNS)
