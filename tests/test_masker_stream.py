"""The value masker: every shape caught, whatever the block boundaries; nothing else touched.

The masker streams: it masks text in blocks as it arrives and holds back ``window`` bytes.
Its promise is that the output equals masking the whole text at once, wherever the writes
and blocks fall. The sweep puts the masker's internal cut at every position of every
sample (the cut lands ``window`` bytes before the end of the first write); hypothesis mixes
samples, noise, pattern subsets, block sizes and write splits.
"""

from __future__ import annotations

import io
import re
import sqlite3

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from masker_samples import CAUGHT, LEFT_ALONE

from dancecat_core.errors import PluginError
from dancecat_core.scrubbing import MASK, ValueMasker, ValuePattern
from dancecat_plugins.credential_scrubber import VALUE_PATTERNS


def one_shot(text: bytes, patterns=VALUE_PATTERNS) -> bytes:
    return ValueMasker(io.BytesIO(), patterns).mask_bytes(text)


def streamed(pieces: list[bytes], patterns=VALUE_PATTERNS, block: int = 1 << 20) -> bytes:
    sink = io.BytesIO()
    masker = ValueMasker(sink, patterns, block=block)
    for piece in pieces:
        masker.write(piece)
    masker.flush_all()
    return sink.getvalue()


# How each sample is found in results: alone, in a CSV field, in a JSON string.
CONTEXTS = [
    lambda s: s,
    lambda s: '7,"' + s.replace('"', '""') + '",x',
    lambda s: '{"note": "see ' + s.replace("\\", "\\\\").replace('"', '\\"') + ' here"}',
]


@pytest.mark.parametrize(("text", "secret"), CAUGHT, ids=[s[:24] for _, s in CAUGHT])
def test_each_shape_is_masked_at_every_cut_position(text, secret):
    """The finding: a prefix ("password": ", ://user:) ending one block and the value
    starting the next leaked. Here the internal cut sweeps every byte of the sample."""
    window = ValueMasker(io.BytesIO(), VALUE_PATTERNS).window
    for context in CONTEXTS[:2]:
        sample = context(text).encode()
        lead = b"id,note\n1,plain\n"
        data = lead + sample + b"\n2,plain\n" + b"x" * window
        whole = one_shot(data)
        assert secret.encode() not in whole and MASK.encode() in whole, context(text)
        for at in range(len(lead) - 1, len(lead) + len(sample) + 2):
            out = streamed([data[: at + window], data[at + window :]], block=1)
            same = out == whole  # (a bare comparison would make pytest diff 50 KiB)
            assert same, f"cut at byte {at}: output differs, secret in clear: {secret in str(out)}"


@pytest.mark.parametrize(("text", "secret"), CAUGHT, ids=[s[:24] for _, s in CAUGHT])
def test_each_shape_is_masked_inside_json_text(text, secret):
    sample = CONTEXTS[2](text)
    assert secret not in one_shot(sample.encode()).decode()


@pytest.mark.parametrize("text", LEFT_ALONE)
def test_ordinary_values_are_left_alone(text):
    data = text.encode()
    assert one_shot(data) == data
    assert one_shot(f'1,"{text.replace(chr(34), 2 * chr(34))}"\n'.encode()).count(b"[masked]") == 0


def test_every_chinook_value_is_left_alone(sqlite_chinook):
    """No ordinary value of a real database is masked (false positives)."""
    conn = sqlite3.connect(sqlite_chinook)
    tables = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")]
    values = []
    for table in tables:
        for row in conn.execute(f'SELECT * FROM "{table}"'):
            values.extend(str(v) for v in row if v is not None)
    conn.close()
    assert len(values) > 50_000
    data = "\n".join(values).encode()
    masker = ValueMasker(io.BytesIO(), VALUE_PATTERNS)
    assert masker.mask_bytes(data) == data, masker.counts
    assert not masker.counts


