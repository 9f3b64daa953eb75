"""Which table columns each result column is computed from, read off the query's own text.

The database names a result column's source only for a bare column reference (and not at
all on SQLite); an alias over a derived table, a view column, ``upper(password)``, a
whole-row reference (``SELECT u``, ``row_to_json(u)``, ``u::text``) or a UNION branch hides
it. So the query is parsed (sqlglot, in the database's dialect) and every output column is
traced down to the base table columns its value is computed from:

* a column reference resolves through derived tables, CTEs (recursive ones to a fixed
  point), LATERAL subqueries and views (their stored definitions, parsed the same way) to
  the table column it names;
* an expression derives from every column referenced anywhere inside it, scalar subqueries
  included, so ``coalesce(password, '')`` and ``CASE WHEN password ...`` derive from
  ``users.password``;
* a whole-row reference (``u``, ``u.*`` inside a function, ``(u).field``) derives from every
  column of ``u``;
* a set operation's column derives from the same position in every branch;
* a value read back from session state (a MySQL user variable, PostgreSQL's
  ``current_setting``) derives from everything the query reaches, since another
  expression of the same query may have stored a credential there.

The result is *conservative*: when something cannot be followed (a ``*`` over a source whose
columns are unknown, a name only the database resolves, text the parser does not read),
the column derives from every column of every relation the query mentions (its *reach*),
so a credential anywhere in reach removes it. What the tracer cannot see into is marked
untraced (``Origin.traced``): a user-defined function (its body reads what it likes), a
relation the catalog does not list (a temporary table), text the parser cannot read. Such
a column is kept when nothing in reach is a credential, its values are left to the value
masks, and the result's note names it.

Deciding what counts as a credential is the scrubbers' business (``dancecat_scrub_columns``):
this module only reports ``Column.derived_from`` and ``Column.traced``.
"""

from __future__ import annotations

import functools
import logging
import re
from collections.abc import Sequence
from typing import Protocol

import attrs
import sqlglot
from sqlglot import exp
from sqlglot.errors import SqlglotError

log = logging.getLogger(__name__)

# How deep views may nest in views before the tracer gives up on one (and goes conservative).
MAX_VIEW_DEPTH = 16
# Identifiers looked up in the catalog when the text cannot be parsed at all.
MAX_FALLBACK_NAMES = 200
# Functions that read back session state another expression of the same query may have
# written (PostgreSQL ``set_config('x', password, false)``, then ``current_setting('x')``).
SESSION_STATE_READERS = frozenset({"current_setting"})
_CALLED = re.compile(r"([A-Za-z_][A-Za-z0-9_$]*)\s*\(")
_WORD = re.compile(r'"((?:[^"]|"")+)"|`((?:[^`]|``)+)`|\[([^\]]+)\]|([A-Za-z_][A-Za-z0-9_$]*)')


@attrs.frozen
class Origin:
    """Where one output column's values come from.

    ``columns`` are base table columns as ``table.column``. ``traced`` is False when a
    user-defined function (whose body the tracer cannot read) took part.
    """

    columns: frozenset[str] = frozenset()
    traced: bool = True

    def __or__(self, other: Origin) -> Origin:
        return Origin(self.columns | other.columns, self.traced and other.traced)


NOTHING = Origin()


@attrs.frozen
class Traced:
    """A query's traced columns (None when its shape could not be followed).

    ``fallback`` is what any column derives from when the trace does not line up with the
    columns the database reports: everything the query reaches, untraced.
    """

    columns: list[Origin] | None
    fallback: Origin

    def align(self, width: int) -> list[Origin]:
        """One ``Origin`` per result column, the database having reported ``width``."""
        if self.columns is not None and len(self.columns) == width:
            return list(self.columns)
        return [self.fallback] * width


@attrs.frozen
class Relation:
    """A table, view or materialised view as the catalog describes it.

    ``definition`` is a view's SELECT in the catalog's dialect; None for a table.
    """

    name: str
    columns: tuple[str, ...]
    definition: str | None = None


@attrs.frozen
class Function:
    """A function the query calls. ``returns`` is the table whose row type it returns."""

    user_defined: bool
    returns: Relation | None = None
    body: str = ""  # its source text, when the catalog shows it


class Catalog(Protocol):
    """What the tracer asks the database. Names arrive as written, unquoted."""

    dialect: str

    def relation(self, schema: str | None, name: str) -> Relation | None:
        """The table or view ``schema.name`` resolves to now, or None if there is none."""

    def function(self, name: str) -> Function | None:
        """What is known of function ``name`` (in any schema); None for a built-in one."""


