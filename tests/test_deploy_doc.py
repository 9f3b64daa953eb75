"""docs/DEPLOY.md stays true: its systemd units pass ``systemd-analyze verify`` and their
command lines parse as ``dancecat`` commands; its settings tables and settings file name
only settings that exist, and the role tables account for every one there is."""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
from pathlib import Path

import pytest
from test_worker import BIN

from dancecat_core.console import _chosen, build_parser
from dancecat_core.plugins import get_plugin_manager
from dancecat_core.settings import collect_specs

GUIDE = Path(__file__).resolve().parent.parent / "docs" / "DEPLOY.md"
INSTALLED = "/opt/dancecat/venv/bin/dancecat"
IN_CI = os.environ.get("CI", "").lower() == "true"


def _blocks(language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", GUIDE.read_text(), flags=re.S)


def _section(title: str) -> str:
    text = GUIDE.read_text()
    start = text.index(f"## {title}\n")
    end = text.find("\n## ", start + 1)
    return text[start : end if end > 0 else None]


def test_the_systemd_units_verify_and_run_real_commands(tmp_path):
    units = _blocks("ini")
    assert [re.search(r"Description=(.*)", u).group(1) for u in units] == [
        "DanceCat web app",
        "DanceCat queue consumer",
    ]
    if shutil.which("systemd-analyze") is None:
        if IN_CI:
            pytest.fail("systemd-analyze is not installed")
        pytest.skip("systemd-analyze is not installed")
    for name, unit in zip(("dancecat-web", "dancecat-worker"), units, strict=True):
        command = re.search(r"^ExecStart=(.*)$", unit, flags=re.M).group(1)
        argv = shlex.split(command)
        assert argv[0] == INSTALLED
        parsed = build_parser(_chosen(argv[1:])).parse_args(argv[1:])
        assert parsed.command == {"dancecat-web": "serve", "dancecat-worker": "worker"}[name]
        path = tmp_path / f"{name}.service"
        path.write_text(unit.replace(INSTALLED, str(BIN / "dancecat")))
        done = subprocess.run(
            ["systemd-analyze", "verify", "--man=no", str(path)],
            capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr


def _registered() -> set[str]:
    return {spec.key for spec in collect_specs(get_plugin_manager())}


def _named(text: str, keys: set[str]) -> set[str]:
    """Setting keys named in ``text`` in backticks; ``PREFIX_*`` stands for every key with
    that prefix."""
    named = set()
    for word in re.findall(r"`([A-Z][A-Z0-9_]*\*?)`", text):
        if word.endswith("*"):
            matches = {k for k in keys if k.startswith(word[:-1])}
            assert matches, f"{word} matches no setting"
            named |= matches
        else:
            named.add(word)
    return named


def test_the_role_tables_name_every_setting_and_only_real_ones():
    keys = _registered()
    rows = [line for line in _section("Settings per role").splitlines() if line.startswith("|")]
    roles = _named("\n".join(rows), keys)
    assert roles - keys == set(), "DEPLOY.md names settings that do not exist"
    assert keys - roles - {"HOME"} == set(), "settings missing from DEPLOY.md's role tables"


def test_the_settings_file_uses_real_keys():
    env_file = next(b for b in _blocks("sh") if "DANCECAT_DATABASE_URL" in b)
    used = {line.split("=", 1)[0] for line in env_file.splitlines() if line}
    assert {k.removeprefix("DANCECAT_") for k in used} <= _registered()


def test_every_test_the_docs_cite_exists():
    """The docs back their claims with ``tests/test_x.py::test_name``; a renamed or removed
    test would leave a claim standing on nothing."""
    root = GUIDE.parent.parent
    cited = 0
    for doc in [*root.glob("docs/*.md"), root / "README.md", root / "bench" / "README.md"]:
        for match in re.finditer(r"(tests/test_\w+\.py)(?:::(\w+))?", doc.read_text()):
            path, name = root / match.group(1), match.group(2)
            assert path.is_file(), f"{doc.name} cites {match.group(0)}, which does not exist"
            if name:
                assert re.search(rf"^(async )?def {name}\(", path.read_text(), re.M), (
                    f"{doc.name} cites {match.group(0)}, which does not exist"
                )
            cited += 1
    assert cited > 20  # the pattern still finds the citations
