"""Static files as browsers should get them: minified, compressed, named by their content.

At start-up every file under ``dancecat_web/static`` is read once; scripts and style sheets
are minified (rjsmin, rcssmin) and each file gets a name holding a hash of the bytes served:
templates link ``request.asset_path('dancecat.css')``, which is
``/static/dancecat.<hash>.css``, and that URL is cached for a year as ``immutable``. A
release that changes a file changes its name, so a browser never keeps a stale copy and
never asks again for a current one.

Each file is compressed (brotli, else gzip, as the request's ``Accept-Encoding`` allows) on
the first request for it in that encoding, and kept for the life of the process: brotli at
its best quality takes about a second for the editor, which only a process that serves the
editor should pay (``dancecat`` commands and the test suite's many apps never do). Two
first requests at once may both compress; the results are the same bytes.

A plain name (``/static/dancecat.css``, for anything that linked a file directly) still
answers, cached for a few minutes only. A hash this process does not have (a page cached
before an upgrade, or served by a web host of another release while an upgrade rolls) is
redirected to the plain name, not to this process's hashed one: two hosts of different
releases would otherwise send a browser back and forth between their two hashes. Files are
read at start-up: restart to serve an edited one.
"""

from __future__ import annotations

import gzip
import hashlib
import mimetypes
import re
from collections.abc import Callable
from pathlib import Path

import attrs
import brotli
import rcssmin
import rjsmin
from pyramid.config import Configurator
from pyramid.httpexceptions import HTTPFound, HTTPNotFound
from pyramid.request import Request
from pyramid.response import Response
from pyramid.security import NO_PERMISSION_REQUIRED

FOLDER = Path(__file__).parent / "static"
ROUTE = "static"
HASHED_CACHE = "public, max-age=31536000, immutable"
PLAIN_CACHE = "public, max-age=300"
HASH_LENGTH = 12
# Scripts and style sheets lose their comments and spaces; other files are served as they are.
MINIFIERS: dict[str, Callable[[str], str]] = {
    ".js": rjsmin.jsmin,
    ".css": rcssmin.cssmin,
}
# Text worth compressing (images such as PNG are compressed already).
COMPRESSIBLE = {".js", ".css", ".svg", ".txt", ".json", ""}
# In the server's order of preference, for equal weights in ``Accept-Encoding``.
ENCODERS: dict[str, Callable[[bytes], bytes]] = {
    "br": lambda body: brotli.compress(body, quality=11),
    "gzip": lambda body: gzip.compress(body, compresslevel=9, mtime=0),
}
# ``name.<hash>.ext``: the hash, and the plain name it stands for.
HASHED_NAME = re.compile(rf"^(?P<stem>.+)\.(?P<hash>[0-9a-f]{{{HASH_LENGTH}}})(?P<ext>\.[^./]+)$")


@attrs.define
class Asset:
    """One static file: its plain and hashed names, the bytes served, their encodings."""

    name: str
    hashed: str
    digest: str
    body: bytes
    content_type: str
    compressible: bool
    encoded: dict[str, bytes] = attrs.field(factory=dict)

    def body_for(self, encoding: str | None) -> bytes:
        """The body in ``encoding`` (None: as it is), compressed the first time it is asked."""
        if encoding is None:
            return self.body
        found = self.encoded.get(encoding)
        if found is None:
            found = self.encoded[encoding] = ENCODERS[encoding](self.body)
        return found


def _content_type(name: str) -> str:
    guessed = mimetypes.guess_type(name)[0] or "text/plain"
    return f"{guessed}; charset=utf-8" if guessed.startswith("text/") else guessed


def _hashed_name(name: str, digest: str) -> str:
    folder, _, file_name = name.rpartition("/")
    stem, dot, ext = file_name.rpartition(".")
    hashed = f"{stem}.{digest}.{ext}" if dot and stem else f"{file_name}.{digest}"
    return f"{folder}/{hashed}" if folder else hashed


def load_asset(path: Path, name: str) -> Asset:
    """``path`` as served under ``name`` (its path below the static folder)."""
    body = path.read_bytes()
    minify = MINIFIERS.get(path.suffix)
    if minify is not None:
        body = minify(body.decode("utf-8")).encode("utf-8")
    digest = hashlib.sha256(body).hexdigest()[:HASH_LENGTH]
    return Asset(
        name=name,
        hashed=_hashed_name(name, digest),
        digest=digest,
        body=body,
        content_type=_content_type(name),
        compressible=path.suffix in COMPRESSIBLE,
    )


@attrs.frozen
class Assets:
    """Every static file, by its plain name and by its hashed name."""

    by_name: dict[str, Asset]
    by_hashed: dict[str, Asset]

    @classmethod
    def load(cls, folder: Path = FOLDER) -> Assets:
        assets = [
            load_asset(path, path.relative_to(folder).as_posix())
            for path in sorted(folder.rglob("*"))
            if path.is_file() and not path.name.startswith(".")
        ]
        return cls({a.name: a for a in assets}, {a.hashed: a for a in assets})

    def hashed_name(self, name: str) -> str:
        asset = self.by_name.get(name)
        if asset is None:
            raise KeyError(f"no static file {name!r} in {FOLDER}")
        return asset.hashed

    def plain_name(self, other: str) -> str | None:
        """The plain name of ``other``, a hashed name this release does not have, if a file
        of that plain name exists."""
        folder, _, file_name = other.rpartition("/")
        match = HASHED_NAME.match(file_name)
        if match is None:
            return None
        plain = match["stem"] + match["ext"]
        name = f"{folder}/{plain}" if folder else plain
        return name if name in self.by_name else None


def asset_path(request: Request, name: str) -> str:
    """The URL path of static file ``name`` under its current hashed name."""
    assets: Assets = request.registry["dancecat.assets"]
    return request.route_path(ROUTE, subpath=assets.hashed_name(name))


def chosen_encoding(request: Request, asset: Asset) -> str | None:
    """The best encoding this request accepts (brotli first on a tie), None for none. No
    ``Accept-Encoding`` at all would allow any (RFC 9110); such clients get plain bytes."""
    if not asset.compressible or "Accept-Encoding" not in request.headers:
        return None
    offers = request.accept_encoding.acceptable_offers(list(ENCODERS))
    return offers[0][0] if offers else None


def serve_asset(request: Request) -> Response:
    assets: Assets = request.registry["dancecat.assets"]
    name = "/".join(request.matchdict["subpath"])
    asset = assets.by_hashed.get(name)
    cache = HASHED_CACHE
    if asset is None:
        asset = assets.by_name.get(name)
        cache = PLAIN_CACHE
    if asset is None:
        plain = assets.plain_name(name)
        if plain is None:
            raise HTTPNotFound()
        return HTTPFound(location=request.route_path(ROUTE, subpath=plain))
    encoding = chosen_encoding(request, asset)
    response = Response(
        body=asset.body_for(encoding),
        content_type=asset.content_type,
        charset=None,
        conditional_response=True,
    )
    response.headers["Cache-Control"] = cache
    response.etag = f"{asset.digest}-{encoding or 'identity'}"
    if encoding is not None:
        response.content_encoding = encoding
    if asset.compressible:
        response.vary = ("Accept-Encoding",)
    return response


def includeme(config: Configurator) -> None:
    config.registry["dancecat.assets"] = Assets.load()
    config.add_request_method(asset_path, "asset_path")
    config.add_view(
        serve_asset,
        route_name=ROUTE,
        request_method=("GET", "HEAD"),
        permission=NO_PERMISSION_REQUIRED,
    )
