"""Every route of the web app, with dotted names (warehouse's ``routes.py``).

Ids are digits only, so a path like ``/api/v1/jobs/abc`` is a plain 404 before any view
runs. The API lives under ``/api/v1``; the browser result routes keep the original's paths.
"""

from __future__ import annotations

from pyramid.config import Configurator

ID = r"{id:\d+}"
API = "/api/v1"


def includeme(config: Configurator) -> None:
    # Browser pages.
    config.add_route("home", "/")
    config.add_route("accounts.login", "/login")
    config.add_route("accounts.logout", "/logout")

    # The seed's browser result routes (session login; bearer tokens work too).
    config.add_route("results.tracker", r"/job/result/{id:\d+}/{format:csv|xlsx|raw}")
    config.add_route("results.latest", r"/job/latest-result/{id:\d+}/{format:csv|xlsx|raw}")

    # JSON API.
    config.add_route("api.openapi", f"{API}/openapi.json")
    config.add_route("api.me", f"{API}/me")
    config.add_route("api.connections", f"{API}/connections")
    config.add_route("api.connections.test_unsaved", f"{API}/connections/test")
    config.add_route("api.connection", f"{API}/connections/{ID}")
    config.add_route("api.connection.test", f"{API}/connections/{ID}/test")
    config.add_route("api.jobs", f"{API}/jobs")
    config.add_route("api.preview", f"{API}/preview")
    config.add_route("api.job", f"{API}/jobs/{ID}")
    config.add_route("api.job.preview", f"{API}/jobs/{ID}/preview")
    config.add_route("api.job.runs", f"{API}/jobs/{ID}/runs")
    config.add_route("api.job.latest_result", f"{API}/jobs/{ID}/latest/result.{{format}}")
    config.add_route("api.tracker", f"{API}/trackers/{ID}")
    config.add_route("api.tracker.result", f"{API}/trackers/{ID}/result.{{format}}")
