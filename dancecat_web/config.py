"""One ``configure()``: settings, runtime, transaction, sessions, security, views.

Every piece is an ``includeme`` in a module named for what it holds, included here in the
order they depend on each other. ``main`` (pserve), ``dancecat serve`` and the tests all
come through this function.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from typing import Any

from pyramid.config import Configurator

from dancecat_core.runtime import Runtime, build_runtime
from dancecat_core.settings import ENV_PREFIX, Settings, load_settings


def app_settings(
    raw: Mapping[str, Any] | None = None,
    *,
    config_file: str | None = None,
    environ: Mapping[str, str] | None = None,
) -> Settings:
    """DanceCat's settings from paste's ``[app:main]`` keys, overridden by the environment.

    Paste hands the INI section to ``main`` as keyword arguments; they are fed to
    ``load_settings`` as if they were ``DANCECAT_*`` variables, under the real environment,
    so precedence stays defaults < INI < environment as everywhere else.
    """
    environ = os.environ if environ is None else environ
    merged: dict[str, str] = {}
    for key, value in (raw or {}).items():
        name = key.removeprefix("dancecat.")
        if isinstance(value, str) and "." not in name:  # not pyramid.*, jinja2.*, tm.*
            merged[ENV_PREFIX + name.upper()] = value
    merged.update(environ)
    return load_settings(config_file or None, environ=merged)


def configure(
    settings: Mapping[str, Any] | None = None,
    *,
    config_file: str | None = None,
    runtime: Runtime | None = None,
    enqueue_run: Callable[[int], None] | None = None,
) -> Configurator:
    """The configured ``Configurator``.

    Pass ``runtime`` to share one (tests, ``serve``) and ``enqueue_run`` to replace the
    queue (tests that watch what is enqueued).
    """
    pyramid_settings = dict(settings or {})
    if runtime is None:
        runtime = build_runtime(app_settings(pyramid_settings, config_file=config_file))
    pyramid_settings.setdefault("jinja2.directories", "dancecat_web:templates")
    pyramid_settings.setdefault("jinja2.autoescape", "true")
    pyramid_settings["tm.manager_hook"] = "pyramid_tm.explicit_manager"
    # pyramid_tm would look the user up outside the views (and the error views) to
    # annotate the transaction; a database outage there could not become a 503.
    pyramid_settings.setdefault("tm.annotate_user", "false")
    config = Configurator(settings=pyramid_settings)
    config.registry["dancecat.runtime"] = runtime
    if enqueue_run is not None:
        config.registry["dancecat.enqueue_run"] = enqueue_run
    config.include("dancecat_web.runtime")
    config.include("dancecat_web.db")
    config.include("dancecat_web.errors")
    config.include("dancecat_web.queue")
    config.include("pyramid_jinja2")
    config.include("dancecat_web.sessions")
    config.include("dancecat_web.security")
    config.include("dancecat_web.limits")
    config.include("dancecat_web.headers")
    config.include("dancecat_web.routes")
    config.include("dancecat_web.api")
    config.include("dancecat_web.assets")
    config.include("dancecat_web.links")
    config.include("dancecat_web.ui.helpers")
    config.scan("dancecat_web.ui")
    config.scan("dancecat_web.api")
    config.scan("dancecat_web.views")
    config.scan("dancecat_web.errors")
    return config
