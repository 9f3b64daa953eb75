"""Every route of the web app, with dotted names (warehouse's ``routes.py``).

Ids are digits only, so a path like ``/api/v1/jobs/abc`` is a plain 404 before any view
runs. The API lives under ``/api/v1`` (names ``api.*``); the HTML screens' names start with
``ui.``; ``results.*`` are the path-style result links ``/job/result/<id>/<format>``.
Download formats in patterns are the registered exporters' (``Runtime.formats``), so a
format a plugin adds is routed like the built-in ones.
"""

from __future__ import annotations

from collections.abc import Iterable

from pyramid.config import Configurator

from dancecat_core.services.job_urls import PULL_FORMATS

ID = r"{id:\d+}"
API = "/api/v1"
# The path-style result links' inline JSON view: the ``json`` export, shown in the browser.
RAW = "raw"


def one_of(names: Iterable[str]) -> str:
    """A route pattern alternative matching exactly ``names`` (registry names hold no regex
    characters: ``dancecat_core.plugins.collect`` refuses them)."""
    return "|".join(sorted(names, key=lambda name: (-len(name), name)))


def includeme(config: Configurator) -> None:
    formats = config.registry["dancecat.runtime"].formats
    downloads = one_of(formats)
    result_links = one_of([*formats, RAW])

    # Static files by their hashed names (``dancecat_web.assets``).
    config.add_route("static", "/static/*subpath")

    # Sign-in.
    config.add_route("home", "/")
    config.add_route("accounts.login", "/login")
    config.add_route("accounts.logout", "/logout")

    # Path-style result links (session login; bearer tokens work too).
    config.add_route("results.tracker", rf"/job/result/{ID}/{{format:{result_links}}}")
    config.add_route("results.latest", rf"/job/latest-result/{ID}/{{format:{result_links}}}")

    # URLs that act on one job by their token alone (``views.job_urls``); the token's
    # exact shape is checked in the view.
    config.add_route(
        "pull", rf"/pull/{{token:dcp_[A-Za-z0-9_-]+}}.{{format:{one_of(PULL_FORMATS)}}}"
    )
    config.add_route("trigger", r"/trigger/{token:dcg_[A-Za-z0-9_-]+}")

    # JSON API.
    config.add_route("api.openapi", f"{API}/openapi.json")
    config.add_route("api.me", f"{API}/me")
    config.add_route("api.connections", f"{API}/connections")
    config.add_route("api.connections.test_unsaved", f"{API}/connections/test")
    config.add_route("api.connection", f"{API}/connections/{ID}")
    config.add_route("api.connection.test", f"{API}/connections/{ID}/test")
    config.add_route("api.connection.schema", f"{API}/connections/{ID}/schema")
    config.add_route("api.connection.schema.refresh", f"{API}/connections/{ID}/schema/refresh")
    config.add_route("api.connection.schema.columns", f"{API}/connections/{ID}/schema/columns")
    config.add_route("api.format_sql", f"{API}/format-sql")
    config.add_route("api.jobs", f"{API}/jobs")
    config.add_route("api.preview", f"{API}/preview")
    config.add_route("api.job", f"{API}/jobs/{ID}")
    config.add_route("api.job.preview", f"{API}/jobs/{ID}/preview")
    config.add_route("api.job.runs", f"{API}/jobs/{ID}/runs")
    config.add_route("api.job.latest_result", f"{API}/jobs/{ID}/latest/result.{{format}}")
    config.add_route("api.job.pull_urls", f"{API}/jobs/{ID}/pull-urls")
    config.add_route("api.pull_url", f"{API}/pull-urls/{ID}")
    config.add_route("api.pull_url.rotate", f"{API}/pull-urls/{ID}/rotate")
    config.add_route("api.job.triggers", f"{API}/jobs/{ID}/triggers")
    config.add_route("api.trigger", f"{API}/triggers/{ID}")
    config.add_route("api.runs", f"{API}/runs")
    config.add_route("api.destinations.test", f"{API}/destinations/test")
    config.add_route("api.job.destinations.test", f"{API}/jobs/{ID}/destinations/test")
    config.add_route("api.tracker", f"{API}/trackers/{ID}")
    config.add_route("api.tracker.result", f"{API}/trackers/{ID}/result.{{format}}")

    # HTML screens (views in ``dancecat_web.ui``).
    config.add_route("ui.connections", "/connections")
    config.add_route("ui.connection.new", "/connections/new")
    config.add_route("ui.connection.test", "/connections/test")
    config.add_route("ui.connection.edit", f"/connections/{ID}/edit")
    config.add_route("ui.connection.delete", f"/connections/{ID}/delete")

    config.add_route("ui.jobs", "/jobs")
    config.add_route("ui.job.new", "/jobs/new")
    config.add_route("ui.job.preview", "/jobs/preview")
    config.add_route("ui.job", f"/jobs/{ID}")
    config.add_route("ui.job.edit", f"/jobs/{ID}/edit")
    config.add_route("ui.job.delete", f"/jobs/{ID}/delete")
    config.add_route("ui.job.run", f"/jobs/{ID}/run")
    config.add_route("ui.job.pull_urls", f"/jobs/{ID}/pull-urls")
    config.add_route("ui.job.triggers", f"/jobs/{ID}/triggers")
    config.add_route("ui.pull_url.revoke", f"/pull-urls/{ID}/revoke")
    config.add_route("ui.pull_url.rotate", f"/pull-urls/{ID}/rotate")
    config.add_route("ui.trigger.revoke", f"/triggers/{ID}/revoke")
    config.add_route("ui.job.destination_test", f"/jobs/{ID}/destinations/test")

    config.add_route("ui.trackers.status", "/runs/status.json")
    config.add_route("ui.tracker.download", rf"/runs/{ID}/result.{{format:{downloads}}}")
    config.add_route("ui.latest.download", rf"/jobs/{ID}/latest.{{format:{downloads}}}")

    config.add_route("ui.schedules.next", "/schedules/next-runs.json")

    config.add_route("ui.tokens", "/tokens")
    config.add_route("ui.token.revoke", f"/tokens/{ID}/revoke")

    config.add_route("ui.users", "/users")
    config.add_route("ui.user.disable", f"/users/{ID}/disable")
    config.add_route("ui.user.enable", f"/users/{ID}/enable")
    config.add_route("ui.user.reset_password", f"/users/{ID}/reset-password")
    config.add_route("ui.user.remove", f"/users/{ID}/remove")
