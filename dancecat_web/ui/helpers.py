"""What every template may use: formatting, flash messages, the active tab.

Templates get a ``h`` namespace (this module's ``Helpers``) through a ``BeforeRender``
subscriber, so formatting lives in Python, is tested once, and no template computes dates.
"""

from __future__ import annotations

import datetime as dt
import zoneinfo
from collections.abc import Sequence
from typing import Any

from markupsafe import Markup
from pyramid.config import Configurator
from pyramid.events import BeforeRender
from pyramid.request import Request

from dancecat_core import parameters
from dancecat_core.error_text import shown_error
from dancecat_core.errors import ValidationError
from dancecat_core.inputs.recipients import parse_recipient
from dancecat_core.models import TrackerStatus
from dancecat_core.services import access
from dancecat_web.ui import fragments

FLASH_QUEUES = ("success", "error", "info")
STATUS_CLASS = {
    TrackerStatus.QUEUED.value: "queued",
    TrackerStatus.RUNNING.value: "running",
    TrackerStatus.SUCCESS.value: "success",
    TrackerStatus.FAILED.value: "failed",
    TrackerStatus.RESULT_EXPIRED.value: "expired",
    TrackerStatus.DIED_IN_QUEUE.value: "failed",
}


def flash(request: Request, message: str, queue: str = "success") -> None:
    """Show ``message`` once on the next page this browser renders."""
    request.session.flash(message, queue=queue)


class Helpers:
    """Formatting bound to one request (its time zone, its session's flash queues)."""

    def __init__(self, request: Request):
        self.request = request
        name = request.dancecat_settings.timezone or "UTC"
        self.zone = zoneinfo.ZoneInfo(name)
        self.zone_name = name

    def when(self, value: dt.datetime | None, *, seconds: bool = True) -> str:
        """A stored UTC instant in the server's display zone; '—' for none."""
        if value is None:
            return "—"
        fmt = "%Y-%m-%d %H:%M:%S" if seconds else "%Y-%m-%d %H:%M"
        return value.astimezone(self.zone).strftime(fmt)

    def iso(self, value: dt.datetime | None) -> str:
        return value.astimezone(dt.UTC).isoformat() if value is not None else ""

    def status_class(self, status: str) -> str:
        return STATUS_CLASS.get(status, "queued")

    def flashes(self) -> list[tuple[str, str]]:
        session = self.request.session
        return [(queue, message) for queue in FLASH_QUEUES for message in session.pop_flash(queue)]

    def tab(self) -> str:
        """Which top tab the page belongs to, from its route name."""
        route = self.request.matched_route
        name = route.name if route is not None else ""
        for tab in ("connection", "token", "job", "user"):
            if name.startswith(f"ui.{tab}"):
                return tab
        return ""

    def can_change(self, obj: Any) -> bool:
        """Whether to offer Edit / Delete (the services check again on submit)."""
        return access.can_change(self.request.user, obj)

    def mail_unavailable(self, destinations: Sequence[str] | None = None) -> list[str]:
        """Why results cannot be sent: each registered notifier that is not configured
        (given a job's ``destinations``: only those that would deliver one of them)."""
        return [
            notifier.unconfigured_reason
            for _, notifier in sorted(self.request.runtime.notifiers.items())
            if not notifier.configured
            and (destinations is None or notifier.recipients_for(destinations))
        ]

    def bad_recipient(self, entry: str) -> bool:
        """Whether a typed recipient entry is refused, so a refused form marks that very
        input (``aria-invalid``) and not only the group's message."""
        try:
            parse_recipient(entry, "recipients", "Send result to", self.request.runtime)
        except ValidationError:
            return True
        return False

    def error(self, text: str | None) -> str:
        """A stored error text masked as it is shown (``shown_error``); '' for none."""
        return shown_error(text, self.request.runtime.value_patterns) or ""

    def parameter_values(self, stored: str | None) -> list[tuple[str, str]]:
        """A run's recorded parameter values as ``(name, text)``, for showing and for the
        hidden inputs of "Run again with these values"."""
        return [
            (name, parameters.as_text(value))
            for name, value in parameters.load_values(stored).items()
        ]

    def value_text(self, value: Any) -> str:
        return parameters.as_text(value)

    def declared(self, job: Any) -> list[Any]:
        """A job's declared parameters (the Run form's inputs)."""
        return list(parameters.load(job.parameters_json))

    def number(self, value: int | None) -> str:
        return "—" if value is None else f"{value:,}"

    def kept(self, template: str, **values: Any) -> Markup:
        """``template`` drawn with ``values``, kept while they stay the same
        (``fragments.kept``): table rows, and the Jobs screen's content."""
        return fragments.kept(self.request, self, template, **values)

    def markdown(self, text: str | None) -> Markup:
        from dancecat_web.ui.markdown import render_markdown

        return render_markdown(text or "")


def add_helpers(event: BeforeRender) -> None:
    request = event.get("request")
    if request is not None and "h" not in event:
        event["h"] = Helpers(request)


def includeme(config: Configurator) -> None:
    config.registry["dancecat.fragments"] = fragments.Fragments()
    config.add_subscriber(add_helpers, BeforeRender)
