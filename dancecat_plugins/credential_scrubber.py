"""The built-in scrubber: credential-looking columns removed, credential-shaped values masked.

Column names are matched case-insensitively, inside longer names too
(``user_password_hash``), against ``SCRUB_COLUMN_PATTERNS``; separators are ignored, so
``api_key``, ``API-Key`` and ``apikey`` are one pattern. The column's source table column is
checked as well, which catches ``SELECT password AS p``, and so is every table column the
value is derived from (``Column.derived_from``: through views, derived tables, CTEs, UNION
branches, expressions and whole-row references), which catches ``upper(password)``,
``row_to_json(u)`` and ``SELECT x FROM (SELECT password AS x FROM users) d``.

Values are masked by shape whatever their column is called. Each shape names literal
"triggers" it must contain, so data without any of them costs only a few fast byte scans.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from dancecat_core.columns import Column
from dancecat_core.hookspecs import hookimpl
from dancecat_core.scrubbing import ColumnRemoval, NameBefore, ValuePattern
from dancecat_core.settings import Settings

_SEPARATORS = re.compile(r"[\s_\-.]+")


def _squash(name: str) -> str:
    return _SEPARATORS.sub("", name.lower())


@hookimpl
def dancecat_scrub_columns(columns: Sequence[Column], settings: Settings) -> list[ColumnRemoval]:
    patterns = [(p, _squash(p)) for p in settings.scrub_column_patterns]
    removals = []
    for index, column in enumerate(columns):
        labels = [
            ("its name matches", column.name),
            (f"its source column {column.source} matches", column.source),
            *(
                (f"its value is derived from {origin}, which matches", origin)
                for origin in column.derived_from
            ),
        ]
        for why, label in labels:
            squashed = _squash(label)
            hit = next((p for p, sq in patterns if sq and sq in squashed), None)
            if hit:
                removals.append(ColumnRemoval(index, f"{why} {hit!r}"))
                break
    return removals


# Shapes of credentials. None may match '"' or ',' outside the shape, so a mask cannot
# break the CSV field it sits in; every repeat has an upper bound, so the masker knows how
# much text a match can need (``ValuePattern.reach``).

_BASE64 = rb"A-Za-z0-9+/="
_NEWLINE = rb"(?:\r?\n|(?:\\{1,3}r)?\\{1,3}n)"  # also JSON-escaped, once or twice

# The words that make a key a credential's name, in any letter case. Inside a longer key
# they must start a word: after a separator (``db_password``, ``x-api-key``) or a camelCase
# hump (``userPassword``); ``compass`` and ``tokenizer`` are not credential names.
_CREDENTIAL_WORDS = (
    rb"pass(?:word|wort|wd|phrase|code)?|pwd|secret|token|credentials?|auth|"
    rb"(?:api|private|access|auth|session|signing|encryption|master|client)[_.-]?key"
)
_NAME_START = rb"(?:[A-Za-z0-9_.\- ]{0,40}?(?:[_.\- ]|(?<=[a-z0-9])(?=[A-Z])))?"
_NAME_END = rb"(?:(?:[_.\- ]|(?<=[a-z0-9])(?=[A-Z]))[A-Za-z0-9]{1,24}){0,2}"
_CREDENTIAL_NAME = re.compile(_NAME_START + rb"(?i:" + _CREDENTIAL_WORDS + rb")" + _NAME_END)
# One of these is in every credential word (the masker finds them before trying names).
_CREDENTIAL_CORES = (b"pass", b"pwd", b"secret", b"token", b"credential", b"auth", b"key")
# Names read backwards from the value: ``password=``, ``Pwd = ``, ``password: ``; and a
# JSON key, quoted as JSON, CSV (doubled) or JSON inside JSON (``\"``) quote it.
_ASSIGNED_NAME = NameBefore(
    re.compile(rb"[ \t]{0,8}([A-Za-z0-9_.\-]{1,64})"), _CREDENTIAL_NAME, _CREDENTIAL_CORES
)
_JSON_NAME = NameBefore(
    re.compile(rb'[ \t]?(?:"\\{1,3}|""?)([A-Za-z0-9_.\- ]{1,64})"'),
    _CREDENTIAL_NAME,
    _CREDENTIAL_CORES,
)
_JSON_KEY_END = (b'":', b'" :')
# How a value follows its name: ``=`` or ``: `` (a colon and a blank), right after a
# name or blanks (checked by the regex, so the colons of JSON cost no Python call).
_ASSIGN = rb"(?:=|:(?=[ \t]))(?<![^A-Za-z0-9_.\- \t][=:])[ \t]{0,8}"
_ASSIGN_TRIGGERS = (b"=", b": ", b":\t")


def _shape(name: str, pattern: bytes, *triggers: bytes) -> ValuePattern:
    return ValuePattern(name, re.compile(pattern), triggers)


def _assigned(pattern: bytes) -> ValuePattern:
    """A value written after a credential's name and ``=`` or ``: ``."""
    return ValuePattern(
        "credential assignment", re.compile(_ASSIGN + pattern), _ASSIGN_TRIGGERS, _ASSIGNED_NAME
    )


