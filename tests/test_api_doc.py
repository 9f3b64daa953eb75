"""docs/API.md's "Try it" runs as written against a real ``dancecat serve``: its setup
commands, its ``curl`` commands and its Python example, in a fresh home, with a token made
as it says. The one change: the docs' ``http://127.0.0.1:6543`` becomes the server's
address (a free port: the machine running the tests is shared)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

from test_web_helpers import PASSWORD, ROOT, serve

DOC = ROOT / "docs" / "API.md"
ORIGIN = "http://127.0.0.1:6543"


def _try_it() -> tuple[list[str], str, str]:
    """The section's setup commands, its console script and its Python example."""
    text = DOC.read_text()
    section = text.split("## Try it\n", 1)[1].split("\n### ", 1)[0]
    blocks = re.findall(r"```(\w+)\n(.*?)```", section, flags=re.S)
    (setup_kind, setup), (console_kind, console), (python_kind, python) = blocks
    assert (setup_kind, console_kind, python_kind) == ("console", "console", "python")
    return _commands(setup), "\n".join(_commands(console)), python


def _commands(block: str) -> list[str]:
    """``$ `` lines, continuation lines joined."""
    joined = block.replace("\\\n", " ")
    return [line[2:] for line in joined.splitlines() if line.startswith("$ ")]


def _bash(script: str, cwd: Path, env: dict[str, str]) -> str:
    done = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", script],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, f"{script}\n---\n{done.stdout}\n{done.stderr}"
    return done.stdout


def test_try_it_runs_as_written(tmp_path):
    setup, console, python = _try_it()
    assert setup[-1] == "dancecat serve &", setup  # started below, on a free port
    work = tmp_path / "checkout"
    (work / "examples").mkdir(parents=True)
    shutil.copyfile(ROOT / "examples" / "chinook.sqlite", work / "examples" / "chinook.sqlite")
    home = tmp_path / "home"
    home.mkdir()
    env = {
        **os.environ,
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
        "DANCECAT_HOME": str(home),
    }
    _bash("\n".join(setup[:-1]) + "\nenv | grep ^DANCECAT_ > server.env", work, env)
    served = dict(line.split("=", 1) for line in (work / "server.env").read_text().splitlines())
    assert served["DANCECAT_SQLITE_ALLOWED_DIRS"] == str(work / "examples")
    for live in serve(home, env=served):
        import requests

        # "Sign in once to set your password", as a browser does it.
        browser = requests.Session()
        page = browser.get(f"{live.url}/login", timeout=10).text
        csrf = page.split('name="csrf_token" value="', 1)[1].split('"', 1)[0]
        browser.post(
            f"{live.url}/login",
            data={
                "email": "you@example.com",
                "password": PASSWORD,
                "confirm": PASSWORD,
                "csrf_token": csrf,
            },
            allow_redirects=False,
            timeout=10,
        ).raise_for_status()
        output = _bash(console.replace(ORIGIN, live.url) + '\necho "TOKEN=$TOKEN"', work, env)
        assert '"connection": {' in output and '"job": {' in output, output
        csv_lines = (work / "Result_tid_1.csv").read_text().splitlines()
        assert csv_lines[0] == "CustomerId,spent" and len(csv_lines) == 6, csv_lines
        assert '"runs": [{"id": 1,' in output and '"next": null' in output, output
        token = output.rsplit("TOKEN=", 1)[1].strip()
        done = subprocess.run(
            [sys.executable, "-c", python.replace(ORIGIN, live.url)],
            env={**env, "TOKEN": token},
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert done.returncode == 0, done.stderr
        assert done.stdout.startswith("Success [6, Decimal('49.62')]"), done.stdout
