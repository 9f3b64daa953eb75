"""The plugin surface: a third-party package is found through the entry-point group and
used with no change to the core; every hook is documented; duplicates are refused."""

from __future__ import annotations

import inspect
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from dancecat_core import hookspecs
from dancecat_core.errors import PluginError
from dancecat_core.plugins import collect, get_plugin_manager

EXAMPLE = Path(__file__).parent / "plugin_example"


def dancecat(home: Path, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, "DANCECAT_HOME": str(home), "PYTHONPATH": str(EXAMPLE)}
    return subprocess.run(
        [sys.executable, "-m", "dancecat_core.console", *args],
        env=env,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_third_party_plugin_is_used_with_no_change_to_the_core(tmp_path):
    """The example package is on the path with its dist-info, like any installed package."""
    assert dancecat(tmp_path, "init").returncode == 0
    added = dancecat(tmp_path, "connection", "add", "toy", "--driver", "toy", "--database", "x")
    assert added.returncode == 0, added.stderr
    assert (
        dancecat(
            tmp_path, "job", "add", "squares", "--connection", "toy", "--sql", "squares 5"
        ).returncode
        == 0
    )
    run = dancecat(tmp_path, "job", "run", "squares")
    assert run.returncode == 0, run.stderr
    tracker = run.stdout.split()[1].rstrip(":")
    out = dancecat(tmp_path, "export", tracker, "--format", "tsv")
    assert out.returncode == 0, out.stderr
    # the built-in scrubber removed the plugin's "secret_word" column on the way in
    assert out.stdout == "n\tsquare\n0\t0\n1\t1\n2\t4\n3\t9\n4\t16\n"
    # the plugin's notifier told its channel, with the result in the plugin's own format
    [posted] = [json.loads(line) for line in (tmp_path / "outbox.jsonl").read_text().splitlines()]
    assert posted == {
        "to": "#reports",
        "text": f"squares: run {tracker} Success",
        "error": None,
        "file": f"Result_tid_{tracker}.tsv",
        "data": out.stdout,
    }


def test_every_hook_is_documented():
    hooks = [f for name, f in vars(hookspecs).items() if name.startswith("dancecat_")]
    assert len(hooks) >= 6
    for hook in hooks:
        assert inspect.getdoc(hook), f"{hook.__name__} has no docstring"
        assert hook.__name__ in Path("docs/PLUGINS.md").read_text(), hook.__name__


def test_every_builtin_registers_through_the_entry_point_group():
    loaded = {getattr(plugin, "__name__", "") for plugin in get_plugin_manager().get_plugins()}
    for module in Path("dancecat_plugins").glob("*.py"):
        if "@hookimpl" in module.read_text():
            assert f"dancecat_plugins.{module.stem}" in loaded


def test_duplicate_names_are_refused_at_start_up():
    class A:
        format = "csv"

    class B:
        format = "csv"

    with pytest.raises(PluginError, match="two plugins register the exporter name 'csv'"):
        collect([[A], [B]], "format", "exporter")
