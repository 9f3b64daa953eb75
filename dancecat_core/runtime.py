"""``Runtime``: settings, app database, plugins and secrets, built once per process.

The console, the huey worker and the web app all start from ``build_runtime`` so they
cannot drift apart (warehouse's ``configure()`` does the same for its web and worker).
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Sequence
from typing import Any

import attrs
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session, sessionmaker

from dancecat_core import db, schedule_kinds
from dancecat_core.columns import Column
from dancecat_core.crypto import SecretBox
from dancecat_core.drivers import ConnectionParams, Driver
from dancecat_core.errors import ConfigError, NotFound, PluginError
from dancecat_core.exporters import Exporter
from dancecat_core.local_files import LocalFileRules
from dancecat_core.models import Connection
from dancecat_core.notifiers import Notifier
from dancecat_core.plugins import collect, get_plugin_manager, value_patterns
from dancecat_core.resultstore import ResultStore
from dancecat_core.scrubbing import ColumnRemoval, ScrubPlan, ValuePattern
from dancecat_core.settings import (
    Settings,
    collect_specs,
    load_settings,
    read_encryption_keys,
)

log = logging.getLogger(__name__)


@attrs.define
class Runtime:
    settings: Settings
    engine: Engine
    session_factory: sessionmaker[Session]
    plugin_manager: Any
    drivers: dict[str, Driver]
    exporters: dict[str, Exporter]
    stores: dict[str, ResultStore]
    notifiers: dict[str, Notifier]
    # A tuple: fixed for the runtime's life (maskers keep what they prepare from it).
    value_patterns: tuple[ValuePattern, ...]
    secret_box: SecretBox

    @property
    def store(self) -> ResultStore:
        """The store new results go to (``RESULT_STORE``)."""
        return self.stores[self.settings.result_store]

    @property
    def formats(self) -> list[str]:
        """The registered download formats, in name order: the routes' patterns, the
        OpenAPI enum and the screens' links all come from here."""
        return sorted(self.exporters)

    @property
    def download_exporters(self) -> list[Exporter]:
        """The registered exporters, in ``formats`` order (the screens' download links)."""
        return [self.exporters[fmt] for fmt in self.formats]

    def driver(self, name: str) -> Driver:
        try:
            return self.drivers[name]
        except KeyError:
            known = ", ".join(sorted(self.drivers))
            raise NotFound(f"unknown driver {name!r} (known: {known})") from None

    def exporter(self, fmt: str) -> Exporter:
        try:
            return self.exporters[fmt]
        except KeyError:
            known = ", ".join(sorted(self.exporters))
            raise NotFound(f"unknown format {fmt!r} (known: {known})") from None

    def connection_params(self, connection: Connection) -> ConnectionParams:
        """The connection with its password decrypted, for a driver's use only."""
        return ConnectionParams(
            driver=connection.driver,
            database=connection.database,
            host=connection.host,
            port=connection.port,
            user=connection.user_name,
            password=(
                self.secret_box.decrypt(connection.password_encrypted)
                if connection.password_encrypted
                else None
            ),
            read_only=connection.read_only,
            options=connection.options,
            files=self.file_rules(),
        )

    def file_rules(self) -> LocalFileRules:
        """Which local files file-based drivers may open (``SQLITE_ALLOWED_DIRS``)."""
        return LocalFileRules.from_settings(self.settings)

    def scrub_plan(self, columns: Sequence[Column]) -> ScrubPlan:
        removals: list[ColumnRemoval] = []
        for answer in self.plugin_manager.hook.dancecat_scrub_columns(
            columns=columns, settings=self.settings
        ):
            removals.extend(answer or ())
        return ScrubPlan.build(columns, removals)


def _key_reloader(settings: Settings) -> Callable[[], tuple[str, ...]] | None:
    """Keys from the generated file may be rotated under a running process; keys set in the
    environment or the INI file change only with a restart."""
    if settings.encryption_keys != read_encryption_keys(settings.home):
        return None
    return functools.partial(read_encryption_keys, settings.home)


def build_runtime(
    settings: Settings | None = None, *, plugin_manager: Any = None, engine: Engine | None = None
) -> Runtime:
    """Load settings (if not given), plugins, and the app database engine."""
    pm = plugin_manager or get_plugin_manager()
    specs = collect_specs(pm)
    settings = (settings or load_settings(specs=specs)).with_specs(specs)
    hook = pm.hook
    driver_classes = collect(hook.dancecat_register_drivers(), "name", "driver")
    exporter_classes = collect(hook.dancecat_register_exporters(), "format", "exporter")
    store_classes = collect(hook.dancecat_register_result_stores(), "name", "result store")
    notifier_classes = collect(hook.dancecat_register_notifiers(), "name", "notifier")
    schedule_kinds.load(pm)  # the process's schedule types are this runtime's plugins'
    if settings.result_store not in store_classes:
        known = ", ".join(sorted(store_classes))
        raise ConfigError(f"setting RESULT_STORE: {settings.result_store!r} is not one of {known}")
    engine = engine or db.get_engine(settings.database_url)
    factory = db.get_session_factory(engine)
    patterns = value_patterns(pm, settings)
    try:
        return Runtime(
            settings=settings,
            engine=engine,
            session_factory=factory,
            plugin_manager=pm,
            drivers={name: cls() for name, cls in driver_classes.items()},
            exporters={name: cls() for name, cls in exporter_classes.items()},
            stores={name: cls(settings, factory) for name, cls in store_classes.items()},
            notifiers={
                name: cls(settings, sorted(exporter_classes))
                for name, cls in notifier_classes.items()
            },
            value_patterns=tuple(patterns),
            secret_box=SecretBox(settings.encryption_keys, reload=_key_reloader(settings)),
        )
    except TypeError as exc:
        raise PluginError(f"a plugin class could not be built: {exc}") from None
