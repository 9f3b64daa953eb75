"""The plugin manager, and the registries built from its ``register_*`` hooks."""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

import pluggy

from dancecat_core import hookspecs
from dancecat_core.errors import PluginError

if TYPE_CHECKING:
    from dancecat_core.scrubbing import ValuePattern
    from dancecat_core.settings import Settings


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
    """Merge every plugin's list into a name -> item mapping, refusing duplicates."""
    merged: dict[str, Any] = {}
    for items in results:
        for item in items or ():
            name = getattr(item, attribute)
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