def _json_field(pattern: bytes) -> ValuePattern:
    """A JSON field's value under a credential's name."""
    return ValuePattern(
        "JSON credential field",
        re.compile(rb':(?:(?<=":)|(?<=" :))\s{0,8}' + pattern),
        _JSON_KEY_END,
        _JSON_NAME,
    )


_GITLAB_KINDS = (b"pat", b"dt", b"rt", b"ptt", b"cbt", b"oas", b"soat", b"ft", b"imt", b"agent")
_GITLAB_KINDS += (b"cd", b"ffct")

VALUE_PATTERNS = (
    _shape("bcrypt hash", rb"\$2[abxy]?\$\d{2}\$[./A-Za-z0-9]{53}", b"$2"),
    _shape(
        "argon2 hash",
        rb"\$argon2(?:id|i|d)\$(?:v=\d{1,4}\$)?m=\d{1,10},t=\d{1,10},p=\d{1,4}"
        rb"\$[A-Za-z0-9+/=]{1,1024}\$[A-Za-z0-9+/=]{1,1024}",
        b"$argon2",
    ),
    _shape(
        "scrypt hash",
        rb"\$(?:scrypt|7)\$(?:ln=\d{1,3},r=\d{1,3},p=\d{1,3}\$)?[A-Za-z0-9./$=+]{20,1024}",
        b"$scrypt$",
        b"$7$",
    ),
    _shape(
        "crypt hash",
        rb"\$(?:1|5|6|y|gy|md5|sha1|apr1|pbkdf2[a-z0-9-]{0,16})\$[A-Za-z0-9./$=+]{8,1024}",
        *(b"$1$", b"$5$", b"$6$", b"$y$", b"$gy$", b"$md5", b"$sha1$", b"$apr1$", b"$pbkdf2"),
    ),
    _shape(
        "Django password hash",
        rb"(?:pbkdf2_sha256|pbkdf2_sha1|bcrypt_sha256|scrypt)\$[A-Za-z0-9./$=+]{20,1024}",
        b"pbkdf2_",
        b"bcrypt_sha256$",
        b"scrypt$",
    ),
    _shape(
        "LDAP password hash",
        rb"\{(?:SSHA|SHA|SSHA256|SSHA512|SHA256|SHA512|SMD5|MD5|CRYPT|PBKDF2[A-Z0-9-]{0,16})\}"
        rb"[A-Za-z0-9+/=.$]{8,1024}",
        b"{S",
        b"{M",
        b"{C",
        b"{P",
    ),
    _shape(
        "MySQL password hash",
        rb"(?<![0-9A-Za-z*])\*[0-9A-Fa-f]{40}(?![0-9A-Za-z])",
        b"*",
    ),
    _shape(
        "PostgreSQL password hash",
        rb"SCRAM-SHA-256\$\d{1,7}:[A-Za-z0-9+/=]{1,128}\$[A-Za-z0-9+/=]{1,128}:[A-Za-z0-9+/=]{1,128}",
        b"SCRAM-SHA-256$",
    ),
    _shape(
        # PEM (PKCS#1, PKCS#8, encrypted, EC, DSA, OpenSSH) and PGP private keys, with
        # RFC 1421 / PGP armour headers (Proc-Type, DEK-Info, Version, Comment), raw or
        # JSON-escaped line ends. Without its END line (cut off, or a body over 48 KiB)
        # the block is masked up to there.
        "private key",
        rb"-----BEGIN (?:[A-Z0-9]{1,16} ){0,4}PRIVATE KEY(?: BLOCK)?-----"
        rb"(?:"
        + _NEWLINE
        + rb"(?:[A-Za-z][A-Za-z0-9-]{0,40}: ?[^\r\n\"\\]{0,256}"
        + _NEWLINE
        + rb"){1,8})?"
        rb"[" + _BASE64 + rb" \t\r\n\\]{0,49152}"
        rb"(?:-----END (?:[A-Z0-9]{1,16} ){0,4}PRIVATE KEY(?: BLOCK)?-----)?",
        b"PRIVATE KEY",
    ),
    _shape(
        "PuTTY private key",
        rb"Private-Lines: \d{1,4}[\r\n\\][" + _BASE64 + rb"\r\n\\]{1,16384}",
        b"Private-Lines:",
    ),
    _shape(
        "age secret key",
        rb"AGE-SECRET-KEY-1[QPZRY9X8GF2TVDW0S3JN54KHCE6MUA7L]{58}",
        b"AGE-SECRET-KEY-1",
    ),
    _shape(
        "JWT",
        rb"eyJ[A-Za-z0-9_-]{8,4096}\.eyJ[A-Za-z0-9_-]{8,8192}\.[A-Za-z0-9_-]{8,2048}",
        b"eyJ",
    ),
    _shape(
        "AWS access key",
        rb"\b(?:A3T[A-Z0-9]|AKIA|ASIA|AGPA|AIDA|AROA|AIPA|ANPA|ANVA|ABIA|ACCA)[0-9A-Z]{16}\b",
        *(b"A3T", b"AKIA", b"ASIA", b"AGPA", b"AIDA", b"AROA", b"AIPA", b"ANPA", b"ANVA"),
        b"ABIA",
        b"ACCA",
    ),
    _shape(
        "GitHub token",
        rb"\b(?:gh[pousr]_[A-Za-z0-9]{36,255}|github_pat_[A-Za-z0-9_]{22,255})",
        *(b"ghp_", b"gho_", b"ghu_", b"ghs_", b"ghr_", b"github_pat_"),
    ),
    _shape(
        "GitLab token",
        rb"\bgl(?:pat|dt|rt|ptt|cbt|oas|soat|ft|imt|agent|cd|ffct)-[A-Za-z0-9_-]{20,255}",
        *(b"gl" + kind + b"-" for kind in _GITLAB_KINDS),
    ),
    _shape("Slack token", rb"\bxox[abposre]-[A-Za-z0-9-]{10,255}", b"xox"),
    _shape(
        "Slack webhook",
        rb"hooks\.slack\.com/(?:services|workflows|triggers)/[A-Za-z0-9+/_-]{20,255}",
        b"hooks.slack.com/",
    ),
    _shape(
        "Stripe key",
        rb"\b(?:sk|rk)_(?:live|test|prod)_[A-Za-z0-9]{10,255}|\bwhsec_[A-Za-z0-9]{24,255}",
        *(b"sk_live_", b"sk_test_", b"sk_prod_", b"rk_live_", b"rk_test_", b"rk_prod_"),
        b"whsec_",
    ),
    _shape("Google API key", rb"\bAIza[0-9A-Za-z_-]{35}", b"AIza"),
    _shape("Google OAuth client secret", rb"\bGOCSPX-[0-9A-Za-z_-]{28}", b"GOCSPX-"),
    _shape(
        "OpenAI-style secret key",
        rb"\bsk-(?:proj-|ant-|svcacct-|admin-)?[A-Za-z0-9_-]{32,255}",
        b"sk-",
    ),
    _shape("SendGrid key", rb"\bSG\.[A-Za-z0-9_-]{22}\.[A-Za-z0-9_-]{43}", b"SG."),
    _shape("npm token", rb"\bnpm_[A-Za-z0-9]{36}", b"npm_"),
    _shape("PyPI token", rb"\bpypi-AgEIcHlwaS5vcmc[A-Za-z0-9_-]{50,255}", b"pypi-AgEI"),
    _shape("Shopify token", rb"\bshp(?:at|ca|pa|ss)_[a-fA-F0-9]{32}", b"shp"),
    _shape("DigitalOcean token", rb"\bdo[opr]_v1_[a-f0-9]{64}", b"_v1_"),
    _shape("Hugging Face token", rb"\bhf_[A-Za-z]{34}\b", b"hf_"),
    _shape("Vault token", rb"\bhv[sbr]\.[A-Za-z0-9_-]{24,255}", b"hvs.", b"hvb.", b"hvr."),
    _shape("Databricks token", rb"\bdapi[a-f0-9]{32}\b", b"dapi"),
    _shape(
        "Telegram bot token",
        rb"(?<![0-9])[0-9]{8,10}:AA[0-9A-Za-z_-]{33}(?![0-9A-Za-z_-])",
        b":AA",
    ),
    _shape(
        "Authorization header",
        rb"(?i:authorization)[\"']{0,2}\s{0,8}[:=]\s{0,8}[\"']{0,2}"
        rb"(?i:(?:basic|bearer|token|digest|negotiate|ntlm)\s{1,4})?"
        rb"(?P<secret>[^\s\"',;]{4,4096})",
        b"uthorization",
        b"UTHORIZATION",
    ),
    _shape(
        "bearer token",
        rb"\bBearer\s{1,4}(?P<secret>(?=[A-Za-z._~+/-]{0,256}[0-9])[A-Za-z0-9._~+/-]{16,4096}={0,2})",
        b"Bearer",
    ),
    _shape(
        # CREATE USER / ALTER USER / SET PASSWORD statements kept in a log table.
        "SQL password clause",
        rb"(?:identified|IDENTIFIED)(?: (?:with|WITH) [A-Za-z0-9_]{1,40})? (?:by|BY|as|AS) "
        rb"'(?P<secret>[^'\r\n]{1,256})'",
        b" BY '",
        b" by '",
        b" AS '",
        b" as '",
    ),
    # "password": "hunter2" inside JSON text, also as CSV writes it (quotes doubled): the
    # value goes, the name stays. JSON escapes (\") stay inside the value.
    # The value to its closing quote; JSON escapes (\") stay inside it.
    _json_field(
        rb'(?:\\{1,3}"|""?)'
        rb'(?P<secret>[^"\\\r\n]{0,4096}(?:\\(?:""?|[^"\r\n])[^"\\\r\n]{0,4096}){0,8})"'
    ),
    _json_field(rb"(?P<secret>-?[0-9][0-9.eE+-]{0,63}|true|false|null)(?![A-Za-z0-9])"),
    # password=..., Pwd=...; (libpq, ADO, JDBC, .env, INI, URL query) and "password: ..."
    # (YAML, HTTP headers): a quoted value whole, an unquoted one to the end of the line
    # or the next ; & , or quote.
    _assigned(rb"'(?P<secret>[^'\r\n]{1,4096})'"),
    _assigned(rb'(?:\\{1,3}"|""?)(?P<secret>[^"\\\r\n]{1,4096})\\{0,3}"'),
    _assigned(rb"(?P<secret>[^\s'\";&,<>{}\[\]=:\\][^\r\n'\";&,<>]{0,4095})"),
    _shape(
        "XML credential element",
        rb"<"
        + _NAME_START
        + rb"(?i:"
        + _CREDENTIAL_WORDS
        + rb")"
        + _NAME_END
        + rb"(?:\s[^<>]{0,256})?>(?P<secret>[^<\"\r\n]{1,512})</",
        b"</",
    ),
    # scheme://user:password@host, also with an empty user or an @ inside the password.
    _shape(
        "URL credentials",
        rb"(?<=://)[^/\s:@\",]{0,256}:[^/\s\",]{1,256}(?=@)",
        b"://",
    ),
)


@hookimpl
def dancecat_value_patterns(settings: Settings | None) -> list[ValuePattern]:
    return list(VALUE_PATTERNS)