@attrs.define
class _Source:
    """A FROM item as the query sees it: its alias and columns (None: not known)."""

    alias: str
    columns: list[tuple[str, Origin]] | None
    fallback: Origin  # any column of a source whose columns are unknown
    table: str = ""  # a base table's or view's own name, also usable as qualifier

    def column(self, name: str) -> Origin | None:
        if self.columns is None:
            return self.fallback
        found = [origin for column, origin in self.columns if column == name]
        if not found:
            return None
        result = found[0]
        for origin in found[1:]:
            result = result | origin
        return result

    def whole(self) -> Origin:
        result = self.fallback
        for _, origin in self.columns or ():
            result = result | origin
        return result


@attrs.define
class _Scope:
    sources: list[_Source] = attrs.field(factory=list)
    ctes: dict[str, list[tuple[str, Origin]]] = attrs.field(factory=dict)
    parent: _Scope | None = None

    def cte(self, name: str) -> list[tuple[str, Origin]] | None:
        scope: _Scope | None = self
        while scope is not None:
            if name in scope.ctes:
                return scope.ctes[name]
            scope = scope.parent
        return None


class _Unfollowable(Exception):
    """The query's shape cannot be lined up with its result (an unexpandable ``*``)."""


# What parsing or walking text the tracer does not understand may raise. Database errors
# from the catalog are not among them: they end the query like its own errors would.
_FAILURES = (SqlglotError, _Unfollowable, RecursionError, ValueError, TypeError, KeyError,
             AttributeError, IndexError)  # fmt: skip


# Parsed texts by (text, dialect). Parsing is most of what tracing a short query costs
# (~0.5 ms of CPU for ``SELECT 1``, a third of a trivial run's own work) and a scheduled
# job runs the same text every time. A tree depends on nothing but its text and dialect,
# and the tracer only reads trees, so one serves every trace of that text; the catalog is
# still asked on every trace (a table or view may have changed since).
_PARSED_KEPT = 512


@functools.lru_cache(maxsize=_PARSED_KEPT)
def _statements(sql: str, dialect: str) -> tuple[exp.Expression, ...]:
    """The statements of ``sql`` (shared: never change them); raises what parsing raises."""
    return tuple(s for s in sqlglot.parse(sql, read=dialect) if s)


def _fold(name: str) -> str:
    return name.lower()


def _union(origins: Sequence[Origin]) -> Origin:
    result = NOTHING
    for origin in origins:
        result = result | origin
    return result


