"""The Jinja sandbox that message templates are checked and rendered in (see
``messages``, which says what it refuses and why).

A module of its own so that jinja2 (~10 ms to import, and the environment to build) loads
only when a template is checked or a message rendered: a run with no recipients, and most
console commands, never do either.
"""

from __future__ import annotations

import functools
import re
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from types import FrameType
from typing import Any

from jinja2 import StrictUndefined, TemplateSyntaxError, meta, nodes
from jinja2.compiler import CodeGenerator
from jinja2.exceptions import SecurityError
from jinja2.filters import FILTERS
from jinja2.sandbox import SandboxedEnvironment, safe_range

__all__ = ["SecurityError", "TemplateLimit", "TemplateSyntaxError", "names_used", "render"]

MAX_TEXT = 100_000
RENDER_SECONDS = 1.0

_FILTERS = frozenset(
    {
        *("abs", "capitalize", "count", "default", "d", "e", "escape", "first", "float"),
        *("int", "last", "length", "lower", "max", "min", "round", "string", "sum", "title"),
        *("trim", "truncate", "upper", "urlencode", "wordcount", "dictsort", "list", "sort"),
        *("unique", "reverse", "filesizeformat", "tojson"),
    }
)
# Methods a template may call on its values; all of them cost time linear in the value.
_METHODS = frozenset(
    {
        *("upper", "lower", "title", "capitalize", "strip", "lstrip", "rstrip", "split"),
        *("startswith", "endswith", "isdigit", "isnumeric", "items", "keys", "values", "get"),
        "isoformat",
    }
)


class TemplateLimit(SecurityError):
    """The template went past a size or time limit."""


class _GuardedCode(CodeGenerator):
    """Jinja's code generator, but ``a ~ b`` goes through ``environment.joined`` so no
    chain of concatenations can build a string past ``MAX_TEXT``."""

    def visit_Concat(self, node: nodes.Concat, frame: Any) -> None:
        self.write("environment.joined((")
        for arg in node.nodes:
            self.visit(arg, frame)
            self.write(", ")
        self.write("))")


def _limited(value: Any) -> Any:
    if isinstance(value, str | list | tuple | dict) and len(value) > MAX_TEXT:
        raise TemplateLimit(f"a value in the template grew past {MAX_TEXT} characters or items")
    return value


def _join(value: Iterable[Any], d: str = "", attribute: Any = None) -> str:
    """The ``join`` filter, stopping as soon as the joined text would pass ``MAX_TEXT``."""
    if attribute is not None:
        raise SecurityError("join(attribute=...) is not allowed in message templates")
    parts: list[str] = []
    size = 0
    for item in value:
        text = str(item)
        size += len(text) + len(d)
        if size > MAX_TEXT + len(d):
            raise TemplateLimit(f"a joined text grew past {MAX_TEXT} characters")
        parts.append(text)
    return d.join(parts)


def _format(value: str, *args: Any) -> str:
    """``'%.1f'|format(x)`` for numbers only: one conversion, no width over 20."""
    if not re.fullmatch(r"%[-+ 0#]?\d{0,2}(\.\d{1,2})?[dfeEgGs%]", value):
        raise SecurityError("format takes one short conversion such as '%.1f'")
    return _limited(value % args)


class _Sandbox(SandboxedEnvironment):
    code_generator_class = _GuardedCode
    intercepted_binops = frozenset({"+", "*", "**", "%"})

    def __init__(self) -> None:
        super().__init__(undefined=StrictUndefined, autoescape=False, loader=None)
        self.globals.clear()
        self.globals["range"] = safe_range
        self.filters = {name: FILTERS[name] for name in _FILTERS}
        self.filters["join"] = _join
        self.filters["format"] = _format
        self.tests = dict(self.tests)

    def joined(self, values: Sequence[Any]) -> str:
        return _limited("".join(str(value) for value in values))

    def call_binop(self, context: Any, operator: str, left: Any, right: Any) -> Any:
        if operator == "%" and isinstance(left, str):
            raise SecurityError("% formatting is not allowed in message templates")
        if operator == "**" and (not isinstance(right, int | float) or abs(right) > 64):
            raise TemplateLimit("** takes an exponent of at most 64")
        if operator == "*":
            for seq, times in ((left, right), (right, left)):
                sized = isinstance(seq, str | list | tuple) and isinstance(times, int)
                if sized and len(seq) * times > MAX_TEXT:
                    raise TemplateLimit(f"a repeated text would pass {MAX_TEXT} characters")
        return _limited(super().call_binop(context, operator, left, right))

    def wrap_str_format(self, value: Any) -> None:
        """``str.format`` is not one of ``_METHODS``: its padding builds any size."""
        return None

    def is_safe_attribute(self, obj: Any, attr: str, value: Any) -> bool:
        if not super().is_safe_attribute(obj, attr, value):
            return False
        return not callable(value) or attr in _METHODS


@functools.cache
def _environment() -> _Sandbox:
    return _Sandbox()


def names_used(text: str) -> set[str]:
    """The names a template reads, once it parses and passes the sandbox's rules
    (``TemplateSyntaxError``, ``SecurityError`` otherwise)."""
    tree = _environment().parse(text)
    _refuse_unsafe(tree)
    return set(meta.find_undeclared_variables(tree))


def _refuse_unsafe(tree: nodes.Template) -> None:
    """What the sandbox would refuse at send time, refused on save instead."""
    if any(tree.find_all((nodes.Include, nodes.Import, nodes.FromImport, nodes.Extends))):
        raise SecurityError("templates cannot include or import other files")
    for node in tree.find_all(nodes.Filter):
        if node.name not in _environment().filters:
            raise SecurityError(f"the filter {node.name!r} is not allowed")
    for call in tree.find_all(nodes.Call):
        if isinstance(call.node, nodes.Getattr) and call.node.attr not in _METHODS:
            raise SecurityError(f"the method {call.node.attr!r} is not allowed")
    for node in tree.find_all((nodes.Getattr, nodes.Getitem)):
        name = node.attr if isinstance(node, nodes.Getattr) else getattr(node.arg, "value", "")
        if isinstance(name, str) and name.startswith("_"):
            raise SecurityError(f"the attribute {name!r} is not allowed")


def render(template: str, context: dict[str, Any]) -> str:
    compiled = _environment().from_string(template)
    deadline = time.monotonic() + RENDER_SECONDS
    parts: list[str] = []
    size = 0
    with _Deadline(deadline):
        for part in compiled.generate(context):
            size += len(part)
            if size > MAX_TEXT:
                raise TemplateLimit(f"the text is longer than {MAX_TEXT} characters")
            parts.append(part)
    return "".join(parts)


class _Deadline:
    """Stops the rendering thread's Python code once ``deadline`` passes (a trace hook on
    this thread only, removed after; a loop that prints nothing is caught too)."""

    def __init__(self, deadline: float):
        self.deadline = deadline
        self.previous: Callable[..., Any] | None = None

    def _trace(self, frame: FrameType, event: str, arg: Any) -> Callable[..., Any]:
        if time.monotonic() > self.deadline:
            raise TemplateLimit(f"rendering took longer than {RENDER_SECONDS:g} s")
        return self._trace

    def __enter__(self) -> None:
        self.previous = sys.gettrace()
        sys.settrace(self._trace)

    def __exit__(self, *exc: object) -> None:
        sys.settrace(self.previous)
