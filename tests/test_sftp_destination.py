"""The SFTP destination against a real OpenSSH ``sshd`` started by the test."""

from __future__ import annotations

import pytest
from destination_peers import Sshd, keygen

from dancecat_core.errors import DancecatError, ValidationError
from dancecat_plugins.destination_files import DeliveryError
from dancecat_plugins.sftp_target import parse_target
from dancecat_plugins.sftp_transfer import (
    KnownHosts,
    Login,
    upload,
)


@pytest.fixture
def client_key(tmp_path):
    return keygen(tmp_path / "client_key")


@pytest.fixture
def sshd(tmp_path, client_key):
    server = Sshd(tmp_path / "sshd", client_key)
    yield server
    server.stop()


def _url(sshd: Sshd, folder, query: str = "") -> str:
    return f"sftp://{sshd.user}@127.0.0.1:{sshd.port}{folder}/" + (f"?{query}" if query else "")


def _send(
    url: str,
    client_key,
    tmp_path,
    data: list[bytes],
    name: str = "report.csv",
    allow_private: bool = True,
) -> str:
    return upload(
        parse_target(url),
        name,
        iter(data),
        "k1",
        login=Login(key_file=client_key),
        known_hosts=KnownHosts(tmp_path / "known_hosts"),
        timeout=10,
        allow_private=allow_private,
    )


def test_upload_then_resend_replaces_the_file(sshd, client_key, tmp_path):
    folder = tmp_path / "drop"
    folder.mkdir()
    url = _url(sshd, folder, f"host_key={sshd.public_host_key()}")
    written = _send(url, client_key, tmp_path, [b"a,b\n", b"1,2\n"])
    assert written == f"{folder}/report.csv"
    assert (folder / "report.csv").read_bytes() == b"a,b\n1,2\n"
    _send(url, client_key, tmp_path, [b"a,b\n3,4\n"])
    assert sorted(p.name for p in folder.iterdir()) == ["report.csv"]
    assert (folder / "report.csv").read_bytes() == b"a,b\n3,4\n"


def test_wrong_host_key_is_refused(sshd, client_key, tmp_path):
    folder = tmp_path / "drop"
    folder.mkdir()
    other = keygen(tmp_path / "other_host_key")
    entry = " ".join((tmp_path / "other_host_key.pub").read_text().split()[:2])
    assert other.exists()
    with pytest.raises(DeliveryError, match=r"host key of \[127.0.0.1\]:\d+ has CHANGED"):
        _send(_url(sshd, folder, f"host_key={entry}"), client_key, tmp_path, [b"x"])
    assert list(folder.iterdir()) == []


def test_unknown_host_is_refused_without_trust_on_first_use(sshd, client_key, tmp_path):
    folder = tmp_path / "drop"
    folder.mkdir()
    with pytest.raises(DeliveryError, match="is unknown") as refused:
        _send(_url(sshd, folder), client_key, tmp_path, [b"x"])
    # the entry to paste into the URL, its space written %20
    assert sshd.public_host_key().replace(" ", "%20") in str(refused.value)
    assert list(folder.iterdir()) == []
    assert not (tmp_path / "known_hosts").exists()


def test_trust_on_first_use_records_the_key_and_then_holds_to_it(sshd, client_key, tmp_path):
    folder = tmp_path / "drop"
    folder.mkdir()
    url = _url(sshd, folder, "trust=first-use")
    _send(url, client_key, tmp_path, [b"x"])
    assert sshd.public_host_key() in (tmp_path / "known_hosts").read_text()
    # The same host and port with another key (a new server, or someone in between).
    sshd.stop()
    impostor = Sshd(tmp_path / "impostor", client_key)
    impostor_url = url.replace(str(sshd.port), str(impostor.port))
    known = (tmp_path / "known_hosts").read_text().replace(str(sshd.port), str(impostor.port))
    (tmp_path / "known_hosts").write_text(known)
    try:
        with pytest.raises(DeliveryError, match="has CHANGED"):
            _send(impostor_url, client_key, tmp_path, [b"y"])
    finally:
        impostor.stop()
    assert (folder / "report.csv").read_bytes() == b"x"


def test_failing_connect_says_why(client_key, tmp_path):
    from test_web_helpers import free_port

    url = f"sftp://someone@127.0.0.1:{free_port()}/drop/?trust=first-use"
    with pytest.raises(
        DeliveryError, match=r"cannot connect to 127.0.0.1 port \d+: Connection refused"
    ):
        _send(url, client_key, tmp_path, [b"x"])


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost", "127.1", "[::1]", "192.168.1.1"])
def test_private_hosts_are_refused_unless_allowed(host, client_key, tmp_path):
    with pytest.raises(DancecatError, match="hosts need DELIVERY_ALLOW_PRIVATE_HOSTS"):
        _send(f"sftp://u@{host}:9/d/", client_key, tmp_path, [b"x"], allow_private=False)


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("sftp://host/drop/", "needs a user"),
        ("sftp://u@/drop/", "needs a host"),
        ("sftp://u@host/drop", "end its path with /"),
        ("sftp://u@host/a/../b/", "'..'"),
        ("sftp://u@host:99999/d/", "a number from 1 to 65535"),
        ("sftp://u:pa/ss@host/d/", "type a / in the password as %2F"),
        ("sftp://u:pass@host:x/d/", "a number from 1 to 65535"),
        ("sftp://u@host/d/?trust=always", "the only value is trust=first-use"),
        ("sftp://u@host/d/?hostkey=x", "unknown sftp:// option 'hostkey'"),
        ("sftp://u@host/d/?host_key=ssh-ed25519%20notbase64", "host_key is not a valid"),
        ("sftp://u@host/d/?format=CSV!", "not a format name"),
    ],
)
def test_bad_urls_get_one_line(url, message):
    with pytest.raises(ValidationError, match=message):
        parse_target(url)


def test_password_is_masked_in_the_shown_form():
    target = parse_target("sftp://ana:s%40cret@files.example:2222/in/?trust=first-use")
    assert target.password == "s@cret"
    assert target.shown() == "sftp://ana:***@files.example:2222/in/?trust=first-use"
    assert "s@cret" not in repr(target)


def test_a_refused_password_says_so_without_the_password(sshd, client_key, tmp_path):
    host_key = sshd.public_host_key()
    url = f"sftp://{sshd.user}:hunter2%2Fx@127.0.0.1:{sshd.port}{tmp_path}/?host_key={host_key}"
    target = parse_target(url)
    with pytest.raises(DeliveryError) as refused:
        upload(
            target,
            "report.csv",
            iter([b"x"]),
            "k1",
            login=Login(target.password, client_key),  # the password wins over the key
            known_hosts=KnownHosts(tmp_path / "known_hosts"),
            timeout=10,
            allow_private=True,
        )
    who = f"{sshd.user}@[127.0.0.1]:{sshd.port}"
    assert str(refused.value) == f"{who} refused the login (password)"