NOISE = st.text(
    alphabet=st.sampled_from([*"abcXYZ019 ,\"\n\r:=@/\\$*-_.{}<>'é", "\u2603"]),
    max_size=40,
)
PIECES = st.lists(
    st.one_of(NOISE, st.sampled_from([t for t, _ in CAUGHT]), st.sampled_from(LEFT_ALONE)),
    min_size=1,
    max_size=8,
)
# Patterns with a small window, so that small blocks put many cuts inside the samples.
SHORT = [p for p in VALUE_PATTERNS if p.reach.ahead < 2000]


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    pieces=PIECES,
    chosen=st.sets(st.sampled_from(range(len(SHORT))), min_size=1),
    block=st.integers(1, 300),
    splits=st.lists(st.integers(0, 4000), max_size=12),
)
def test_streaming_equals_masking_the_whole_text(pieces, chosen, block, splits):
    patterns = [SHORT[i] for i in sorted(chosen)]
    data = "".join(pieces).encode() * 3
    cuts = sorted({min(s, len(data)) for s in splits})
    parts = [data[a:b] for a, b in zip([0, *cuts], [*cuts, len(data)], strict=True)]
    assert streamed(parts, patterns, block=block) == one_shot(data, patterns)


@settings(max_examples=40, deadline=None)
@given(pieces=PIECES, at=st.integers(0, 600))
def test_streaming_with_every_pattern_equals_masking_the_whole_text(pieces, at):
    data = "".join(pieces).encode()
    window = ValueMasker(io.BytesIO(), VALUE_PATTERNS).window
    data = data + b"\n" * window
    at = min(at, len(data) - window)
    assert streamed([data[: at + window], data[at + window :]], block=1) == one_shot(data)


def test_a_key_longer_than_any_block_is_masked_whole():
    key = "-----BEGIN PRIVATE KEY-----\n" + "QUJD" * 4000 + "\n-----END PRIVATE KEY-----"
    data = f'1,"{key}",x\n'.encode() * 2
    out = streamed([data[i : i + 700] for i in range(0, len(data), 700)], block=512)
    assert out == b'1,"[masked]",x\n' * 2


def test_a_pattern_that_can_match_unboundedly_far_is_refused():
    with pytest.raises(PluginError, match=r"'greedy'.*upper bound"):
        ValuePattern("greedy", re.compile(rb"secret=[a-z]+"), (b"secret=",))
    with pytest.raises(PluginError, match="upper bound"):
        ValuePattern("look", re.compile(rb"x(?=[a-z]*y)"), (b"x",))
    bounded = ValuePattern("ok", re.compile(rb"(?<=://)[a-z]{1,9}(?=@)"), (b"://",))
    assert (bounded.reach.behind, bounded.reach.ahead) == (4, 11)


# The masker reads a name only when a credential word stands within the name's reach before
# the value; these put the word as far from the value as a name allows, in either case,
# after rows of fields with no word (skipped), cut at every byte near the value.
FAR_NAMES = [
    b"PASSWORD_" + b"a" * 24 + b"_" + b"b" * 24 + b" " * 8 + b"=Zq9far1",
    b'""Secret ' + b"c" * 24 + b" " + b"d" * 24 + b'"": ""Zq9far2""',
    b'\\"x' + b"y" * 39 + b'Token\\": 12345',
]


@pytest.mark.parametrize("name_and_value", FAR_NAMES)
def test_a_credential_word_at_the_far_end_of_a_name_is_found(name_and_value):
    rows = b'{"event": "login", "user": "u1", "at": 5, "ok": true}\n' * 40
    text = rows + name_and_value + b"\n" + rows
    whole = one_shot(text)
    assert whole.count(MASK.encode()) == 1, whole[len(rows) : len(rows) + 160]
    value_at = len(rows) + len(name_and_value) - 4
    for cut in range(value_at - 80, value_at + 8):
        assert streamed([text[:cut], text[cut:]], block=64) == whole
