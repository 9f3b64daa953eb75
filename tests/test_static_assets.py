"""Static files: minified, compressed as the browser accepts, named by their content and
cached for a year; another release's hash is redirected to the plain name, which answers
(briefly cached); every file a template links exists."""

from __future__ import annotations

import gzip
import hashlib
import os
import re
import shutil
import subprocess
from pathlib import Path

import brotli
import pytest
from test_web_helpers import ROOT, make_app, make_user, sign_in
from webob import Request, Response

from dancecat_web.assets import FOLDER, HASHED_CACHE, PLAIN_CACHE, Assets

TEMPLATES = ROOT / "dancecat_web" / "templates"
IN_CI = os.environ.get("CI", "").lower() == "true"
EDITOR = "vendor/codemirror/codemirror.js"
LINKED = re.compile(r"""(?:href|src)="(/static/[^"]+)\"""")
# The job form names the editor's files for the page script, which loads them on first use.
EDITOR_FILES = re.compile(r"""data-editor-(?:styles|scripts)="([^"]+)\"""")


@pytest.fixture
def app(runtime):
    return make_app(runtime)


@pytest.fixture
def assets() -> Assets:
    return Assets.load()


def _linked(html: str) -> list[str]:
    found = LINKED.findall(html)
    for files in EDITOR_FILES.findall(html):
        found.extend(files.split())
    return found


def raw(app, path: str, method: str = "GET", **headers: str) -> Response:
    """The app's answer as sent, before WebTest would decode it (it cannot read brotli)."""
    return Request.blank(path, method=method, headers=headers).get_response(app.app)


def test_every_file_a_template_names_exists():
    named = set()
    for template in TEMPLATES.rglob("*.jinja2"):
        text = template.read_text(encoding="utf-8")
        assert "static_path(" not in text, f"{template.name} links a static file by its plain name"
        named.update(re.findall(r"asset_path\(\s*'([^']+)'\s*\)", text))
    assert {"dancecat.css", "dancecat.js", "favicon.svg", EDITOR} <= named
    for name in named:
        assert (FOLDER / name).is_file(), name


def test_pages_link_hashed_names_that_answer(app, runtime):
    alice = make_user(runtime, "alice@example.com")
    seen = set(_linked(app.get("/login").text))
    sign_in(app, alice.email)
    for path in ("/jobs", "/jobs/new", "/connections", "/tokens", "/no/such/page"):
        seen.update(_linked(app.get(path, expect_errors=True).text))
    assert len(seen) >= 9, seen  # the editor's six files on the job form
    for url in seen:
        assert re.search(r"\.[0-9a-f]{12}\.\w+$", url), url
        response = raw(app, url, **{"Accept-Encoding": "br"})
        assert response.status_int == 200, url
        assert response.headers["Cache-Control"] == HASHED_CACHE, url
        assert "Set-Cookie" not in response.headers, url


def test_a_hashed_name_is_the_hash_of_the_bytes_served(app, assets):
    for asset in assets.by_name.values():
        body = app.get(f"/static/{asset.hashed}").body
        assert hashlib.sha256(body).hexdigest()[:12] in asset.hashed, asset.name
    assert len({asset.hashed for asset in assets.by_name.values()}) == len(assets.by_name)


def test_scripts_and_style_sheets_are_minified(assets):
    minified = 0
    for asset in assets.by_name.values():
        if asset.name.endswith((".js", ".css")):
            source = (FOLDER / asset.name).read_bytes()
            assert len(asset.body) < 0.9 * len(source), asset.name
            minified += 1
    assert minified >= 5
    assert len(assets.by_name[EDITOR].body) < 300_000  # 402 KB as vendored


def test_minified_scripts_still_parse(assets, tmp_path: Path):
    """``node --check`` on each minified script: a minifier slip would be a syntax error."""
    node = shutil.which("node")
    if node is None:
        message = "node is not installed (apt-get install nodejs)"
        pytest.fail(message) if IN_CI else pytest.skip(message)
    for asset in assets.by_name.values():
        if asset.name.endswith(".js"):
            script = tmp_path / Path(asset.name).name
            script.write_bytes(asset.body)
            done = subprocess.run([node, "--check", str(script)], capture_output=True, text=True)
            assert done.returncode == 0, (asset.name, done.stderr)