class Tracer:
    """Traces one query's output columns against one database's catalog."""

    def __init__(self, catalog: Catalog):
        self._catalog = catalog
        self._relations: dict[tuple[str, str], Relation | None] = {}
        self._views: dict[tuple[str, str], list[tuple[str, Origin]]] = {}
        self._functions: dict[str, Function | None] = {}
        self._bodies: dict[str, Origin] = {}
        self._everything = NOTHING  # what a value read back from session state may hold
        self._reach = NOTHING
        self._depth = 0

    # --- entry point ---------------------------------------------------------------------

    def trace(self, sql: str) -> Traced:
        """Every output column's ``Origin``; the catalog is asked only here."""
        try:
            statements = _statements(sql, self._catalog.dialect)
        except _FAILURES as exc:
            log.info("provenance: the query could not be parsed (%r)", exc)
            return Traced(None, self._text_reach(sql))
        if len(statements) != 1:
            return Traced(None, self._text_reach(sql))
        try:
            return self._trace(sql, statements[0])
        except _FAILURES as exc:
            # The parser read the text as something the tracer cannot walk: be as careful
            # as with text it cannot read at all.
            log.info("provenance: the query could not be walked (%r)", exc)
            return Traced(None, self._text_reach(sql))

    def _trace(self, sql: str, tree: exp.Expression) -> Traced:
        self._reach = self._reach_of(tree)
        # Where the shape cannot be followed, a value still comes only from what the query
        # reaches, unless a user-defined function hides what it reads.
        anonymous = {_fold(call.name) for call in tree.find_all(exp.Anonymous)}
        unknown = _union([self._reach, *(self._body_reach(name) for name in anonymous)])
        # The parser gives a function it knows (upper, format, ...) its own node and forgets
        # how it was spelled; a user-defined function of such a name (schema-qualified, or
        # where the database resolves it first) would hide in it. Any such name in the
        # text makes every column derive from what it reaches.
        shadows = _union(
            [
                self._body_reach(name)
                for name in dict.fromkeys(_fold(m) for m in _CALLED.findall(sql))
                if name not in anonymous
            ]
        )
        if not isinstance(tree, exp.Query) or not shadows.traced:
            return Traced(None, unknown | shadows)
        self._everything = unknown
        try:
            outputs = self._query(tree, _Scope())
        except _Unfollowable as exc:
            log.info("provenance: the query could not be followed (%s)", exc)
            return Traced(None, unknown)
        return Traced([origin for _, origin in outputs], unknown)

    # --- reach: every column of every relation the text mentions ---------------------------

    def _reach_of(self, tree: exp.Expression) -> Origin:
        result = NOTHING
        for table in tree.find_all(exp.Table):
            if not isinstance(table.this, exp.Identifier):
                continue
            relation = self._relation(table.db or None, table.name)
            if relation is not None:
                result = result | self._relation_reach(relation)
        return result

    def _relation_reach(self, relation: Relation) -> Origin:
        if relation.definition is None:
            return Origin(frozenset(f"{relation.name}.{c}" for c in relation.columns))
        return _union([origin for _, origin in self._view_columns(relation)])

    def _text_reach(self, text: str) -> Origin:
        """For text the parser cannot read, or a function's body: every column of every
        relation any identifier in it names, and what the functions it names reach."""
        names: dict[str, None] = {}
        for match in _WORD.finditer(text):
            names.setdefault(next(g for g in match.groups() if g))
            if len(names) >= MAX_FALLBACK_NAMES:
                break
        result = Origin(traced=False)
        if self._depth >= MAX_VIEW_DEPTH:
            return result
        self._depth += 1
        try:
            for word in names:
                relation = self._relation(None, word)
                if relation is not None:
                    result = result | Origin(
                        frozenset(f"{relation.name}.{c}" for c in relation.columns)
                    )
                    if relation.definition is not None:
                        result = result | self._text_reach(relation.definition)
                result = result | self._body_reach(word)
        finally:
            self._depth -= 1
        return Origin(result.columns, traced=False)

    def _body_reach(self, name: str) -> Origin:
        """What a user-defined function's body reaches (untraced), or nothing if built in."""
        function = self._function(name)
        if function is None or not function.user_defined:
            return NOTHING
        if name not in self._bodies:
            self._bodies[name] = Origin(traced=False)  # a function that calls itself
            self._bodies[name] = self._text_reach(function.body)
        return self._bodies[name]

    # --- catalog, cached ------------------------------------------------------------------

    def _relation(self, schema: str | None, name: str) -> Relation | None:
        key = (schema or "", name)
        if key not in self._relations:
            self._relations[key] = self._catalog.relation(schema, name)
        return self._relations[key]

    def _function(self, name: str) -> Function | None:
        if name not in self._functions:
            self._functions[name] = self._catalog.function(name)
        return self._functions[name]

    def _view_columns(self, relation: Relation) -> list[tuple[str, Origin]]:
        """A view's columns, each traced through its definition (conservatively if not)."""
        key = (relation.name, relation.definition or "")
        if key in self._views:
            return self._views[key]
        # While it is traced (a view that reaches itself), its columns derive from nothing.
        self._views[key] = [(_fold(c), Origin(traced=False)) for c in relation.columns]
        outputs: list[tuple[str, Origin]] = []
        if self._depth < MAX_VIEW_DEPTH:
            self._depth += 1
            try:
                tree = sqlglot.parse_one(relation.definition or "", read=self._catalog.dialect)
                if isinstance(tree, exp.Create):
                    tree = tree.expression
                if isinstance(tree, exp.Query):
                    outputs = self._query(tree, _Scope())
            except _FAILURES as exc:
                log.info("provenance: view %s could not be followed (%r)", relation.name, exc)
            finally:
                self._depth -= 1
        if len(outputs) == len(relation.columns):
            pairs = zip(relation.columns, outputs, strict=True)
            columns = [(_fold(c), origin) for c, (_, origin) in pairs]
        else:
            # Not followed: every column derives from everything its text names.
            everything = self._text_reach(relation.definition or "")
            columns = [(_fold(c), everything) for c in relation.columns]
        self._views[key] = columns
        return columns

    # --- queries -------------------------------------------------------------------------

    def _query(self, node: exp.Expression, scope: _Scope) -> list[tuple[str, Origin]]:
        """The output columns of a query node (SELECT, set operation, parenthesised query)."""
        if isinstance(node, exp.Subquery):
            outer = _Scope(parent=scope)
            self._add_ctes(node, outer)
            return self._query(node.this, outer)
        if isinstance(node, exp.SetOperation):
            inner = _Scope(parent=scope)
            self._add_ctes(node, inner)
            left = self._query(node.this, inner)
            right = self._query(node.expression, inner)
            if len(left) != len(right):
                raise _Unfollowable("set operation branches differ in width")
            return [(name, a | b) for (name, a), (_, b) in zip(left, right, strict=True)]
        if isinstance(node, exp.Select):
            return self._select(node, scope)
        if isinstance(node, exp.Values):
            return self._values(node, scope)
        raise _Unfollowable(f"unexpected {type(node).__name__}")

    def _add_ctes(self, node: exp.Expression, scope: _Scope) -> None:
        with_ = node.args.get("with_") or node.args.get("with")
        if not isinstance(with_, exp.With):
            return
        for cte in with_.expressions:
            name = _fold(cte.alias)
            names = [
                _fold(c.name)
                for c in (cte.args.get("alias").columns if cte.args.get("alias") else [])
            ]
            body = cte.this
            if with_.args.get("recursive") and isinstance(body, exp.SetOperation):
                # The anchor's columns first, then the whole body until nothing changes.
                scope.ctes[name] = self._renamed(self._query(body.this, scope), names)
                for _ in range(8):
                    outputs = self._renamed(self._query(body, scope), names)
                    if outputs == scope.ctes[name]:
                        break
                    scope.ctes[name] = outputs
                else:
                    raise _Unfollowable(f"recursive CTE {name} does not settle")
            else:
                scope.ctes[name] = self._renamed(self._query(body, scope), names)

    @staticmethod
    def _renamed(outputs: list[tuple[str, Origin]], names: list[str]) -> list[tuple[str, Origin]]:
        if not names:
            return outputs
        if len(names) > len(outputs):
            raise _Unfollowable("more column names than columns")
        return [
            (names[i] if i < len(names) else name, origin)
            for i, (name, origin) in enumerate(outputs)
        ]

    def _select(self, node: exp.Select, parent: _Scope) -> list[tuple[str, Origin]]:
        scope = _Scope(parent=parent)
        self._add_ctes(node, scope)
        from_ = node.args.get("from_") or node.args.get("from")
        items = [from_.this] if isinstance(from_, exp.From) else []
        items += [join.this for join in node.args.get("joins") or ()]
        for item in items:
            scope.sources.append(self._source(item, scope))
        for lateral in node.args.get("laterals") or ():
            scope.sources.append(self._source(lateral, scope))
        outputs: list[tuple[str, Origin]] = []
        for expression in node.expressions:
            star = expression if isinstance(expression, exp.Star) else None
            if isinstance(expression, exp.Column) and isinstance(expression.this, exp.Star):
                star = expression
            if star is None:
                outputs.append(
                    (_fold(expression.alias_or_name), self._expression(expression, scope))
                )
                continue
            qualifier = _fold(star.table) if isinstance(star, exp.Column) else ""
            sources = [s for s in scope.sources if not qualifier or qualifier in (s.alias, s.table)]
            if not sources:
                raise _Unfollowable(f"no source for {star.sql()}")
            for source in sources:
                if source.columns is None:
                    raise _Unfollowable(f"columns of {source.alias} are not known")
                outputs.extend(source.columns)
        return outputs

    def _values(self, node: exp.Values, scope: _Scope) -> list[tuple[str, Origin]]:
        rows = [
            row.expressions if isinstance(row, exp.Tuple) else [row] for row in node.expressions
        ]
        if not rows:
            return []
        width = len(rows[0])
        columns = [NOTHING] * width
        for row in rows:
            if len(row) != width:
                raise _Unfollowable("VALUES rows differ in width")
            columns = [c | self._expression(v, scope) for c, v in zip(columns, row, strict=True)]
        return [(f"column{i + 1}", origin) for i, origin in enumerate(columns)]

    # --- FROM items ----------------------------------------------------------------------

    def _source(self, item: exp.Expression, scope: _Scope) -> _Source:
        alias_node = item.args.get("alias")
        alias = _fold(alias_node.name) if isinstance(alias_node, exp.TableAlias) else ""
        names = (
            [_fold(c.name) for c in alias_node.columns]
            if isinstance(alias_node, exp.TableAlias)
            else []
        )
        if isinstance(item, exp.Lateral):
            inner = self._source(item.this, scope)
            inner.alias = alias or inner.alias
            if names and inner.columns is not None:
                inner.columns = self._renamed(inner.columns, names)
            return inner
        if isinstance(item, (exp.Subquery, exp.Values)):
            columns = self._query(item.this if isinstance(item, exp.Subquery) else item, scope)
            return _Source(alias, self._renamed(columns, names), NOTHING)
        if isinstance(item, exp.Table) and isinstance(item.this, exp.Identifier):
            return self._named_source(item, alias, names, scope)
        if isinstance(item, exp.Table):
            item = item.this  # a function in FROM: generate_series(...), get_users()
        return self._function_source(item, alias, names, scope)

    def _named_source(
        self, table: exp.Table, alias: str, names: list[str], scope: _Scope
    ) -> _Source:
        name = _fold(table.name)
        alias = alias or name
        if not table.db:
            cte = scope.cte(name)
            if cte is not None:
                return _Source(alias, self._renamed(cte, names), NOTHING, name)
        relation = self._relation(table.db or None, table.name)
        if relation is None:
            # Not in the catalog (a temporary object, a name the database resolves its own
            # way): its columns are unknown and derive from everything the query reaches.
            return _Source(alias, None, Origin(self._reach.columns, traced=False), name)
        if relation.definition is None:
            columns = [
                (_fold(c), Origin(frozenset({f"{relation.name}.{c}"}))) for c in relation.columns
            ]
        else:
            columns = self._view_columns(relation)
        return _Source(alias, self._renamed(columns, names), NOTHING, _fold(relation.name))

    def _function_source(
        self, call: exp.Expression, alias: str, names: list[str], scope: _Scope
    ) -> _Source:
        """A table function: its columns derive from its arguments (and its row type)."""
        arguments = self._expression(call, scope)  # the body's reach included
        returns = None
        if isinstance(call, exp.Anonymous):
            function = self._function(call.name)
            returns = function.returns if function is not None else None
        alias = alias or _fold(call.name if isinstance(call, exp.Anonymous) else "")
        if returns is not None:
            columns = [
                (_fold(c), arguments | Origin(frozenset({f"{returns.name}.{c}"}), arguments.traced))
                for c in returns.columns
            ]
            return _Source(alias, self._renamed(columns, names), arguments)
        if names:
            return _Source(alias, [(n, arguments) for n in names], arguments)
        return _Source(alias, None, arguments)

    # --- expressions ---------------------------------------------------------------------

    def _expression(self, node: exp.Expression, scope: _Scope) -> Origin:
        """Every column referenced anywhere in ``node``, resolved in ``scope``."""
        result = NOTHING
        for part in node.walk(prune=lambda n: isinstance(n, exp.Query)):
            if isinstance(part, exp.Query):
                inner = _Scope(parent=scope)
                result = result | _union([o for _, o in self._query(part, inner)])
            elif isinstance(part, exp.Column):
                result = result | self._column(part, scope)
            elif isinstance(part, exp.Anonymous):
                result = result | self._body_reach(part.name)
                if _fold(part.name) in SESSION_STATE_READERS:
                    result = result | self._everything
            elif isinstance(part, exp.Parameter):
                # A MySQL user variable: any other expression of the query (``@v :=
                # password``) may have set it, in this row or an earlier one.
                result = result | self._everything
        return result

    def _column(self, column: exp.Column, scope: _Scope) -> Origin:
        qualifier = _fold(column.table)
        whole = isinstance(column.this, exp.Star)
        name = "" if whole else _fold(column.name)
        current: _Scope | None = scope
        while current is not None:
            if qualifier:
                for source in current.sources:
                    if qualifier in (source.alias, source.table):
                        if whole:
                            return source.whole()
                        found = source.column(name)
                        # Not a column of it: a field of a composite, or a name the
                        # database resolves otherwise. Take the whole row.
                        return found if found is not None else source.whole()
            else:
                found = [o for s in current.sources if (o := s.column(name)) is not None]
                if found:
                    return _union(found)
                for source in current.sources:
                    if name in (source.alias, source.table):
                        return source.whole()  # PostgreSQL's whole-row reference
            current = current.parent
        # A name only the database can resolve: it reads nothing outside the query's reach.
        return self._reach


def trace(catalog: Catalog, sql: str) -> Traced:
    """The ``Origin`` of each of the query's result columns; see the module's docstring."""
    return Tracer(catalog).trace(sql)
