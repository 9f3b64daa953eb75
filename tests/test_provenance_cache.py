"""The tracer keeps parsed query texts (``provenance._statements``): a scheduled job runs
the same text every time. What may change between two runs of one text, the catalog (a
table altered, a view redefined), must still decide every trace, and a shared tree must
come out of a trace as it went in."""

from __future__ import annotations

import attrs

from dancecat_core import provenance
from dancecat_core.provenance import Function, Relation, trace


@attrs.define
class _Catalog:
    relations: dict[str, Relation]
    dialect: str = "postgres"

    def relation(self, schema: str | None, name: str) -> Relation | None:
        return self.relations.get(name.lower())

    def function(self, name: str) -> Function | None:
        return None


QUERY = """
WITH recent AS (SELECT p.id, p.note FROM people AS p WHERE p.id > 1)
SELECT r.id, upper(r.note) AS shout, (SELECT count(*) FROM orders o WHERE o.uid = r.id) AS n
FROM recent AS r
UNION ALL
SELECT id, name, 0 FROM users
"""


def _tables(people: Relation) -> dict[str, Relation]:
    return {
        "users": Relation("users", ("id", "name", "password")),
        "orders": Relation("orders", ("id", "uid")),
        "people": people,
    }


def test_a_kept_text_is_traced_against_the_catalog_as_it_is_now() -> None:
    table = Relation("people", ("id", "note"))
    view = Relation("people", ("id", "note"), definition="SELECT id, password AS note FROM users")
    catalog = _Catalog(_tables(table))
    before = trace(catalog, QUERY).columns
    assert before is not None
    assert before[1].columns == {"people.note", "users.name"}

    catalog.relations = _tables(view)  # the same name is now a view over the passwords
    after = trace(catalog, QUERY).columns
    assert after is not None
    assert after[1].columns == {"users.password", "users.name"}

    catalog.relations = _tables(table)
    assert trace(catalog, QUERY).columns == before


def test_tracing_leaves_the_shared_tree_as_it_was() -> None:
    catalog = _Catalog(
        _tables(Relation("people", ("id", "note"), definition="SELECT id, name AS note FROM users"))
    )
    provenance._statements.cache_clear()
    fresh = trace(catalog, QUERY)
    (tree,) = provenance._statements(QUERY, "postgres")
    text, copy = tree.sql(dialect="postgres"), tree.copy()
    for _ in range(3):
        assert trace(catalog, QUERY) == fresh
    assert provenance._statements(QUERY, "postgres")[0] is tree
    assert tree.sql(dialect="postgres") == text
    assert tree == copy


def test_texts_and_dialects_are_kept_apart() -> None:
    # A backquoted name is one identifier in MySQL and not valid PostgreSQL: the key is both.
    mysql = provenance._statements("SELECT `a b` FROM t", "mysql")
    assert mysql[0].selects[0].name == "a b"
    assert provenance._statements("SELECT 1", "postgres") != provenance._statements(
        "SELECT 2", "postgres"
    )
