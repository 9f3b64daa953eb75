"""The plugin manager, and the registries built from its ``register_*`` hooks."""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

import pluggy

from dancecat_core import hookspecs
from dancecat_core.errors import PluginError

if TYPE_CHECKING:
    from dancecat_core.scrubbing import ValuePattern
    from dancecat_core.settings import Settings

# A registered name: safe in a URL path, a route pattern, a command-line choice and a column.
NAME = re.compile(r"[a-z][a-z0-9_-]{0,31}")


def get_plugin_manager(*, load_entry_points: bool = True, blocked: Iterable[str] = ()):
    """One ``PluginManager`` with DanceCat's hookspecs and every installed plugin.

    Built-ins are found through the same ``dancecat`` entry-point group a third-party
    package uses; ``blocked`` names plugins to disable (``pm.set_blocked``).
    """
    pm = pluggy.PluginManager(hookspecs.PROJECT)
    pm.add_hookspecs(hookspecs)
    for name in blocked:
        pm.set_blocked(name)
    if load_entry_points:
        pm.load_setuptools_entrypoints(hookspecs.PROJECT)
    pm.check_pending()
    return pm


def collect(results: Iterable[list[Any] | None], attribute: str, what: str) -> dict[str, Any]:
    """Merge every plugin's list into a name -> item mapping, refusing duplicates and names
    that are not ``NAME`` (they appear in URLs, route patterns, options and stored rows)."""
    merged: dict[str, Any] = {}
    for items in results:
        for item in items or ():
            name = getattr(item, attribute)
            if not isinstance(name, str) or not NAME.fullmatch(name):
                raise PluginError(
                    f"{item.__module__}.{getattr(item, '__qualname__', item)} registers the "
                    f"{what} name {name!r}: a name is lower-case letters, digits, _ and -, "
                    "starting with a letter"
                )
            if name in merged and merged[name] is not item:
                raise PluginError(
                    f"two plugins register the {what} name {name!r}: "
                    f"{merged[name].__module__} and {item.__module__}"
                )
            merged[name] = item
    return merged


def value_patterns(pm: pluggy.PluginManager, settings: Settings | None) -> list[ValuePattern]:
    """Every plugin's value patterns (``dancecat_value_patterns``), in plugin order."""
    patterns: list[ValuePattern] = []
    for answer in pm.hook.dancecat_value_patterns(settings=settings):
        patterns.extend(answer or ())
    return patterns
