"""Lists come from the plugin registries: a third-party exporter (the example package's TSV
format, installed through the ``dancecat`` entry-point group like any package) shows in the
screens, the API, the route patterns and the OpenAPI document with no change to
``dancecat_web``; without it, none of them knows the format. Registered names are checked."""

from __future__ import annotations

from pathlib import Path

import pytest
from test_web_helpers import make_app, make_user, sign_in
from webtest import TestApp

from dancecat_core import migrations
from dancecat_core.errors import PluginError, ValidationError
from dancecat_core.hookspecs import hookimpl
from dancecat_core.models import TrackerStatus
from dancecat_core.notifiers import result_links
from dancecat_core.plugins import collect, get_plugin_manager
from dancecat_core.runner import execute_tracker
from dancecat_core.runtime import build_runtime

EXAMPLE = Path(__file__).parent / "plugin_example"
ARTISTS = "SELECT ArtistId, Name FROM Artist WHERE ArtistId <= 3 ORDER BY ArtistId"
TSV = b"ArtistId\tName\n1\tAC/DC\n2\tAccept\n3\tAerosmith\n"


def web(settings, sqlite_chinook, *, with_example: bool, monkeypatch):
    """A WebTest app on a runtime whose plugins are the installed ones (plus the example
    package when ``with_example``), a signed-in member, and one finished run."""
    if with_example:
        monkeypatch.syspath_prepend(str(EXAMPLE))
    runtime = build_runtime(settings, plugin_manager=get_plugin_manager())
    migrations.upgrade(runtime.engine)
    queued: list[int] = []
    app = make_app(runtime, queued)
    member = make_user(runtime, "ann@example.com")
    sign_in(app, member.email)
    body = {"name": "chinook", "driver": "sqlite", "database": str(sqlite_chinook)}
    connection = app.post_json("/api/v1/connections", body, headers=member.auth).json
    body = {"name": "artists", "connection_id": connection["connection"]["id"], "query": ARTISTS}
    job = app.post_json("/api/v1/jobs", body, headers=member.auth).json["job"]
    tracker = app.post(f"/api/v1/jobs/{job['id']}/runs", headers=member.auth).json["tracker"]
    assert execute_tracker(runtime, tracker["id"]).status == TrackerStatus.SUCCESS
    return app, member, job["id"], tracker["id"], runtime


def test_a_third_party_exporter_reaches_screens_api_routes_and_openapi(
    settings, sqlite_chinook, monkeypatch
):
    app, member, job, run, runtime = web(
        settings, sqlite_chinook, with_example=True, monkeypatch=monkeypatch
    )
    assert "tsv" in runtime.exporters and "toy" in runtime.drivers
    try:
        # The screens: a download link per registered format, in the runs table and the
        # job's latest result.
        page = app.get("/jobs").text
        assert f'href="/runs/{run}/result.tsv"' in page
        assert f'href="/jobs/{job}/latest.tsv"' in page
        # The driver list of the connection form is the registry's too.
        assert 'value="toy"' in app.get("/connections/new").text
        # Every route that serves a format serves it.
        for path in (
            f"/runs/{run}/result.tsv",
            f"/jobs/{job}/latest.tsv",
            f"/job/result/{run}/tsv",
            f"/job/latest-result/{job}/tsv",
            f"/api/v1/trackers/{run}/result.tsv",
            f"/api/v1/jobs/{job}/latest/result.tsv",
        ):
            response = app.get(path, headers=member.auth)
            assert response.body == TSV, path
            assert response.content_type == "text/tab-separated-values", path
            assert "attachment" in response.headers["Content-Disposition"], path
        # The OpenAPI document's enums.
        document = app.get("/api/v1/openapi.json").json
        for path in ("/trackers/{id}/result.", "/jobs/{id}/latest/result."):
            formats = sorted(p[len(path) :] for p in document["paths"] if p.startswith(path))
            assert formats == ["csv", "json", "ods", "tsv", "xlsx"], path
        drivers = document["components"]["schemas"]["ConnectionInput"]["properties"]["driver"]
        assert "toy" in drivers["enum"]
        # The sign-in page, the job form's recipient hint, the mail attachment choice and
        # every notifier's links know it too.
        assert "delivered as CSV, JSON, ODS, TSV and XLSX." in TestApp(app.app).get("/login")
        hint = app.get("/jobs/new").html.find(id="recipient-formats").text
        assert "one of csv, json, ods, tsv, xlsx" in hint
        mail = runtime.notifiers["email"]
        assert mail.parse("ann@example.com?format=tsv").shown == "ann@example.com?format=tsv"
        for notifier in runtime.notifiers.values():
            assert "tsv" in result_links(runtime.settings, run, notifier.formats)
    finally:
        runtime.engine.dispose()


def test_without_the_plugin_no_surface_knows_the_format(settings, sqlite_chinook, monkeypatch):
    app, member, _job, run, runtime = web(
        settings, sqlite_chinook, with_example=False, monkeypatch=monkeypatch
    )
    try:
        assert "tsv" not in runtime.exporters
        assert "result.tsv" not in app.get("/jobs").text
        assert f'href="/runs/{run}/result.csv"' in app.get("/jobs").text
        for path in (f"/runs/{run}/result.tsv", f"/job/result/{run}/tsv"):
            app.get(path, status=404)
        app.get(f"/api/v1/trackers/{run}/result.tsv", headers=member.auth, status=404)
        document = app.get("/api/v1/openapi.json").json
        prefix = "/trackers/{id}/result."
        formats = sorted(p[len(prefix) :] for p in document["paths"] if p.startswith(prefix))
        assert formats == ["csv", "json", "ods", "xlsx"]
        with pytest.raises(ValidationError, match="not one of csv, json, ods, xlsx"):
            runtime.notifiers["email"].parse("ann@example.com?format=tsv")
    finally:
        runtime.engine.dispose()


@pytest.mark.parametrize(
    "name", ["c|sv", "CSV", "tsv}", "t.sv", "t sv", "", "x" * 33, "tsv\n", "ñ", "1tsv", None]
)
def test_a_name_that_cannot_be_routed_or_typed_is_refused(name):
    class Odd:
        format = name

    with pytest.raises(PluginError, match="registers the exporter name"):
        collect([[Odd]], "format", "exporter")


def test_a_plugin_with_a_bad_format_name_stops_start_up(settings):
    class Bad:
        format = "ts|v"

    class Plugin:
        @hookimpl
        def dancecat_register_exporters(self):
            return [Bad]

    pm = get_plugin_manager()
    pm.register(Plugin())
    with pytest.raises(PluginError, match=r"'ts\|v'"):
        build_runtime(settings, plugin_manager=pm)
