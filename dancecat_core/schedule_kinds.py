"""Schedule types as a plugin kind: the ``ScheduleKind`` contract, and this process's
registry of every plugin's types (``dancecat_register_schedule_types``).

The registry is module-level, not a ``Runtime`` attribute: the schedule service, the
console's parser and the input declarations read it without a runtime. ``build_runtime``
loads it from the runtime's plugin manager; code that runs without a runtime loads it once
from the installed plugins on first use.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Any, ClassVar

import attrs

from dancecat_core.errors import PluginError, ValidationError
from dancecat_core.plugins import collect, get_plugin_manager


@attrs.frozen
class Rule:
    """What a stored schedule says about its own times: its wall-clock start (naive) in
    an IANA zone, and the extra fields its type needs (``cron``)."""

    start_local: dt.datetime
    timezone: str
    cron: str | None = None


class ScheduleKind:
    """A schedule type. Subclass it and register the class; DanceCat builds one instance
    with no arguments. Every time it returns is aware UTC."""

    name: ClassVar[str]  # stored in the schedule's ``type`` column; ``--type NAME``
    label: ClassVar[str]  # what the job form's select shows
    # The schedule fields it reads beyond start and time zone (today only ``cron``);
    # the others must be empty.
    fields: ClassVar[tuple[str, ...]] = ()
    # False for a type that fires once: no period before its run, no staleness alert.
    repeats: ClassVar[bool] = True

    def check(self, values: Mapping[str, Any]) -> dict[str, Any]:
        """The ``fields`` values, normalised; ``ValidationError`` naming the field else."""
        return dict(values)

    def next_after(self, rule: Rule, after: dt.datetime) -> dt.datetime | None:
        """The first occurrence strictly after ``after`` (never before the start);
        ``None`` when there is none."""
        raise NotImplementedError

    def previous_before(self, rule: Rule, before: dt.datetime) -> dt.datetime | None:
        """The last occurrence strictly before ``before``, carried on before the start
        (a run's ``period_start``); ``None`` when the type has no period."""
        return None


class UnknownScheduleType(ValidationError):
    """A stored schedule's type that no installed plugin registers (its plugin was
    removed): the schedule cannot run until the plugin is back or the type changes."""

    def __init__(self, name: str):
        known = ", ".join(registered())
        super().__init__(
            f"schedule type {name!r} is not installed (known: {known}); its plugin may have "
            "been removed",
            "type",
        )
        self.name = name


_registry: dict[str, ScheduleKind] | None = None


def load(pm: Any) -> dict[str, ScheduleKind]:
    """Build this process's registry from ``pm``'s plugins (replacing any earlier one)."""
    global _registry
    classes = collect(pm.hook.dancecat_register_schedule_types(), "name", "schedule type")
    try:
        _registry = {name: cls() for name, cls in classes.items()}
    except TypeError as exc:
        raise PluginError(f"a schedule type could not be built: {exc}") from None
    return _registry


def registered() -> dict[str, ScheduleKind]:
    """Every registered type by name, in registration order."""
    return _registry if _registry is not None else load(get_plugin_manager())


def get(name: str) -> ScheduleKind:
    """The type named ``name``, or ``UnknownScheduleType``."""
    kind = registered().get(name)
    if kind is None:
        raise UnknownScheduleType(name)
    return kind


def choices() -> list[tuple[str, str]]:
    """``(name, label)`` of every registered type: the form's select, ``--type`` and the
    OpenAPI enum."""
    return [(name, kind.label) for name, kind in registered().items()]


def needing(field: str) -> list[str]:
    """The names of the types that read ``field``."""
    return [name for name, kind in registered().items() if field in kind.fields]
