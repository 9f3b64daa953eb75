"""A body over ``MAX_BODY_BYTES`` sent to a real ``dancecat serve`` gets the API's JSON 413,
whether its length is declared or chunked, and not waitress's plain-text answer: the web
server's own limit (``limits.server_body_limit``) lies well past the app's."""

from __future__ import annotations

import json

import pytest
import requests
from test_web_helpers import dancecat, first_token, serve

from dancecat_web.limits import SERVER_BODY_FACTOR

CAP = 4096


@pytest.fixture
def live(tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    dancecat(home, "init")
    dancecat(home, "add-allowed-user", "big@example.com")
    yield from serve(home, env={"DANCECAT_MAX_BODY_BYTES": str(CAP)})


def _body(size: int) -> bytes:
    text = json.dumps({"name": "", "driver": "sqlite", "database": "x.sqlite"})
    return text.replace('"name": ""', '"name": "' + "n" * (size - len(text)) + '"').encode()


def test_too_big_bodies_get_the_json_413_from_a_real_server(live):
    token = first_token(live, "big@example.com")
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    url = live.api("/connections")
    # Just under the cap: parsed, and refused for its content (a 255-character name).
    assert requests.post(url, data=_body(CAP), headers=headers, timeout=30).status_code == 422
    for size in (CAP + 1, 2 * CAP, (SERVER_BODY_FACTOR - 1) * CAP):
        body = _body(size)
        declared = requests.post(url, data=body, headers=headers, timeout=30)
        chunked = requests.post(
            url,
            data=(body[i : i + 1000] for i in range(0, size, 1000)),
            headers=headers,
            timeout=30,
        )
        for answer in (declared, chunked):
            assert answer.status_code == 413, (size, answer.text[:200])
            assert answer.headers["Content-Type"] == "application/json", answer.headers
            assert answer.json()["error"]["code"] == "body_too_large"
