"""Scrubbing: credential columns removed, credential values masked, messages cleaned."""

from __future__ import annotations

import io

import pytest

from dancecat_core.columns import Column
from dancecat_core.error_text import clean_error
from dancecat_core.scrubbing import MASK, ValueMasker
from dancecat_plugins.credential_scrubber import VALUE_PATTERNS, dancecat_scrub_columns

BCRYPT = "$2b$12$" + "a" * 53
ARGON = "$argon2id$v=19$m=65536,t=3,p=4$c29tZXNhbHQ$RdescudvJCsgt3ub+b+dWRWJTmaaJObG"
JWT = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U"
PEM = (
    "-----BEGIN RSA PRIVATE KEY-----\n"
    "MIIBOgIBAAJBAKj34GkxFhD90vcNLYLInFEX6Ppy1tPf\n"
    "-----END RSA PRIVATE KEY-----"
)
AWS = "AKIAIOSFODNN7EXAMPLE"
GITHUB = "ghp_" + "A1b2" * 9
SECRETS = [BCRYPT, ARGON, JWT, PEM, AWS, GITHUB, "$6$rounds=5000$saltsalt$abcdefghijkl"]


@pytest.mark.parametrize(
    "name",
    [
        "password",
        "PASSWORD",
        "user_password_hash",
        "Passwd",
        "pwd",
        "api_key",
        "API-Key",
        "apiKey",
        "private key",
        "secret_answer",
        "Confidential",
        "access_token",
        "userpass",
        "authentication_string",
        "Authentication_String",
    ],
)
def test_credential_column_names_are_removed(settings, name):
    columns = [Column("id"), Column(name), Column("email")]
    removals = dancecat_scrub_columns(columns=columns, settings=settings)
    assert [r.index for r in removals] == [1]


def test_aliased_column_is_caught_by_its_source(settings):
    columns = [Column("p", source="users.password"), Column("name", source="users.name")]
    removals = dancecat_scrub_columns(columns=columns, settings=settings)
    assert [r.index for r in removals] == [0]
    assert "users.password" in removals[0].reason


def test_innocent_names_stay(settings):
    columns = [Column(n) for n in ("id", "email", "passenger", "compass", "created_at")]
    assert dancecat_scrub_columns(columns=columns, settings=settings) == []


@pytest.mark.parametrize("secret", SECRETS)
def test_credential_values_are_masked_across_write_boundaries(secret):
    text = f'1,"note {secret} end",x\n' * 3
    data = text.encode()
    for step in (1, 7, 64, len(data)):
        sink = io.BytesIO()
        masker = ValueMasker(sink, VALUE_PATTERNS, block=32)
        for i in range(0, len(data), step):
            masker.write(data[i : i + step])
        masker.flush_all()
        out = sink.getvalue().decode()
        assert secret not in out
        assert out == text.replace(secret, MASK)
        assert sum(masker.counts.values()) == 3


def test_ordinary_data_passes_unchanged():
    text = b'id,price,comment\n1,$20.00,"costs $2, or $25"\n2,eyJ,ghp_short\n'
    sink = io.BytesIO()
    masker = ValueMasker(sink, VALUE_PATTERNS)
    masker.write(text)
    masker.flush_all()
    assert sink.getvalue() == text
    assert not masker.counts


def test_messages_lose_passwords_and_url_credentials():
    message = (
        'connection to "postgresql://bob:hunter2@db:5432/x" failed; '
        "password=hunter2 user=bob; retry with s3cr3t-pw"
    )
    cleaned = clean_error(message, secrets=["s3cr3t-pw"], patterns=VALUE_PATTERNS)
    assert "hunter2" not in cleaned
    assert "s3cr3t-pw" not in cleaned
    assert f"postgresql://{MASK}@db:5432/x" in cleaned
