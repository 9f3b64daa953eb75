"""``dancecat serve`` behind a TLS reverse proxy (docs/DEPLOY.md): with ``TRUSTED_PROXY``
the scheme and host the proxy forwards make the links and redirects, so a browser that came
in over https is sent on over https; anyone else's X-Forwarded-* headers change nothing.

A real ``dancecat serve`` (waitress), requests sent as nginx sends them; also with
``--processes 2``, where the parent accepts and hands each connection to a web process
(``dancecat_web.handoff``): the client's address must survive the hand-off, since whether
its headers are believed depends on it.
"""

from __future__ import annotations

import contextlib

import pytest
import requests
from test_web_helpers import dancecat, serve

FORWARDED = {"X-Forwarded-Proto": "https", "X-Forwarded-Host": "reports.example.com"}


@pytest.mark.parametrize(
    ("trusted", "expected"),
    [
        ("127.0.0.1", "https://reports.example.com/login"),
        (None, "http://127.0.0.1:{port}/login"),
        ("192.0.2.7", "http://127.0.0.1:{port}/login"),  # someone else's headers
    ],
    ids=["the-proxy", "no-proxy-set", "another-address"],
)
@pytest.mark.parametrize("processes", ["1", "2"])
def test_redirects_follow_the_trusted_proxys_scheme_and_host(
    tmp_path, trusted, expected, processes
):
    home = tmp_path / "home"
    env = {"DANCECAT_TRUSTED_PROXY": trusted} if trusted else {}
    dancecat(home, "init")
    server = serve(home, env=env, args=("--processes", processes))
    live = next(server)
    try:
        answer = requests.get(
            f"{live.url}/jobs", headers=FORWARDED, allow_redirects=False, timeout=10
        )
        port = live.url.rsplit(":", 1)[1]
        assert answer.status_code in (302, 303)
        assert answer.headers["Location"].startswith(expected.format(port=port) + "?")
    finally:
        with contextlib.suppress(StopIteration):
            next(server)
