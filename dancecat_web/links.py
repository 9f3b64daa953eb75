"""``request.link(route, **parts)``: ``request.route_path`` at a fraction of its cost.

A Jobs screen links each of its 25 jobs and 25 runs several times (open, run, edit,
delete, each download format): ~300 ``route_path`` calls a page, each going through
Pyramid's URL generation (keyword checks, the route's generator, app URL assembly).
Here each route's path is generated once per process, with a marker for each part, and
kept as its fixed pieces; a link is those pieces joined with the parts, quoted exactly as
Pyramid quotes them. The result is ``route_path``'s (tests/test_web_links.py compares
them over every route). Query strings and anchors stay with ``route_path``.
"""

from __future__ import annotations

from typing import Any

from markupsafe import Markup, escape
from pyramid.config import Configurator
from pyramid.interfaces import IRoutesMapper
from pyramid.request import Request
from pyramid.traversal import PATH_SAFE, quote_path_segment

# A marker per part: plain letters and digits, which Pyramid's quoting leaves alone.
_MARK = "dancecatlinkpart{}x"

# (route name, part names in the order given) -> (fixed pieces, part names in path order)
_Pieces = tuple[tuple[str, ...], tuple[str, ...]]


def _pieces(request: Request, name: str, parts: tuple[str, ...]) -> _Pieces:
    route = request.registry.getUtility(IRoutesMapper).get_route(name)
    if route is None:
        raise KeyError(f"no route named {name!r}")
    if route.pregenerator is not None or "*" in route.pattern:
        raise ValueError(f"route {name!r} has a pregenerator or a remainder: use route_path")
    path = route.generate({part: _MARK.format(i) for i, part in enumerate(parts)})
    found = sorted((path.find(_MARK.format(i)), part) for i, part in enumerate(parts))
    fixed, order, start = [], [], 0
    for at, part in found:
        mark = _MARK.format(parts.index(part))
        if at < 0 or path.count(mark) != 1:
            raise ValueError(f"route {name!r}: part {part!r} is not one path segment")
        fixed.append(path[start:at])
        order.append(part)
        start = at + len(mark)
    fixed.append(path[start:])
    return tuple(fixed), tuple(order)


def link(request: Request, name: str, **parts: Any) -> str:
    """The path of route ``name`` with ``parts``, as ``request.route_path`` makes it."""
    cache: dict[tuple[str, ...], _Pieces] = request.registry["dancecat.links"]
    key = (name, *parts)
    found = cache.get(key)
    if found is None:
        found = cache[key] = _pieces(request, name, tuple(parts))
    fixed, order = found
    out = [request.link_prefix, fixed[0]]
    for part, piece in zip(order, fixed[1:], strict=True):
        value = parts[part]
        out.append(quote_path_segment(value if value.__class__ is str else str(value), PATH_SAFE))
        out.append(piece)
    return "".join(out)


# The id's place in a route's path while its download links are made once: plain letters.
_ID_MARK = "dancecatdownloadid"


def _download_pattern(request: Request, route: str) -> tuple[str, ...]:
    """The download links of ``route`` (its ``id`` and ``format`` parts) for every format
    the installed exporters offer, as fixed HTML pieces between which the id and the
    "of ..." text go in turn."""
    pieces: list[str] = []
    for exporter in request.runtime.download_exporters:
        before, after = request.link(route, id=_ID_MARK, format=exporter.format).split(_ID_MARK)
        pieces += [
            f'<a href="{escape(before)}',
            f'{escape(after)}" download title="{escape(exporter.label)}">'
            f'{escape(exporter.format.upper())}<span class="sr-only"> of ',
            "</span></a>\n",
        ]
    # Neighbouring fixed pieces joined: [fixed, id, fixed, of, fixed, id, ...]
    merged = [pieces[0]] if pieces else [""]
    for n, piece in enumerate(pieces[1:], start=1):
        if n % 3 == 0:  # after an "of": no slot between this and the piece before
            merged[-1] += piece
        else:
            merged.append(piece)
    return tuple(merged)


def download_links(request: Request, route: str, id: int, of: str) -> Markup:
    """One link per download format to ``route`` for run or job ``id``, each saying what
    it is a download of (``of``, escaped here) to screen readers.

    The Jobs screen draws these for each of its 25 jobs and 25 runs: written in the
    template, each link was five expressions (a link, a label, a filter, two outputs) and
    they were half the page's template work. Here the links of a route are made once a
    process (and script name), and a call only puts the id and the text in their places.
    """
    cache: dict[tuple[str, str], tuple[str, ...]] = request.registry["dancecat.downloads"]
    key = (route, request.link_prefix)
    pattern = cache.get(key)
    if pattern is None:
        pattern = cache[key] = _download_pattern(request, route)
    slots = (str(int(id)), str(escape(of)))
    out = [pattern[0]]
    for n, piece in enumerate(pattern[1:]):
        out.append(slots[n % 2])
        out.append(piece)
    return Markup("".join(out))


def _link_prefix(request: Request) -> str:
    """``request.script_name``, decoded once a request rather than once a link."""
    return request.script_name


def includeme(config: Configurator) -> None:
    # Per process: every request of this app shares the pieces (a dict; two threads making
    # the same entry at once make the same value).
    config.registry["dancecat.links"] = {}
    config.registry["dancecat.downloads"] = {}
    config.add_request_method(link, "link")
    config.add_request_method(download_links, "download_links")
    config.add_request_method(_link_prefix, "link_prefix", reify=True)
