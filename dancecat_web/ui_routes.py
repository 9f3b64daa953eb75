"""The HTML screens' routes, kept apart from ``routes.py`` so the two can change separately.

Names start with ``ui.``; ids are digits only, like the API's. The views live in
``dancecat_web.ui`` and are scanned from here, so one ``config.include`` turns the screens on.
"""

from __future__ import annotations

from pyramid.config import Configurator

ID = r"{id:\d+}"


def includeme(config: Configurator) -> None:
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

    config.add_route("ui.trackers.status", "/runs/status.json")
    config.add_route("ui.tracker.download", rf"/runs/{ID}/result.{{format:csv|xlsx|json}}")
    config.add_route("ui.latest.download", rf"/jobs/{ID}/latest.{{format:csv|xlsx|json}}")

    config.add_route("ui.schedules.next", "/schedules/next-runs.json")

    config.add_route("ui.tokens", "/tokens")
    config.add_route("ui.token.revoke", f"/tokens/{ID}/revoke")

    config.add_route("ui.users", "/users")
    config.add_route("ui.user.disable", f"/users/{ID}/disable")
    config.add_route("ui.user.enable", f"/users/{ID}/enable")
    config.add_route("ui.user.reset_password", f"/users/{ID}/reset-password")
    config.add_route("ui.user.remove", f"/users/{ID}/remove")

    config.include("dancecat_web.ui.helpers")
    config.scan("dancecat_web.ui")
