"""Lighthouse performance of every screen, with mobile emulation (issue 17: each ≥ 95).

Not part of ``bench/run`` and not needed by the tests: it needs npm's ``lighthouse``
(``npm install lighthouse@12`` somewhere, then ``--lighthouse
PATH/node_modules/.bin/lighthouse``) and Chromium (``CHROME_PATH``, else /usr/bin/chromium).
It starts a real ``dancecat serve`` on embedded defaults in a fresh home (a temporary
folder), adds an admin, a connection to the bundled Chinook database and one job that has
run once, signs in through the live sign-in form to get a session cookie, and runs
Lighthouse's default mobile form factor with simulated throttling, performance only,
``--runs`` times per screen (the sign-in screen without the cookie). It prints, per screen,
the median score and the median of the metrics behind it, and the load average before and
after (the machine is shared: scores move with it).

    .venv/bin/python -m bench.lighthouse_case --lighthouse /tmp/lh/node_modules/.bin/lighthouse
    .venv/bin/python -m bench.lighthouse_case --screens job-form,job-edit --runs 5
    PYTHONPATH=/tmp/other-checkout .venv/bin/python -m bench.lighthouse_case   # that tree's server
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parent.parent
EMAIL = "lighthouse@example.com"
PASSWORD = "correct horse battery staple"
CHROME_FLAGS = (
    "--headless=new --no-sandbox --disable-gpu --disable-quic --no-first-run "
    "--disable-background-networking --disable-component-update --disable-sync"
)
# Screen name → path on the server; the ``job`` ones name the one job this case saves (id 1).
SCREENS = {
    "sign-in": "/login",
    "jobs": "/jobs",
    "job": "/jobs/1",
    "connections": "/connections",
    "connection-form": "/connections/new",
    "tokens": "/tokens",
    "users": "/users",
    "job-form": "/jobs/new",
    "job-edit": "/jobs/1/edit",
}
# Lighthouse audit id → column title (milliseconds, except CLS).
METRICS = {
    "first-contentful-paint": "FCP",
    "largest-contentful-paint": "LCP",
    "total-blocking-time": "TBT",
    "cumulative-layout-shift": "CLS",
    "speed-index": "SI",
}


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


# The console, in this interpreter; run from the home folder, so that PYTHONPATH (not the
# current folder) picks the tree that serves: A/B runs against another checkout need that.
CONSOLE = "import sys; from dancecat_core.console import main; sys.exit(main())"


def _env(home: Path) -> dict[str, str]:
    examples = str(ROOT / "examples")
    return {**os.environ, "DANCECAT_HOME": str(home), "DANCECAT_SQLITE_ALLOWED_DIRS": examples}


def _dancecat(home: Path, *args: str) -> None:
    """One console command on this home."""
    command = [sys.executable, "-c", CONSOLE, *args]
    subprocess.run(command, env=_env(home), cwd=home, check=True, stdout=subprocess.DEVNULL)


def _prepare(home: Path) -> None:
    _dancecat(home, "init")
    _dancecat(home, "add-allowed-user", EMAIL, "--admin")
    chinook = ROOT / "examples" / "chinook.sqlite"
    _dancecat(
        home, "connection", "add", "chinook", "--driver", "sqlite", "--database", str(chinook)
    )
    sql = ROOT / "examples" / "top_customers.sql"
    _dancecat(
        home, "job", "add", "top customers", "--connection", "chinook", "--sql-file", str(sql)
    )
    _dancecat(home, "job", "run", "top customers", "--no-notify")


def _serve(home: Path, port: int) -> subprocess.Popen[bytes]:
    server = subprocess.Popen(
        [sys.executable, "-c", CONSOLE, "serve", "--port", str(port)],
        env=_env(home),
        cwd=home,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            requests.get(f"http://127.0.0.1:{port}/login", timeout=2)
            return server
        except requests.ConnectionError:
            time.sleep(0.3)
    server.kill()
    raise RuntimeError("dancecat serve did not answer within 60 s")


def _sign_in(base: str) -> str:
    """Sign in through the form (the first sign-in sets the password); the Cookie header."""
    client = requests.Session()
    page = client.get(f"{base}/login", timeout=10).text
    found = re.search(r'name="csrf_token" value="([^"]+)"', page)
    if not found:
        raise RuntimeError("no CSRF token on the sign-in page")
    form = {
        "csrf_token": found.group(1),
        "next": "/jobs",
        "email": EMAIL,
        "password": PASSWORD,
        "confirm": PASSWORD,
    }
    answer = client.post(f"{base}/login", data=form, timeout=10, allow_redirects=False)
    if answer.status_code not in (302, 303) or not client.cookies:
        raise RuntimeError(f"sign-in refused: {answer.status_code}")
    if client.get(f"{base}/jobs/1/edit", timeout=10, allow_redirects=False).status_code != 200:
        raise RuntimeError("the signed-in session cannot open the job form")
    return "; ".join(f"{name}={value}" for name, value in client.cookies.items())


def _lighthouse(binary: str, url: str, headers: Path | None, out: Path) -> dict[str, float]:
    command = [
        binary,
        url,
        "--only-categories=performance",
        "--output=json",
        f"--output-path={out}",
        "--quiet",
        f"--chrome-flags={CHROME_FLAGS}",
    ]
    if headers is not None:
        command.append(f"--extra-headers={headers}")
    subprocess.run(
        command,
        check=True,
        env={**os.environ, "CHROME_PATH": os.environ.get("CHROME_PATH", "/usr/bin/chromium")},
    )
    report = json.loads(out.read_text())
    if report.get("runtimeError"):
        raise RuntimeError(f"{url}: {report['runtimeError']}")
    if report["finalDisplayedUrl"].rstrip("/") != url.rstrip("/"):
        raise RuntimeError(f"{url} ended on {report['finalDisplayedUrl']} (not signed in?)")
    figures = {"score": round(report["categories"]["performance"]["score"] * 100)}
    for audit, title in METRICS.items():
        figures[title] = report["audits"][audit]["numericValue"]
    return figures


def _load() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lighthouse", default="/tmp/lh/node_modules/.bin/lighthouse")
    parser.add_argument(
        "--screens", default=",".join(SCREENS), help="comma-separated: " + ", ".join(SCREENS)
    )
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--keep", type=Path, help="keep the Lighthouse JSON reports in this folder")
    args = parser.parse_args(argv)
    screens = [name.strip() for name in args.screens.split(",") if name.strip()]
    unknown = [name for name in screens if name not in SCREENS]
    if unknown:
        parser.error(f"unknown screens: {', '.join(unknown)}")
    work = Path(tempfile.mkdtemp(prefix="dc-lighthouse-"))
    reports = args.keep or work / "reports"
    reports.mkdir(parents=True, exist_ok=True)
    home = work / "home"
    home.mkdir()
    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    _prepare(home)
    server = _serve(home, port)
    try:
        headers = work / "headers.json"
        headers.write_text(json.dumps({"Cookie": _sign_in(base)}))
        where = [sys.executable, "-c", "import dancecat_web; print(dancecat_web.__file__)"]
        served = subprocess.run(
            where, cwd=home, capture_output=True, text=True, check=True
        ).stdout.strip()
        print(
            f"served from {Path(served).parent.parent}; load average before: {_load()}", flush=True
        )
        print(
            f"{'screen':<16} {'score':>5} "
            + " ".join(f"{t:>7}" for t in METRICS.values())
            + "  runs",
            flush=True,
        )
        for name in screens:
            runs = []
            for index in range(args.runs):
                out = reports / f"{name}-{index + 1}.json"
                runs.append(
                    _lighthouse(
                        args.lighthouse,
                        base + SCREENS[name],
                        None if name == "sign-in" else headers,
                        out,
                    )
                )
            median = {key: statistics.median(run[key] for run in runs) for key in runs[0]}
            cells = " ".join(
                f"{median[t]:>7.3f}" if t == "CLS" else f"{median[t]:>7.0f}"
                for t in METRICS.values()
            )
            scores = ",".join(str(run["score"]) for run in runs)
            print(f"{name:<16} {median['score']:>5.0f} {cells}  {scores}", flush=True)
        print(f"load average after: {_load()}", flush=True)
    finally:
        server.terminate()
        server.wait(timeout=30)
        if args.keep is None:
            shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
