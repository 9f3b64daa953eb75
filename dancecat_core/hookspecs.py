"""The hooks a DanceCat plugin may implement.

A plugin is a module (or object) registered under the ``dancecat`` entry-point group; the
built-ins in ``dancecat_plugins`` register exactly that way. Hooks are called with keyword
arguments, so an implementation may accept fewer arguments than the spec names.
``dancecat_register_*`` hooks return lists; DanceCat merges every plugin's list and refuses
two entries with the same name at start-up.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import pluggy

if TYPE_CHECKING:
    from dancecat_core.columns import Column
    from dancecat_core.drivers import Driver
    from dancecat_core.exporters import Exporter
    from dancecat_core.notifiers import Notifier
    from dancecat_core.resultstore import ResultStore
    from dancecat_core.schedule_kinds import ScheduleKind
    from dancecat_core.scrubbing import ColumnRemoval, ValuePattern
    from dancecat_core.settings import Settings, SettingSpec

PROJECT = "dancecat"
hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)


@hookspec
def dancecat_register_drivers() -> list[type[Driver]]:
    """Return connection driver classes (subclasses of ``dancecat_core.drivers.Driver``).

    :return: driver classes; each ``name`` is what a connection's ``driver`` field holds.
    """


@hookspec
def dancecat_register_exporters() -> list[type[Exporter]]:
    """Return exporter classes (subclasses of ``dancecat_core.exporters.Exporter``).

    :return: exporter classes; each ``format`` becomes a download format.
    """


@hookspec
def dancecat_register_result_stores() -> list[type[ResultStore]]:
    """Return result store classes; ``RESULT_STORE`` picks one by ``name``."""


@hookspec
def dancecat_register_notifiers() -> list[type[Notifier]]:
    """Return notifier classes; every registered notifier is told of every finished run."""


@hookspec
def dancecat_register_schedule_types() -> list[type[ScheduleKind]]:
    """Return schedule type classes (subclasses of ``dancecat_core.schedule_kinds.ScheduleKind``).

    :return: schedule type classes; each ``name`` is what a schedule's ``type`` holds.
    """


@hookspec
def dancecat_register_settings() -> list[SettingSpec]:
    """Declare this plugin's settings (``dancecat_core.settings.SettingSpec``).

    Each is read like a core setting (the INI file's ``[app:main]``, then ``DANCECAT_<KEY>``),
    checked at start-up with the same one-line error, listed by ``dancecat settings`` and
    reached as ``settings.<key in lower case>``. A key declared twice (by core or by two
    plugins) is refused.

    :return: setting specs: key, type, default, help.
    """


@hookspec
def dancecat_scrub_columns(
    columns: Sequence[Column], settings: Settings
) -> list[ColumnRemoval] | None:
    """Say which result columns must be removed before any row is read.

    :param columns: the query's columns, with their source table column where known.
    :param settings: DanceCat's settings (``SCRUB_COLUMN_PATTERNS`` among them).
    :return: a ``ColumnRemoval`` per column to drop; every plugin's answers are merged.
    """


@hookspec
def dancecat_value_patterns(settings: Settings | None) -> list[ValuePattern] | None:
    """Return credential shapes to mask in every value of every result.

    :param settings: DanceCat's settings; ``None`` when they failed to load and the
        console masks that error's text (a bad setting's message quotes its value).
    :return: ``ValuePattern``s; every plugin's patterns are applied.
    """
