"""Placeholders found per dialect, declarations checked, values read: no database needed."""

from __future__ import annotations

import datetime as dt
import decimal

import pytest

from dancecat_core import parameters, placeholders
from dancecat_core.errors import ValidationError
from dancecat_core.run_dates import Occasion

OCCASION = Occasion(dt.datetime(2026, 12, 3, 6, 0, tzinfo=dt.UTC), "Europe/Berlin")


@pytest.mark.parametrize(
    ("dialect", "sql", "found"),
    [
        ("postgresql", "SELECT {{a}}, '{{ b }}', \"{{ c }}\", {{ d }}", ["a", "d"]),
        ("postgresql", "SELECT $$ {{ b }} $$, $x$ {{ b }} $x$, {{ a }}", ["a"]),
        ("postgresql", "SELECT E'\\' {{ b }}', {{ a }}", ["a"]),
        ("postgresql", "SELECT '\\' , {{ a }} -- '", ["a"]),  # standard strings: \ is text
        ("postgresql", "SELECT 1 /* {{ b }} /* {{ b }} */ {{ b }} */, {{ a }}", ["a"]),
        ("postgresql", "SELECT 1 -- {{ b }}\n, {{ a }}", ["a"]),
        ("postgresql", "SELECT a$b$ , {{ a }}", ["a"]),  # $ inside a name opens nothing
        ("mysql", "SELECT '\\' {{ b }}', \"{{ b }}\", `{{ b }}`, {{ a }} # {{ b }}", ["a"]),
        ("mysql", "SELECT 1--{{ a }}\n", ["a"]),  # "--" without a space is minus minus
        ("mysql", "SELECT /*! {{ a }} */ 1", ["a"]),  # executable comments hold code
        ("sqlite", "SELECT [{{ b }}], `{{ b }}`, '{{ b }}', {{ a }} -- {{ b }}", ["a"]),
        ("sqlite", "SELECT {{ a }}, {{ a }}, {{ due_date }}", ["a", "due_date"]),
    ],
)
def test_placeholders_outside_strings_names_and_comments(dialect, sql, found) -> None:
    assert placeholders.names(sql, dialect) == found


def test_a_malformed_placeholder_is_named() -> None:
    with pytest.raises(ValidationError, match=r"Query: '\{\{ 1x \}\}' is not a parameter"):
        placeholders.find("SELECT {{ 1x }}", "postgresql")
    assert placeholders.find("SELECT '{{ 1x }}'", "postgresql") == []


def test_declarations_from_every_channel_agree() -> None:
    from_api = parameters.declare(
        [
            {"name": "since", "type": "date", "default": "2026-01-01"},
            {"name": "region", "type": ["EU", "US"], "default": "EU"},
            {"name": "limit", "type": "integer"},
        ]
    )
    from_console = parameters.declare(["since:date=2026-01-01", "region:EU|US=EU", "limit:integer"])
    from_form = parameters.declare("since:date=2026-01-01\n\nregion:EU|US=EU\nlimit:integer\n")
    assert from_api == from_console == from_form
    assert from_api[0].default == dt.date(2026, 1, 1)
    assert parameters.load(parameters.dump(from_api)) == from_api


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (["due_date:date"], "due_date is a built-in date"),
        (["a:text", "a:integer"], "a is declared twice"),
        (["a:float"], "a's type 'float' is not one of"),
        (["1a:text"], "'1a' is not a name"),
        (["a:integer=ten"], "parameter a: 'ten' is not a whole number"),
        (["a"], "must be NAME:TYPE"),
        ([{"name": "a", "type": "text", "extra": 1}], "object with name, type and default"),
        (["a:x|x"], "allowed values must be distinct"),
        # Found by schemathesis: a JSON list of objects was turned into texts ("{}").
        ([{"name": "a", "type": [{}]}], "allowed values must be texts"),
        ([{"name": "a", "type": ["EU", 1]}], "allowed values must be texts"),
    ],
)
def test_bad_declarations_are_refused_in_one_line(raw, message) -> None:
    with pytest.raises(ValidationError, match=message) as caught:
        parameters.declare(raw)
    assert "\n" not in str(caught.value)


def test_an_undeclared_placeholder_is_refused_on_save_naming_it() -> None:
    declared = parameters.declare(["region:text"])
    parameters.check_query("SELECT {{ region }}, {{ yesterday }}", declared, "postgresql")
    with pytest.raises(ValidationError, match=r"\{\{ regoin \}\} is neither a declared"):
        parameters.check_query("SELECT {{ regoin }}", declared, "postgresql")
    parameters.check_query("SELECT '{{ regoin }}'", declared, "postgresql")


def test_bind_fills_given_then_default_then_builtin() -> None:
    declared = parameters.declare(["a:integer=5", "b:number", "c:boolean"])
    sql = "SELECT {{ a }}, {{ b }}, {{ a }}, {{ c }}, {{ yesterday }}, '{{ b }}'"
    bound, used = parameters.bind(sql, declared, {"b": "1.50", "c": "off"}, OCCASION, "sqlite")
    assert bound.parts == ("SELECT ", ", ", ", ", ", ", ", ", ", '{{ b }}'")
    assert bound.values == (5, decimal.Decimal("1.50"), 5, False, dt.date(2026, 12, 2))
    assert used == {
        "a": 5,
        "b": decimal.Decimal("1.50"),
        "c": False,
        "yesterday": dt.date(2026, 12, 2),
    }
    with pytest.raises(ValidationError, match="parameter b needs a value"):
        parameters.bind(sql, declared, {}, OCCASION, "sqlite")
    with pytest.raises(ValidationError, match="parameter zz is not declared"):
        parameters.read_values(declared, {"zz": "1"})


def test_a_builtin_may_be_given_for_a_manual_run() -> None:
    _, used = parameters.bind(
        "SELECT {{ month_start }}", (), {"month_start": "2026-01-01"}, OCCASION, "sqlite"
    )
    assert used == {"month_start": dt.date(2026, 1, 1)}


def test_recorded_values_read_back_to_the_same_values() -> None:
    declared = parameters.declare(["a:integer", "b:number", "c:boolean", "d:datetime", "e:text"])
    given = {"a": "-3", "b": "1e-5", "c": "true", "d": "2026-03-29T02:30:00+02:00", "e": "x'y"}
    values = parameters.read_values(declared, given)
    again = parameters.read_values(declared, parameters.load_values(parameters.values_json(values)))
    assert again == values
