"""The schedule form's live "next runs" answer, as the user edits a schedule block."""

from __future__ import annotations

from typing import Any

from pyramid.request import Request
from pyramid.view import view_config

from dancecat_web.ui.schedule_times import next_runs


@view_config(route_name="ui.schedules.next", request_method="GET", renderer="json")
def schedule_next_runs(request: Request) -> dict[str, Any]:
    params = request.GET
    answer = next_runs(
        params.get("type", ""),
        params.get("start", ""),
        params.get("timezone", "") or request.dancecat_settings.timezone or "UTC",
        params.get("cron") or None,
    )
    return {
        "runs": [{"local": run.local, "utc": run.utc} for run in answer.runs],
        "error": answer.error,
    }