@pytest.mark.parametrize(
    ("accept", "encoding"),
    [
        ("gzip, deflate, br", "br"),
        ("br", "br"),
        ("gzip", "gzip"),
        ("br;q=0, gzip", "gzip"),
        ("gzip;q=0.5, br;q=0.4", "gzip"),
        ("identity", None),
        ("", None),
        (None, None),  # no header: plain bytes, though RFC 9110 would allow any
    ],
)
def test_the_encoding_follows_accept_encoding(app, assets, accept, encoding):
    asset = assets.by_name[EDITOR]
    headers = {} if accept is None else {"Accept-Encoding": accept}
    response = raw(app, f"/static/{asset.hashed}", **headers)
    assert response.status_int == 200
    assert response.headers.get("Content-Encoding") == encoding
    assert response.headers["Vary"] == "Accept-Encoding"
    assert response.headers["Cache-Control"] == HASHED_CACHE
    assert response.content_type == "text/javascript"
    body = response.body
    if encoding == "br":
        body = brotli.decompress(body)
    elif encoding == "gzip":
        body = gzip.decompress(body)
    assert body == asset.body
    if encoding is not None:
        assert len(response.body) < len(asset.body) / 3


def test_an_unchanged_file_answers_304(app, assets):
    url = f"/static/{assets.by_name['dancecat.css'].hashed}"
    first = app.get(url, headers={"Accept-Encoding": "gzip"})
    again = app.get(
        url, headers={"Accept-Encoding": "gzip", "If-None-Match": first.headers["ETag"]}, status=304
    )
    assert again.body == b""
    # Another encoding is another representation: not the same ETag.
    plain = app.get(url, headers={"If-None-Match": first.headers["ETag"]}, status=200)
    assert plain.headers["ETag"] != first.headers["ETag"]


def test_head_answers_the_headers_only(app, assets):
    asset = assets.by_name["dancecat.js"]
    response = raw(app, f"/static/{asset.hashed}", "HEAD", **{"Accept-Encoding": "gzip"})
    assert response.status_int == 200 and response.body == b""
    assert int(response.headers["Content-Length"]) == len(asset.body_for("gzip"))


def test_another_hash_is_redirected_to_the_plain_name(app, assets):
    """A page of another release asks for a hash this one does not have: it gets this
    release's file under its plain name (briefly cached), never a redirect to this release's
    hash, which a web host of the other release would redirect back."""
    response = app.get("/static/vendor/codemirror/codemirror.0123456789ab.js", status=302)
    assert response.headers["Location"].endswith("/static/vendor/codemirror/codemirror.js")
    followed = app.get(response.headers["Location"])
    assert followed.body == assets.by_name[EDITOR].body
    assert followed.headers["Cache-Control"] == PLAIN_CACHE


def test_a_plain_name_still_answers_briefly_cached(app, assets):
    response = raw(app, "/static/dancecat.css", **{"Accept-Encoding": "br"})
    assert response.headers["Cache-Control"] == PLAIN_CACHE
    assert brotli.decompress(response.body) == assets.by_name["dancecat.css"].body


@pytest.mark.parametrize(
    "path",
    [
        "/static/nothing.css",
        "/static/nothing.0123456789ab.css",
        "/static/../setup.cfg",
        "/static/%2e%2e/setup.cfg",
        "/static/vendor",
        "/static/",
    ],
)
def test_anything_else_is_a_404(app, path):
    app.get(path, status=404)


def test_only_get_and_head(app, assets, runtime):
    alice = make_user(runtime, "alice@example.com")
    csrf = sign_in(app, alice.email)
    url = f"/static/{assets.by_name['dancecat.js'].hashed}"
    app.post(url, {"csrf_token": csrf}, status=405)
