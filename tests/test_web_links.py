"""``request.link`` makes exactly the path ``request.route_path`` makes, for every route of
the app, with ids, formats and awkward text (spaces, slashes, percent signs, non-ASCII),
under an application mounted below a prefix too."""

from __future__ import annotations

import re

import pytest
from pyramid.interfaces import IRoutesMapper
from pyramid.request import Request
from pyramid.scripting import prepare

from dancecat_web.config import configure

VALUES = [1, 42, 10**15, "csv", "a b", "a/b", "100%", "é?&#", "..", ""]


@pytest.fixture
def registry(runtime):
    return configure(runtime=runtime, enqueue_run=lambda tracker_id: None).make_wsgi_app().registry


@pytest.mark.parametrize("script_name", ["", "/dancecat"])
def test_every_route_links_as_route_path_does(registry, script_name):
    request = Request.blank("/", base_url=f"http://example.com{script_name}")
    env = prepare(request=request, registry=registry)
    try:
        routes = registry.getUtility(IRoutesMapper).get_routes()
        assert len(routes) > 30
        compared = 0
        for route in routes:
            if "*" in route.pattern:  # static files' subpath: refused, see below
                with pytest.raises(ValueError, match="remainder"):
                    request.link(route.name, subpath="a")
                continue
            names = re.findall(r"{(\w+)", route.pattern)
            for value in VALUES:
                parts = {name: value for name in names}
                expected = request.route_path(route.name, **parts)
                assert request.link(route.name, **parts) == expected, (route.name, value)
                # Twice: the second comes from the per-process pieces.
                assert request.link(route.name, **parts) == expected
                compared += 1
        assert compared > 300
        # Parts given in another order: the same path.
        assert request.link("ui.tracker.download", format="xlsx", id=7) == request.route_path(
            "ui.tracker.download", id=7, format="xlsx"
        )
    finally:
        env["closer"]()


def test_unknown_route_and_missing_part_refused(registry):
    request = Request.blank("/")
    env = prepare(request=request, registry=registry)
    try:
        with pytest.raises(KeyError):
            request.link("no.such.route")
        with pytest.raises(KeyError):
            request.link("ui.job")
    finally:
        env["closer"]()


@pytest.mark.parametrize("script_name", ["", "/dancecat"])
def test_download_links_are_one_link_per_format_with_the_text_escaped(registry, script_name):
    """``request.download_links``: per installed format, ``route_path``'s link, the
    exporter's label and format, and the "of ..." text escaped (a job's name is anyone's
    text); made from the per-process pattern the second time, for another id and text."""
    from markupsafe import escape

    request = Request.blank("/", base_url=f"http://example.com{script_name}")
    env = prepare(request=request, registry=registry)
    try:
        exporters = request.runtime.download_exporters
        assert len(exporters) >= 3
        for route in ("ui.tracker.download", "ui.latest.download"):
            for id_, of in ((7, 'run 7'), (10**12, '<b>"Q&A"</b> {id} \\x')):
                html = str(request.download_links(route, id_, of))
                expected = "".join(
                    f'<a href="{request.route_path(route, id=id_, format=exporter.format)}"'
                    f' download title="{escape(exporter.label)}">{exporter.format.upper()}'
                    f'<span class="sr-only"> of {escape(of)}</span></a>\n'
                    for exporter in exporters
                )
                assert html == expected
        assert "<b>" not in str(request.download_links("ui.tracker.download", 1, "<b>"))
    finally:
        env["closer"]()
